"""The weight files of a Hugging Face checkpoint directory, as published, memory-mapped.

Looked for in this order (the first layout present is used):

1. ``model.safetensors.index.json`` + the shards its ``weight_map`` names
   (``model-00001-of-00002.safetensors`` …);
2. ``model.safetensors``;
3. only when there is no safetensors file at all: ``pytorch_model.bin.index.json``
   + its shards, or ``pytorch_model.bin``, read with ``torch.load(weights_only=True,
   mmap=True)`` (never unpickling arbitrary objects).

Every file is checked before any tensor is used: a missing or truncated shard,
an index naming a file that is not there, or a tensor the index places in a
shard that does not hold it is one :class:`~llm_core.errors.CheckpointError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llm_core.errors import CheckpointError
from llm_model.safetensors_io import mmap_tensors, read_header

__all__ = ["HFWeights", "read_hf_weights", "torch_load_safely"]

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"


@dataclass(frozen=True)
class HFWeights:
    """The tensors of a checkpoint (CPU views of memory-mapped files) and where they came from.

    Attributes:
        tensors: name -> tensor, names as stored (``model.layers.0…``).
        where: the files, for error messages (``dir/model.safetensors.index.json (2 shards)``).
        files: every weight file read.
    """

    tensors: dict[str, torch.Tensor]
    where: str
    files: tuple[Path, ...]


def _read_index(path: Path) -> dict[str, str]:
    """``weight_map`` (tensor name -> shard file name) of an index file."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path}: expected a JSON index of the shards, found unreadable content ({exc})"
        ) from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise CheckpointError(f"{path}: expected an object with a 'weight_map' of tensor name -> file name")
    bad = sorted({f for f in weight_map.values() if Path(f).name != f or f in ("", ".", "..")})
    if bad:
        raise CheckpointError(f"{path}: expected shard file names in this directory, found {', '.join(bad)}")
    return weight_map


def _shards(directory: Path, index_path: Path) -> tuple[dict[str, str], list[Path]]:
    weight_map = _read_index(index_path)
    files = sorted(set(weight_map.values()))
    missing = [f for f in files if not (directory / f).is_file()]
    if missing:
        raise CheckpointError(
            f"{index_path}: names {len(missing)} shard(s) that are not in {directory}: {', '.join(missing)}; "
            "download every shard the index lists"
        )
    return weight_map, [directory / f for f in files]


def _check_placement(index_path: Path, weight_map: dict[str, str], found: dict[str, str]) -> None:
    """Each tensor of the index must be in the shard the index names (``found``: name -> file name)."""
    problems = [
        f"{name} (index: {shard}, found in {found.get(name, 'no shard')})"
        for name, shard in weight_map.items()
        if found.get(name) != shard
    ]
    if problems:
        raise CheckpointError(
            f"{index_path}: {len(problems)} tensor(s) are not where the index says: {'; '.join(problems[:5])}"
            + (" …" if len(problems) > 5 else "")
        )


def _safetensors(directory: Path) -> HFWeights | None:
    index_path = directory / SAFETENSORS_INDEX
    if index_path.is_file():
        weight_map, files = _shards(directory, index_path)
        headers = {path: read_header(path) for path in files}  # every shard checked before any is mapped
        found = {name: path.name for path, infos in headers.items() for name in infos}
        _check_placement(index_path, weight_map, found)
        tensors: dict[str, torch.Tensor] = {}
        for path, infos in headers.items():
            tensors |= mmap_tensors(path, infos)
        return HFWeights(tensors, f"{index_path} ({len(files)} shards)", tuple(files))
    path = directory / SAFETENSORS
    if path.is_file():
        return HFWeights(mmap_tensors(path), str(path), (path,))
    return None


def torch_load_safely(path: Path, expected: str) -> Any:
    """``torch.load(path, weights_only=True)``, memory-mapped where the format allows.

    Any failure to read it is one :class:`CheckpointError` saying it is not ``expected``.
    """
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # the legacy (non-zip) format
    except Exception as exc:  # pickle, zip and torch errors alike
        raise CheckpointError(
            f"{path}: expected {expected}, found a file that cannot be read as one "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    loaded = torch_load_safely(path, "a PyTorch state dict of tensors (loaded with weights_only=True)")
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise CheckpointError(
            f"{path}: expected a dict of tensor name -> tensor, found {type(loaded).__name__}"
        )
    return loaded


def _pickles(directory: Path) -> HFWeights | None:
    index_path = directory / BIN_INDEX
    if index_path.is_file():
        weight_map, files = _shards(directory, index_path)
        tensors: dict[str, torch.Tensor] = {}
        found: dict[str, str] = {}
        for path in files:
            shard = _torch_load(path)
            tensors |= shard
            found |= dict.fromkeys(shard, path.name)
        _check_placement(index_path, weight_map, found)
        return HFWeights(tensors, f"{index_path} ({len(files)} shards)", tuple(files))
    path = directory / BIN
    if path.is_file():
        return HFWeights(_torch_load(path), str(path), (path,))
    return None


def read_hf_weights(directory: str | Path) -> HFWeights:
    """The weights of a Hugging Face checkpoint directory, memory-mapped (see the module docstring)."""
    directory = Path(directory)
    weights = _safetensors(directory) or _pickles(directory)
    if weights is None:
        raise CheckpointError(
            f"{directory}: expected the weights as {SAFETENSORS}, {SAFETENSORS_INDEX} + shards, "
            f"or (without safetensors) {BIN}, found none of them"
        )
    return weights
