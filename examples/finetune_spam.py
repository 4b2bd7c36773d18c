"""Pretrain a small GPT on Python's own documentation, then finetune it as a spam classifier.

The book's chapters 5 and 6 end to end on a CPU, offline: a byte-level BPE tokenizer
and a small GPT (the ``small`` preset: 4 layers, 4 heads, 128 wide, context 128) are
trained on the standard library's documentation (it ships with CPython), then the
model is finetuned on the balanced SMS Spam Collection (1045 train / 149 val / 300
test messages) with every parameter trainable, and evaluated on the test split.

    python examples/finetune_spam.py --data-dir ../shared/data --out runs/finetune-spam

``--data-dir`` is the directory holding ``SMSSpamCollection`` (default:
``$SCRATCHLM_TEST_DATA``; without either the file is downloaded and cached).
Needs llm-finetune, and ``llm-train[plots]`` for the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/finetune-spam"))
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("SCRATCHLM_TEST_DATA") or None)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--trainable", default="all", choices=["head", "last-block", "all", "lora"])
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()

    from llm_finetune import finetune_classifier
    from llm_train import TrainConfig, build_trainer
    from llm_train.demo import prepare_demo_data

    out = args.out.absolute()
    start = time.perf_counter()

    # 1. Pretraining (chapter 5): BPE tokenizer + token shards of the embedded corpus, a small GPT.
    prepared, tokenizer_path = prepare_demo_data(out / "data", print)
    pretrain_dir = out / "pretrain"
    if not (pretrain_dir / "final").is_dir():
        config = TrainConfig(
            data=str(prepared),
            preset="small",
            tokenizer=str(tokenizer_path),
            model={"drop_rate": 0.0},
            batch_size=16,
            context_length=128,
            max_steps=args.pretrain_steps,
            lr=2e-3,
            scheduler="warmup-cosine",
            warmup_steps=min(30, args.pretrain_steps // 10),
            eval_every=max(1, args.pretrain_steps // 5),
            eval_batches=4,
            checkpoint_every=args.pretrain_steps,
            seed=args.seed,
        )
        result = build_trainer(config, pretrain_dir).fit()
        before, after = result.initial_val_loss, result.val_loss
        print(f"pretrained {result.steps} steps: val loss {before:.3f} -> {after:.3f}")
    pretrain_seconds = time.perf_counter() - start

    # 2. Classification finetuning (chapter 6) on the balanced spam split.
    run = finetune_classifier(
        pretrain_dir / "final",
        "sms-spam",
        out / "classifier",
        data_root=args.data_dir,
        trainable=args.trainable,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=8,
        eval_every=50,
        seed=args.seed,
    )
    total = time.perf_counter() - start
    for split, report in run.reports.items():
        print(f"{split} accuracy: {report['accuracy'] * 100:.2f}% ({report['examples']} messages)")
    print(f"test confusion matrix (rows true, columns predicted; {', '.join(run.labels)}):")
    print(f"  {run.reports['test']['confusion_matrix']}")
    summary = {
        "test_accuracy": run.reports["test"]["accuracy"],
        "val_accuracy": run.reports["val"]["accuracy"],
        "train_accuracy": run.reports["train"]["accuracy"],
        "pretrain_seconds": round(pretrain_seconds, 1),
        "finetune_seconds": round(run.seconds, 1),
        "total_seconds": round(total, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))
    print(f"classifier: {run.final_dir}")
    print(f'try: scratchlm classify {run.final_dir} "Congratulations! You won a free cruise, call now"')


if __name__ == "__main__":
    main()
