"""Output directories: every command claims the directory it writes, so it never clobbers a user's files.

A directory a command writes carries a marker file, :data:`OUTPUT_MARKER`
(``.scratchlm-run.json``: the writing command's name), written before anything
else. :func:`claim_output_dir` accepts a directory that does not exist yet, an
empty one, or one marked by the same command (resume / continue); it refuses,
with one :class:`~llm_core.errors.ConfigError` line, a file, a non-empty
directory without the marker, and a directory another command marked — unless
``overwrite`` is given.

Commands that build their output in a temporary directory and rename it into
place (``prepare``) check first with :func:`check_output_dir` and mark the
temporary directory with :func:`write_output_marker`.

A single output *file* (a report, a review page) is recognised by its content
instead: :func:`check_output_file` refuses to replace a file that does not carry
the command's signature.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llm_core.config_io import check_keys, write_json_atomic
from llm_core.errors import ConfigError

__all__ = [
    "OUTPUT_MARKER",
    "check_output_dir",
    "check_output_file",
    "claim_output_dir",
    "read_output_marker",
    "write_output_marker",
]

#: The marker file a command writes first into every directory it writes.
OUTPUT_MARKER = ".scratchlm-run.json"
_MARKER_FORMAT = 1
_SHOWN = 3  # entries named in a refusal
_SIGNATURE_BYTES = 1 << 16  # how far into a file its signature is looked for


def read_output_marker(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The marker of ``directory`` (``{"format_version", "command"}``), or None when it has none.

    A marker that is not the JSON object :func:`write_output_marker` writes is a
    :class:`ConfigError` naming the file.
    """
    path = Path(directory) / OUTPUT_MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: unreadable scratchlm output marker ({exc}); delete it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}; delete it")
    check_keys(data, required=("format_version", "command"), source=str(path))
    if data["format_version"] != _MARKER_FORMAT or not isinstance(data["command"], str):
        raise ConfigError(
            f"{path}: expected format_version {_MARKER_FORMAT} and a command name, "
            f"got {data['format_version']!r} and {data['command']!r}; delete it"
        )
    return data


def write_output_marker(directory: str | os.PathLike[str], command: str) -> Path:
    """Mark ``directory`` (created if needed) as written by ``command``; return the marker's path."""
    path = Path(directory) / OUTPUT_MARKER
    try:
        write_json_atomic(path, {"format_version": _MARKER_FORMAT, "command": command})
    except OSError as exc:
        raise ConfigError(f"cannot write to {directory}: {exc.strerror or exc}") from None
    return path


def _found(directory: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() and not p.is_symlink() else "") for p in directory.iterdir())
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def check_output_dir(
    directory: str | os.PathLike[str],
    *,
    command: str,
    overwrite: bool = False,
    option: str = "--out",
) -> bool:
    """Refuse ``directory`` as ``command``'s output unless it is new, empty or already ``command``'s.

    Writes nothing. Returns True when ``directory`` already carries ``command``'s
    marker. Raises one :class:`ConfigError` line saying what was found, for a
    path that is not a directory, a non-empty directory without the marker, or
    one marked by another command; ``overwrite`` accepts the last two.
    ``option`` names the command-line option in the message.
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: exists and is not a directory; choose another {option}")
    if not path.is_dir():
        return False
    marker = read_output_marker(path)
    if marker is not None and marker["command"] == command:
        return True
    if overwrite:
        return False
    if marker is not None:
        raise ConfigError(
            f"{option} {path}: holds the output of `scratchlm {marker['command']}`, not of "
            f"`scratchlm {command}`; pass --overwrite to write into it anyway, or choose another {option}"
        )
    if any(path.iterdir()):
        raise ConfigError(
            f"{option} {path}: not empty ({_found(path)}) and not written by scratchlm (no {OUTPUT_MARKER}); "
            f"pass --overwrite to write into it anyway, or choose another {option}"
        )
    return False


def claim_output_dir(
    directory: str | os.PathLike[str],
    *,
    command: str,
    overwrite: bool = False,
    option: str = "--out",
) -> Path:
    """Check ``directory`` with :func:`check_output_dir`, create it and mark it as ``command``'s.

    Call it before writing anything else into the directory. Returns the directory.
    """
    path = Path(directory)
    if not check_output_dir(path, command=command, overwrite=overwrite, option=option):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or exc
            raise ConfigError(f"{option} {path}: cannot create the directory ({reason})") from None
        write_output_marker(path, command)
    return path


def check_output_file(
    path: str | os.PathLike[str],
    *,
    command: str,
    signature: str,
    overwrite: bool = False,
    option: str = "--out",
) -> None:
    """Refuse to replace or extend ``path`` unless it is new, empty, or ``command`` wrote it.

    ``command`` wrote a file whose first 64 KiB contain ``signature`` (text every such
    file has, e.g. ``"evaluator": "judge"`` in a report). Writes nothing; raises one
    :class:`ConfigError` line for a directory, or for another file unless ``overwrite``.
    """
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"{option} {file}: is a directory; expected a file path")
    if overwrite or not file.exists():
        return
    try:
        with file.open("rb") as handle:
            head = handle.read(_SIGNATURE_BYTES)
    except OSError as exc:
        raise ConfigError(f"{option} {file}: cannot read it ({exc.strerror or exc})") from None
    if head and signature.encode("utf-8") not in head:
        raise ConfigError(
            f"{option} {file}: exists and was not written by `scratchlm {command}`; "
            f"pass --overwrite to replace it, or choose another {option}"
        )
