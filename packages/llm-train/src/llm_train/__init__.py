"""llm-train: losses, optimizers, schedules, the Trainer, checkpoints with exact resume, metrics, plots."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from llm_train.checkpoint import find_latest_checkpoint, load_training_checkpoint, save_training_checkpoint
from llm_train.config import TrainConfig, load_train_config
from llm_train.distributed import DistributedContext, init_distributed
from llm_train.losses import calc_loss_batch, calc_loss_loader, perplexity
from llm_train.metrics import MetricsWriter, read_metrics
from llm_train.optimizers import build_optimizer, param_groups
from llm_train.plots import plot_runs
from llm_train.pretrain import build_trainer, load_training_tokens, pretrain
from llm_train.schedules import constant, lr_multiplier, warmup_cosine, wsd
from llm_train.tasks import BatchLoader, LanguageModeling, Task
from llm_train.trainer import Trainer, TrainingError, TrainingInterrupted, TrainResult

try:
    __version__ = version("llm-train")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "BatchLoader",
    "DistributedContext",
    "LanguageModeling",
    "MetricsWriter",
    "Task",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "TrainingInterrupted",
    "__version__",
    "build_optimizer",
    "build_trainer",
    "calc_loss_batch",
    "calc_loss_loader",
    "constant",
    "find_latest_checkpoint",
    "init_distributed",
    "load_train_config",
    "load_training_checkpoint",
    "load_training_tokens",
    "lr_multiplier",
    "param_groups",
    "perplexity",
    "plot_runs",
    "pretrain",
    "read_metrics",
    "save_training_checkpoint",
    "warmup_cosine",
    "wsd",
]
