"""The book's loss figure, drawn from ``metrics.jsonl`` files (never from memory)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llm_core.errors import DataError, MissingDependencyError
from llm_train.metrics import read_metrics

__all__ = ["plot_runs", "pyplot", "save_figure"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the file-only ``Agg`` backend (the ``llm-train[plots]`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError('plotting needs matplotlib: pip install "llm-train[plots]"') from None
    return plt


def save_figure(fig: Any, out: str | Path) -> Path:
    """Lay out ``fig``, write it to ``out`` (PNG, 120 dpi; folders made) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Train and validation loss against epochs (bottom axis) and tokens seen (top axis).

    Several runs are overlaid, labelled by directory name. Needs the
    ``llm-train[plots]`` extra (matplotlib).
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    top = ax.twiny()
    for run_dir in run_dirs:
        path = Path(run_dir) / "metrics.jsonl"
        if not path.is_file():
            raise DataError(f"{path}: not found; expected a run directory made by `scratchlm pretrain`")
        evals = [r for r in read_metrics(path) if r.get("kind") == "eval" and r.get("train_loss") is not None]
        if not evals:
            raise DataError(f"{path}: no evaluation records yet (eval_every=0 or the run just started)")
        label = Path(run_dir).name
        epochs = [r["epoch"] for r in evals]
        ax.plot(epochs, [r["train_loss"] for r in evals], label=f"{label} training loss")
        val = [(r["epoch"], r["val_loss"]) for r in evals if r.get("val_loss") is not None]
        if val:
            ax.plot(*zip(*val, strict=True), linestyle="-.", label=f"{label} validation loss")
        top.plot([r["tokens_seen"] for r in evals], [r["train_loss"] for r in evals], alpha=0)
    ax.set_xlabel("Epochs")
    ax.set_ylabel("Loss")
    top.set_xlabel("Tokens seen")
    ax.legend(loc="upper right")
    return save_figure(fig, out)
