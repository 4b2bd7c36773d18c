"""Finetuning figures drawn from ``metrics.jsonl`` (never from memory): accuracy, reward margins, loss."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from llm_core.errors import DataError, MissingDependencyError, ScratchLMError

__all__ = ["plot_accuracy", "plot_finetune_run", "plot_metric"]


def plot_metric(
    run_dirs: Sequence[str | Path], out: str | Path, *, metric: str = "accuracy", ylabel: str | None = None
) -> Path:
    """``train_<metric>`` and ``val_<metric>`` of the eval records against epochs (runs overlaid).

    Needs matplotlib (the ``llm-train[plots]`` extra).
    """
    from llm_train import read_metrics
    from llm_train.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for run_dir in run_dirs:
        path = Path(run_dir) / "metrics.jsonl"
        if not path.is_file():
            raise DataError(f"{path}: not found; expected a run directory made by `scratchlm finetune`")
        evals = [r for r in read_metrics(path) if r.get("kind") == "eval"]
        label = Path(run_dir).name
        drawn = False
        for split, style in (("train", "-"), ("val", "-.")):
            points = [
                (r["epoch"], r[f"{split}_{metric}"]) for r in evals if r.get(f"{split}_{metric}") is not None
            ]
            if points:
                ax.plot(*zip(*points, strict=True), linestyle=style, label=f"{label} {split} {metric}")
                drawn = True
        if not drawn:
            plt.close(fig)
            raise DataError(f"{path}: no eval records with train_{metric}/val_{metric}")
    ax.set_xlabel("Epochs")
    ax.set_ylabel(ylabel or metric.replace("_", " ").capitalize())
    ax.legend(loc="best")
    return save_figure(fig, out)


def plot_accuracy(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """The book's accuracy figure (chapter 6): train and validation accuracy against epochs."""
    return plot_metric(run_dirs, out, metric="accuracy")


def plot_finetune_run(run_dir: str | Path, echo: Callable[[str], None] = print) -> list[Path]:
    """``loss.png`` and, when logged, ``accuracy.png``/``reward_margin.png`` in ``run_dir``.

    Plots are a bonus: a missing matplotlib or empty metrics is reported through ``echo``.
    """
    from llm_train import plot_runs

    run_dir = Path(run_dir)
    made = []
    jobs = [
        ("loss.png", lambda p: plot_runs([run_dir], p)),
        ("accuracy.png", lambda p: plot_accuracy([run_dir], p)),
        ("reward_margin.png", lambda p: plot_metric([run_dir], p, metric="reward_margin")),
    ]
    for name, draw in jobs:
        try:
            made.append(draw(run_dir / name))
        except MissingDependencyError as exc:
            echo(f"(no plots: {exc})")
            break
        except ScratchLMError:
            continue  # this run does not log that metric
    return made
