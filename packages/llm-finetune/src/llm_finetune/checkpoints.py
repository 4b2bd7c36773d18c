"""Base models to finetune and finetuned checkpoints to load back.

A finetuned checkpoint is an ordinary model checkpoint (``config.json`` +
``model.safetensors``) whose config holds one more key, ``"finetune"``::

    {"task": "classification" | "instruct" | "dpo",
     "labels": ["ham", "spam"], "num_classes": 2,     # classification
     "template": "alpaca",                            # instruct / dpo
     "trainable": "last-block", "lora": {rank, alpha, dropout, targets} | null, ...}

:func:`load_finetuned` builds the base architecture from ``config.json``, applies the
same modifications (a new head, LoRA layers) and loads the weights with
``llm_model.load_weights_into``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_core import get_registry
from llm_core.config_io import check_keys
from llm_core.errors import CheckpointError, ConfigError
from llm_model import model_config

__all__ = [
    "FINETUNE_KEY",
    "FINETUNE_KEYS",
    "TRAINABLE",
    "BaseModel",
    "build_from_config",
    "load_base",
    "load_finetuned",
    "set_trainable",
    "trainable_parameters",
]

FINETUNE_KEY = "finetune"
#: Keys a checkpoint's ``"finetune"`` entry may have (``task`` always); any other is a CheckpointError.
FINETUNE_KEYS = (
    "task",
    "labels",
    "num_classes",
    "template",
    "trainable",
    "lora",
    "max_length",
    "pad_token_id",
    "base",
    "mask_prompt",
    "beta",
    "merged_from",
    "modules_to_save",
)
#: Choices of ``--trainable``.
TRAINABLE = ("head", "last-block", "all", "lora")
DEFAULT_TOKENIZER = "gpt2"


@dataclass
class BaseModel:
    """A model to finetune, with the tokenizer it was trained with."""

    model: nn.Module
    tokenizer_name: str
    tokenizer: Any
    source: str
    #: The base's own ``"finetune"`` config (empty for a pretrained model or a preset).
    finetune: dict[str, Any] = dataclasses.field(default_factory=dict)


def build_from_config(data: dict[str, Any], *, where: str = "config.json") -> nn.Module:
    """A freshly initialised base architecture from a checkpoint config (other keys ignored)."""
    from llm_model import build_model

    entry = get_registry("architectures")[data["architecture"]]
    fields = {f.name for f in dataclasses.fields(entry.obj.config_class)}
    hyper = {k: v for k, v in data.items() if k in fields}
    try:
        return build_model(data["architecture"], **hyper)
    except ConfigError as exc:
        raise CheckpointError(f"{where}: {exc}") from None


def _apply_finetune(model: nn.Module, info: dict[str, Any], *, where: str) -> nn.Module:
    """Re-create a finetuned model's structure (head, LoRA layers) before loading its weights."""
    from llm_finetune.classifier import to_classifier
    from llm_finetune.lora import LoRAConfig, apply_lora

    if info.get("num_classes"):
        to_classifier(model, int(info["num_classes"]))
    if info.get("lora"):
        apply_lora(model, LoRAConfig.from_saved(info["lora"], source=f"{where}: lora"), freeze=False)
    return model


def _check_finetune_info(info: dict[str, Any], *, where: str) -> None:
    """The keys and the value types :func:`_apply_finetune` relies on (a CheckpointError naming the key)."""
    if not info:
        return  # not finetuned
    check_keys(info, required=("task",), optional=FINETUNE_KEYS, source=where, error=CheckpointError)
    classes = info.get("num_classes")
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 1):
        raise CheckpointError(f"{where}: expected 'num_classes' to be an integer >= 1, found {classes!r}")


def load_finetuned(directory: str | os.PathLike[str], *, map_location: str = "cpu") -> nn.Module:
    """Load any checkpoint, finetuned or not: ``model.finetune`` holds its ``"finetune"`` config.

    The model comes back in eval mode; ``model.checkpoint_config`` is the whole config.json.
    A checkpoint that was not finetuned is loaded by :func:`llm_model.load_pretrained`
    (memory check, memory-mapped weights, ``load_options``' dtype); a finetuned one is
    memory-checked too and converted to ``load_options``' dtype after loading.
    """
    from llm_model import load_pretrained, load_weights_into, read_checkpoint_config, verify_checksums
    from llm_model.gpt import architecture_config
    from llm_model.loading import check_memory, current_options, parameter_bytes

    directory = Path(directory)
    data = read_checkpoint_config(directory)
    info = data.get(FINETUNE_KEY) or {}
    where = f"{directory / 'config.json'}: {FINETUNE_KEY}"
    if not isinstance(info, dict):
        raise CheckpointError(f"{where}: expected an object, found {info!r}")
    _check_finetune_info(info, where=where)
    if not info:  # a plain checkpoint (pretrained, imported): memory-checked, memory-mapped, --dtype
        model = load_pretrained(directory, map_location=map_location)
        model.finetune = {}
        return model
    dtype = getattr(torch, str(data.get("dtype", "float32")), torch.float32)
    wanted, force = current_options()  # --dtype / --force of the command, if any
    config_path = directory / "config.json"
    try:
        model_class, model_config = architecture_config(
            data["architecture"], **{k: v for k, v in data.items() if k in _config_fields(data)}
        )
    except ConfigError as exc:
        raise CheckpointError(f"{config_path}: {exc}") from None
    label = str(wanted or dtype).removeprefix("torch.")
    check_memory(
        parameter_bytes(model_class, model_config, wanted or dtype),
        what=f"{config_path}: the model's parameters ({label})",
        device=map_location,
        force=force,
    )
    verify_checksums(directory, data)  # as load_pretrained does (off under checksum_verification(False))
    model = build_from_config(data, where=str(directory / "config.json"))
    model.to(dtype=dtype)
    _apply_finetune(model, info, where=where)
    load_weights_into(model, directory)
    if wanted is not None:
        model.to(dtype=wanted)
    model.finetune = dict(info)  # type: ignore[assignment]
    model.checkpoint_config = dict(data)  # type: ignore[assignment]
    return model.to(map_location).eval()


