"""The validated training configuration: a TOML/JSON file plus CLI overrides."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, TypeVar

from llm_core.config_io import apply_overrides, check_keys, config_from_dict, load_config_file
from llm_core.errors import ConfigError, ScratchLMError

__all__ = [
    "OptimConfig",
    "TrainConfig",
    "load_config",
    "load_train_config",
    "read_train_config",
    "train_config_from_saved",
]

#: The resolved config a run saves beside its checkpoints.
TRAIN_CONFIG_FILE = "train_config.json"

C = TypeVar("C", bound="OptimConfig")


@dataclass
class OptimConfig:
    """How the weights are optimised, and the training loop's cadence.

    Shared by every kind of run: :class:`TrainConfig` adds pretraining's
    inputs, ``llm_finetune``'s recipes add their own. ``eval_schedule="book"``
    evaluates when the book's chapter-5 loop does: after updates 1, 6, 11, ...
    for ``eval_every=5`` (its ``global_step`` counts from 0), never before training. The registered ``adamw``
    defaults to betas (0.9, 0.95) (nanoGPT's and GPT-3's), not torch's
    (0.9, 0.999): set ``betas`` to choose; ``optimizer_options`` go to the
    optimizer's factory as keyword arguments (checked against its signature).
    """

    max_steps: Optional[int] = None
    epochs: Optional[float] = None
    batch_size: int = 8
    grad_accum: int = 1
    optimizer: str = "adamw"
    optimizer_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of its factory
    lr: float = 4e-4
    weight_decay: float = 0.1
    betas: Optional[list[float]] = None  # Adam-family betas [default: the optimizer's own]
    decay_all: bool = False
    scheduler: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    grad_clip: Optional[float] = 1.0  # max gradient norm; 0 or null: no clipping (TOML has no null)
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = False
    # recompute each transformer block's activations in the backward pass instead of keeping them
    # (torch.utils.checkpoint): less memory, about one more forward of time; the same weights
    activation_checkpointing: bool = False
    eval_every: int = 50
    eval_batches: int = 5
    # "multiples": at step 0, every eval_every-th step and the last; "book": after steps
    # 1, 1 + eval_every, 1 + 2 * eval_every, ... and the last (chapter 5's global_step % eval_freq == 0)
    eval_schedule: Literal["multiples", "book"] = "multiples"
    sample_every: int = 0
    sample_prompt: str = "Every effort moves you"
    sample_tokens: int = 30
    checkpoint_every: int = 100
    keep_last: int = 2
    log_every: int = 10
    callbacks: list[str] = field(default_factory=list)
    seed: int = 123
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        positive = ["batch_size", "grad_accum", "eval_batches", "keep_last", "log_every"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ["eval_every", "sample_every", "checkpoint_every", "warmup_steps"]:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0 (0 turns it off)")
        if self.lr <= 0:
            raise ConfigError(f"lr={self.lr} must be > 0, for example 4e-4")
        if self.max_steps is not None and self.epochs is not None:
            raise ConfigError("give either max_steps or epochs, not both")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps={self.max_steps} must be >= 1")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"epochs={self.epochs} must be > 0")
        if self.betas is not None and (len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas)):
            raise ConfigError(f"betas={self.betas} must be two numbers in [0, 1), for example [0.9, 0.95]")
        if self.grad_clip is not None and not 0 <= self.grad_clip < math.inf:
            raise ConfigError(f"grad_clip={self.grad_clip} must be >= 0 (0 or null: no clipping)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return dataclasses.asdict(self)

    def fingerprint(self) -> dict[str, Any]:
        """The settings that must match for ``--resume`` (everything that changes the weights)."""
        ignored = {"progress", "max_steps", "epochs", "checkpoint_every", "keep_last", "log_every"}
        ignored |= {"device", "parallel", "activation_checkpointing"}  # how it runs, not what it computes
        return {k: v for k, v in self.to_dict().items() if k not in ignored}

    def changes_from(self, saved: OptimConfig) -> list[str]:
        """``"key: saved -> this"`` for every fingerprint setting that differs from ``saved``'s."""
        before, after = saved.fingerprint(), self.fingerprint()
        return [f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in after if before.get(k) != after.get(k)]


