"""``prepare``: text files -> token shards + ``index.json`` (format in :mod:`llm_data.shards`).

* Constant memory: each file is read in chunks (:func:`llm_data.text_files.iter_text_chunks`),
  chunks are tokenized by ``workers`` processes (at most ``2 * workers`` chunks in flight) and
  written in input order, so the output does not depend on ``workers``.
* Each input file is one document. Its tokens are spilled to a temporary file; the last
  ``val_fraction`` of them (rounded) go to ``val``, the rest to ``train``. Within each split,
  consecutive document parts are joined by ``<|endoftext|>`` (when the tokenizer has it).
* Everything is written into a temporary directory beside ``out_dir`` and renamed into place
  at the end: an interrupted run leaves no half-written ``out_dir``.
* A directory input contributes its ``*.txt`` files, recursively, in sorted order.
"""

from __future__ import annotations

import collections
import functools
import multiprocessing
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from llm_core.errors import ConfigError, DataError
from llm_core.output_dirs import read_output_marker, write_output_marker
from llm_data.shards import FORMAT, FORMAT_VERSION, INDEX_FILE, ShardWriter, token_dtype, write_index
from llm_data.text_files import ERRORS, iter_text_chunks

__all__ = ["DEFAULT_SHARD_TOKENS", "collect_files", "prepare_corpus"]

_COMMAND = "prepare"  # the name in the output marker

DEFAULT_SHARD_TOKENS = 1 << 26  # 64 Mi tokens: 128 MiB per uint16 shard
_SPILL = ".document.tmp"


def collect_files(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, str]]:
    """``(file, name)`` pairs: files as given, directories expanded to their sorted ``*.txt`` files."""
    found: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not files:
                raise DataError(f"{path}: directory holds no *.txt files; expected UTF-8 text files")
            found += [(p, p.relative_to(path).as_posix()) for p in files]
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise DataError(f"{path}: no such file or directory")
    if not found:
        raise DataError("no input files given; pass text files or directories of *.txt files")
    return found


@functools.lru_cache(maxsize=4)
def _tokenizer(name: str) -> Any:
    from llm_data.tokenizers import get_tokenizer

    return get_tokenizer(name)


def _encode(name: str, text: str) -> np.ndarray:
    """Worker task: the ids of one chunk (``uint32``)."""
    tokenizer = _tokenizer(name)
    if hasattr(tokenizer, "encode_array"):  # tiktoken: no Python list in between
        return np.asarray(tokenizer.encode_array(text), dtype=np.uint32)
    return np.asarray(tokenizer.encode(text), dtype=np.uint32)


