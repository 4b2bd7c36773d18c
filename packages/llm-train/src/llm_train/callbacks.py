"""Training callbacks: the :class:`Callback` base class and the built-in ones."""

from __future__ import annotations

from typing import Any

from llm_core.errors import MissingDependencyError

__all__ = ["Callback", "TensorBoardCallback"]


class Callback:
    """Base class of training callbacks: every hook exists and does nothing; override the ones you need.

    The Trainer builds each callback named in the config's ``callbacks`` with no
    arguments and calls, on every process:

    * ``on_train_start(trainer)`` once, before the first step;
    * ``on_step_end(trainer, metrics)`` after each logged optimizer step
      (``metrics``: ``step``, ``kind="train"``, ``loss``, ``lr``, …);
    * ``on_eval_end(trainer, metrics)`` after each evaluation
      (``kind="eval"``, ``val_loss``, …);
    * ``on_train_end(trainer)`` once, when training stops (finished or interrupted).

    ``trainer.run_dir``, ``trainer.step`` and ``trainer.dist.is_main`` are what a
    callback usually reads. Subclassing is optional: the Trainer calls only the
    methods a callback has.
    """

    def on_train_start(self, trainer: Any) -> None:
        """Training is about to start."""

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        """An optimizer step was logged with ``metrics``."""

    def on_eval_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        """An evaluation finished with ``metrics``."""

    def on_train_end(self, trainer: Any) -> None:
        """Training stopped."""


class TensorBoardCallback(Callback):
    """Write train/eval metrics to ``RUN_DIR/tensorboard`` (needs the ``tensorboard`` package)."""

    def __init__(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingDependencyError("the tensorboard callback needs: pip install tensorboard") from None
        self._writer_class = SummaryWriter
        self.writer: Any = None

    def on_train_start(self, trainer: Any) -> None:
        if trainer.dist.is_main:
            self.writer = self._writer_class(str(trainer.run_dir / "tensorboard"))

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self._log(metrics)

    def on_eval_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self._log(metrics)

    def _log(self, metrics: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in metrics.items():
            if key not in {"step", "kind"} and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{metrics['kind']}/{key}", value, metrics["step"])

    def on_train_end(self, trainer: Any) -> None:
        if self.writer is not None:
            self.writer.close()