@dataclass
class TrainConfig(OptimConfig):
    """Everything a pretraining run needs: :class:`OptimConfig` plus the run's inputs.

    Saved resolved as ``RUN_DIR/train_config.json``. A relative ``data`` in a config
    file is relative to that file's directory (one given by ``--data`` or ``--set``, to
    the working directory). The book's chapter-5 data pipeline is ``split="characters"``,
    ``sampling="windows"``, ``eval_data="loader"`` (``examples/configs/book-ch5.toml``).
    """

    data: str = field(default="", metadata={"path": True})  # relative to the config file that names it
    init: Optional[str] = None  # continue from these weights (a checkpoint or a Hugging Face directory)
    arch: str = "gpt2"
    preset: Optional[str] = "tiny"
    model: dict[str, Any] = field(
        default_factory=dict
    )  # overrides of the preset; vocab_size defaults to the tokenizer's
    tokenizer: str = "gpt2"
    val_fraction: float = 0.1
    # how a text file is split: its tokens (the last val_fraction validate), or its characters
    # before tokenizing, as the book does (chapter 5: 4612 / 534 tokens of the-verdict.txt)
    split: Literal["tokens", "characters"] = "tokens"
    context_length: Optional[int] = None
    # "random": window starts drawn with replacement from (seed, step); "windows": every stride-th
    # window in epochs, batched like the book's DataLoader(shuffle, drop_last) (see LanguageModeling)
    sampling: Literal["random", "windows"] = "random"
    stride: Optional[int] = None  # sampling="windows": tokens between window starts [default: the context]
    shuffle: bool = True  # sampling="windows": reshuffle each epoch (from torch's global generator)
    drop_last: bool = True  # sampling="windows": drop an epoch's last incomplete batch
    # "fixed": evenly spaced windows of each split; "loader": the book's, the first eval_batches
    # batches of a fresh pass of the training loader and of the validation windows (sampling="windows")
    eval_data: Literal["fixed", "loader"] = "fixed"
    parallel: Literal["ddp", "fsdp"] = "ddp"  # under torchrun: replicate (ddp) or shard (fsdp) the model

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction={self.val_fraction} must be in [0, 1)")
        if self.context_length is not None and self.context_length < 1:
            raise ConfigError(
                f"context_length={self.context_length} must be >= 1 (or unset: the model's own context)"
            )
        if self.stride is not None and self.stride < 1:
            raise ConfigError(f"stride={self.stride} must be >= 1 (or unset: the context length)")
        if self.sampling == "random":
            ignored = [
                f"{name}={value!r}"
                for name, value in [
                    ("stride", self.stride),
                    ("shuffle", self.shuffle),
                    ("drop_last", self.drop_last),
                ]
                if value != {"stride": None, "shuffle": True, "drop_last": True}[name]
            ]
            if ignored:
                raise ConfigError(
                    f"{', '.join(ignored)}: only sampling='windows' uses it (sampling is 'random'); "
                    "set sampling='windows' or leave it out"
                )
        if self.eval_data == "loader" and self.sampling != "windows":
            raise ConfigError(
                "eval_data='loader' scores the training loader's batches: set sampling='windows'"
            )


def load_config(
    cls: type[C],
    path: str | Path | None = None,
    *,
    sets: Mapping[str, Any] | None = None,
    **options: Any,
) -> C:
    """Build ``cls`` from a TOML/JSON file (optional), then ``sets``, then named ``options``.

    ``sets`` are ``--set`` overrides (dotted keys reach into tables; a ``None``
    value takes effect: ``--set grad_clip=null`` turns clipping off). Named
    ``options`` are a command's own flags, whose ``None`` means "not given"
    and is skipped. Giving ``max_steps`` drops the file's ``epochs`` and the
    other way round. A relative path field given by the file (``data``) is
    relative to the file's directory.
    """
    data: dict[str, Any] = load_config_file(path) if path else {}
    source = str(path) if path else "config"
    if path:
        _resolve_paths(cls, data, Path(path).parent)
    given = {k: v for k, v in options.items() if v is not None}
    for layer in (dict(sets or {}), given):
        if layer.get("max_steps") is not None:
            data.pop("epochs", None)
        if layer.get("epochs") is not None:
            data.pop("max_steps", None)
        apply_overrides(data, layer)
    return config_from_dict(cls, data, source=source)


def _resolve_paths(cls: type[OptimConfig], data: dict[str, Any], base: Path) -> None:
    """Make the relative path fields of a config file (``data``) relative to ``base``, its directory."""
    for f in dataclasses.fields(cls):
        value = data.get(f.name)
        if (
            f.metadata.get("path")
            and isinstance(value, str)
            and value
            and not Path(value).expanduser().is_absolute()
        ):
            data[f.name] = os.path.normpath(base / value)


def load_train_config(
    path: str | Path | None = None, *, sets: Mapping[str, Any] | None = None, **options: Any
) -> TrainConfig:
    """:func:`load_config` for :class:`TrainConfig` (``None`` named options are ignored)."""
    return load_config(TrainConfig, path, sets=sets, **options)


def train_config_from_saved(
    data: Any,
    *,
    source: str,
    error: type[ScratchLMError] = ConfigError,
    cls: type[C] = TrainConfig,  # type: ignore[assignment]
) -> C:
    """The config (a ``cls``) a run saved (``train_config.json``, a trainer state's ``config``).

    Every key is checked: an unknown or misspelled one, a wrong type or an
    out-of-range value is one ``error`` naming ``source`` and the key. Keys the
    file lacks take their defaults (runs saved before a field existed).
    """
    if not isinstance(data, dict):
        raise error(f"{source}: expected an object, got {type(data).__name__}")
    fields = [f.name for f in dataclasses.fields(cls)]
    check_keys(data, required=(), optional=fields, source=source, error=error)
    try:
        return config_from_dict(cls, data, source=source)
    except ConfigError as exc:
        if error is ConfigError:
            raise
        raise error(str(exc)) from None


def read_train_config(run_dir: str | Path) -> TrainConfig:
    """Read back a run's ``train_config.json`` (a damaged file: one ConfigError naming it)."""
    path = Path(run_dir) / TRAIN_CONFIG_FILE
    return train_config_from_saved(load_config_file(path), source=str(path))
