"""Training checkpoints: model + optimizer + trainer state, written atomically, verified on load.

A checkpoint is a directory ``RUN_DIR/<name>/`` holding the model checkpoint
(``config.json`` + ``model.safetensors``, from llm-model), ``optimizer.safetensors``
and ``trainer_state.json`` (step, tokens seen, RNG states, data position, the
sha256 of every other file and, since format 2, the sha256 of the state itself).
It is written into a temporary directory and renamed into place, so a crash
never leaves a half checkpoint that looks complete.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from llm_core.config_io import check_keys, json_digest, sha256_file, write_json_atomic
from llm_core.errors import CheckpointError
from llm_model import load_pretrained, load_weights_into, write_model_files
from llm_model.checkpoint import WEIGHTS_FILE

__all__ = [
    "STATE_FILE",
    "capture_rng_state",
    "find_latest_checkpoint",
    "list_checkpoints",
    "load_training_checkpoint",
    "prune_checkpoints",
    "read_training_checkpoint",
    "restore_rng_state",
    "save_training_checkpoint",
    "verify_training_checkpoint",
]

STATE_FILE = "trainer_state.json"
#: 1: the sha256 of the other files; 2: also the sha256 of the state itself; 3: also the world size.
STATE_FORMAT = 3
#: Keys every trainer state has, by format (checked on load: a damaged, misspelled or unknown
#: key is a CheckpointError naming it, not a KeyError or a silently different state).
STATE_KEYS = (
    "step", "tokens_seen", "examples_seen", "best_val", "last_val", "initial_val",
    "rng", "data", "config", "optimizer", "files", "format_version",
)  # fmt: skip
_KEYS_SINCE = {2: ("sha256", "elapsed_s"), 3: ("world_size",)}
_RNG_KEYS = ("python", "numpy", "torch")
_OPTIMIZER_META_KEYS = ("param_groups", "scalars")
OPTIMIZER_FILE = "optimizer.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def _state_digest(state: dict[str, Any]) -> str:
    """sha256 of the state's canonical JSON (without its own ``sha256`` key)."""
    return json_digest(state)


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- RNG -------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as JSON-serialisable values."""
    version, internal, gauss = random.getstate()
    np_state: Any = np.random.get_state()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np_state
    return {
        "python": [version, list(internal), gauss],
        "numpy": [np_name, np_keys.tolist(), np_pos, np_has_gauss, np_gauss],
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    raw = np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()
    torch.set_rng_state(torch.from_numpy(raw))


# -- optimizer <-> safetensors ----------------------------------------------
def _optimizer_tensors(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _optimizer_state_dict(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: Path
) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    try:
        for name, tensor in tensors.items():
            prefix, index, key = name.split(".", 2)  # state.<parameter index>.<key>
            if prefix != "state":
                raise ValueError(f"unexpected tensor name {name!r}")
            state.setdefault(int(index), {})[key] = tensor
        for index, values in meta["scalars"].items():
            state.setdefault(int(index), {}).update(values)
        return {"state": state, "param_groups": list(meta["param_groups"])}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(
            f"{path / OPTIMIZER_FILE}: malformed optimizer state ({exc}); "
            f"delete {path} to resume from an older checkpoint"
        ) from None


# -- save / load -------------------------------------------------------------
def save_training_checkpoint(
    run_dir: Path,
    name: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | dict[str, Any],
    trainer_state: dict[str, Any],
    *,
    extra_config: dict[str, Any] | None = None,
    model_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``run_dir/name`` atomically (temp dir, fsync, rename) and return its path.

    ``optimizer`` is the optimizer or its state dict; ``model_state`` replaces
    ``model.state_dict()`` when that holds shards (FSDP: the full state gathered to rank 0).
    """
    run_dir = Path(run_dir)
    final = run_dir / name
    tmp = run_dir / f".{name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        write_model_files(model, tmp, extra_config=extra_config, state_dict=model_state)
        optimizer_state = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
        tensors, meta = _optimizer_tensors(optimizer_state)
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        state = {**trainer_state, "optimizer": meta, "files": files, "format_version": STATE_FORMAT}
        state["sha256"] = _state_digest(state)
        (tmp / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
        _fsync_tree(tmp)
        if final.is_symlink() or final.exists():
            old = run_dir / f".{name}.old-{os.getpid()}"
            final.rename(old)  # a symlink is renamed itself: what it points to is never touched
            tmp.rename(final)
            _remove(old)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _remove(path: Path) -> None:
    """Delete a checkpoint directory, or only the link when ``path`` is a symlink."""
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path)


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the ``step-N`` checkpoints in ``run_dir``, oldest first."""
    found = []
    if Path(run_dir).is_dir():
        for path in Path(run_dir).iterdir():
            match = _STEP_DIR.match(path.name)
            if match and (path / STATE_FILE).is_file():
                found.append((int(match.group(1)), path))
    return sorted(found)


def find_latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete ``step-N`` checkpoint, or None."""
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1][1] if checkpoints else None


