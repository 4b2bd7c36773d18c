"""Model checkpoints on disk: a directory with ``config.json`` and ``model.safetensors``.

``config.json`` holds ``"architecture"`` (a registered name), every
hyperparameter of the model's config dataclass, ``"format_version"``,
``"dtype"`` and optionally ``"tokenizer"`` (a registered tokenizer name),
``"finetune"`` (llm-finetune's record of what was finetuned) and ``"metadata"``
(a free-form object for the caller's own notes). Any other key is refused, on
save and on load, naming the key (a misspelled key never passes as valid).
Weights are safetensors only (never pickles). Tied tensors (the output head
sharing the token embedding) are stored once and re-tied by the model's
constructor on load.

:func:`save_pretrained` also records ``"sha256"``: ``{"config.json": digest of
the config's canonical JSON (without this key), "<file>": digest of each other
file it wrote (model.safetensors …)}``. Loading verifies every recorded digest
(:class:`~llm_core.errors.CheckpointError` naming the file on a mismatch); pass
``verify=False`` (``--no-verify`` on the commands), or set
``SCRATCHLM_NO_VERIFY=1``, to skip reading huge files twice. Checkpoints
without ``"sha256"`` (older ones, training checkpoints, whose
``trainer_state.json`` holds their digests) load unverified.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_core.config_io import check_keys, config_from_dict, config_to_dict, json_digest, sha256_file
from llm_core.errors import CheckpointError, ConfigError, PluginError
from llm_model.loading import check_tensors, tied_parameter_aliases

__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "METADATA_KEYS",
    "OWN_TOKENIZER_FILES",
    "WEIGHTS_FILE",
    "architecture_of",
    "checksum_verification",
    "load_pretrained",
    "load_weights_into",
    "read_checkpoint_config",
    "save_pretrained",
    "verify_checksums",
    "write_model_files",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: A checkpoint's own Hugging Face tokenizer: ``tokenizer.json`` and the files read with it.
OWN_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "chat_template.jinja",
)
#: Keys of config.json a caller may add through ``extra_config`` (anything else is refused).
METADATA_KEYS = ("tokenizer", "finetune", "metadata")
#: Key of config.json holding the sha256 of the config and of each file save_pretrained wrote.
CHECKSUM_KEY = "sha256"
#: Keys of config.json that are not hyperparameters.
RESERVED_KEYS = ("architecture", "format_version", "dtype", CHECKSUM_KEY, *METADATA_KEYS)
#: Environment variable that turns checksum verification off by default (``1``).
NO_VERIFY_ENV = "SCRATCHLM_NO_VERIFY"
_verify_default: list[bool] = []


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
    unknown = sorted(set(extra_config or {}) - set(METADATA_KEYS))
    if unknown:
        raise ConfigError(
            f"extra_config: unknown key(s) {', '.join(unknown)}; expected {', '.join(METADATA_KEYS)} "
            "(put your own notes in 'metadata', a JSON object)"
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
    from llm_model.safetensors_io import write_safetensors

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: expected an existing directory to write the model into")
    config = checkpoint_config(model, extra_config)
    if state_dict is None:
        tensors, _ = unique_tensors(model)
    else:
        tied = tied_parameter_aliases(model)
        tensors = {name: t for name, t in state_dict.items() if name not in tied}
    # one tensor at a time, so a memory-mapped model is written without a second copy of its weights
    write_safetensors(directory / WEIGHTS_FILE, tensors, metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(
        json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _config_digest(data: Mapping[str, Any]) -> str:
    """sha256 of the config's canonical JSON, without its own ``sha256`` key."""
    return json_digest(data, without=CHECKSUM_KEY)


