"""LoRA adapter files: save the adapters alone, load them onto a base, merge a run into plain weights.

An adapter file (``adapters.safetensors``) holds the adapters' ``A``/``B`` tensors,
the full weights of ``modules_to_save`` (a classifier's new head) and, in its
metadata, the :class:`~llm_finetune.lora.LoRAConfig` and the run's ``"finetune"``
entry, so :func:`load_lora_adapters` rebuilds the same model on a base. Metadata
read back with an unknown, misspelled or missing key is a
:class:`~llm_core.errors.CheckpointError` naming the key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from llm_core.config_io import check_keys
from llm_core.errors import CheckpointError, ConfigError
from llm_finetune.checkpoints import FinetunedModel, apply_finetune, load_finetuned
from llm_finetune.lora import LoRAConfig, lora_layers, lora_state_dict, remove_lora
from llm_finetune.tasks import FINETUNE_KEY

__all__ = [
    "ADAPTERS_FILE",
    "ADAPTER_EXTRA_KEYS",
    "ADAPTER_KEYS",
    "MERGED_DIR",
    "load_lora_adapters",
    "read_adapter_metadata",
    "save_lora_adapters",
    "save_merged_checkpoint",
]

ADAPTERS_FILE = "adapters.safetensors"
#: Where a LoRA run's merged plain checkpoint goes, next to ``final/``.
MERGED_DIR = "merged"
_METADATA_KEY = "scratchlm_lora"
#: Keys every adapter file's metadata has.
ADAPTER_KEYS = ("lora", "modules_to_save")
#: Keys the finetune recipes add to it (``extra`` of :func:`save_lora_adapters`).
ADAPTER_EXTRA_KEYS = (
    "task",
    "template",
    "trainable",
    "base",
    "max_length",
    "pad_token_id",
    "labels",
    "num_classes",
    "mask_prompt",
    "beta",
)


def save_merged_checkpoint(final_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Merge a LoRA run's ``final/`` checkpoint into plain weights at ``out_dir``; return its path.

    The result is an ordinary checkpoint of the base architecture (``"lora": null``
    in its finetune config), so everything that reads checkpoints — ``serve``,
    ``generate``, ``evaluate`` — loads it, with the same outputs as the LoRA model.
    """
    from llm_model import save_pretrained

    loaded = load_finetuned(final_dir)
    info = {**loaded.info, "lora": None, "merged_from": str(final_dir)}
    return save_pretrained(
        remove_lora(loaded.model),
        out_dir,
        tokenizer=loaded.config.get("tokenizer"),
        extra_config={FINETUNE_KEY: info},
    )


def save_lora_adapters(
    model: nn.Module,
    path: str | os.PathLike[str],
    config: LoRAConfig,
    *,
    modules_to_save: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the adapters (and the full weights of ``modules_to_save``, e.g. a new head) as safetensors.

    ``config`` and ``extra`` go into the file's metadata, so :func:`load_lora_adapters`
    can rebuild the same layers on a base model.
    """
    from safetensors.torch import save

    from llm_core.config_io import write_bytes_atomic

    tensors = dict(lora_state_dict(model))
    if not tensors:
        raise ConfigError("the model has no LoRA layers to save; call apply_lora first")
    state = model.state_dict()
    for module in modules_to_save:
        prefix = f"{module}."
        tensors.update({k: v for k, v in state.items() if k.startswith(prefix)})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    unknown = sorted(set(extra or {}) - set(ADAPTER_EXTRA_KEYS) - set(ADAPTER_KEYS))
    if unknown:
        raise ConfigError(
            f"extra: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(ADAPTER_EXTRA_KEYS)}"
        )
    meta = {"lora": config.to_dict(), "modules_to_save": list(modules_to_save), **(extra or {})}
    path = Path(path)
    write_bytes_atomic(path, save(tensors, metadata={_METADATA_KEY: json.dumps(meta), "format": "pt"}))
    return path


def read_adapter_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of an adapter file (``lora`` settings, ``modules_to_save``, extras)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: expected a LoRA adapter file (adapters.safetensors), found none")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(_METADATA_KEY)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(
            f"{path}: expected a safetensors adapter file, cannot read it ({exc})"
        ) from None
    if raw is None:
        raise CheckpointError(
            f"{path}: expected LoRA metadata ('{_METADATA_KEY}'), found none; "
            "was it written by save_lora_adapters?"
        )
    source = f"{path}: metadata '{_METADATA_KEY}'"
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{source}: expected JSON, cannot parse it ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{source}: expected a JSON object, found {type(meta).__name__}")
    check_keys(meta, required=ADAPTER_KEYS, optional=ADAPTER_EXTRA_KEYS, source=source, error=CheckpointError)
    modules = meta["modules_to_save"]
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise CheckpointError(
            f"{source}: expected 'modules_to_save' to be a list of names, found {modules!r}"
        )
    return meta


def load_lora_adapters(model: nn.Module, path: str | os.PathLike[str]) -> FinetunedModel:
    """Inject the adapters described in ``path`` into the base ``model`` and load their weights.

    Adapters of a classifier (metadata ``num_classes``) first give the base a new
    head with that many classes. Every tensor's name and shape is checked; problems
    are reported together. Returns the model with the adapters' ``"finetune"`` entry
    (``info``: labels, template …).
    """
    from safetensors.torch import load_file

    from llm_model.checkpoint import check_tensors

    meta = read_adapter_metadata(path)
    where = f"{path}: metadata '{_METADATA_KEY}'"
    LoRAConfig.from_saved(meta["lora"], source=f"{where}: lora")  # a bad entry names the file
    info = {k: v for k, v in meta.items() if k != "modules_to_save"}
    info.setdefault("task", "classification" if meta.get("num_classes") else "instruct")
    structure = {**info, "lora": None} if lora_layers(model) else info  # adapters already in place
    apply_finetune(model, structure, where=where)
    found = load_file(str(path), device="cpu")
    state = model.state_dict()
    expected = {k: state[k] for k in found if k in state}
    expected.update(lora_state_dict(model))
    check_tensors(expected, found, where=str(path))
    model.load_state_dict(found, strict=False)
    return FinetunedModel(model, {}, info)
