"""Model checkpoints on disk: a directory with ``config.json`` and ``model.safetensors``.

``config.json`` holds ``"architecture"`` (a registered name), every
hyperparameter of the model's config dataclass, ``"format_version"``,
``"dtype"`` and optionally ``"tokenizer"`` (a registered tokenizer name).
Weights are safetensors only (never pickles). Tied tensors (the output head
sharing the token embedding) are stored once and re-tied by the model's
constructor on load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_core.config_io import config_from_dict, config_to_dict
from llm_core.errors import CheckpointError, ConfigError, PluginError

__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "architecture_of",
    "load_pretrained",
    "load_weights_into",
    "read_checkpoint_config",
    "save_pretrained",
    "tied_parameter_aliases",
    "write_model_files",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: Keys of config.json that are not hyperparameters.
RESERVED_KEYS = ("architecture", "format_version", "dtype", "tokenizer")


def architecture_of(model: nn.Module) -> str:
    """The registered name of ``model``: its ``architecture`` attribute, else a registry lookup."""
    name = getattr(model, "architecture", None)
    if isinstance(name, str):
        return name
    from llm_core import get_registry

    registry = get_registry("architectures")
    for candidate in registry:
        if registry[candidate].obj is type(model):
            return candidate
    raise CheckpointError(
        f"cannot save a {type(model).__name__}: expected a registered architecture "
        "(a model with an `architecture` attribute); register its class with register_architectures"
    )


def unique_tensors(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict without tied duplicates, and ``{alias: kept name}`` for the dropped ones."""
    kept: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str] = {}
    for name, tensor in model.state_dict().items():
        key = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.shape)
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        kept[name] = tensor
    return kept, aliases


def tied_parameter_aliases(model: nn.Module) -> dict[str, str]:
    """``{alias: kept name}`` for parameters shared under several names (by identity, so sharded ones too)."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first:
            aliases[name] = first[id(param)]
        else:
            first[id(param)] = name
    return aliases


def _dtype_name(model: nn.Module) -> str:
    for tensor in model.state_dict().values():
        if tensor.is_floating_point():
            return str(tensor.dtype).removeprefix("torch.")
    return "float32"


def checkpoint_config(model: nn.Module, extra_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` contents for ``model``."""
    config = model.config
    if not dataclasses.is_dataclass(config):
        raise CheckpointError(
            f"cannot save a {type(model).__name__}: expected `model.config` to be a dataclass, "
            f"found {type(config).__name__}"
        )
    data: dict[str, Any] = config_to_dict(config)
    clash = sorted(set(extra_config or {}) & (set(data) | {"architecture", "format_version"}))
    if clash:
        raise ConfigError(
            f"extra_config: key(s) {', '.join(clash)} would overwrite the model's own; use other names"
        )
    data.update(
        {
            "architecture": architecture_of(model),
            "format_version": FORMAT_VERSION,
            "dtype": _dtype_name(model),
        }
    )
    data.update(extra_config or {})
    return data


