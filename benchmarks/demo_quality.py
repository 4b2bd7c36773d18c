"""Time to quality of `scratchlm demo`: wall time until its validation loss reaches stated values.

Runs the demo exactly as `nox -s demo` does (`llm_train.demo.run_demo`, 400 steps,
seed 123) in a temporary directory, then reads the run's ``metrics.jsonl``: every
evaluation row carries ``elapsed_s``, the training time since the run started.
Writes ``benchmarks/results/<date>-demo.json``.

    python benchmarks/demo_quality.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
THRESHOLDS = (7.0, 6.0, 5.5, 5.2)  # validation loss (the demo's 4096-token BPE vocabulary)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=400, help="demo steps (default: the demo's 400)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where the results file goes")
    options = parser.parse_args()

    import torch

    from llm_train import read_metrics
    from llm_train.demo import run_demo

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_demo(Path(tmp) / "demo", max_steps=options.steps, echo=lambda line: None)
        wall = time.perf_counter() - start
        evals = [r for r in read_metrics(Path(tmp) / "demo" / "run" / "metrics.jsonl") if r["kind"] == "eval"]
    curve = [
        {"step": r["step"], "elapsed_s": r.get("elapsed_s"), "val_loss": r.get("val_loss")} for r in evals
    ]
    reached = {}
    for threshold in THRESHOLDS:
        first = next((r for r in curve if r["val_loss"] is not None and r["val_loss"] <= threshold), None)
        reached[f"val_loss<={threshold}"] = (
            None if first is None else {"step": first["step"], "seconds": first["elapsed_s"]}
        )
    summary = {
        "steps": options.steps,
        "initial_val_loss": result.initial_val_loss,
        "final_val_loss": result.val_loss,
        "train_seconds": result.seconds,
        "wall_seconds_with_data_prep": wall,
        "time_to_quality": reached,
    }
    machine = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "load_average_1min_at_end": os.getloadavg()[0],
    }
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / f"{time.strftime('%Y-%m-%d')}-demo.json"
    path.write_text(json.dumps({"machine": machine, "summary": summary, "curve": curve}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
