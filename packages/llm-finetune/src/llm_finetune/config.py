"""The finetuning recipes' configs: :class:`~llm_train.config.OptimConfig` plus each recipe's inputs.

Every setting is a dataclass field, declared once with its default: a TOML/JSON
file (``--config``), ``--set key=value`` overrides and the commands' named options
all fill the same fields (``llm_train.config.load_config``), and the resolved config is
saved as ``RUN_DIR/train_config.json`` (``--resume`` refuses a changed one). A file
may hold everything a run needs, the base model and the output directory included::

    # instruct.toml: scratchlm finetune instruct --config instruct.toml
    model = "runs/gpt2-355m"          # the base (the command's MODEL)
    data = "instruction-data.json"
    out = "runs/instruct"             # the run directory (--out)
    trainable = "lora"
    lora = { rank = 16, alpha = 32 }
    max_steps = 200

Paths are read relative to the current directory. This module imports no torch
(the commands read their defaults from it for ``--help``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Optional

from llm_core.config_io import check_keys
from llm_core.errors import CheckpointError, ConfigError
from llm_train.config import OptimConfig

__all__ = ["TRAINABLE", "ClassifyConfig", "DPOConfig", "FinetuneConfig", "InstructConfig", "LoRAConfig"]

#: Choices of ``trainable`` (``--trainable``).
TRAINABLE = ("head", "last-block", "all", "lora")


@dataclass
class LoRAConfig:
    """Where and how big the adapters are.

    Attributes:
        rank: inner dimension ``r`` of ``A (in, r)`` and ``B (r, out)``.
        alpha: the update is scaled by ``alpha / rank``.
        dropout: dropout on the adapter's input (0 = none).
        targets: glob patterns (or ``re:`` regexes) over module names; matching
            ``nn.Linear`` layers get an adapter.
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["trf_blocks.*"])

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"lora rank={self.rank!r}: expected an integer >= 1, for example 8")
        if not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise ConfigError(f"lora alpha={self.alpha!r}: expected a number > 0, for example 16")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f"lora dropout={self.dropout!r}: expected a number in [0, 1)")
        if isinstance(self.targets, str):
            self.targets = [self.targets]
        self.targets = list(self.targets)
        if not self.targets:
            raise ConfigError("lora targets: expected at least one pattern, for example 'trf_blocks.*'")
        for pattern in self.targets:
            if pattern.startswith("re:"):
                try:
                    re.compile(pattern[3:])
                except re.error as exc:
                    raise ConfigError(
                        f"lora target {pattern!r}: invalid regular expression ({exc})"
                    ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in checkpoint configs and adapter files)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_saved(cls, data: Any, *, source: str) -> LoRAConfig:
        """The settings a file recorded (:meth:`to_dict`); a bad key or value is a CheckpointError."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: expected the LoRA settings as an object, found {data!r}")
        check_keys(
            data, required=("rank", "alpha", "dropout", "targets"), source=source, error=CheckpointError
        )
        try:
            return cls(**data)
        except ConfigError as exc:
            raise CheckpointError(f"{source}: {exc}") from None


@dataclass
class FinetuneConfig(OptimConfig):
    """What every finetuning recipe needs: the optimisation (:class:`OptimConfig`), a base, data and a run.

    ``max_steps``, when given, replaces the recipe's default ``epochs``.
    """

    model: str = ""  # the base: a checkpoint directory, or a preset name for a random model (MODEL)
    data: str = ""  # what to train on (each recipe says which names and files it reads)
    out: str = ""  # the run directory: checkpoints, metrics.jsonl, final/ (--out)
    trainable: str = "all"  # head, last-block, all or lora
    lora: LoRAConfig = field(default_factory=LoRAConfig)  # the adapters, with trainable = "lora"
    tokenizer: Optional[str] = None  # [default: the base checkpoint's, else gpt2]
    dtype: Literal["auto", "fp32", "bf16"] = "auto"  # the base's weights in memory: auto (its own)
    lr: float = 5e-5

    def __post_init__(self) -> None:
        self.model, self.data, self.out = str(self.model), str(self.data), str(self.out)
        if self.max_steps is not None and self.epochs == _default(type(self), "epochs"):
            self.epochs = None  # --max-steps replaces the recipe's default epochs
        super().__post_init__()
        for name, what in (
            ("model", "MODEL (a checkpoint directory or a preset name)"),
            ("data", "--data"),
            ("out", "--out (the run directory)"),
        ):
            if not getattr(self, name):
                raise ConfigError(f"no {name}: give {what}, or `{name} = ...` in the --config file")
        if self.trainable not in TRAINABLE:
            raise ConfigError(f"trainable={self.trainable!r}: expected one of {', '.join(TRAINABLE)}")

    #: Fields ``--resume`` does not compare: where the run is, and what only matters after training.
    not_compared: ClassVar[tuple[str, ...]] = ("out",)

    def fingerprint(self) -> dict[str, Any]:
        """The settings ``--resume`` compares: :meth:`OptimConfig.fingerprint` less :attr:`not_compared`."""
        return {k: v for k, v in super().fingerprint().items() if k not in self.not_compared}


@dataclass
class ClassifyConfig(FinetuneConfig):
    """``finetune classify``: a text classifier (the book's chapter 6 defaults)."""

    data: str = "sms-spam"  # sms-spam (a registered dataset) or a file: label<TAB>text, .json, .jsonl
    trainable: str = "last-block"
    epochs: Optional[float] = 5.0
    labels: Optional[list[str]] = None  # the label names and their order [default: sorted]
    data_dir: Optional[str] = None  # local directory of a registered dataset's files
    balance: bool = True  # undersample classes to the smallest (the book)
    max_length: Optional[int] = None  # tokens per text [default: the model's context]
    on_long: Literal["truncate", "error"] = "truncate"  # texts longer than max_length

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_length is not None and self.max_length < 1:
            raise ConfigError(f"max_length={self.max_length} must be >= 1 (or unset: the model's context)")


@dataclass
class InstructConfig(FinetuneConfig):
    """``finetune instruct``: instruction finetuning (the book's chapter 7 defaults)."""

    data: str = "instructions"  # instructions (registered) or a JSON list of {instruction, input, output}
    epochs: Optional[float] = 2.0
    template: Optional[str] = None  # alpaca or llama [default: the base's, else alpaca]
    mask_prompt: bool = False  # leave the prompt tokens out of the loss
    data_dir: Optional[str] = None  # local directory of a registered dataset's files
    on_long: Literal["truncate", "error"] = "truncate"  # examples longer than the context
    max_new_tokens: int = 256  # longest generated test response
    test_limit: Optional[int] = None  # answer the first N test records (0: none) [default: all]
    not_compared: ClassVar[tuple[str, ...]] = ("out", "max_new_tokens", "test_limit")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.trainable == "head":
            raise ConfigError(
                "trainable=head: a language model's head alone is not a useful choice here; "
                "expected all, last-block or lora"
            )
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens={self.max_new_tokens} must be >= 1")
        if self.test_limit is not None and self.test_limit < 0:
            raise ConfigError(f"test_limit={self.test_limit} must be >= 0 (0: no test responses)")


@dataclass
class DPOConfig(FinetuneConfig):
    """``finetune dpo``: preference tuning against a frozen copy of the base (chapter 7's bonus)."""

    epochs: Optional[float] = 1.0
    lr: float = 5e-6
    weight_decay: float = 0.01
    eval_every: int = 5
    beta: float = 0.1  # DPO temperature: how far from the reference
    template: Optional[str] = None  # alpaca or llama [default: the base's, else alpaca]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ConfigError(f"beta={self.beta}: expected a number > 0, for example 0.1")
        if self.trainable == "head":
            raise ConfigError("trainable=head: expected all, last-block or lora for DPO")


def _default(cls: type[FinetuneConfig], name: str) -> Any:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)
