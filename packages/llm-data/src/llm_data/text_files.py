"""Reading text files in constant memory: UTF-8 checks with byte offsets, tokenizer-safe chunks.

:func:`iter_text_chunks` yields a file's text in pieces of about ``chunk_chars`` characters,
cut only between two non-space characters around one whitespace character (``"x y"``,
``"x\\ny"``): GPT-2-style pre-tokenization never joins across such a point, so tokenizing
the chunks one by one gives the same ids as tokenizing the whole file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from llm_core.errors import ConfigError, DataError

__all__ = ["iter_text_chunks", "read_json_records", "read_text_file", "tokens_from_text_file"]

ERRORS = ("strict", "replace")
_READ_BYTES = 1 << 20
_CUT = re.compile(r"\S\s(?=\S)")
_BOM = b"\xef\xbb\xbf"


def _check_errors(errors: str) -> None:
    if errors not in ERRORS:
        raise ConfigError(f"errors={errors!r}: expected one of {', '.join(ERRORS)}")


def _incomplete_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` start a UTF-8 character that is not complete yet."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: keep looking for the lead byte
            continue
        if byte >= 0xC0:
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return back if needed > back else 0
        return 0
    return 0


def _decoded_pieces(path: Path, errors: str, read_bytes: int) -> Iterator[str]:
    """The file's text, decoded piece by piece; a bad byte raises DataError with its offset."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        carry = b""
        offset = 0  # file offset of carry[0]
        first = True
        while True:
            block = handle.read(read_bytes)
            final = not block
            data = carry + block
            if first:
                first = False
                if data.startswith(_BOM):
                    data, offset = data[len(_BOM) :], len(_BOM)
            cut = len(data) if final else len(data) - _incomplete_tail(data)
            try:
                text = data[:cut].decode("utf-8", errors=errors)
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}: not valid UTF-8 at byte offset {offset + exc.start} ({exc.reason}); "
                    "convert the file to UTF-8, or pass errors='replace' (--errors replace) "
                    "to substitute U+FFFD"
                ) from None
            if text:
                yield text
            if final:
                return
            carry, offset = data[cut:], offset + cut


def iter_text_chunks(
    path: str | os.PathLike[str],
    *,
    errors: str = "strict",
    chunk_chars: int = 1 << 20,
    read_bytes: int = _READ_BYTES,
) -> Iterator[str]:
    """Yield the text of ``path`` in chunks of about ``chunk_chars`` characters (see module doc).

    An empty file (or one holding only a byte-order mark) raises :class:`DataError`.
    """
    _check_errors(errors)
    path = Path(path)
    buffer = ""
    empty = True
    for piece in _decoded_pieces(path, errors, read_bytes):
        empty = False
        buffer += piece
        while len(buffer) >= 2 * chunk_chars:
            match = _CUT.search(buffer, chunk_chars, 2 * chunk_chars)
            # no safe point (one giant "word" of chunk_chars characters): cut hard, the only approximation
            cut = match.start() + 1 if match else chunk_chars
            yield buffer[:cut]
            buffer = buffer[cut:]
    if empty:
        raise DataError(f"{path}: the file is empty; expected UTF-8 text")
    if buffer:
        yield buffer


def read_text_file(path: str | os.PathLike[str], *, errors: str = "strict") -> str:
    """The whole text of a UTF-8 file; empty and non-UTF-8 files raise :class:`DataError`."""
    return "".join(iter_text_chunks(path, errors=errors))


def tokens_from_text_file(
    path: str | os.PathLike[str], tokenizer: Any = "gpt2", errors: str = "strict"
) -> np.ndarray:
    """Token ids (``int64``) of a plain UTF-8 text file, read in chunks.

    ``tokenizer`` is a registered name, a BPE ``.json`` path or a tokenizer object.
    An empty file, invalid UTF-8 (the message gives the byte offset; ``errors="replace"``
    substitutes U+FFFD instead) or a text with no tokens raises :class:`DataError`.
    """
    from llm_data.tokenizers import resolve_tokenizer

    tok = resolve_tokenizer(tokenizer)
    parts = [np.asarray(tok.encode(chunk), dtype=np.int64) for chunk in iter_text_chunks(path, errors=errors)]
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if tokens.size == 0:
        raise DataError(f"{path}: the text gives no tokens; expected some text")
    return tokens


def read_json_records(
    path: str | os.PathLike[str], *, text: str | None = None, what: str = "records"
) -> list[Any]:
    """The records of a JSON list file, or of a ``.jsonl`` file (one JSON value per line).

    ``text`` is the file's content when already read. Unreadable, non-UTF-8 or
    invalid JSON, or a top level that is not a list, is one :class:`DataError`
    naming the file and line; ``what`` names the records in that message.
    """
    path = Path(path)
    text = read_text_file(path) if text is None else text
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except (json.JSONDecodeError, RecursionError) as exc:
                    reason = getattr(exc, "msg", "nested too deeply")
                    raise DataError(
                        f"{path}:{number}: invalid JSON ({reason}); expected one record per line"
                    ) from None
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); expected a list of {what}") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply; expected a list of {what}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}:1: expected a JSON list of {what}, found {type(data).__name__}")
    return data