def _record_checksums(directory: Path) -> None:
    """Add ``"sha256"`` to ``directory/config.json``: the config's own digest and every other file's."""
    path = directory / CONFIG_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    digests = {CONFIG_FILE: _config_digest(data)}
    for file in sorted(directory.iterdir()):
        if file.is_file() and file.name != CONFIG_FILE:
            digests[file.name] = sha256_file(file)
    data[CHECKSUM_KEY] = digests
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_pretrained(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    extra_config: Mapping[str, Any] | None = None,
    tokenizer: str | None = None,
    files: Mapping[str, str | os.PathLike[str]] | None = None,
) -> Path:
    """Save ``model`` as a checkpoint directory, atomically; return its path.

    Files are written to a temporary sibling directory, fsynced, then renamed
    into place. An existing checkpoint at ``directory`` is first renamed aside
    and deleted only once the new one is in place, so at every moment either
    the old or the new complete checkpoint exists. ``tokenizer`` records a
    registered tokenizer name (the default of ``scratchlm generate``), or the
    name of a file of the checkpoint. ``files`` (``{name in the checkpoint:
    source path}``) are copied in, e.g. a model's own ``tokenizer.json``; a
    ``tokenizer`` that is the path of another checkpoint's ``tokenizer.json`` is
    copied with its companion files (:data:`OWN_TOKENIZER_FILES`) and recorded as
    ``"tokenizer.json"``, so the new checkpoint keeps its tokenizer.
    ``config.json`` records the sha256 of itself and of every file written,
    verified by :func:`load_pretrained`.
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
    copies = dict(files or {})
    if tokenizer is not None and not copies and Path(tokenizer).name == OWN_TOKENIZER_FILES[0]:
        source = Path(tokenizer).parent
        copies = {name: source / name for name in OWN_TOKENIZER_FILES if (source / name).is_file()}
        tokenizer = OWN_TOKENIZER_FILES[0] if copies else tokenizer
    if tokenizer is not None:
        extra["tokenizer"] = tokenizer
    clash = sorted(set(copies) & {WEIGHTS_FILE, CONFIG_FILE})
    if clash or any(Path(name).name != name for name in copies):
        raise CheckpointError(
            f"files: expected plain file names but {CONFIG_FILE}/{WEIGHTS_FILE}, found {sorted(copies)}"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        write_model_files(model, tmp, extra_config=extra)
        for name, source_path in copies.items():
            shutil.copyfile(source_path, tmp / name)
            _fsync(tmp / name)
        _record_checksums(tmp)
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


def _verify_enabled(verify: bool | None) -> bool:
    if verify is not None:
        return verify
    if _verify_default:
        return _verify_default[-1]
    return os.environ.get(NO_VERIFY_ENV, "").strip().lower() not in ("1", "true", "yes")


@contextlib.contextmanager
def checksum_verification(enabled: bool) -> Iterator[None]:
    """Inside the block, loaders called without ``verify=`` check checksums only when ``enabled``.

    What the commands' ``--no-verify`` does: ``with checksum_verification(not no_verify): ...``.
    """
    _verify_default.append(enabled)
    try:
        yield
    finally:
        _verify_default.pop()


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _check_config_keys(path: Path, data: Mapping[str, Any]) -> None:
    """Unknown, misspelled or missing keys of config.json are a CheckpointError naming them."""
    from llm_core import get_registry

    try:
        entry = get_registry("architectures")[data["architecture"]]
    except PluginError as exc:
        raise PluginError(f"{path}: {exc}") from None
    config_class = getattr(entry.obj, "config_class", None)
    if not (isinstance(config_class, type) and dataclasses.is_dataclass(config_class)):
        return  # the architecture's own constructor reports it
    fields = dataclasses.fields(config_class)
    no_default = {
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    check_keys(
        data,
        required={"architecture", "format_version", "dtype"} | no_default,
        optional={f.name for f in fields} | set(RESERVED_KEYS),
        source=str(path),
        error=CheckpointError,
    )
    recorded = data.get(CHECKSUM_KEY)
    if CHECKSUM_KEY in data and not (
        isinstance(recorded, dict)
        and _is_digest(recorded.get(CONFIG_FILE))
        and all(isinstance(k, str) and _is_digest(v) for k, v in recorded.items())
    ):
        raise CheckpointError(
            f"{path}: expected '{CHECKSUM_KEY}' to map file names to sha256 hex digests "
            f"({CONFIG_FILE} included), found {recorded!r}; re-save the checkpoint"
        )


def read_checkpoint_config(
    directory: str | os.PathLike[str], *, verify: bool | None = None
) -> dict[str, Any]:
    """Read and check ``config.json`` of a checkpoint directory (architecture, format version, keys).

    A key the architecture's config does not have, or a missing required key, is a
    :class:`CheckpointError` naming it. With ``verify`` (default: on, unless inside
    ``checksum_verification(False)`` or under ``SCRATCHLM_NO_VERIFY=1``) the config's
    recorded sha256, when it has one, must match its contents.
    """
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
    _check_config_keys(path, data)
    checked = CHECKSUM_KEY in data and _verify_enabled(verify)
    if checked and data[CHECKSUM_KEY][CONFIG_FILE] != _config_digest(data):
        raise CheckpointError(
            f"{path}: checksum mismatch: its contents changed since the checkpoint was saved "
            "(corrupt, or edited by hand); re-save or re-download the checkpoint, "
            "or pass --no-verify to load it as it is"
        )
    return _with_own_tokenizer(Path(directory), data)


def _with_own_tokenizer(directory: Path, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with a ``"tokenizer"`` that names a file of the checkpoint turned into its full path."""
    recorded = data.get("tokenizer")
    if isinstance(recorded, str) and Path(recorded).name == recorded and (directory / recorded).is_file():
        return {**data, "tokenizer": str((directory / recorded).absolute())}
    return data