def _config_fields(data: dict[str, Any]) -> set[str]:
    entry = get_registry("architectures")[data["architecture"]]
    return {f.name for f in dataclasses.fields(entry.obj.config_class)}


def load_base(
    base: str | os.PathLike[str],
    *,
    tokenizer: str | None = None,
    arch: str = "gpt2",
    seed: int = 123,
    model_overrides: dict[str, Any] | None = None,
    allow_classifier: bool = False,
) -> BaseModel:
    """The model to finetune: a checkpoint directory, or a preset name (a fresh random model).

    A LoRA checkpoint is merged into plain linear layers. ``tokenizer`` must agree with
    the one the checkpoint records (else :class:`CheckpointError`); a model whose
    vocabulary is smaller than the tokenizer's is refused too.
    """
    from llm_data import get_tokenizer
    from llm_finetune.lora import remove_lora
    from llm_model import build_model, read_checkpoint_config

    path = Path(base)
    if path.is_dir():
        data = read_checkpoint_config(path)
        recorded = data.get("tokenizer")
        if tokenizer is not None and recorded is not None and str(tokenizer) != str(recorded):
            raise CheckpointError(
                f"{path}: the base checkpoint was trained with tokenizer {recorded!r}, found --tokenizer "
                f"{tokenizer!r}; finetune with the base's tokenizer (drop --tokenizer) or pick another base"
            )
        name = str(tokenizer or recorded or DEFAULT_TOKENIZER)
        model = load_finetuned(path)
        info = dict(getattr(model, "finetune", {}))
        if info.get("num_classes") and not allow_classifier:
            raise CheckpointError(
                f"{path}: expected a language model, found a classifier (labels {info.get('labels')}); "
                "use the checkpoint it was finetuned from"
            )
        remove_lora(model)
        model.train()
        source = str(path)
    else:
        info = {}
        presets = get_registry("architectures")[arch].meta.get("presets") or {}
        if str(base) not in presets:
            raise CheckpointError(
                f"--base {base}: expected a checkpoint directory or a preset name of '{arch}' "
                f"({', '.join(presets)}), found neither"
            )
        name = str(tokenizer or DEFAULT_TOKENIZER)
        torch.manual_seed(seed)
        vocab = get_tokenizer(name).n_vocab
        model = build_model(arch, preset=str(base), **{"vocab_size": vocab, **(model_overrides or {})})
        source = f"preset {base}"
    tok = get_tokenizer(name)
    vocab = model_config(model).vocab_size
    if vocab < tok.n_vocab:
        raise CheckpointError(
            f"{source}: the model has vocab_size={vocab} but tokenizer {name!r} has {tok.n_vocab} tokens; "
            "the base was trained with a different tokenizer: pass the base's --tokenizer"
        )
    return BaseModel(model=model, tokenizer_name=name, tokenizer=tok, source=source, finetune=info)


def set_trainable(model: nn.Module, trainable: str, *, lora: Any = None, head: str = "out_head") -> list[str]:
    """Freeze ``model`` for ``trainable`` and return the names of the trainable parameters.

    ``head``: only the output head; ``last-block``: the last transformer block, the
    final norm and the head (the book's choice); ``all``: everything; ``lora``: LoRA
    adapters (``lora``, a :class:`~llm_finetune.lora.LoRAConfig`) plus the head when
    the head is new (a classifier).
    """
    from llm_finetune.lora import LoRAConfig, apply_lora

    if trainable not in TRAINABLE:
        raise ConfigError(f"--trainable {trainable!r}: expected one of {', '.join(TRAINABLE)}")
    if trainable == "all":
        for param in model.parameters():
            param.requires_grad_(True)
    elif trainable == "lora":
        apply_lora(model, lora or LoRAConfig())
        if getattr(model, "num_classes", None):
            for param in model.get_submodule(head).parameters():
                param.requires_grad_(True)
    else:
        for param in model.parameters():
            param.requires_grad_(False)
        modules = [head] if trainable == "head" else ["trf_blocks", "final_norm", head]
        for name in modules:
            module = model.get_submodule(name)
            if name == "trf_blocks":
                module = module[-1]  # type: ignore[index]
            for param in module.parameters():
                param.requires_grad_(True)
    return trainable_parameters(model)


def trainable_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters with ``requires_grad``."""
    return [name for name, p in model.named_parameters() if p.requires_grad]
