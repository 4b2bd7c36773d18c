"""Malicious paths, symlinks, archives and pickles cannot write outside the target or run code.

Not repeated here: the grep for ``pickle``/``eval``/unsafe ``torch.load`` in the sources is
``tests/test_layout.py::test_no_unsafe_deserialisation_in_sources``; the server's refusal to
bind a non-loopback address without ``--allow-remote`` is tested with the server.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from llm_core.errors import CheckpointError, DataError, ScratchLMError
from llm_data import Source, fetch, load_prepared, prepare_corpus
from llm_data.prepare import collect_files
from llm_model import load_pretrained
from llm_train.checkpoint import (
    _state_digest,
    find_latest_checkpoint,
    list_checkpoints,
    load_training_checkpoint,
)
from llm_train.config import load_train_config
from llm_train.pretrain import pretrain


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (not following symlinks) with its content."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory the run must never touch, holding something that looks like a checkpoint."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "trainer_state.json").write_text('{"step": 1, "files": {}}', encoding="utf-8")
    (directory / "precious.txt").write_text("do not delete", encoding="utf-8")
    return directory


# -- checkpoints ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, write_train_config: Any) -> dict[str, Path]:
    """A 2-step run (step-1, step-2, best, final) to resume with symlink traps in it."""
    directory = tmp_path_factory.mktemp("symlinks")
    config = write_train_config(directory / "train.toml", 2)
    pretrain(load_train_config(config), directory / "run")
    return {"config": config, "run": directory / "run"}


def set_trap(run: Path, trap: str, outside: Path) -> None:
    if trap == "pruned checkpoint":
        target = list_checkpoints(run)[0][1]
    elif trap == "best":
        target = run / "best"
    elif trap == "stale temporary directory":
        target = run / ".step-0000009.tmp-1"
    else:  # the temporary directory this very process is about to create
        target = run / f".step-0000003.tmp-{os.getpid()}"
    if target.exists():
        shutil.rmtree(target)
    target.symlink_to(outside, target_is_directory=True)


@pytest.mark.parametrize(
    ("trap", "outcome"),
    [
        ("pruned checkpoint", "finishes"),
        ("best", "finishes"),  # the link is replaced by a real best/, its target untouched
        ("stale temporary directory", "finishes"),
        ("own temporary directory", "refuses"),
    ],
)
def test_a_symlink_in_a_run_directory_is_never_written_or_deleted_through(
    tmp_path: Path, outside: Path, finished_run: dict, trap: str, outcome: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run["run"], run, symlinks=True)
    set_trap(run, trap, outside)
    before = snapshot(outside)
    config = load_train_config(finished_run["config"], max_steps=5, keep_last=1)  # prunes, saves best
    if outcome == "finishes":
        pretrain(config, run, resume=True)
        assert (run / "final" / "model.safetensors").is_file()
    else:  # refusing to replace a symlinked checkpoint is fine; writing through it is not
        with pytest.raises(CheckpointError, match="cannot write a checkpoint"):
            pretrain(config, run, resume=True)
    assert snapshot(outside) == before
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt", "trainer_state.json"]


def pickle_bomb(sentinel: Path) -> bytes:
    """A pickle that creates ``sentinel`` when it is unpickled."""

    class Bomb:
        def __reduce__(self) -> tuple:
            return (open, (str(sentinel), "w"))

    return pickle.dumps(Bomb())


def zip_pickle_bomb(sentinel: Path) -> bytes:
    """The same payload inside a ``torch.save``-style zip archive (``archive/data.pkl``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bomb(sentinel))
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


