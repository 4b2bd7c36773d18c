"""Built-in training callbacks."""

from __future__ import annotations

from typing import Any

from llm_core.errors import MissingDependencyError

__all__ = ["TensorBoardCallback"]


class TensorBoardCallback:
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
