"""The BPE trainer: known merges, a naive reference, tiktoken export, files and round trips."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_core.errors import ConfigError, DataError
from llm_data import BPETokenizer
from llm_data.gpt2 import GPT2_PATTERN

CORPUS = (
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away!\n"
    "Numbers 12345 and 2024, unicode: café, naïve, 日本語のテキスト, emoji 🙂🙂.\n"
) * 30


@pytest.fixture(scope="module")
def trained() -> BPETokenizer:
    return BPETokenizer.train(CORPUS, 330)


def naive_train(text: str, vocab_size: int) -> list[tuple[int, int]]:
    """Reference: recount every pair after every merge (same tie-break and dedup rules)."""
    words = Counter(regex.findall(GPT2_PATTERN, text.replace("<|endoftext|>", "")))
    seqs = {w: list(w.encode()) for w in words}
    vocab = {i: bytes([i]) for i in range(256)}
    ranks = {b: i for i, b in vocab.items()}
    merges = []
    while len(vocab) < vocab_size - 1:
        counts: Counter[tuple[int, int]] = Counter()
        for w, seq in seqs.items():
            for pair in itertools.pairwise(seq):
                counts[pair] += words[w]
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        if counts[best] < 2:
            break
        merged = vocab[best[0]] + vocab[best[1]]
        new_id = ranks.get(merged)
        if new_id is None:
            new_id = len(vocab)
            vocab[new_id], ranks[merged] = merged, new_id
            merges.append(best)
        for w, seq in seqs.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            seqs[w] = out
    return merges


def test_classic_example_merges() -> None:
    tok = BPETokenizer.train("aaabdaaabac", 260)
    assert tok.merges == [(97, 97), (97, 98), (256, 257)]
    assert tok.vocab[258] == b"aaab"
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


def test_incremental_counts_match_a_full_recount(trained) -> None:
    assert trained.merges == naive_train(CORPUS, 330)


def test_special_tokens_and_sizes(trained) -> None:
    assert trained.n_vocab == 330
    assert trained.eot_token == 329
    assert trained.encode("fox<|endoftext|>dog") == [*trained.encode("fox"), 329, *trained.encode("dog")]
    assert 329 not in trained.encode("<|endoftext|>", allowed_special=set())
    assert trained.decode(trained.encode("a<|endoftext|>b")) == "a<|endoftext|>b"


def test_tiktoken_export_gives_identical_ids(trained) -> None:
    encoding = trained.to_tiktoken()
    for text in [CORPUS, "Unseen words: quixotic zebras 9876 ✓", "the<|endoftext|>fox"]:
        assert encoding.encode(text, allowed_special="all") == trained.encode(text)


def test_save_load_round_trip(trained, tmp_path) -> None:
    trained.save(tmp_path / "bpe.json")
    loaded = BPETokenizer.load(tmp_path / "bpe.json")
    assert loaded.merges == trained.merges
    assert loaded.encode(CORPUS) == trained.encode(CORPUS)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "cannot read"),
        (json.dumps({"format": "other"}), "expected a scratchlm BPE"),
        (json.dumps({"format": "scratchlm-bpe", "format_version": 99}), "format_version 99"),
        (json.dumps({"format": "scratchlm-bpe", "format_version": 1, "merges": [[1]]}), "malformed"),
        (
            json.dumps(
                {
                    "format": "scratchlm-bpe",
                    "format_version": 1,
                    "pattern": ".",
                    "merges": [[300, 1]],
                    "special_tokens": [],
                }
            ),
            "not yet defined",
        ),
    ],
)
def test_malformed_bpe_files(tmp_path, content: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        BPETokenizer.load(path)


def test_bpe_files_with_a_bad_pattern_or_deep_nesting(tmp_path) -> None:
    path = tmp_path / "bad.json"
    file = {"format": "scratchlm-bpe", "format_version": 1, "merges": [], "special_tokens": []}
    path.write_text(json.dumps({**file, "pattern": "("}))
    with pytest.raises(DataError, match=r"bad\.json: BPE pattern '\(' is not a valid regular expression"):
        BPETokenizer.load(path)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match="cannot read a BPE tokenizer JSON file"):
        BPETokenizer.load(path)


def test_a_pattern_that_skips_characters_is_an_error_not_lost_text() -> None:
    tokenizer = BPETokenizer(pattern=r"\w+")  # no alternative for spaces
    assert tokenizer.decode(tokenizer.encode("hello")) == "hello"
    with pytest.raises(DataError, match=r"does not match the text at character 5 \(' world'\)"):
        tokenizer.encode("hello world")


def test_vocab_size_too_small_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="choose vocab_size >= 257"):
        BPETokenizer.train("abc", 200)


def test_training_is_deterministic() -> None:
    assert BPETokenizer.train(CORPUS, 300).merges == BPETokenizer.train(CORPUS, 300).merges


def test_unknown_id_is_a_data_error(trained) -> None:
    with pytest.raises(DataError, match="outside this BPE vocabulary"):
        trained.decode([330])


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_round_trip_arbitrary_unicode(trained, text: str) -> None:
    assert trained.decode(trained.encode(text)) == text
