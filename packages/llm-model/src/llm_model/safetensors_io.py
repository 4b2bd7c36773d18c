"""Safetensors files read memory-mapped and written one tensor at a time.

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes
of JSON (``{name: {"dtype": "BF16", "shape": [...], "data_offsets": [begin,
end]}, "__metadata__": {...}}``) and then the raw bytes of every tensor.

* :func:`read_header` reads the names, shapes and dtypes without touching the
  data, and checks that every tensor lies inside the file (a truncated
  download is found here, before anything is allocated).
* :func:`mmap_tensors` maps the file (``torch.from_file``, private mapping)
  and returns tensors that are views of it: nothing is copied, pages are read
  from disk when first used and are the page cache's, not a second copy.
* :func:`write_safetensors` streams tensors to disk one by one, so writing
  costs no second copy of the weights either (``safetensors.torch.save_file``
  builds every tensor's bytes in memory first).

Files are the same format as the ``safetensors`` library's: each reads the other's.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from llm_core.errors import CheckpointError

__all__ = ["DTYPES", "TensorInfo", "mmap_tensors", "read_header", "write_safetensors"]

#: safetensors dtype codes -> torch dtypes.
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
_CODES = {dtype: code for code, dtype in DTYPES.items()}
#: A header larger than this is not a safetensors header (the library's own limit).
_MAX_HEADER = 100_000_000


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors file, as its header describes it.

    Attributes:
        path: the file.
        dtype: the stored dtype.
        shape: the stored shape.
        begin: offset of the first byte from the start of the file.
        end: offset one past the last byte.
    """

    path: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int

    def meta(self) -> torch.Tensor:
        """An empty tensor of this shape and dtype on the ``meta`` device (costs nothing)."""
        return torch.empty(self.shape, dtype=self.dtype, device="meta")


def _bad(path: Path, found: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: expected a safetensors file, found {found}; "
        "the file is truncated or not safetensors: re-save or re-download it"
    )


def read_header(path: str | os.PathLike[str]) -> dict[str, TensorInfo]:
    """The tensors of a safetensors file by name, read from its header only.

    Raises :class:`CheckpointError` when the file is missing, its header does
    not parse, a dtype is unknown, a tensor's byte range does not match its
    shape, or a tensor lies (partly) past the end of the file (truncation).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise _bad(path, f"a file of {size} bytes (too short for a header)")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(size - 8, _MAX_HEADER):
                raise _bad(path, f"a header length of {length} bytes in a file of {size} bytes")
            header = json.loads(handle.read(length))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: expected a safetensors file, found no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"an unreadable header ({exc})") from None
    if not isinstance(header, dict):
        raise _bad(path, f"a header that is a {type(header).__name__}, not an object")
    data_start = 8 + length
    infos: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = DTYPES[entry["dtype"]]
            shape = tuple(int(n) for n in entry["shape"])
            begin, end = (int(n) for n in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise _bad(path, f"a malformed header entry for {name!r}: {entry!r}") from None
        numel = 1
        for n in shape:
            numel *= n
        if min(shape, default=0) < 0 or end - begin != numel * dtype.itemsize:
            raise _bad(path, f"{name!r} with shape {list(shape)} stored in {end - begin} bytes")
        if data_start + end > size:
            raise _bad(
                path,
                f"{name!r} ending at byte {data_start + end} of a {size}-byte file "
                f"({data_start + end - size} bytes missing)",
            )
        infos[name] = TensorInfo(path, dtype, shape, data_start + begin, data_start + end)
    return infos


def mmap_tensors(
    path: str | os.PathLike[str], infos: Mapping[str, TensorInfo] | None = None
) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file as views of a private memory map of it (CPU, nothing copied).

    ``infos`` is :func:`read_header`'s result when the caller already has it.
    Writing into a returned tensor changes the process's copy only, never the file.
    A tensor whose bytes are not aligned for its dtype is copied (writers align them).
    """
    path = Path(path)
    infos = read_header(path) if infos is None else infos
    size = path.stat().st_size
    if size == 0:
        return {}
    data = torch.from_file(str(path), shared=False, size=size, dtype=torch.uint8)  # (size,), mapped
    tensors: dict[str, torch.Tensor] = {}
    for name, info in infos.items():
        raw = data[info.begin : info.end]
        if info.begin % info.dtype.itemsize:
            raw = raw.clone()  # misaligned for a zero-copy view
        tensors[name] = raw.view(info.dtype).view(info.shape)
    return tensors


def write_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` (CPU or not) to ``path`` in safetensors format, one tensor at a time.

    Tensors are stored widest dtype first so every tensor is aligned for a
    zero-copy memory map; only one tensor at a time is made contiguous on the CPU.
    """
    order = sorted(tensors, key=lambda name: (-tensors[name].dtype.itemsize, name))
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name in order:
        tensor = tensors[name]
        if tensor.dtype not in _CODES:
            raise CheckpointError(f"{name}: dtype {tensor.dtype} cannot be stored in safetensors")
        nbytes = tensor.numel() * tensor.dtype.itemsize
        header[name] = {
            "dtype": _CODES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-(8 + len(encoded)) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for name in order:
            tensor = tensors[name].detach().to("cpu").contiguous()
            if tensor.numel():
                handle.write(tensor.reshape(-1).view(torch.uint8).numpy().data)
