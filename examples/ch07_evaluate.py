"""Chapter 7: evaluate a checkpoint: perplexity, an MMLU-style multiple-choice test, and an LLM judge.

    python examples/ch07_evaluate.py                                   # offline, a random tiny GPT (CI)
    python examples/ch07_evaluate.py --checkpoint runs/instruct/sft/final --mmlu-dir mmlu/data \\
        --judge-host http://localhost:11434 --judge-model llama3       # the book's setting

Each step calls the evaluator that `scratchlm evaluate NAME` runs (`llm_eval.run_evaluator`):

1. perplexity over a text (``--text``; default: a slice of ``the-verdict.txt``) with a sliding window;
2. MMLU-style accuracy over ``--mmlu-dir`` (the original ``data/`` folder with ``dev/`` and ``test/``);
   without it, over six toy questions this script writes in that layout, to show the format;
3. the LLM judge through the Ollama API, scoring the model's answers to the first
   ``--judge-records`` test instructions of ``instruction-data.json``. With ``--judge-host`` a real
   judge (``ollama serve`` + ``ollama pull llama3``) scores them. Without it the script starts
   `scratchlm serve`'s app on a free loopback port with a random tiny GPT as a stand-in judge, so the
   whole path (prompt, Ollama client, retries, scores file) runs offline: a random model is no judge,
   so expect its records to fail ("reply has no integer 0-100") or get meaningless scores.

Book data comes from ``--data-dir``, else ``$SCRATCHLM_TEST_DATA``, else ``../shared/data`` beside the
repository.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from book_data import BOOK_DATA, data_dir

from llm_core import get_registry
from llm_data import get_tokenizer
from llm_eval import create_app, run_evaluator, start_server
from llm_eval.server import ModelRunner
from llm_model import build_model, save_pretrained

TOY_MMLU = {  # subject -> (question, A, B, C, D, answer) rows, in the original CSV layout
    "arithmetic": [
        ("What is 2 + 3?", "4", "5", "6", "7", "B"),
        ("What is 10 - 4?", "6", "5", "7", "14", "A"),
        ("What is 3 * 3?", "6", "8", "12", "9", "D"),
    ],
    "geography": [
        ("What is the capital of France?", "Berlin", "Madrid", "Paris", "Rome", "C"),
        ("Which ocean is the largest?", "Atlantic", "Pacific", "Indian", "Arctic", "B"),
        ("On which continent is Kenya?", "Africa", "Asia", "Europe", "South America", "A"),
    ],
}


def verdict_dir(given: Path | None) -> Path:
    """The book's data folder (see book_data.py), which must hold the-verdict.txt."""
    found = data_dir(given) or BOOK_DATA
    if not Path(found, "the-verdict.txt").is_file():
        raise SystemExit(
            f"error: no the-verdict.txt in {found}; `scratchlm download --out DIR` fetches it, "
            "then pass --data-dir DIR"
        )
    return Path(found)


def write_toy_mmlu(root: Path) -> Path:
    """The toy questions in MMLU's layout: dev/<subject>_dev.csv (the shots) and test/<subject>_test.csv."""
    import csv

    for subject, rows in TOY_MMLU.items():
        for split, chosen in (("dev", rows[:2]), ("test", rows[2:])):
            (root / split).mkdir(parents=True, exist_ok=True)
            with open(root / split / f"{subject}_{split}.csv", "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(chosen)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="checkpoint directory [default: a random tiny GPT]")
    parser.add_argument("--data-dir", type=Path, help="folder of the book's data (see above)")
    parser.add_argument("--out", type=Path, help="where reports go [default: a temporary directory]")
    parser.add_argument("--text", type=Path, help="UTF-8 text for perplexity [default: the-verdict.txt]")
    parser.add_argument("--mmlu-dir", type=Path, help="MMLU data/ folder [default: toy questions]")
    parser.add_argument("--k-shot", type=int, default=2, help="examples from dev/ before each question")
    parser.add_argument("--judge-host", help="Ollama server of a real judge, e.g. http://localhost:11434")
    parser.add_argument("--judge-model", default="llama3")
    parser.add_argument("--judge-records", type=int, default=3, help="test instructions to judge")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="longest generated answer")
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory(prefix="evaluate-")  # removed at exit: pass --out to keep
    work = (args.out or Path(scratch.name)).absolute()
    work.mkdir(parents=True, exist_ok=True)
    root = verdict_dir(args.data_dir)
    checkpoint = args.checkpoint
    if checkpoint is None:
        torch.manual_seed(0)
        checkpoint = save_pretrained(build_model("gpt2", preset="tiny"), work / "tiny-gpt", tokenizer="gpt2")
        print("no --checkpoint: evaluating a random tiny GPT saved in", checkpoint)

    # 1. Perplexity: exp(mean next-token loss); a random model over GPT-2's vocabulary sits near 50257.
    text = args.text
    if text is None:
        text = work / "verdict-head.txt"
        text.write_text(Path(root, "the-verdict.txt").read_text(encoding="utf-8")[:4000], encoding="utf-8")
    report = run_evaluator("perplexity", checkpoint=str(checkpoint), text=str(text), stride=32)
    loss, perplexity, tokens = report["loss"], report["perplexity"], report["tokens"]
    print(f"perplexity {perplexity:.1f} (loss {loss:.3f} nats) over {tokens} tokens")

    # 2. MMLU-style: the answer is the likeliest of the tokens " A", " B", " C", " D" after "Answer:".
    mmlu_dir = args.mmlu_dir or write_toy_mmlu(work / "toy-mmlu")
    report = run_evaluator("mmlu", checkpoint=str(checkpoint), data_dir=str(mmlu_dir), k_shot=args.k_shot)
    for subject, result in report["subjects"].items():
        print(f"mmlu {subject}: {result['correct']}/{result['total']}")
    print(f"mmlu macro accuracy {report['macro_accuracy']:.2%} (chance: 25%)")

    # 3. The LLM judge over the Ollama API: the model answers, the judge scores each answer 0-100.
    splits = get_registry("datasets").get_obj("instructions")(root=root)  # the book's 935/110/55 split
    records = splits["test"][: args.judge_records]
    records_file = work / "instruction-data-with-response.json"
    records_file.write_text(json.dumps(records, indent=1), encoding="utf-8")
    stand_in = None
    host = args.judge_host
    if host is None:
        torch.manual_seed(1)
        judge = build_model("gpt2", preset="tiny", context_length=512).eval()
        runner = ModelRunner(judge, get_tokenizer("gpt2"), args.judge_model)
        stand_in = start_server(create_app(runner), "127.0.0.1", 0)
        host = stand_in.url
        print(f"no --judge-host: a random tiny GPT stands in as judge '{args.judge_model}' at {host}")
    try:
        report = run_evaluator(
            "judge",
            str(records_file),
            host=host,
            model=args.judge_model,
            checkpoint=str(checkpoint),
            max_new_tokens=args.max_new_tokens,
            max_tries=1 if stand_in else 3,
            review=str(work / "review.html"),
        )
    finally:
        if stand_in is not None:
            stand_in.stop()
    print(f"judge: scored {report['scored']}/{report['records']}, mean score {report['mean_score']}")
    for failure in report["failures"]:
        print(f"  record {failure['index']} failed: {failure['error'][:100]}")
    print("every reply:", report["scores_file"], "| review page:", report["review"])
    if args.out is None:
        print("note: the reports are in a temporary directory, removed on exit; pass --out DIR to keep them")


if __name__ == "__main__":
    main()
