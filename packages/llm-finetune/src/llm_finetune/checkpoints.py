"""Base models to finetune and finetuned checkpoints to load back.

A finetuned checkpoint is an ordinary model checkpoint (``config.json`` +
``model.safetensors``) whose config holds one more key, ``"finetune"``
(:data:`~llm_finetune.tasks.FINETUNE_KEY`)::

    {"task": "classification" | "instruct" | "dpo",
     "labels": ["ham", "spam"], "num_classes": 2,     # classification
     "template": "alpaca",                            # instruct / dpo
     "trainable": "last-block", "lora": {rank, alpha, dropout, targets} | null, ...}

:func:`load_finetuned` builds the base architecture from ``config.json``, applies the
same modifications (a new head, LoRA layers) and loads the weights with
``llm_model.load_weights_into``; it returns a :class:`FinetunedModel`, which carries
that entry beside the model (nothing is stored on the model itself).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_core import get_registry
from llm_core.config_io import check_keys
from llm_core.errors import CheckpointError, ConfigError
from llm_finetune.config import TRAINABLE, LoRAConfig
from llm_finetune.heads import HEAD, to_classifier
from llm_finetune.lora import apply_lora, remove_lora
from llm_finetune.tasks import FINETUNE_KEY
from llm_model import model_config

__all__ = [
    "FINETUNE_KEY",
    "FINETUNE_KEYS",
    "TRAINABLE",
    "BaseModel",
    "FinetunedModel",
    "apply_finetune",
    "build_from_config",
    "load_base",
    "load_finetuned",
    "set_trainable",
    "trainable_parameters",
]

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
DEFAULT_TOKENIZER = "gpt2"


@dataclass
class BaseModel:
    """A model to finetune, with the tokenizer it was trained with."""

    model: nn.Module
    tokenizer_name: str
    tokenizer: Any
    source: str
    #: The base's own ``"finetune"`` entry (empty for a pretrained model or a preset).
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass
class FinetunedModel:
    """A loaded checkpoint, finetuned or not, with what its ``config.json`` says about it."""

    model: nn.Module
    #: The whole ``config.json``.
    config: dict[str, Any]
    #: Its ``"finetune"`` entry: task, labels, template, LoRA settings … (empty when not finetuned).
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def tokenizer_name(self) -> str:
        """The tokenizer the checkpoint records (``gpt2`` when it records none)."""
        return str(self.config.get("tokenizer") or DEFAULT_TOKENIZER)

    @property
    def labels(self) -> list[str]:
        """A classifier's label names ([] for a language model)."""
        return list(self.info.get("labels") or []) if self.info.get("num_classes") else []


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


def apply_finetune(model: nn.Module, info: dict[str, Any], *, where: str) -> nn.Module:
    """Re-create a finetuned model's structure (a classifier head, LoRA layers) from its ``info``.

    ``where`` names the source in errors. Returns ``model`` (changed in place).
    """
    if info.get("num_classes"):
        to_classifier(model, int(info["num_classes"]))
    if info.get("lora"):
        apply_lora(model, LoRAConfig.from_saved(info["lora"], source=f"{where}: lora"), freeze=False)
    return model


def _check_finetune_info(info: dict[str, Any], *, where: str) -> None:
    """The keys and the value types :func:`apply_finetune` relies on (a CheckpointError naming the key)."""
    if not info:
        return  # not finetuned
    check_keys(info, required=("task",), optional=FINETUNE_KEYS, source=where, error=CheckpointError)
    classes = info.get("num_classes")
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 1):
        raise CheckpointError(f"{where}: expected 'num_classes' to be an integer >= 1, found {classes!r}")


def load_finetuned(directory: str | os.PathLike[str], *, map_location: str = "cpu") -> FinetunedModel:
    """Load any checkpoint, finetuned or not, with its config and its ``"finetune"`` entry.

    The model comes back in eval mode.
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
        return FinetunedModel(load_pretrained(directory, map_location=map_location), dict(data))
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
    apply_finetune(model, info, where=where)
    load_weights_into(model, directory)
    if wanted is not None:
        model.to(dtype=wanted)
    return FinetunedModel(model.to(map_location).eval(), dict(data), dict(info))


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
        loaded = load_finetuned(path)
        model, info = loaded.model, loaded.info
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
                f"MODEL {base}: expected a checkpoint directory or a preset name of '{arch}' "
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
    return BaseModel(model=model, tokenizer_name=name, tokenizer=tok, source=source, info=info)


def set_trainable(
    model: nn.Module,
    trainable: str,
    *,
    lora: LoRAConfig | None = None,
    modules_to_save: Sequence[str] = (),
    head: str = HEAD,
) -> list[str]:
    """Freeze ``model`` for ``trainable`` and return the names of the trainable parameters.

    ``head``: only the output head; ``last-block``: the last transformer block, the
    final norm and the head (the book's choice); ``all``: everything; ``lora``: LoRA
    adapters (``lora``, a :class:`~llm_finetune.lora.LoRAConfig`) plus the modules in
    ``modules_to_save`` (a classifier's new head), which train in full.
    """
    if trainable not in TRAINABLE:
        raise ConfigError(f"--trainable {trainable!r}: expected one of {', '.join(TRAINABLE)}")
    if trainable == "all":
        for param in model.parameters():
            param.requires_grad_(True)
    elif trainable == "lora":
        apply_lora(model, lora or LoRAConfig())
        for name in modules_to_save:
            for param in model.get_submodule(name).parameters():
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
