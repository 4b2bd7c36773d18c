"""llm-train: losses, optimizers, schedules, the Trainer, checkpoints with exact resume, metrics, plots."""

from __future__ import annotations

from llm_core.exports import distribution_version, lazy_exports

__version__ = distribution_version("llm-train")

#: Public name -> submodule defining it; imported on first use (no torch for `scratchlm --help`).
_EXPORTS = {
    "BatchLoader": "tasks",
    "Callback": "callbacks",
    "CompareResult": "compare",
    "DatasetLoader": "tasks",
    "DistributedContext": "distributed",
    "LanguageModeling": "tasks",
    "MetricsWriter": "metrics",
    "Task": "tasks",
    "TrainConfig": "config",
    "TrainResult": "trainer",
    "OptimConfig": "config",
    "Trainer": "trainer",
    "TrainingError": "trainer",
    "TrainingInterrupted": "trainer",
    "build_optimizer": "optimizers",
    "compare": "compare",
    "build_trainer": "pretrain",
    "calc_loss_batch": "losses",
    "calc_loss_loader": "losses",
    "check_run_dir": "trainer",
    "constant": "schedules",
    "find_latest_checkpoint": "checkpoint",
    "init_distributed": "distributed",
    "load_sweep": "compare",
    "load_config": "config",
    "load_train_config": "config",
    "load_training_checkpoint": "checkpoint",
    "load_training_tokens": "pretrain",
    "lr_multiplier": "schedules",
    "next_token_loss": "tasks",
    "param_groups": "optimizers",
    "perplexity": "losses",
    "plot_runs": "plots",
    "pretrain": "pretrain",
    "read_metrics": "metrics",
    "read_train_config": "config",
    "read_training_checkpoint": "checkpoint",
    "save_training_checkpoint": "checkpoint",
    "verify_training_checkpoint": "checkpoint",
    "warmup_cosine": "schedules",
    "wsd": "schedules",
}

__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
