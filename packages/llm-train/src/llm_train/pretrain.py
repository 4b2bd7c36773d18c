"""Assemble a pretraining run from a :class:`TrainConfig`: data, model, tokenizer, Trainer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from llm_core.errors import ConfigError, DataError
from llm_data import get_tokenizer, load_prepared, read_text_file, tokens_from_text_file
from llm_data.tokenizers import resolve_tokenizer
from llm_model import build_model
from llm_train.config import TrainConfig
from llm_train.distributed import init_distributed
from llm_train.trainer import Trainer, TrainResult, check_run_dir

__all__ = ["build_trainer", "load_initial_model", "load_training_tokens", "pretrain"]


def load_training_tokens(
    data: str | Path, *, tokenizer: str, val_fraction: float, split: str = "tokens"
) -> tuple[Any, Any]:
    """Train and validation tokens from a prepared directory or a UTF-8 text file.

    A text file's first ``1 - val_fraction`` trains, the rest validates: of its
    tokens (``split="tokens"``), or of its characters, each part then tokenized
    (``split="characters"``, the book's chapter 5). A prepared directory has its own split.
    """
    path = Path(data)
    if path.is_dir():
        if split != "tokens":
            raise ConfigError(f"split={split!r} splits a text file; {data} is prepared, with its own split")
        train = load_prepared(path, "train")
        try:
            val = load_prepared(path, "val")
        except DataError:
            val = None
        return train, val
    if path.is_file() and split == "characters":
        text = read_text_file(path)
        cut = int((1 - val_fraction) * len(text))
        encoder = resolve_tokenizer(tokenizer)
        train = np.asarray(encoder.encode(text[:cut]), dtype=np.int64)
        val = np.asarray(encoder.encode(text[cut:]), dtype=np.int64) if val_fraction > 0 else None
        return train, val
    if path.is_file():
        tokens = np.asarray(tokens_from_text_file(path, tokenizer=tokenizer))
        cut = int(len(tokens) * (1 - val_fraction))
        return tokens[:cut], (tokens[cut:] if val_fraction > 0 else None)
    raise DataError(
        f"--data {data}: not found; expected a directory made by `scratchlm prepare` or a UTF-8 .txt file"
    )


#: Bytes of training state per fp32 parameter byte: the weights, their gradients and AdamW's two moments.
TRAINING_STATE_FACTOR = 4
#: fp32 values a transformer layer keeps for the backward pass, per token and per unit of width:
#: 17 (34 bytes in 16-bit; Korthikanti et al. 2022, "Reducing Activation Recomputation", without
#: the attention-score term that fused attention does not store). A floor, not a ceiling.
ACTIVATION_VALUES_PER_WIDTH = 17


def activation_bytes(model_config: Any, batch_size: int, context_length: int | None) -> int:
    """Bytes of the activations one training batch keeps for backward, estimated from the config.

    ``batch_size x context_length x n_layers x 17 x emb_dim`` fp32 values (see
    :data:`ACTIVATION_VALUES_PER_WIDTH`); 0 for an architecture without those fields.
    """
    width = getattr(model_config, "emb_dim", None)
    layers = getattr(model_config, "n_layers", None)
    length = context_length or getattr(model_config, "context_length", None)
    if not (isinstance(width, int) and isinstance(layers, int) and isinstance(length, int)):
        return 0
    return 4 * batch_size * length * layers * ACTIVATION_VALUES_PER_WIDTH * width


def check_training_memory(config: TrainConfig, model_options: dict[str, Any], *, force: bool = False) -> None:
    """Refuse (one line) a run whose weights, gradients, AdamW state and one batch's activations
    exceed the memory available.

    Estimated from the config (the parameters on the ``meta`` device) before anything is
    built or read; ``force`` (``--force``) skips the check.
    """
    from llm_model.gpt import architecture_config
    from llm_model.loading import check_memory, parameter_bytes

    model_class, model_config = architecture_config(config.arch, config.preset, **model_options)
    state = TRAINING_STATE_FACTOR * parameter_bytes(model_class, model_config, torch.float32)
    if config.parallel == "fsdp":
        state = 0  # sharded across the processes: one process holds a part only
    activations = activation_bytes(model_config, config.batch_size, config.context_length)
    what = f"{config.arch} ({config.preset or 'config'}): the weights, gradients and AdamW state (fp32)"
    if activations:
        what += f" and the activations of a batch of {config.batch_size} sequences"
    advice = (
        "use a smaller model, --batch-size or --context-length (--set grad_accum=N keeps the global batch)"
    )
    check_memory(state + activations, what=what, device=config.device, force=force, advice=advice)


def _is_hf_layout(directory: Path) -> bool:
    """Whether ``directory`` holds weights in the Hugging Face layout (its config has ``model_type``)."""
    try:
        data = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "model_type" in data and "format_version" not in data


def load_initial_model(init: str, *, device: str = "cpu", force: bool = False) -> tuple[nn.Module, str]:
    """The model ``--init MODEL`` continues (fp32, trainable) and the name of its own tokenizer.

    ``init`` is a scratchlm checkpoint directory (``pretrain``'s ``final/``, an
    ``import-hf`` or ``finetune`` output) or anything ``import-hf`` reads (a Hugging
    Face directory, or a hub id with the ``hub`` extra). The tokenizer is the one the
    checkpoint records (a checkpoint's own ``tokenizer.json`` by its full path),
    else ``gpt2`` for GPT-2's BPE.
    """
    from llm_model import load_pretrained
    from llm_model.hf import import_hf, own_tokenizer, resolve_source

    source = Path(init).expanduser()
    if source.is_dir() and not _is_hf_layout(source):
        model = load_pretrained(source, map_location=device, dtype="fp32", force=force)
        recorded = getattr(model, "checkpoint_config", {}).get("tokenizer")
        tokenizer = recorded if isinstance(recorded, str) else "gpt2"
    else:
        directory = resolve_source(init)
        model = import_hf(directory, dtype=torch.float32, force=force).to(device)
        name, _ = own_tokenizer(directory, model)
        if name is None:
            raise ConfigError(
                f"--init {init}: no tokenizer.json beside the weights; import it with "
                "`scratchlm import-hf SRC --out DIR --tokenizer NAME` and pass --init DIR"
            )
        tokenizer = name if name == "gpt2" else str((directory / name).absolute())
    return model, tokenizer


def _init_config(config: TrainConfig, model: nn.Module, tokenizer: str) -> TrainConfig:
    """``config`` with the architecture and tokenizer of the ``--init`` model (refusing conflicts)."""
    if config.model:
        raise ConfigError(
            f"--init {config.init}: the model's config comes from its checkpoint; "
            f"remove the model overrides {sorted(config.model)}"
        )
    architecture = getattr(model, "architecture", None) or config.arch
    return dataclasses.replace(config, arch=architecture, preset=None, tokenizer=tokenizer)


def build_trainer(config: TrainConfig, out_dir: str | Path, *, force: bool = False) -> Trainer:
    """Everything a run needs, wired together (model initialised from ``config.seed``).

    The model's training memory is checked first (:func:`check_training_memory`; ``force`` skips it).
    """
    if not config.data:
        raise ConfigError("no training data: pass --data PREPARED_DIR_OR_TEXT (or set data in the config)")
    if config.init is not None:
        return _build_continued(config, out_dir, force=force)
    tokenizer = get_tokenizer(config.tokenizer)
    model_options = {"vocab_size": tokenizer.n_vocab, **config.model}  # the tokenizer sizes the vocabulary
    check_training_memory(config, model_options, force=force)
    dist = init_distributed(config.parallel)
    train, val = load_training_tokens(
        config.data, tokenizer=config.tokenizer, val_fraction=config.val_fraction, split=config.split
    )
    torch.manual_seed(config.seed)
    model = build_model(config.arch, preset=config.preset, **model_options)
    if model.config.vocab_size < tokenizer.n_vocab:
        raise ConfigError(
            f"the model's vocab_size={model.config.vocab_size} is smaller than tokenizer "
            f"'{config.tokenizer}' needs ({tokenizer.n_vocab})"
        )
    return Trainer(
        model, config, train_tokens=train, val_tokens=val, run_dir=out_dir, tokenizer=tokenizer, dist=dist
    )


def _build_continued(config: TrainConfig, out_dir: str | Path, *, force: bool) -> Trainer:
    """:func:`build_trainer` for ``--init``: the model and tokenizer come from the checkpoint."""
    from llm_model.loading import check_memory

    assert config.init is not None
    model, tokenizer_name = load_initial_model(config.init, device=config.device, force=force)
    config = _init_config(config, model, tokenizer_name)
    tokenizer = get_tokenizer(tokenizer_name)
    state = TRAINING_STATE_FACTOR * sum(p.numel() * 4 for p in model.parameters())
    activations = activation_bytes(model.config, config.batch_size, config.context_length)
    what = f"--init {config.init}: the gradients and AdamW state (fp32) and a batch's activations"
    check_memory(state + activations, what=what, device=config.device, force=force)
    dist = init_distributed(config.parallel)
    train, val = load_training_tokens(
        config.data, tokenizer=tokenizer_name, val_fraction=config.val_fraction, split=config.split
    )
    torch.manual_seed(config.seed)  # dropout and data order
    return Trainer(
        model, config, train_tokens=train, val_tokens=val, run_dir=out_dir, tokenizer=tokenizer, dist=dist
    )


def pretrain(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    force: bool = False,
) -> TrainResult:
    """Run (or resume) pretraining; final weights land in ``out_dir/final``.

    ``out_dir`` is checked before the data is read (:func:`~llm_train.trainer.check_run_dir`):
    it must be new, empty or a pretraining run; ``overwrite`` starts a fresh run in any directory.
    A model too large for the memory is refused before anything is built (``force`` to try anyway).
    """
    check_run_dir(out_dir, command="pretrain", resume=resume, overwrite=overwrite)
    return build_trainer(config, out_dir, force=force).fit(resume=resume, overwrite=overwrite)
