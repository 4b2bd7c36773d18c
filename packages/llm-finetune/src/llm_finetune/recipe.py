"""One recipe path for every kind of finetuning.

load the base → the recipe's Task (and model changes) → set what trains → ``llm_train.Trainer``
→ LoRA adapters and a merged checkpoint → plots → the recipe's own after-training step.

A recipe (:class:`Recipe`) fills in only what is its own: the data it reads, its
``Task`` and what it does once trained (a classifier's test accuracy, instruction
responses, DPO's reward margins). Its settings are one config dataclass
(:mod:`llm_finetune.config`), saved resolved as ``RUN_DIR/train_config.json``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import torch
from torch import nn

from llm_finetune.adapters import ADAPTERS_FILE, MERGED_DIR, save_lora_adapters, save_merged_checkpoint
from llm_finetune.checkpoints import BaseModel, load_base, set_trainable
from llm_finetune.config import FinetuneConfig
from llm_finetune.plots import plot_finetune_run
from llm_finetune.tasks import FinetuneTask

__all__ = ["Echo", "FinetuneRun", "Recipe", "run_recipe"]

C = TypeVar("C", bound=FinetuneConfig)
D = TypeVar("D")
R = TypeVar("R", bound="FinetuneRun")
#: Where a run's messages go (``print``; the CLI's ``--json`` sends them to stderr).
Echo = Callable[[str], None]


@dataclass
class FinetuneRun:
    """What every recipe's run made; each recipe's result adds its own measurements."""

    config: FinetuneConfig  # resolved, as saved in RUN_DIR/train_config.json
    run_dir: Path
    trainable_parameters: int
    adapters: Path | None  # RUN_DIR/adapters.safetensors (LoRA runs)
    merged_dir: Path | None  # RUN_DIR/merged: the adapters merged into plain weights (LoRA runs)
    plots: list[Path]
    final_dir: Path
    steps: int
    seconds: float
    initial_val_loss: float | None
    val_loss: float | None

    def summary(self) -> dict[str, Any]:
        """The JSON document of the command's ``--json``: the results and the resolved config."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "config"}
        return {**{k: _plain(v) for k, v in data.items()}, "config": self.config.to_dict()}

    def lines(self) -> list[str]:
        """What the command prints when it is done."""
        val = "n/a" if self.val_loss is None else f"{self.val_loss:.4f}"
        lines = [f"done: {self.steps} steps, val loss {val}"]
        if self.merged_dir is not None:
            lines.append(f"adapters: {self.adapters}; merged into a plain checkpoint: {self.merged_dir}")
        return [*lines, f"model: {self.final_dir}"]


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class Recipe(ABC, Generic[C, D, R]):
    """What one kind of finetuning adds to the recipe path (subclass and fill in the three steps)."""

    #: The command whose output directory a run is (``finetune classify`` …).
    command: str = "finetune"
    #: The ``"task"`` of the checkpoints' ``"finetune"`` entry.
    task: str = "finetune"
    #: Modules trained in full beside LoRA adapters, and saved with them (a new head).
    modules_to_save: tuple[str, ...] = ()

    def __init__(self, echo: Echo = print) -> None:
        """``echo`` receives the run's messages (``print``; the CLI's ``--json`` sends them to stderr)."""
        self.echo = echo

    @abstractmethod
    def load_data(self, config: C) -> D:
        """Read and split ``config.data`` (before the base is loaded: bad data fails fast)."""

    @abstractmethod
    def prepare(self, config: C, base: BaseModel, data: D) -> tuple[C, FinetuneTask]:
        """The resolved config and the Trainer's task; may change ``base.model`` (a new head).

        Runs after seeding, before freezing; build the task with :meth:`task_fields`.
        """

    @abstractmethod
    def finish(self, run: FinetuneRun, model: nn.Module, base: BaseModel, data: D) -> R:
        """The after-training step (evaluate, generate …); returns the recipe's result."""

    def task_fields(self, config: C, base: BaseModel, **info: Any) -> dict[str, Any]:
        """The :class:`~llm_finetune.tasks.FinetuneTask` fields every task has.

        ``info`` adds the recipe's own keys to the checkpoints' ``"finetune"`` entry.
        """
        lora = config.lora.to_dict() if config.trainable == "lora" else None
        common = {"task": self.task, "trainable": config.trainable, "lora": lora, "base": base.source}
        return {
            "eval_batches": config.eval_batches,
            "batch_size": config.batch_size,
            "tokenizer_name": base.tokenizer_name,
            "info": {**common, **info},
        }


def run_recipe(recipe: Recipe[C, D, R], config: C, *, resume: bool = False, overwrite: bool = False) -> R:
    """Finetune ``config.model`` on ``config.data`` into ``config.out`` the way ``recipe`` says.

    A config's ``template`` left unset becomes the base's (an SFT model's), else ``alpaca``.
    ``resume`` continues the newest checkpoint in ``config.out`` (a changed config
    is refused); ``overwrite`` starts afresh in a directory that is not empty.
    """
    from llm_model.loading import resolve_dtype
    from llm_train import Trainer
    from llm_train.trainer import check_run_dir

    check_run_dir(config.out, command=recipe.command, resume=resume, overwrite=overwrite)  # before loading
    data = recipe.load_data(config)
    base = load_base(config.model, tokenizer=config.tokenizer, seed=config.seed)
    wanted = resolve_dtype(None if config.dtype == "auto" else config.dtype)
    if wanted is not None:
        base.model.to(dtype=wanted)
    config = dataclasses.replace(config, tokenizer=base.tokenizer_name)
    if getattr(config, "template", "") is None:  # a prompt template: the base's (an SFT model's), else alpaca
        config = dataclasses.replace(cast(Any, config), template=base.info.get("template") or "alpaca")
    lora = config.lora if config.trainable == "lora" else None
    echo = recipe.echo
    torch.manual_seed(config.seed)  # a new head and LoRA's A matrices start from the seed (the book: 123)
    config, task = recipe.prepare(config, base, data)
    set_trainable(base.model, config.trainable, lora=lora, modules_to_save=recipe.modules_to_save)
    trainable = sum(p.numel() for p in base.model.parameters() if p.requires_grad)
    echo(f"base: {base.source}; trainable ({config.trainable}): {trainable:,} parameters")
    trainer = Trainer(
        base.model, config, run_dir=config.out, task=task, tokenizer=base.tokenizer, command=recipe.command
    )
    result = trainer.fit(resume=resume, overwrite=overwrite)
    run_dir = Path(config.out)
    adapters = merged = None
    if lora is not None:
        extra = {k: v for k, v in task.info.items() if k != "lora"}
        adapters = save_lora_adapters(
            trainer.model, run_dir / ADAPTERS_FILE, lora, modules_to_save=recipe.modules_to_save, extra=extra
        )
        merged = save_merged_checkpoint(result.final_dir, run_dir / MERGED_DIR)
        echo(f"adapters merged into a plain checkpoint (for serve/generate/evaluate): {merged}")
    plots = plot_finetune_run(run_dir, echo=echo)
    measured = {name: getattr(result, name) for name in ("final_dir", "steps", "seconds", "val_loss")}
    run = FinetuneRun(
        config,
        run_dir,
        trainable,
        adapters,
        merged,
        plots,
        **measured,
        initial_val_loss=result.initial_val_loss,
    )
    return recipe.finish(run, trainer.model, base, data)
