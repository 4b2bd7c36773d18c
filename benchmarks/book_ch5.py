"""The book's chapter-5 pretraining run on the-verdict.txt, through scratchlm's Trainer.

Settings as in the book: GPT-2 124M shape with context 256, dropout 0.1, no
qkv bias, torch's default initialisation (``init="pytorch"``, as the book's
model; GPT-2's N(0, 0.02) learns this tiny corpus far more slowly), seed 123,
90/10 character split, batch 2, max_length = stride = 256, AdamW lr 4e-4 with
weight decay 0.1, 10 epochs, evaluation every 5 steps on 5 batches, start
context "Every effort moves you". The book reports initial losses of about
10.99 (train and validation) and, after 10 epochs, train about 0.39 and
validation about 6.45.

    python benchmarks/book_ch5.py --data ../shared/data/the-verdict.txt --out runs/book-ch5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_data import GPTDatasetV1, get_tokenizer
from llm_model import build_model, generate_text
from llm_train import DatasetLoader, TrainConfig, Trainer, calc_loss_loader, next_token_loss, read_metrics

BOOK = {"initial_train": 10.99, "initial_val": 10.99, "final_train": 0.39, "final_val": 6.45}


def stack(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


class BookTask:
    """The book's loaders: shuffled stride-256 windows for training, in order for validation."""

    def __init__(self, text: str, batch_size: int, eval_batches: int) -> None:
        split = int(0.9 * len(text))
        self.train = GPTDatasetV1(text[:split], "gpt2", max_length=256, stride=256)
        self.val = GPTDatasetV1(text[split:], "gpt2", max_length=256, stride=256)
        self.batch_size, self.eval_batches = batch_size, eval_batches

    def loader(self, batch_size: int, seed: int) -> DatasetLoader:
        return DatasetLoader(self.train, batch_size=batch_size, seed=seed, collate=stack)

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return next_token_loss(model, *batch)

    def _batches(self, dataset: GPTDatasetV1) -> list[Any]:
        rows = [dataset[i] for i in range(len(dataset))]
        return [stack(rows[i : i + self.batch_size]) for i in range(0, len(rows), self.batch_size)]

    def evaluate(self, model: nn.Module) -> dict[str, float | None]:
        return {
            "train_loss": calc_loss_loader(self._batches(self.train), model, "cpu", self.eval_batches),
            "val_loss": calc_loss_loader(self._batches(self.val), model, "cpu", self.eval_batches),
        }

    def examples_per_epoch(self) -> int:
        return len(self.train)

    def tokens(self, batch: Any) -> int:
        return int(batch[0].numel())


def report(run_dir: Path, model: nn.Module, target_val: float) -> dict[str, Any]:
    """The book's figures beside ours, the eval trajectory and the time to reach ``target_val``."""
    evals = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "eval"]
    sample = generate_text(model.eval(), get_tokenizer("gpt2"), "Every effort moves you", max_new_tokens=25)
    reached = next((r for r in evals if r["val_loss"] <= target_val), None)
    return {
        "book": BOOK,
        "ours": {
            "initial_train": evals[0]["train_loss"],
            "initial_val": evals[0]["val_loss"],
            "final_train": evals[-1]["train_loss"],
            "final_val": evals[-1]["val_loss"],
            "min_val": min(r["val_loss"] for r in evals),
        },
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
    parser.add_argument("--data", type=Path, required=True, help="the-verdict.txt")
    parser.add_argument("--out", type=Path, default=Path("runs/book-ch5"))
    parser.add_argument("--epochs", type=float, default=10)
    parser.add_argument(
        "--target-val", type=float, default=6.6, help="time-to-quality threshold (the book: step 20)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild book_ch5.json from an existing --out run"
    )
    parser.add_argument("--results", type=Path, help="also write the report here (benchmarks/results/…)")
    options = parser.parse_args()
    if options.report_only:
        from llm_model import load_pretrained

        model = load_pretrained(options.out / "final")
    else:
        model = train(options)
    summary = report(options.out, model, options.target_val)
    text = json.dumps(summary, indent=2)
    (options.out / "book_ch5.json").write_text(text)
    if options.results:
        options.results.write_text(text)
    print(text)


def train(options: argparse.Namespace) -> nn.Module:
    """The book's run through the Trainer; returns the trained model."""
    text = options.data.read_text(encoding="utf-8")
    config = TrainConfig(
        data=str(options.data),
        preset="gpt2-124m",
        model={"context_length": 256, "drop_rate": 0.1, "qkv_bias": False, "init": "pytorch"},
        batch_size=2,
        epochs=options.epochs,
        lr=4e-4,
        weight_decay=0.1,
        betas=[0.9, 0.999],  # torch's AdamW defaults, as in the book
        decay_all=True,
        grad_clip=None,
        eval_every=5,
        eval_batches=5,
        sample_every=0,
        checkpoint_every=0,
        seed=123,
    )
    torch.manual_seed(config.seed)
    model = build_model("gpt2", preset="gpt2-124m", **config.model)
    task = BookTask(text, config.batch_size, config.eval_batches)
    Trainer(model, config, run_dir=options.out, task=task).fit()
    return model


if __name__ == "__main__":
    main()