def verify_checksums(
    directory: str | os.PathLike[str], data: Mapping[str, Any] | None = None, *, verify: bool | None = None
) -> None:
    """Check every file whose sha256 ``config.json`` records (nothing when it records none).

    A missing or modified file is a :class:`CheckpointError` naming it. ``data`` is the
    already-read config; ``verify`` as for :func:`read_checkpoint_config`.
    """
    if not _verify_enabled(verify):
        return
    directory = Path(directory)
    if data is None:
        data = read_checkpoint_config(directory, verify=verify)
    for name, want in sorted((data.get(CHECKSUM_KEY) or {}).items()):
        if name == CONFIG_FILE:
            continue
        path = directory / name
        if name in ("", ".", "..") or "/" in name or "\\" in name:
            raise CheckpointError(
                f"{directory / CONFIG_FILE}: '{CHECKSUM_KEY}' names {name!r}, not a file name"
            )
        if not path.is_file():
            raise CheckpointError(
                f"{path}: expected the file whose sha256 {CONFIG_FILE} records, found no such file; "
                "re-save or re-download the checkpoint"
            )
        found = sha256_file(path)
        if found != want:
            raise CheckpointError(
                f"{path}: checksum mismatch (sha256 {found[:12]}…, {CONFIG_FILE} records {want[:12]}…): "
                "the file is corrupt or was modified; re-save or re-download the checkpoint, "
                "or pass --no-verify to load it anyway"
            )


def _config_from_data(directory: Path, data: Mapping[str, Any]) -> tuple[Any, Any]:
    """``(architecture class, its config)`` described by a checkpoint's config.json."""
    from llm_core import get_registry

    try:
        entry = get_registry("architectures")[data["architecture"]]
    except PluginError as exc:
        raise PluginError(f"{directory / CONFIG_FILE}: {exc}") from None
    config_class = entry.obj.config_class
    fields = {f.name for f in dataclasses.fields(config_class)}
    hyper = {k: v for k, v in data.items() if k in fields}
    return entry.obj, config_from_dict(config_class, hyper, source=str(directory / CONFIG_FILE))


def _build_from_config(directory: Path, data: Mapping[str, Any]) -> nn.Module:
    model_class, config = _config_from_data(directory, data)
    model = model_class(config)
    if getattr(model, "architecture", None) != data["architecture"]:
        model.architecture = data["architecture"]
    return model


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, memory-mapped, nothing copied (:mod:`llm_model.safetensors_io`)."""
    from llm_model.safetensors_io import mmap_tensors

    if not path.is_file():
        raise CheckpointError(f"{path}: expected the model weights, found no such file")
    return mmap_tensors(path)


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


def _dtype_label(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def load_pretrained(
    directory: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    verify: bool | None = None,
    dtype: str | torch.dtype | None = None,
    force: bool | None = None,
) -> nn.Module:
    """Load a checkpoint directory: build the registered architecture, validate and load every tensor.

    Returns the model (in eval mode, on ``map_location``) with ``model.config``,
    ``model.architecture`` and ``model.checkpoint_config`` (the whole config.json).
    Before anything is allocated, the parameter memory the config needs is
    compared with the memory available on ``map_location`` (a
    :class:`~llm_core.errors.ConfigError` when it does not fit; ``force`` skips
    that). The recorded sha256 of the config and of every weight file are checked
    (``verify=False``, ``--no-verify``, skips that; see :func:`read_checkpoint_config`).
    The model is built on the ``meta`` device and its parameters are the
    memory-mapped tensors of ``model.safetensors`` (:mod:`llm_model.loading`), in
    the checkpoint's dtype unless ``dtype`` (``"fp32"``, ``"bf16"``, ``"auto"`` or
    a torch dtype) asks for another. ``dtype``/``force`` left out take the values of
    an enclosing :func:`llm_model.loading.load_options` block (what ``--dtype`` and
    ``--force`` set), else the checkpoint's dtype and the memory check.
    """
    from llm_model import loading

    directory = Path(directory)
    data = read_checkpoint_config(directory, verify=verify)
    model_class, config = _config_from_data(directory, data)
    dtype_name = data.get("dtype", "float32")
    stored = getattr(torch, str(dtype_name), None)
    if not isinstance(stored, torch.dtype):
        raise CheckpointError(f"{directory / CONFIG_FILE}: expected a torch dtype name, found {dtype_name!r}")
    wanted, force = loading.current_options(dtype, force)
    loading.check_memory(
        loading.parameter_bytes(model_class, config, wanted or stored),
        what=f"{directory / CONFIG_FILE}: the model's parameters ({_dtype_label(wanted or stored)})",
        device=map_location,
        force=force,
    )
    verify_checksums(directory, data, verify=verify)
    weights_path = directory / WEIGHTS_FILE
    found = _read_weights(weights_path)
    model = loading.build_on_meta(lambda: model_class(config))
    aliases = loading.tied_parameter_aliases(model)
    check_tensors(loading.expected_like(model, stored, skip=aliases), found, where=str(weights_path))
    model = loading.fill(
        model, found, dtype=wanted, where=str(weights_path), factory=lambda: model_class(config)
    )
    if getattr(model, "architecture", None) != data["architecture"]:
        model.architecture = data["architecture"]
    model.checkpoint_config = dict(data)  # type: ignore[assignment]
    return model.to(map_location).eval()
