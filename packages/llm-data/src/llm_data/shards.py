"""Prepared corpora on disk: token shards + ``index.json``, written by ``prepare`` and read back.

A prepared directory holds, per split (``train``, ``val``), shard files
``{split}-{i:05d}.bin`` of raw little-endian ``uint16`` ids (``uint32`` when the tokenizer has
more than 65535 ids), and ``index.json``::

    {"format": "scratchlm-tokens", "format_version": 1, "tokenizer": "gpt2", "n_vocab": 50257,
     "eot_token": 50256, "dtype": "uint16", "val_fraction": 0.1, "sources": [...],
     "splits": {"train": {"tokens": N, "shards": [{"file": "train-00000.bin", "tokens": n,
                                                   "sha256": "..."}]}, "val": {...}}}

:func:`load_prepared` checks the index and every shard's size and sha256 before
memory-mapping them into one :class:`TokenArray`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llm_core.errors import DataError

__all__ = ["INDEX_FILE", "ShardWriter", "TokenArray", "load_prepared", "read_index", "token_dtype"]

INDEX_FILE = "index.json"
FORMAT = "scratchlm-tokens"
FORMAT_VERSION = 1
SPLIT_ALIASES = {"validation": "val", "valid": "val"}


def token_dtype(n_vocab: int) -> np.dtype:
    """``uint16`` when every id fits (``n_vocab <= 65536``), else ``uint32``."""
    return np.dtype("<u2") if n_vocab <= 1 << 16 else np.dtype("<u4")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class ShardWriter:
    """Append token ids to ``{split}-NNNNN.bin`` files of at most ``shard_tokens`` ids each."""

    def __init__(self, directory: Path, split: str, dtype: np.dtype, shard_tokens: int) -> None:
        self.directory = directory
        self.split = split
        self.dtype = dtype
        self.shard_tokens = shard_tokens
        self.shards: list[dict[str, Any]] = []
        self._handle: Any = None
        self._digest: Any = None
        self._count = 0

    @property
    def total(self) -> int:
        """Ids written so far."""
        return sum(s["tokens"] for s in self.shards) + self._count

    def _open(self) -> None:
        name = f"{self.split}-{len(self.shards):05d}.bin"
        self._handle = (self.directory / name).open("wb")
        self._name, self._digest, self._count = name, hashlib.sha256(), 0

    def _close(self) -> None:
        if self._handle is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self.shards.append({"file": self._name, "tokens": self._count, "sha256": self._digest.hexdigest()})
        self._handle, self._count = None, 0

    def write(self, ids: np.ndarray) -> None:
        """Append ``ids`` (any integer array), opening new shards as they fill up."""
        ids = np.asarray(ids).astype(self.dtype, copy=False)
        while ids.size:
            if self._handle is None:
                self._open()
            room = self.shard_tokens - self._count
            part, ids = ids[:room], ids[room:]
            data = part.tobytes()
            self._handle.write(data)
            self._digest.update(data)
            self._count += part.size
            if self._count >= self.shard_tokens:
                self._close()

    def finish(self) -> dict[str, Any]:
        """Close the last shard; the split's entry of ``index.json``."""
        self._close()
        return {"tokens": sum(s["tokens"] for s in self.shards), "shards": self.shards}


class TokenArray:
    """The tokens of one split as a single read-only sequence over memory-mapped shards.

    ``len(a)`` is the number of tokens; ``a[i]`` an ``int``; ``a[i:j]`` an ``int64`` numpy array
    (slices may span shards).
    """

    def __init__(self, arrays: Sequence[np.ndarray]) -> None:
        self._arrays = [a for a in arrays if len(a)]
        sizes = [len(a) for a in self._arrays]
        self._offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        self.dtype = self._arrays[0].dtype if self._arrays else np.dtype("<u2")

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, key: int | slice) -> Any:
        n = len(self)
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step != 1:
                return self[start:stop][::step]
            if stop <= start:
                return np.zeros(0, dtype=np.int64)
            first = int(np.searchsorted(self._offsets, start, side="right")) - 1
            parts = []
            pos, i = start, first
            while pos < stop:
                local = pos - int(self._offsets[i])
                end = min(stop, int(self._offsets[i + 1]))
                parts.append(np.asarray(self._arrays[i][local : local + end - pos], dtype=np.int64))
                pos, i = end, i + 1
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        index = int(key)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"token index {key} out of range for {n} tokens")
        i = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return int(self._arrays[i][index - int(self._offsets[i])])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[0 : len(self)]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"TokenArray({len(self)} tokens in {len(self._arrays)} shard(s), dtype={self.dtype})"