def write_model_files(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    extra_config: Mapping[str, Any] | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Write ``config.json`` and ``model.safetensors`` into the existing ``directory`` (not atomic).

    For callers that already write into a temporary directory of their own
    (the trainer's checkpoints); others should use :func:`save_pretrained`.
    ``state_dict`` replaces ``model.state_dict()`` when the model's own tensors
    are not full ones (gathered from an FSDP-sharded model); tied names are
    dropped as for the model itself.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: expected an existing directory to write the model into")
    config = checkpoint_config(model, extra_config)
    if state_dict is None:
        tensors, _ = unique_tensors(model)
    else:
        tied = tied_parameter_aliases(model)
        tensors = {name: t for name, t in state_dict.items() if name not in tied}
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(
        json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_pretrained(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    extra_config: Mapping[str, Any] | None = None,
    tokenizer: str | None = None,
) -> Path:
    """Save ``model`` as a checkpoint directory, atomically; return its path.

    Files are written to a temporary sibling directory, fsynced, then renamed
    into place. An existing checkpoint at ``directory`` is first renamed aside
    and deleted only once the new one is in place, so at every moment either
    the old or the new complete checkpoint exists. ``tokenizer`` records a
    registered tokenizer name (the default of ``scratchlm generate``).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(
            f"{directory}: expected a checkpoint directory, found a file; choose another path"
        )
    if directory.is_dir() and any(directory.iterdir()) and not (directory / CONFIG_FILE).is_file():
        raise CheckpointError(
            f"{directory}: refusing to replace a non-empty directory that is not a checkpoint "
            f"(no {CONFIG_FILE}); choose an empty or new path"
        )
    extra = dict(extra_config or {})
    if tokenizer is not None:
        extra["tokenizer"] = tokenizer
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        write_model_files(model, tmp, extra_config=extra)
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            _fsync(tmp / name)
        _fsync(tmp)
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
        _fsync(directory.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_checkpoint_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``config.json`` of a checkpoint directory (architecture, format version)."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise CheckpointError(
            f"{directory}: expected a checkpoint directory ({CONFIG_FILE} + {WEIGHTS_FILE}), found none"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: expected a checkpoint config, found no such file; "
            f"is {directory} a checkpoint directory ({CONFIG_FILE} + {WEIGHTS_FILE})?"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: expected a JSON object, found unreadable content ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(data).__name__}")
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{path}: expected an integer 'format_version' (1), found {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {version} is newer than this llm-model supports ({FORMAT_VERSION}); "
            "upgrade llm-model to load it"
        )
    if not isinstance(data.get("architecture"), str):
        raise CheckpointError(f"{path}: expected an 'architecture' name such as 'gpt2', found none")
    return data


def _build_from_config(directory: Path, data: Mapping[str, Any]) -> nn.Module:
    from llm_core import get_registry

    try:
        entry = get_registry("architectures")[data["architecture"]]
    except PluginError as exc:
        raise PluginError(f"{directory / CONFIG_FILE}: {exc}") from None
    config_class = entry.obj.config_class
    fields = {f.name for f in dataclasses.fields(config_class)}
    hyper = {k: v for k, v in data.items() if k in fields}
    config = config_from_dict(config_class, hyper, source=str(directory / CONFIG_FILE))
    model = entry.obj(config)
    if getattr(model, "architecture", None) != data["architecture"]:
        model.architecture = data["architecture"]
    return model


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path}: expected the model weights, found no such file")
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for bad headers/data
        raise CheckpointError(
            f"{path}: expected a safetensors file, found a file that cannot be read as one "
            f"(truncated or another format: {exc}); re-save or re-download the checkpoint"
        ) from None


def check_tensors(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], *, where: str
) -> None:
    """Raise one :class:`CheckpointError` listing every missing, unexpected, mis-shaped or mistyped tensor."""
    problems = []
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    if missing:
        problems.append(f"missing {len(missing)}: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {', '.join(unexpected)}")
    for name, want in expected.items():
        got = found.get(name)
        if got is None:
            continue
        if tuple(got.shape) != tuple(want.shape):
            problems.append(f"{name}: expected shape {tuple(want.shape)}, found {tuple(got.shape)}")
        if got.dtype != want.dtype:
            problems.append(f"{name}: expected dtype {want.dtype}, found {got.dtype}")
    if problems:
        count = len(problems) + max(len(missing) - 1, 0) + max(len(unexpected) - 1, 0)
        raise CheckpointError(
            f"{where}: the weights do not match the config ({count} problem(s)): "
            + "; ".join(problems)
            + ". Check that config.json and the weights belong together."
        )


def load_weights_into(model: nn.Module, directory: str | os.PathLike[str]) -> nn.Module:
    """Load ``directory/model.safetensors`` into an existing ``model``, validating every tensor.

    For models whose structure the caller builds itself (a classifier head, LoRA
    layers, a training run being resumed); tied tensors stored once are re-tied.
    """
    weights_path = Path(directory) / WEIGHTS_FILE
    found = _read_weights(weights_path)
    expected, aliases = unique_tensors(model)
    check_tensors(expected, found, where=str(weights_path))
    result = model.load_state_dict(found, strict=False)
    leftover = [k for k in result.missing_keys if k not in aliases]
    if leftover:  # pragma: no cover - check_tensors already reported them
        raise CheckpointError(f"{weights_path}: missing tensors {', '.join(leftover)}")
    return model


def load_pretrained(
    directory: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> nn.Module:
    """Load a checkpoint directory: build the registered architecture, validate and load every tensor.

    Returns the model (in eval mode, on ``map_location``) with ``model.config``,
    ``model.architecture`` and ``model.checkpoint_config`` (the whole config.json).
    """
    directory = Path(directory)
    data = read_checkpoint_config(directory)
    model = _build_from_config(directory, data)
    dtype_name = data.get("dtype", "float32")
    dtype = getattr(torch, str(dtype_name), None)
    if not isinstance(dtype, torch.dtype):
        raise CheckpointError(f"{directory / CONFIG_FILE}: expected a torch dtype name, found {dtype_name!r}")
    model.to(dtype=dtype)
    load_weights_into(model, directory)
    model.checkpoint_config = dict(data)  # type: ignore[assignment]
    return model.to(map_location).eval()