def prune_checkpoints(run_dir: Path, keep_last: int) -> None:
    """Delete all but the ``keep_last`` newest ``step-N`` checkpoints (``best``/``final`` stay)."""
    for _, path in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)


def verify_training_checkpoint(path: Path) -> dict[str, Any]:
    """Check every file's sha256 against ``trainer_state.json`` and return the trainer state.

    A mismatch, a missing or truncated file or malformed JSON raises
    :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    state_path = path / STATE_FILE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(
            f"{state_path}: unreadable trainer state ({exc}); "
            f"delete {path} to resume from an older checkpoint"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{state_path}: not a scratchlm trainer state (a JSON {type(state).__name__})")
    raw = state.get("format_version", STATE_FORMAT)  # a missing one is named by check_keys
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= STATE_FORMAT:
        raise CheckpointError(
            f"{state_path}: format_version {raw!r} is not one this version reads (1 to {STATE_FORMAT}); "
            f"delete {path} to resume from an older checkpoint"
        )
    version: int = raw
    added = [key for since, keys in _KEYS_SINCE.items() for key in keys if since <= version]
    later = [key for since, keys in _KEYS_SINCE.items() for key in keys if since > version]
    check_keys(
        state, required=[*STATE_KEYS, *added], optional=later, source=str(state_path), error=CheckpointError
    )
    for key, keys in (("rng", _RNG_KEYS), ("optimizer", _OPTIMIZER_META_KEYS)):
        if not isinstance(state[key], dict):
            raise CheckpointError(f"{state_path}: '{key}' must be an object, got {type(state[key]).__name__}")
        check_keys(state[key], required=keys, source=f"{state_path}: '{key}'", error=CheckpointError)
    if version >= 2 and state["sha256"] != _state_digest(state):
        raise CheckpointError(
            f"{state_path}: checksum mismatch (the trainer state is corrupt or was modified); "
            f"delete {path} to resume from an older checkpoint"
        )
    if not isinstance(state["files"], dict):
        raise CheckpointError(f"{state_path}: 'files' must be an object, got {type(state['files']).__name__}")
    for name, expected in state["files"].items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing from the checkpoint")
        if sha256_file(file) != expected:
            raise CheckpointError(
                f"{file}: checksum mismatch (the file is corrupt or was modified); "
                f"delete {path} to resume from an older checkpoint"
            )
    return state


def _read_tensors(file: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(file))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{file}: cannot read {what} ({exc})") from None


def load_training_checkpoint(
    path: Path, model: nn.Module | None = None
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """Verify and load a checkpoint: ``(model, optimizer_state_dict, trainer_state)``.

    Every file is verified first (:func:`verify_training_checkpoint`). The
    weights go into ``model`` when given (any structure: a classifier, LoRA
    layers), else into a model built from ``config.json``.
    """
    path = Path(path)
    state = verify_training_checkpoint(path)
    model = load_pretrained(path) if model is None else load_weights_into(model, path)
    tensors = _read_tensors(path / OPTIMIZER_FILE, "optimizer state")
    return model, _optimizer_state_dict(tensors, state["optimizer"], path), state


def read_training_checkpoint(
    path: Path,
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Verify a checkpoint and return its raw ``(weights, optimizer_state_dict, trainer_state)``.

    For models that cannot take a plain state dict (FSDP-sharded ones); tied
    weights appear once, under the name the checkpoint kept.
    """
    path = Path(path)
    state = verify_training_checkpoint(path)
    weights = _read_tensors(path / WEIGHTS_FILE, "model weights")
    tensors = _read_tensors(path / OPTIMIZER_FILE, "optimizer state")
    return weights, _optimizer_state_dict(tensors, state["optimizer"], path), state


def write_resolved_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Save the full resolved training config as ``run_dir/train_config.json``."""
    write_json_atomic(Path(run_dir) / "train_config.json", config)