def read_index(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``index.json`` of a prepared directory (checked: format, version, splits)."""
    directory = Path(directory)
    path = directory / INDEX_FILE
    if not path.is_file():
        raise DataError(
            f"{directory}: no {INDEX_FILE}; expected a directory written by `scratchlm prepare` "
            "(run it first, or check the path)"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: unreadable index ({exc}); re-run `scratchlm prepare`") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DataError(f'{path}: expected "format": "{FORMAT}"; this is not a prepared token corpus')
    if index.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path}: format_version {index.get('format_version')!r} is not supported (expected "
            f"{FORMAT_VERSION}); re-run `scratchlm prepare` with this llm-data"
        )
    if not isinstance(index.get("splits"), dict) or index.get("dtype") not in ("uint16", "uint32"):
        raise DataError(f"{path}: malformed index (missing 'splits' or 'dtype'); re-run `scratchlm prepare`")
    for split, entry in index["splits"].items():
        shards = entry.get("shards") if isinstance(entry, dict) else None
        if not isinstance(shards, list) or not all(_is_shard_entry(shard) for shard in shards):
            raise DataError(
                f"{path}: malformed entry for split {split!r} (expected shards with a plain file name, "
                "a token count and a sha256); re-run `scratchlm prepare`"
            )
    return index


def _is_shard_entry(shard: Any) -> bool:
    """A well-formed shard entry whose file is a plain name inside the directory (no path, no ``..``)."""
    if not isinstance(shard, dict):
        return False
    file, tokens, sha256 = shard.get("file"), shard.get("tokens"), shard.get("sha256")
    return (
        isinstance(file, str)
        and file not in ("", ".", "..")
        and "/" not in file
        and "\\" not in file
        and isinstance(tokens, int)
        and not isinstance(tokens, bool)
        and tokens >= 0
        and isinstance(sha256, str)
        and len(sha256) == 64
    )


def load_prepared(
    directory: str | os.PathLike[str], split: str = "train", *, verify: bool = True
) -> TokenArray:
    """Memory-map the shards of ``split`` (``train`` or ``val``) of a prepared directory.

    Checks every shard's size against the index and, with ``verify`` (default), its sha256.
    A missing, truncated or modified shard raises :class:`DataError` naming the file.
    """
    directory = Path(directory)
    index = read_index(directory)
    split = SPLIT_ALIASES.get(split, split)
    if split not in index["splits"]:
        available = ", ".join(sorted(index["splits"])) or "none"
        raise DataError(f"{directory}: no split '{split}'; available: {available}")
    dtype = np.dtype("<u2") if index["dtype"] == "uint16" else np.dtype("<u4")
    arrays = []
    for shard in index["splits"][split]["shards"]:
        path = directory / shard["file"]
        if not path.is_file():
            raise DataError(f"{path}: shard listed in {INDEX_FILE} is missing; re-run `scratchlm prepare`")
        expected = int(shard["tokens"]) * dtype.itemsize
        size = path.stat().st_size
        if size != expected:
            raise DataError(
                f"{path}: {size} bytes but {INDEX_FILE} says {shard['tokens']} {index['dtype']} tokens "
                f"({expected} bytes): the shard is truncated or modified; re-run `scratchlm prepare`"
            )
        if verify:
            found = _sha256_file(path)
            if found != shard["sha256"]:
                raise DataError(
                    f"{path}: sha256 {found} does not match {INDEX_FILE} ({shard['sha256']}): "
                    "the shard was modified; re-run `scratchlm prepare`"
                )
        if expected:
            arrays.append(np.memmap(path, dtype=dtype, mode="r"))
    return TokenArray(arrays)