class _InlineExecutor(Executor):
    """Runs tasks at submit time (``workers=1``: no processes)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _ordered_map(executor: Executor, name: str, tasks: Iterator[tuple[int, str]], window: int):
    """Yield ``(doc, ids)`` in task order, keeping at most ``window`` tasks in flight."""
    pending: collections.deque[tuple[int, Future]] = collections.deque()
    for doc, text in tasks:
        pending.append((doc, executor.submit(_encode, name, text)))
        if len(pending) >= window:
            doc0, future = pending.popleft()
            yield doc0, future.result()
    while pending:
        doc0, future = pending.popleft()
        yield doc0, future.result()


class _Progress:
    """A byte-based progress bar on stderr (tqdm when installed and ``enabled``)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="B", unit_scale=True, desc="prepare", file=sys.stderr)
            except ImportError:  # pragma: no cover - tqdm is a dependency
                self.bar = None

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """``out_dir`` must be new or empty; ``overwrite`` replaces a prepared corpus, never anything else.

    A prepared corpus carries ``prepare``'s output marker (:mod:`llm_core.output_dirs`),
    or, written before the marker existed, an ``index.json`` and no marker.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a directory; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise DataError(
                f"{out_dir}: directory is not empty; choose a new --out, or pass --overwrite "
                "(overwrite=True) to replace a prepared corpus"
            )
        marker = read_output_marker(out_dir)
        if marker is not None and marker["command"] != _COMMAND:
            raise DataError(
                f"{out_dir}: holds the output of `scratchlm {marker['command']}`; --overwrite only "
                "replaces a directory written by `scratchlm prepare`; choose a new --out"
            )
        if marker is None and not (out_dir / INDEX_FILE).is_file():
            raise DataError(
                f"{out_dir}: not empty and holds no {INDEX_FILE}; --overwrite only replaces a directory "
                "written by `scratchlm prepare`; choose a new --out"
            )


def prepare_corpus(
    paths: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    tokenizer: str = "gpt2",
    val_fraction: float = 0.1,
    workers: int = 1,
    errors: str = "strict",
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    overwrite: bool = False,
    progress: bool = False,
    chunk_chars: int = 1 << 20,
) -> dict[str, Any]:
    """Tokenize text files into ``out_dir`` (shards + ``index.json``); return the index.

    ``tokenizer`` is a registered name or a BPE ``.json`` path (workers load it by name).
    Bad input raises :class:`DataError` (empty or non-UTF-8 file, missing path, non-empty
    ``out_dir``) or :class:`ConfigError` (out-of-range options) before anything is renamed
    into ``out_dir``; a failed write (disk full, permissions) raises :class:`DataError` and leaves
    ``out_dir`` as it was.
    """
    if not isinstance(tokenizer, (str, os.PathLike)):
        raise ConfigError(f"tokenizer={tokenizer!r}: expected a registered name or a BPE .json path")
    tokenizer = str(tokenizer)
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction={val_fraction}: expected a number in [0, 1), for example 0.1")
    for option, value in (("workers", workers), ("shard_tokens", shard_tokens), ("chunk_chars", chunk_chars)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{option}={value!r}: expected a positive integer")
    if errors not in ERRORS:
        raise ConfigError(f"errors={errors!r}: expected one of {', '.join(ERRORS)}")
    files = collect_files(paths)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    tok = _tokenizer(tokenizer)
    dtype = token_dtype(tok.n_vocab)
    eot = getattr(tok, "eot_token", None)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_output_marker(tmp, _COMMAND)  # first: the directory is recognisably prepare's own
    bar = _Progress(sum(f.stat().st_size for f, _ in files), progress)
    try:
        writers = {s: ShardWriter(tmp, s, dtype, shard_tokens) for s in ("train", "val")}
        sources = []

        def tasks() -> Iterator[tuple[int, str]]:
            for doc, (path, _) in enumerate(files):
                for chunk in iter_text_chunks(path, errors=errors, chunk_chars=chunk_chars):
                    bar.update(len(chunk.encode("utf-8", errors="replace")))
                    yield doc, chunk

        def finish_document(spill_path: Path, n_tokens: int) -> None:
            # Read the spilled ids back in blocks (not a memmap: mapped pages would count
            # toward this process's RSS, the whole document of them on a large file).
            n_val = round(n_tokens * val_fraction)
            block = 1 << 22  # tokens: 16 MiB
            with spill_path.open("rb") as spilled:
                for split, start, end in (
                    ("train", 0, n_tokens - n_val),
                    ("val", n_tokens - n_val, n_tokens),
                ):
                    if end <= start:
                        continue
                    if eot is not None and writers[split].total:
                        writers[split].write(np.array([eot]))
                    spilled.seek(start * 4)
                    for at in range(start, end, block):
                        count = min(block, end - at)
                        writers[split].write(np.frombuffer(spilled.read(count * 4), dtype="<u4"))

        if workers == 1:
            executor: Executor = _InlineExecutor()
        else:
            executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn")
            )
        spill_path = tmp / _SPILL
        with executor:
            current, spill, n_tokens = -1, None, 0
            for doc, ids in _ordered_map(executor, tokenizer, tasks(), 2 * workers):
                if doc != current:
                    if spill is not None:
                        spill.close()
                        finish_document(spill_path, n_tokens)
                        sources.append({"name": files[current][1], "tokens": n_tokens})
                    current, spill, n_tokens = doc, spill_path.open("wb"), 0
                assert spill is not None
                spill.write(ids.astype("<u4", copy=False).tobytes())
                n_tokens += len(ids)
            if spill is not None:
                spill.close()
                finish_document(spill_path, n_tokens)
                sources.append({"name": files[current][1], "tokens": n_tokens})
        spill_path.unlink(missing_ok=True)
        splits = {s: w.finish() for s, w in writers.items()}
        if splits["train"]["tokens"] == 0:
            raise DataError("the input gives no tokens; expected some text")
        index = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tokenizer": tokenizer,
            "n_vocab": int(tok.n_vocab),
            "eot_token": eot,
            "dtype": "uint16" if dtype.itemsize == 2 else "uint32",
            "val_fraction": val_fraction,
            "sources": sources,
            "splits": splits,
        }
        index = write_index(tmp, index)
        _move_into_place(tmp, out_dir)
    except OSError as exc:  # disk full, quota, permissions: nothing was renamed into out_dir
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"{out_dir}: cannot write the prepared corpus ({exc.strerror or exc}); "
            f"{out_dir} was left as it was; free some space or choose another --out"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    return index


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir`` (replacing an empty or previously prepared directory)."""
    old = None
    if out_dir.is_dir() and any(out_dir.iterdir()):
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
    elif out_dir.is_dir():
        out_dir.rmdir()
    os.replace(tmp, out_dir)
    dir_fd = os.open(out_dir.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
