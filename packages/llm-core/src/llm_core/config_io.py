"""Configuration files: read JSON/TOML, build validated dataclasses, write atomically.

Every failure is a :class:`~llm_core.errors.ConfigError` naming the file and
the key, never another exception.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import sys
import tempfile
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from llm_core.errors import ConfigError, ScratchLMError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "FileFormat",
    "apply_overrides",
    "check_keys",
    "config_from_dict",
    "config_to_dict",
    "json_digest",
    "load_config_file",
    "parse_override",
    "sha256_file",
    "write_bytes_atomic",
    "write_json_atomic",
]

T = TypeVar("T")


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``.json`` or ``.toml`` file whose top level is a table/object."""
    path = Path(path)
    if path.suffix not in {".json", ".toml"}:
        raise ConfigError(f"{path}: expected a .json or .toml file, got '{path.suffix or 'no suffix'}'")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise ConfigError(f"{path}: invalid {path.suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table/object at the top level, got {type(data).__name__}")
    return data


def check_keys(
    data: Mapping[str, Any],
    *,
    required: Iterable[str],
    optional: Iterable[str] = (),
    source: str,
    error: type[ScratchLMError] = ConfigError,
) -> None:
    """Refuse a file read back whose keys are not exactly ``required`` plus some of ``optional``.

    A misspelled key (``fmrmat_version``) is both unknown and leaves a required one
    missing: the one ``error`` raised names every unknown key (with the closest
    valid name), every missing key, and the keys that are valid.
    """
    required = set(required)
    valid = required | set(optional)
    unknown = sorted(str(key) for key in data if key not in valid)
    missing = sorted(required - set(data))
    if not unknown and not missing:
        return
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(valid), n=1)
        parts.append(f"unknown key '{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    parts.extend(f"missing key '{key}'" for key in missing)
    raise error(f"{source}: {'; '.join(parts)}; expected keys: {', '.join(sorted(valid))}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; allow int -> float; return the value."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        errors = []
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value in choices and type(value) in {type(c) for c in choices}:
            return value
        raise ConfigError(f"{where}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table/object, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # JSON's NaN/Infinity and TOML's nan/inf parse as floats
                raise ConfigError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp in (bool, str):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table/object, got {value!r}")
        return config_from_dict(tp, value, source=where)
    return value


def config_from_dict(cls: type[T], data: Mapping[str, Any], *, source: str = "config") -> T:
    """Build the dataclass ``cls`` from ``data``, checking keys and value types.

    Unknown keys and type mismatches raise :class:`ConfigError` listing what
    is valid; errors raised by the dataclass's own ``__post_init__``
    validation pass through (they must be ``ConfigError`` too).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a table/object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        listed = ", ".join(map(repr, unknown))
        raise ConfigError(f"{source}: unknown key(s) {listed}; valid keys: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _coerce(value, hints.get(name, Any), f"{source}: '{name}'") for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # the dataclass's own validation
        raise ConfigError(f"{source}: {exc}") from None
    except TypeError as exc:  # a missing required field
        raise ConfigError(f"{source}: {exc}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-serialisable dict of a (nested) config dataclass."""
    return dataclasses.asdict(config)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a ``key=value`` CLI override; the value is read as JSON, else as a string."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected KEY=VALUE, for example lr=3e-4")
    key, _, raw = text.partition("=")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``overrides`` into ``data`` in place (dotted keys and nested dicts reach into tables)."""
    for key, value in overrides.items():
        parts = key.split(".")
        target = data
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {} if child is None else _not_a_table(key, part, child)
            target = child
        last = parts[-1]
        if isinstance(value, Mapping) and isinstance(target.get(last), dict):
            apply_overrides(target[last], value)
        else:
            target[last] = dict(value) if isinstance(value, Mapping) else value
    return data


def _not_a_table(key: str, part: str, value: Any) -> dict[str, Any]:
    raise ConfigError(f"override '{key}': '{part}' is {value!r}, not a table, so it has no fields")


@dataclasses.dataclass(frozen=True)
class FileFormat:
    """A JSON file format: its ``"format"`` name and ``"format_version"``, and what to say of a mismatch.

    ``what`` says what the file should be; ``remedy`` what to do about another version.
    """

    name: str
    version: int
    what: str
    remedy: str

    def check(self, data: Any, source: str, error: type[ScratchLMError] = ConfigError) -> dict[str, Any]:
        """``data`` if it is a JSON object of this format and version, else an ``error`` naming ``source``."""
        if not isinstance(data, dict) or data.get("format") != self.name:
            raise error(f'{source}: expected {self.what} ("format": "{self.name}")')
        found = data.get("format_version")
        if found != self.version:
            expected = f"expected {self.version}"
            raise error(f"{source}: format_version {found!r} is not supported ({expected}); {self.remedy}")
        return data


def json_digest(data: Mapping[str, Any], *, without: str = "sha256") -> str:
    """Hex sha256 of ``data``'s canonical JSON (sorted keys), leaving out the key ``without``.

    How a JSON file carries its own checksum: the digest of everything but itself.
    """
    body = {key: value for key, value in data.items() if key != without}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB blocks (weights and shards can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a fsynced temp file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented UTF-8 JSON atomically."""
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
