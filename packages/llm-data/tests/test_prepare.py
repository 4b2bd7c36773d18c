"""prepare_corpus / load_prepared: contents, determinism, atomicity, verification."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from llm_core.errors import ConfigError, DataError
from llm_data import load_prepared, prepare_corpus
from llm_data.shards import ShardWriter, token_dtype

DOC_A = "The first document talks about cats. " * 40
DOC_B = "A second one, about dogs and 42 bones! " * 30


@pytest.fixture
def corpus(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text(DOC_A, encoding="utf-8")
    (src / "sub" / "b.txt").write_text(DOC_B, encoding="utf-8")
    (src / "ignored.md").write_text("not a txt file", encoding="utf-8")
    return src


def expected_splits(gpt2, val_fraction: float) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {"train": [], "val": []}
    for doc in (DOC_A, DOC_B):
        ids = gpt2.encode(doc)
        n_val = round(len(ids) * val_fraction)
        for split, part in (("train", ids[: len(ids) - n_val]), ("val", ids[len(ids) - n_val :])):
            if out[split]:
                out[split].append(gpt2.eot_token)
            out[split] += part
    return out


def test_prepare_writes_the_expected_tokens(corpus, tmp_path, gpt2) -> None:
    out = tmp_path / "out"
    index = prepare_corpus([corpus], out, val_fraction=0.2, shard_tokens=100, chunk_chars=64)
    expected = expected_splits(gpt2, 0.2)
    for split in ("train", "val"):
        tokens = load_prepared(out, split)
        assert len(tokens) == len(expected[split]) == index["splits"][split]["tokens"]
        assert tokens[0 : len(tokens)].tolist() == expected[split]
    assert len(index["splits"]["train"]["shards"]) > 1  # shard_tokens=100 splits the train tokens
    assert [s["name"] for s in index["sources"]] == ["a.txt", "sub/b.txt"]
    assert index["dtype"] == "uint16" and index["tokenizer"] == "gpt2" and index["format_version"] == 1
    on_disk = json.loads((out / "index.json").read_text())
    assert on_disk == json.loads(json.dumps(index))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no temp dir left


def test_token_array_slices_across_shards(corpus, tmp_path, gpt2) -> None:
    prepare_corpus([corpus], tmp_path / "out", val_fraction=0.0, shard_tokens=7)
    tokens = load_prepared(tmp_path / "out", "train")
    flat = expected_splits(gpt2, 0.0)["train"]
    assert tokens[5:23].tolist() == flat[5:23]
    assert tokens[-1] == flat[-1] and tokens[13] == flat[13]
    assert np.asarray(tokens).tolist() == flat
    assert load_prepared(tmp_path / "out", "val").__len__() == 0


def test_output_does_not_depend_on_workers(corpus, tmp_path) -> None:
    one = prepare_corpus([corpus], tmp_path / "one", chunk_chars=50, workers=1)
    two = prepare_corpus([corpus], tmp_path / "two", chunk_chars=50, workers=2)
    assert one == two


def test_non_empty_out_is_refused_unless_overwrite(corpus, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty; choose a new --out, or pass --overwrite"):
        prepare_corpus([corpus], out)
    with pytest.raises(DataError, match=r"holds no index\.json"):
        prepare_corpus([corpus], out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    prepared = tmp_path / "prepared"
    prepare_corpus([corpus / "a.txt"], prepared)
    assert json.loads((prepared / ".scratchlm-run.json").read_text())["command"] == "prepare"
    prepare_corpus([corpus], prepared, overwrite=True)
    assert len(json.loads((prepared / "index.json").read_text())["sources"]) == 2


def test_overwrite_never_replaces_another_commands_output(corpus, tmp_path) -> None:
    from llm_core.output_dirs import claim_output_dir

    run = claim_output_dir(tmp_path / "run", command="pretrain")
    (run / "index.json").write_text("{}")  # even one that looks like a corpus
    with pytest.raises(DataError, match=r"holds the output of `scratchlm pretrain`; --overwrite only"):
        prepare_corpus([corpus], run, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == [".scratchlm-run.json", "index.json"]


def test_failure_leaves_nothing_behind(corpus, tmp_path) -> None:
    (corpus / "z-bad.txt").write_bytes(b"ok then \xff")
    with pytest.raises(DataError, match=r"z-bad\.txt: not valid UTF-8 at byte offset 8"):
        prepare_corpus([corpus], tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    index = prepare_corpus([corpus], tmp_path / "out", errors="replace")
    assert index["splits"]["train"]["tokens"] > 0


def test_disk_full_is_a_data_error_and_keeps_the_old_corpus(corpus, tmp_path, monkeypatch) -> None:
    prepare_corpus([corpus / "a.txt"], tmp_path / "out")
    before = np.asarray(load_prepared(tmp_path / "out"))

    def full(self, ids) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ShardWriter, "write", full)
    with pytest.raises(DataError, match=r"out: cannot write the prepared corpus \(No space left on device\)"):
        prepare_corpus([corpus], tmp_path / "out", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]
    assert np.array_equal(np.asarray(load_prepared(tmp_path / "out")), before)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"val_fraction": 1.0}, ConfigError, r"val_fraction=1\.0"),
        ({"workers": 0}, ConfigError, "workers=0"),
        ({"errors": "ignore"}, ConfigError, "errors='ignore'"),
    ],
)
def test_bad_options(corpus, tmp_path, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        prepare_corpus([corpus], tmp_path / "out", **kwargs)


def test_bad_inputs(tmp_path) -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        prepare_corpus([tmp_path / "missing.txt"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no \*\.txt files"):
        prepare_corpus([tmp_path / "empty"], tmp_path / "out")
    (tmp_path / "e.txt").write_bytes(b"")
    with pytest.raises(DataError, match=r"e\.txt: the file is empty"):
        prepare_corpus([tmp_path / "e.txt"], tmp_path / "out")


@pytest.fixture
def prepared(corpus, tmp_path):
    out = tmp_path / "out"
    prepare_corpus([corpus], out, shard_tokens=200)
    return out


def test_modified_shard_is_detected(prepared) -> None:
    shard = prepared / "train-00000.bin"
    data = bytearray(shard.read_bytes())
    data[0] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"train-00000\.bin: sha256 .* does not match"):
        load_prepared(prepared)


def test_truncated_shard_is_detected(prepared) -> None:
    shard = prepared / "train-00001.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(DataError, match=r"train-00001\.bin: 398 bytes but index.json says 200"):
        load_prepared(prepared)


def test_missing_shard_and_index(prepared, tmp_path) -> None:
    (prepared / "val-00000.bin").unlink()
    with pytest.raises(DataError, match=r"val-00000\.bin: shard listed in index.json is missing"):
        load_prepared(prepared, "validation")
    with pytest.raises(DataError, match="no split 'test'; available: train, val"):
        load_prepared(prepared, "test")
    with pytest.raises(DataError, match=r"no index\.json"):
        load_prepared(tmp_path)


@pytest.mark.parametrize(
    "change",
    [
        {"sha256": None},  # a key lost to a flipped bit
        {"tokens": "200"},
        {"tokens": True},
        {"tokens": -1},
        {"file": "../outside.bin"},  # an index naming a file outside the directory
        {"file": "/etc/hostname"},
        {"file": ".."},
    ],
)
def test_malformed_shard_entries_name_the_index(prepared, change) -> None:
    index = json.loads((prepared / "index.json").read_text())
    shard = index["splits"]["train"]["shards"][0]
    for key, value in change.items():
        if value is None:
            del shard[key]
        else:
            shard[key] = value
    (prepared / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match=r"index\.json: malformed entry for split 'train'"):
        load_prepared(prepared, "val")  # checked when the index is read, whatever the split


def test_deeply_nested_index_is_a_data_error(prepared) -> None:
    (prepared / "index.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match=r"index\.json: unreadable index"):
        load_prepared(prepared)


def test_dtype_grows_with_the_vocabulary() -> None:
    assert token_dtype(50257) == np.uint16
    assert token_dtype(65536) == np.uint16
    assert token_dtype(100277) == np.uint32


def test_window_loader_reads_a_token_array(prepared) -> None:
    from llm_data import WindowLoader

    tokens = load_prepared(prepared)
    inputs, targets = next(WindowLoader(tokens, batch_size=2, context_length=16, seed=1))
    assert inputs.shape == (2, 16)
    assert targets[:, :-1].tolist() == inputs[:, 1:].tolist()
    (first, _), *_ = WindowLoader.sequential(tokens, batch_size=1, context_length=16)
    assert first[0].tolist() == tokens[0:16].tolist()


def _rewrite_index(prepared, edit, *, keep_digest: bool = False) -> None:
    """Apply ``edit`` to index.json; recompute its sha256 unless ``keep_digest`` (a hand edit)."""
    from llm_data.shards import index_digest

    path = prepared / "index.json"
    index = json.loads(path.read_text())
    edit(index)
    if not keep_digest and "sha256" in index:
        index["sha256"] = index_digest(index)
    path.write_text(json.dumps(index))


def test_the_index_carries_its_own_sha256_and_a_changed_value_is_detected(prepared) -> None:
    from llm_data.shards import index_digest

    index = json.loads((prepared / "index.json").read_text())
    assert index["sha256"] == index_digest(index)
    _rewrite_index(prepared, lambda i: i.update(val_fraction=0.2), keep_digest=True)  # still a valid value
    with pytest.raises(DataError, match=r"index\.json: checksum mismatch: the index changed"):
        load_prepared(prepared)
    assert len(load_prepared(prepared, verify=False)) > 0


def test_an_index_without_its_sha256_still_loads(prepared) -> None:
    _rewrite_index(prepared, lambda i: i.pop("sha256"))  # as written before the digest existed
    assert len(load_prepared(prepared)) > 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda i: i.update(val_frsction=i.pop("val_fraction")), "unknown key 'val_frsction' (did you mean"),
        (lambda i: i.pop("sources"), "missing key 'sources'"),
        (lambda i: i.update(tokenizer=""), "'tokenizer': expected a tokenizer name"),
        (lambda i: i.update(eot_token=10**6), "'eot_token': expected null or an id below 50257"),
        (lambda i: i.update(val_fraction=1.5), "'val_fraction': expected a number in [0, 1)"),
        (lambda i: i.update(n_vocab=70000), "'dtype' 'uint16' does not fit n_vocab=70000"),
        (lambda i: i["sources"][0].update(tokns=1), "sources[0]: unknown key 'tokns'"),
        (lambda i: i["splits"].update(tesst={"tokens": 0, "shards": []}), "splits: unknown key 'tesst'"),
        (lambda i: i["splits"]["train"].update(tokens=1), "'tokens' is 1 but its shards hold"),
        (lambda i: i["splits"]["train"]["shards"][0].update(fiel="x"), "shard 0: unknown key 'fiel'"),
    ],
)
def test_unknown_missing_or_bad_index_metadata_is_named(prepared, edit, message) -> None:
    _rewrite_index(prepared, edit)
    with pytest.raises(DataError) as info:
        load_prepared(prepared)
    assert str(info.value).startswith(str(prepared / "index.json")) and message in str(info.value)
