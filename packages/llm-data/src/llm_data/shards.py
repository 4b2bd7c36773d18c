"""Prepared corpora on disk: token shards + ``index.json``, written by ``prepare`` and read back.

A prepared directory holds, per split (``train``, ``val``), shard files
``{split}-{i:05d}.bin`` of raw little-endian ``uint16`` ids (``uint32`` when the tokenizer has
more than 65535 ids), and ``index.json``::

    {"format": "scratchlm-tokens", "format_version": 1, "tokenizer": "gpt2", "n_vocab": 50257,
     "eot_token": 50256, "dtype": "uint16", "val_fraction": 0.1,
     "sources": [{"name": "a.txt", "tokens": n}, ...],
     "splits": {"train": {"tokens": N, "shards": [{"file": "train-00000.bin", "tokens": n,
                                                   "sha256": "..."}]}, "val": {...}},
     "sha256": "..."}

The last ``sha256`` is the digest of the index's own canonical JSON (without that
key), written by :func:`write_index`; indexes written before it existed load
without it. :func:`read_index` checks every key (an unknown, misspelled or missing
one is a :class:`DataError` naming it), every value's type and range, and that
digest; :func:`load_prepared` then checks every shard's size and sha256 before
memory-mapping them into one :class:`TokenArray`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llm_core.config_io import FileFormat, check_keys, json_digest, sha256_file, write_json_atomic
from llm_core.errors import DataError

__all__ = [
    "INDEX_FILE",
    "INDEX_KEYS",
    "ShardWriter",
    "TokenArray",
    "index_digest",
    "load_prepared",
    "read_index",
    "token_dtype",
    "write_index",
]

INDEX_FILE = "index.json"
FORMAT = "scratchlm-tokens"
FORMAT_VERSION = 1
#: What a file of this format must say of itself.
FILE_FORMAT = FileFormat(
    FORMAT, FORMAT_VERSION, "a prepared token corpus", "re-run `scratchlm prepare` with this llm-data"
)
SPLIT_ALIASES = {"validation": "val", "valid": "val"}
#: The keys every index.json has (``sha256`` is optional: older indexes lack it).
INDEX_KEYS = (
    "format",
    "format_version",
    "tokenizer",
    "n_vocab",
    "eot_token",
    "dtype",
    "val_fraction",
    "sources",
    "splits",
)
CHECKSUM_KEY = "sha256"
SPLITS = ("train", "val")


def token_dtype(n_vocab: int) -> np.dtype:
    """``uint16`` when every id fits (``n_vocab <= 65536``), else ``uint32``."""
    return np.dtype("<u2") if n_vocab <= 1 << 16 else np.dtype("<u4")


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


def index_digest(index: Mapping[str, Any]) -> str:
    """sha256 of the index's canonical JSON, without its own ``sha256`` key."""
    return json_digest(index, without=CHECKSUM_KEY)


