"""Chapter 6: finetune a GPT as a spam classifier and classify new messages.

By default (the measured run of the "Spam classification" page) the book's chapters 5
and 6 run end to end on a CPU, offline: a byte-level BPE tokenizer and a small GPT
(the ``small`` preset: 4 layers, 4 heads, 128 wide, context 128) are trained on the
standard library's documentation (it ships with CPython), then the model is finetuned
on the balanced SMS Spam Collection (1045 train / 149 val / 300 test messages) with
every parameter trainable, and evaluated on the three splits (about 10-20 minutes):

    python examples/ch06_classify_spam.py --out runs/classify-spam

``--base`` skips the pretraining and finetunes a checkpoint directory (for example
GPT-2 imported with ``scratchlm import-hf``, as the book does) or a preset name (a
random model). CI runs the tiny version, a random ``tiny`` GPT finetuned for 20 steps
(it checks the plumbing; its accuracy says little about the book's setting):

    python examples/ch06_classify_spam.py --base tiny --max-steps 20

The spam data is read from ``--data-dir`` (the directory holding ``SMSSpamCollection``),
else ``$SCRATCHLM_TEST_DATA``, else ``../shared/data`` beside the repository; without
any of them it is downloaded once and cached. Needs llm-finetune, and
``llm-train[plots]`` for the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from book_data import data_dir


def pretrain_small_gpt(out: Path, steps: int, seed: int) -> Path:
    """Chapter 5 in one call: BPE + token shards of Python's docs, then a small GPT; returns final/."""
    from llm_train import TrainConfig, build_trainer
    from llm_train.demo import prepare_demo_data

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
            max_steps=steps,
            lr=2e-3,
            scheduler="warmup-cosine",
            warmup_steps=min(30, steps // 10),
            eval_every=max(1, steps // 5),
            eval_batches=4,
            checkpoint_every=steps,
            seed=seed,
        )
        result = build_trainer(config, pretrain_dir).fit()
        before, after = result.initial_val_loss, result.val_loss
        print(f"pretrained {result.steps} steps: val loss {before:.3f} -> {after:.3f}")
    return pretrain_dir / "final"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where everything goes [default: a temporary directory]")
    parser.add_argument("--data-dir", type=Path, help="folder holding SMSSpamCollection (see above)")
    parser.add_argument("--base", help="checkpoint directory or preset name; skips the pretraining")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--max-steps", type=int, help="finetuning steps (instead of --epochs)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--trainable", default="all", choices=["head", "last-block", "all", "lora"])
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()

    from llm_finetune import ClassifyConfig, classify_texts, finetune_classifier, load_finetuned

    scratch = tempfile.TemporaryDirectory(prefix="classify-spam-")  # removed at exit: pass --out to keep
    out = (args.out or Path(scratch.name)).absolute()
    start = time.perf_counter()

    # 1. A pretrained base (chapter 5), unless --base names one.
    base = args.base or pretrain_small_gpt(out, args.pretrain_steps, args.seed)
    pretrain_seconds = time.perf_counter() - start

    # 2. Classification finetuning (chapter 6) on the balanced spam split.
    #    Every setting is a field of ClassifyConfig (the same as `scratchlm finetune classify`'s
    #    --config file); the ones left out keep the book's defaults.
    config = ClassifyConfig(
        model=str(base),
        data="sms-spam",
        data_dir=str(data_dir(args.data_dir)),
        out=str(out / "classifier"),
        trainable=args.trainable,
        epochs=None if args.max_steps else args.epochs,
        max_steps=args.max_steps,
        lr=args.lr,
        batch_size=8,
        eval_every=min(50, args.max_steps or 50),
        seed=args.seed,
        progress=False,
    )
    run = finetune_classifier(config)
    total = time.perf_counter() - start
    for split, report in run.reports.items():
        print(f"{split} accuracy: {report['accuracy'] * 100:.2f}% ({report['examples']} messages)")
    print(f"test confusion matrix (rows true, columns predicted; {', '.join(run.labels)}):")
    print(f"  {run.reports['test']['confusion_matrix']}")

    # 3. Use it: the label and its probability for new messages (what `scratchlm classify` prints).
    classifier = load_finetuned(run.final_dir)  # the model, its labels and its tokenizer's name
    from llm_data import get_tokenizer

    tokenizer = get_tokenizer(classifier.tokenizer_name)
    messages = [
        "You are a winner you have been specially selected to receive $1000 cash or a $2000 award.",
        "Hey, just wanted to check if we're still on for dinner tonight? Let me know!",
    ]
    for message, answer in zip(messages, classify_texts(classifier, tokenizer, messages), strict=True):
        print(f"{answer['label']:>5} {answer['probability']:.4f}  {message}")

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
    if args.out is None:
        print("note: the run is in a temporary directory, removed on exit; pass --out DIR to keep it")


if __name__ == "__main__":
    main()
