"""Reading text files: chunking that keeps GPT-2 ids exact, and the bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest

from llm_core.errors import ConfigError, DataError
from llm_data import read_text_file, tokens_from_text_file
from llm_data.text_files import iter_text_chunks


def test_the_verdict_has_5145_gpt2_tokens(scratchlm_test_data, gpt2) -> None:
    tokens = tokens_from_text_file(scratchlm_test_data / "the-verdict.txt")
    assert tokens.dtype == np.int64
    assert len(tokens) == 5145
    assert tokens[:4].tolist() == [40, 367, 2885, 1464]


def test_small_chunks_give_the_same_ids_as_the_whole_text(tmp_path, gpt2, verdict_text) -> None:
    path = tmp_path / "v.txt"
    path.write_text(verdict_text + "\n\n\n  trailing   spaces  \n", encoding="utf-8")
    chunks = list(iter_text_chunks(path, chunk_chars=300, read_bytes=257))
    assert len(chunks) > 60
    assert "".join(chunks) == path.read_text(encoding="utf-8")
    ids = [i for chunk in chunks for i in gpt2.encode(chunk)]
    assert ids == gpt2.encode(path.read_text(encoding="utf-8"))


def test_multibyte_characters_split_across_reads(tmp_path) -> None:
    text = "日本語のテキスト 🙂 café " * 50
    path = tmp_path / "u.txt"
    path.write_text(text, encoding="utf-8")
    assert "".join(iter_text_chunks(path, chunk_chars=64, read_bytes=7)) == text


def test_byte_order_mark_is_skipped(tmp_path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfhello")
    assert read_text_file(path) == "hello"


def test_empty_file(tmp_path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.txt: the file is empty"):
        tokens_from_text_file(path)


def test_non_utf8_names_file_and_byte_offset(tmp_path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"hello world, " * 100 + b"caf\xe9 au lait")
    with pytest.raises(
        DataError, match=r"latin1\.txt: not valid UTF-8 at byte offset 1303.*errors='replace'"
    ):
        tokens_from_text_file(path)
    with pytest.raises(DataError, match="byte offset 1303"):
        list(iter_text_chunks(path, read_bytes=5))  # the offset survives chunked reads


def test_errors_replace_is_opt_in(tmp_path, gpt2) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf\xe9")
    assert read_text_file(path, errors="replace") == "caf\ufffd"
    assert gpt2.decode(tokens_from_text_file(path, errors="replace")) == "caf\ufffd"
    with pytest.raises(ConfigError, match="expected one of strict, replace"):
        read_text_file(path, errors="ignore")


def test_missing_file(tmp_path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_text_file(tmp_path / "nope.txt")