def write_index(directory: str | os.PathLike[str], index: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``directory/index.json`` atomically with its own ``sha256``; return what was written."""
    data = {k: v for k, v in index.items() if k != CHECKSUM_KEY}
    data[CHECKSUM_KEY] = index_digest(data)
    write_json_atomic(Path(directory) / INDEX_FILE, data)
    return data


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_metadata(path: Path, index: dict[str, Any]) -> None:
    """Keys and values of the index other than the shard entries; a DataError naming the key."""
    again = "; re-run `scratchlm prepare`"
    check_keys(index, required=INDEX_KEYS, optional=(CHECKSUM_KEY,), source=str(path), error=DataError)
    if not isinstance(index["tokenizer"], str) or not index["tokenizer"]:
        raise DataError(
            f"{path}: 'tokenizer': expected a tokenizer name, found {index['tokenizer']!r}{again}"
        )
    n_vocab = index["n_vocab"]
    if not _is_int(n_vocab, 1):
        raise DataError(f"{path}: 'n_vocab': expected an integer >= 1, found {n_vocab!r}{again}")
    if index["dtype"] != ("uint16" if token_dtype(n_vocab).itemsize == 2 else "uint32"):
        raise DataError(f"{path}: 'dtype' {index['dtype']!r} does not fit n_vocab={n_vocab}{again}")
    eot = index["eot_token"]
    if eot is not None and not (_is_int(eot, 0) and eot < n_vocab):
        raise DataError(f"{path}: 'eot_token': expected null or an id below {n_vocab}, found {eot!r}{again}")
    fraction = index["val_fraction"]
    if not (
        isinstance(fraction, (int, float))
        and not isinstance(fraction, bool)
        and math.isfinite(fraction)
        and 0 <= fraction < 1
    ):
        raise DataError(f"{path}: 'val_fraction': expected a number in [0, 1), found {fraction!r}{again}")
    sources = index["sources"]
    if not isinstance(sources, list):
        raise DataError(f"{path}: 'sources': expected a list, found {type(sources).__name__}{again}")
    for number, source in enumerate(sources):
        where = f"{path}: sources[{number}]"
        if not isinstance(source, dict):
            raise DataError(f"{where}: expected an object with 'name' and 'tokens'{again}")
        check_keys(source, required=("name", "tokens"), source=where, error=DataError)
        if not isinstance(source["name"], str) or not _is_int(source["tokens"], 0):
            raise DataError(f"{where}: expected a string 'name' and an integer 'tokens' >= 0{again}")
    if isinstance(index["splits"], dict):
        check_keys(index["splits"], required=SPLITS, source=f"{path}: splits", error=DataError)


def read_index(directory: str | os.PathLike[str], *, verify: bool = True) -> dict[str, Any]:
    """The parsed ``index.json`` of a prepared directory, checked (keys, values, shard entries).

    With ``verify`` (default) the index's own ``sha256``, when it has one, must match.
    """
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
    FILE_FORMAT.check(index, str(path), DataError)
    if not isinstance(index.get("splits"), dict) or index.get("dtype") not in ("uint16", "uint32"):
        raise DataError(f"{path}: malformed index (missing 'splits' or 'dtype'); re-run `scratchlm prepare`")
    for split, entry in index["splits"].items():
        shards = entry.get("shards") if isinstance(entry, dict) else None
        problem = _split_problem(entry)
        if problem or not isinstance(shards, list) or not all(_is_shard_entry(shard) for shard in shards):
            raise DataError(
                f"{path}: malformed entry for split {split!r} ({problem or 'expected shards with a plain '}"
                f"{'' if problem else 'file name, a token count and a sha256'}); re-run `scratchlm prepare`"
            )
    _check_metadata(path, index)
    recorded = index.get(CHECKSUM_KEY)
    if CHECKSUM_KEY in index and verify and recorded != index_digest(index):
        raise DataError(
            f"{path}: checksum mismatch: the index changed since `scratchlm prepare` wrote it "
            "(corrupt, or edited by hand); re-run `scratchlm prepare`"
        )
    return index


def _split_problem(entry: Any) -> str:
    """What is wrong with a split's keys or token total ('' when nothing is)."""
    if not isinstance(entry, dict):
        return "expected an object with 'tokens' and 'shards'"
    try:
        check_keys(entry, required=("tokens", "shards"), source="split", error=DataError)
        for number, shard in enumerate(entry["shards"] if isinstance(entry["shards"], list) else []):
            if isinstance(shard, dict):
                check_keys(
                    shard, required=("file", "tokens", "sha256"), source=f"shard {number}", error=DataError
                )
    except DataError as exc:
        return str(exc)
    shards = entry["shards"]
    if isinstance(shards, list) and all(_is_shard_entry(shard) for shard in shards):
        total = sum(shard["tokens"] for shard in shards)
        if entry["tokens"] != total:
            return f"'tokens' is {entry['tokens']!r} but its shards hold {total}"
    return ""


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
    index = read_index(directory, verify=verify)
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
            found = sha256_file(path)
            if found != shard["sha256"]:
                raise DataError(
                    f"{path}: sha256 {found} does not match {INDEX_FILE} ({shard['sha256']}): "
                    "the shard was modified; re-run `scratchlm prepare`"
                )
        if expected:
            arrays.append(np.memmap(path, dtype=dtype, mode="r"))
    return TokenArray(arrays)
