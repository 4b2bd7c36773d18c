"""llm-train: losses, optimizers, schedules, the Trainer, checkpoints with exact resume, metrics, plots."""

from __future__ import annotations

from llm_core.exports import distribution_version, export_table, lazy_exports

__version__ = distribution_version("llm-train")

#: Submodule: the public names it defines, imported on first use (no torch for `scratchlm --help`).
_EXPORTS = export_table(
    """
    callbacks: Callback
    checkpoint: find_latest_checkpoint load_training_checkpoint read_training_checkpoint
                save_training_checkpoint verify_training_checkpoint
    compare: CompareResult compare load_sweep
    config: OptimConfig TrainConfig load_config load_train_config read_train_config
    distributed: DistributedContext init_distributed
    losses: calc_loss_batch calc_loss_loader perplexity
    metrics: MetricsWriter read_metrics
    optimizers: build_optimizer param_groups
    plots: plot_runs
    pretrain: build_trainer load_training_tokens pretrain
    schedules: constant lr_multiplier warmup_cosine wsd
    tasks: BatchLoader DatasetLoader LanguageModeling Task next_token_loss
    trainer: TrainResult Trainer TrainingError TrainingInterrupted check_run_dir
    """
)

__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