@pytest.mark.parametrize("make_payload", [pickle_bomb, zip_pickle_bomb], ids=["pickle", "torch-zip"])
@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors"])
def test_a_pickle_in_a_checkpoint_is_rejected_without_running_it(
    tmp_path: Path, write_train_config: Any, name: str, make_payload: Any
) -> None:
    pretrain(load_train_config(write_train_config(tmp_path / "train.toml", 1)), tmp_path / "run")
    checkpoint = find_latest_checkpoint(tmp_path / "run")
    assert checkpoint is not None
    sentinel = tmp_path / "pwned"
    payload = make_payload(sentinel)
    (checkpoint / name).write_bytes(payload)
    state_path = checkpoint / "trainer_state.json"  # an attacker can rewrite the checksums too
    state = json.loads(state_path.read_text(encoding="utf-8"))
    state["files"][name] = hashlib.sha256(payload).hexdigest()
    state["sha256"] = _state_digest(state)  # and the state's own, so the weights loader is reached
    state_path.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(ScratchLMError, match=name):
        load_training_checkpoint(checkpoint)
    if name == "model.safetensors":
        with pytest.raises(CheckpointError, match=name):
            load_pretrained(checkpoint)
    assert not sentinel.exists()


# -- data -----------------------------------------------------------------------------------------
def test_fetch_from_an_archive_with_traversal_names_writes_only_the_target(tmp_path: Path) -> None:
    content = b"ham\tonly this file may be written\n"
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escaped.txt", b"escaped")
        zf.writestr("/tmp/absolute-escape.txt", b"escaped")
        zf.writestr("SMSSpamCollection", content)
    cache = tmp_path / "deep" / "cache"
    source = Source(
        "SMSSpamCollection", archive.as_uri(), hashlib.sha256(content).hexdigest(), member="SMSSpamCollection"
    )
    path = fetch(source, directory=cache)
    assert path == cache / "SMSSpamCollection" and path.read_bytes() == content
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "deep",
        "deep/cache",
        "deep/cache/SMSSpamCollection",
        "evil.zip",
    ]
    assert not Path("/tmp/absolute-escape.txt").exists()
    with zipfile.ZipFile(archive, "w") as zf:  # only a traversal name: no member to read
        zf.writestr("../SMSSpamCollection", content)
    with pytest.raises(DataError, match="expected a zip archive holding SMSSpamCollection"):
        fetch(source, directory=tmp_path / "other")


def test_fetch_replaces_a_symlink_in_the_cache_instead_of_writing_through_it(tmp_path: Path) -> None:
    content = b"fresh content\n"
    original = tmp_path / "data.txt"
    original.write_bytes(content)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"must stay")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "the-file.txt").symlink_to(victim)
    path = fetch(
        Source("the-file.txt", original.as_uri(), hashlib.sha256(content).hexdigest()), directory=cache
    )
    assert path.read_bytes() == content and not path.is_symlink()
    assert victim.read_bytes() == b"must stay"


def test_prepare_does_not_follow_directory_symlinks_or_loop(
    tmp_path: Path, corpus: dict, outside: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("some text to tokenize", encoding="utf-8")
    (outside / "secret.txt").write_text("outside text", encoding="utf-8")
    (source / "escape").symlink_to(outside, target_is_directory=True)
    (source / "loop").symlink_to(source, target_is_directory=True)
    assert [name for _, name in collect_files([source])] == ["a.txt"]
    out = tmp_path / "out"
    prepare_corpus([source], out, tokenizer=str(corpus["tokenizer"]))
    assert len(load_prepared(out)) > 0


def test_an_index_naming_a_file_outside_the_corpus_is_refused(tmp_path: Path, corpus: dict) -> None:
    out = tmp_path / "out"
    prepare_corpus([corpus["text"]], out, tokenizer=str(corpus["tokenizer"]))
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x01\x00" * 4)
    index = json.loads((out / "index.json").read_text(encoding="utf-8"))
    index["splits"]["train"]["shards"] = [
        {"file": "../secret.bin", "tokens": 4, "sha256": hashlib.sha256(secret.read_bytes()).hexdigest()}
    ]
    (out / "index.json").write_text(json.dumps(index), encoding="utf-8")
    with pytest.raises(DataError, match="plain file name"):
        load_prepared(out)


# -- serving --------------------------------------------------------------------------------------
def test_serve_binds_loopback_by_default() -> None:
    import typer.main

    from llm_core.cli import build_app

    command = typer.main.get_command(build_app())
    serve = command.commands["serve"]  # type: ignore[attr-defined]
    host = next(p for p in serve.params if p.name == "host")
    assert host.default == "127.0.0.1"
