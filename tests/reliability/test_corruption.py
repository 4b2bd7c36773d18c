"""The corruption matrix: every file of a checkpoint or a prepared corpus, damaged five ways.

Each damaged file must be detected when it is loaded, with a typed error
(:class:`~llm_core.errors.ScratchLMError`) whose message names the file:

* ``training/…``: a training checkpoint (``step-N``), loaded by ``load_training_checkpoint``
  (what ``--resume`` calls), which checks the sha256 of every file;
* ``model/…``: a plain model checkpoint (``save_pretrained``), loaded by ``load_pretrained``
  (what ``generate``, ``serve`` and finetuning call), which checks the sha256 that config.json
  records of itself and of the weights, then names, shapes and dtypes;
* ``prepared/…``: token shards and ``index.json``, loaded by ``load_prepared``.

The cases marked xfail are real gaps, explained in their reason and in docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import save_file

from llm_core.cli import main as scratchlm
from llm_core.errors import CheckpointError, ScratchLMError
from llm_data import load_prepared, prepare_corpus
from llm_model import load_pretrained, save_pretrained
from llm_train.checkpoint import find_latest_checkpoint, load_training_checkpoint
from llm_train.config import load_train_config
from llm_train.pretrain import pretrain

A_SAFETENSORS_FILE = b""  # filled in by the `artifacts` fixture: a valid file of another model


def flip_middle_bit(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def wrong_format(name: str) -> bytes:
    """A well-formed file of the wrong kind: JSON for a binary file, safetensors for a JSON file."""
    if name.endswith(".json"):
        return A_SAFETENSORS_FILE
    if name.endswith(".safetensors"):
        return b"PK\x03\x04" + bytes(60)  # the start of a torch.save zip archive
    return b'{"not": "tokens"}\n' * 3


CORRUPTIONS: dict[str, Callable[[str, bytes], bytes | None]] = {
    "truncated": lambda name, data: data[: len(data) // 2],
    "bit-flip": lambda name, data: flip_middle_bit(data),
    "empty": lambda name, data: b"",
    "wrong-format": lambda name, data: wrong_format(name),
    "missing": lambda name, data: None,
}

LOADERS: dict[str, Callable[[Path], Any]] = {
    "training": load_training_checkpoint,
    "model": load_pretrained,
    "prepared": lambda path: load_prepared(path, "train"),
}

FILES = [
    ("training", "model.safetensors"),
    ("training", "optimizer.safetensors"),
    ("training", "config.json"),
    ("training", "trainer_state.json"),
    ("model", "model.safetensors"),
    ("model", "config.json"),
    ("prepared", "train-00000.bin"),
    ("prepared", "train-00001.bin"),
    ("prepared", "index.json"),
]

#: (artifact, file, corruption) -> why it is not detected.
GAPS: dict[tuple[str, str, str], str] = {}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, write_train_config: Any, corpus: dict) -> Path:
    """Pristine copies: ``training/`` (a step-2 checkpoint), ``model/``, ``prepared/`` (two train shards)."""
    global A_SAFETENSORS_FILE
    root = tmp_path_factory.mktemp("artifacts")
    config = load_train_config(write_train_config(root / "train.toml", 2))
    pretrain(config, root / "run")
    latest = find_latest_checkpoint(root / "run")
    assert latest is not None
    shutil.copytree(latest, root / "training")
    model, _, _ = load_training_checkpoint(latest)
    save_pretrained(model, root / "model")
    prepare_corpus([corpus["text"]], root / "prepared", tokenizer=str(corpus["tokenizer"]), shard_tokens=8000)
    assert (root / "prepared" / "train-00001.bin").is_file()
    save_file({"x": __import__("torch").zeros(3)}, str(root / "other.safetensors"))
    A_SAFETENSORS_FILE = (root / "other.safetensors").read_bytes()
    return root


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@pytest.mark.parametrize(("artifact", "name"), FILES, ids=[f"{a}/{n}" for a, n in FILES])
def test_a_damaged_file_is_detected_and_named(
    artifacts: Path, tmp_path: Path, artifact: str, name: str, corruption: str, figures: dict
) -> None:
    if (artifact, name, corruption) in GAPS:
        pytest.xfail(GAPS[artifact, name, corruption])
    target = tmp_path / artifact
    shutil.copytree(artifacts / artifact, target)
    damaged = CORRUPTIONS[corruption](name, (target / name).read_bytes())
    if damaged is None:
        (target / name).unlink()
    else:
        (target / name).write_bytes(damaged)
    with pytest.raises(ScratchLMError) as error:
        LOADERS[artifact](target)
    assert name in str(error.value), f"the message does not name {name}: {error.value}"
    counts = figures["corruption_matrix"]
    counts["detected"] = counts.get("detected", 0) + 1


def test_resume_from_a_damaged_checkpoint_is_one_line_naming_the_file(
    tmp_path: Path, write_train_config: Any, capsys: pytest.CaptureFixture
) -> None:
    config = write_train_config(tmp_path / "train.toml", 3)
    pretrain(load_train_config(config), tmp_path / "run")
    latest = find_latest_checkpoint(tmp_path / "run")
    assert latest is not None
    weights = latest / "model.safetensors"
    weights.write_bytes(flip_middle_bit(weights.read_bytes()))
    capsys.readouterr()
    code = scratchlm(["pretrain", "--config", str(config), "--out", str(tmp_path / "run"), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"error: {weights}: checksum mismatch")
    assert f"delete {latest} to resume from an older checkpoint" in err[-1]


JSON_FILES = [("training", "trainer_state.json"), ("model", "config.json"), ("prepared", "index.json")]


@pytest.mark.parametrize(("artifact", "name"), JSON_FILES, ids=[f"{a}/{n}" for a, n in JSON_FILES])
def test_random_bit_flips_in_json_files_never_crash_untyped(
    artifacts: Path, tmp_path: Path, artifact: str, name: str, nightly: bool, figures: dict
) -> None:
    """One-bit flips at random places: each load raises a typed error or succeeds (counted as undetected)."""
    target = tmp_path / artifact
    shutil.copytree(artifacts / artifact, target)
    original = (target / name).read_bytes()
    rng = random.Random(hashlib.sha256(original).hexdigest())  # the same flips for the same content
    trials = 1000 if nightly else 50
    detected, untyped, changed = 0, [], []
    for _ in range(trials):
        data = bytearray(original)
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        (target / name).write_bytes(bytes(data))
        try:
            loaded = LOADERS[artifact](target)
            if artifact == "training" and loaded[2] != json.loads(original):
                changed.append(bytes(data))  # accepted a state that means something else
        except ScratchLMError:
            detected += 1
        except Exception as exc:
            untyped.append(f"{type(exc).__name__}: {exc}")
    figures[f"bit_flips {artifact}/{name}"].update(trials=trials, detected=detected, untyped=len(untyped))
    assert untyped == []
    # The trainer state's own sha256 covers its meaning: a flip that loads is an equivalent
    # spelling (1e-05 -> 1E-05), never a different step, RNG state or data position.
    assert changed == []


def test_trainer_state_missing_a_key_is_a_checkpoint_error(artifacts: Path, tmp_path: Path) -> None:
    shutil.copytree(artifacts / "training", tmp_path / "training")
    path = tmp_path / "training" / "trainer_state.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    del state["optimizer"]
    path.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"trainer_state\.json"):
        load_training_checkpoint(tmp_path / "training")
