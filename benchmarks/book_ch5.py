"""The book's chapter-5 pretraining run on the-verdict.txt, through ``scratchlm pretrain``'s path.

The settings are ``examples/configs/book-ch5.toml`` (each of the book's choices is a
config field: character split, stride-256 windows reshuffled each epoch as the book's
DataLoader does, its evaluation schedule, torch's AdamW defaults, no clipping, torch's
initialisation, seed 123). The book prints, on CPU, train 9.781 / val 9.933 after the
first update ("Step 0"), train 0.391 / val 6.452 at "Step 85" (after 86 updates) and
a lowest val loss of 6.134; this script writes ours beside them, the trajectory, the
wall time and the time to reach ``--target-val``.

    python benchmarks/book_ch5.py --data ../shared/data/the-verdict.txt --out runs/book-ch5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from torch import nn

from llm_data import get_tokenizer
from llm_model import generate_text, load_pretrained
from llm_train import read_metrics
from llm_train.config import load_train_config
from llm_train.pretrain import pretrain

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "configs" / "book-ch5.toml"
#: The book's printed figures (CPU), by its step label (updates - 1).
BOOK = {"step_0": {"train": 9.781, "val": 9.933}, "step_85": {"train": 0.391, "val": 6.452}, "min_val": 6.134}


def report(run_dir: Path, model: nn.Module, target_val: float) -> dict[str, Any]:
    """The book's figures beside ours, the eval trajectory and the time to reach ``target_val``."""
    evals = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "eval"]
    by_step = {r["step"]: r for r in evals}
    sample = generate_text(model.eval(), get_tokenizer("gpt2"), "Every effort moves you", max_new_tokens=25)
    reached = next((r for r in evals if r["val_loss"] <= target_val), None)

    def at(step: int) -> dict[str, float] | None:
        row = by_step.get(step)
        return row and {"train": row["train_loss"], "val": row["val_loss"]}

    return {
        "book": BOOK,
        "ours": {"step_0": at(1), "step_85": at(86), "min_val": min(r["val_loss"] for r in evals)},
        "steps": evals[-1]["step"],
        "wall_seconds": evals[-1]["elapsed_s"],
        "time_to_quality": {
            "val_loss_at_most": target_val,
            "step": reached and reached["step"],
            "seconds": reached and reached["elapsed_s"],
        },
        "trajectory": [
            {k: r[k] for k in ("step", "epoch", "train_loss", "val_loss", "elapsed_s")} for r in evals
        ],
        "sample": "Every effort moves you" + sample,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="the-verdict.txt [default: the config's]")
    parser.add_argument("--out", type=Path, default=Path("runs/book-ch5"))
    parser.add_argument("--epochs", type=float, help="[default: the config's 10]")
    parser.add_argument(
        "--target-val", type=float, default=6.6, help="time-to-quality threshold (the book: step 20)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild book_ch5.json from an existing --out run"
    )
    parser.add_argument("--results", type=Path, help="also write the report here (benchmarks/results/…)")
    options = parser.parse_args()
    model = load_pretrained(options.out / "final") if options.report_only else train(options)
    summary = report(options.out, model, options.target_val)
    text = json.dumps(summary, indent=2)
    (options.out / "book_ch5.json").write_text(text)
    if options.results:
        options.results.write_text(text)
    print(text)


def train(options: argparse.Namespace) -> nn.Module:
    """The book's run as ``scratchlm pretrain --config examples/configs/book-ch5.toml`` does it."""
    data = str(options.data) if options.data else None
    config = load_train_config(CONFIG, data=data, epochs=options.epochs)
    result = pretrain(config, options.out, overwrite=True)
    return load_pretrained(result.final_dir)


if __name__ == "__main__":
    main()
