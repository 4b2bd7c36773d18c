"""bf16 against fp32, and activation checkpointing, through ``llm_train.Trainer`` (issue 25, point 3).

Two studies, each measurement in its own process (its own peak RSS, ``VmHWM``),
repetitions interleaved across the variants, medians with [min-max]:

* ``precision``: ``precision="fp32"`` vs ``"bf16"`` (autocast) at ``--shape``: seconds
  per step (the median loop iteration of ``Trainer.fit``), tokens/s, and the loss
  curve of the same run (same seed, same batches of real text: Python's own
  documentation, offline) with the largest gap between the two curves;
* ``checkpointing``: ``activation_checkpointing`` off vs on at ``--ckpt-shape``
  (GPT-2 124M at context 1024 by default): tokens/s and peak RSS.

The CPU's bf16 support decides what bf16 buys: the report names the CPU flags
(``avx512_bf16``, ``amx_bf16``) it found.

    python benchmarks/training.py --reps 5                 # the full study (hours on 2 cores)
    python benchmarks/training.py --quick --out /tmp/x     # a small check of the script

Writes ``benchmarks/results/<date>-training.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def cpu_flags() -> list[str]:
    """The bf16-related flags of this CPU (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return sorted(words & {"avx512_bf16", "amx_bf16", "amx_tile", "avx512f", "avx2", "avx_vnni"})


def text_tokens(n_tokens: int) -> Any:
    """``n_tokens`` GPT-2 tokens of Python's documentation (the demo's offline corpus)."""
    import numpy as np

    from llm_data import get_tokenizer, python_docs_text

    text = python_docs_text()
    tokens = np.asarray(get_tokenizer("gpt2").encode(text[: 8 * n_tokens]), dtype=np.int64)
    if len(tokens) < n_tokens:
        raise SystemExit(f"the corpus gives {len(tokens)} tokens, fewer than {n_tokens}")
    return tokens[:n_tokens]


def worker(spec: str, batch: int, steps: int, precision: str, checkpointing: bool) -> dict[str, Any]:
    """One run through the Trainer: seconds per step, the loss of every step, peak RSS."""
    import torch
    from run import _peak_rss_mb, _shape

    from llm_model import build_model
    from llm_train import TrainConfig, Trainer, read_metrics

    shape = _shape(spec)
    context = shape["context_length"]
    tokens = text_tokens((steps + 3) * batch * (context + 1))
    config = TrainConfig(
        data="benchmark",
        batch_size=batch,
        max_steps=steps + 2,
        lr=4e-4,
        grad_clip=0,
        eval_every=0,
        checkpoint_every=0,
        log_every=1,
        progress=False,
        precision=precision,  # type: ignore[arg-type]
        activation_checkpointing=checkpointing,
        seed=123,
    )
    torch.manual_seed(config.seed)
    model = build_model("gpt2", **shape, drop_rate=0.0, qkv_bias=True)
    starts: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, config, train_tokens=tokens, run_dir=tmp)
        inner = trainer._train_step

        def timed() -> Any:
            starts.append(time.perf_counter())
            return inner()

        trainer._train_step = timed  # type: ignore[method-assign]
        trainer.save = lambda name=None: None  # type: ignore[method-assign]
        trainer.fit()
        losses = [r["train_loss"] for r in read_metrics(Path(tmp) / "metrics.jsonl") if r["kind"] == "train"]
    times = [b - a for a, b in itertools.pairwise(starts[1:])]  # the first allocates state
    step_s = statistics.median(times)
    return {
        "step_s": step_s,
        "tokens_per_s": batch * context / step_s,
        "losses": losses,
        "peak_rss_mb": _peak_rss_mb(),
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shape", default="768x12x12x256x50257", help="precision study: emb x layers x heads x ctx x vocab"
    )
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--ckpt-shape", default="768x12x12x1024x50257", help="checkpointing study shape")
    parser.add_argument("--ckpt-batch", type=int, default=1)
    parser.add_argument(
        "--steps", type=int, default=6, help="timed steps per run (the loss curve has steps + 2)"
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default="precision,checkpointing")
    parser.add_argument("--quick", action="store_true", help="a small shape, 2 reps: checks the script")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        spec, batch, steps, precision, checkpointing = json.loads(options.worker)
        print(json.dumps(worker(spec, batch, steps, precision, checkpointing)))
        return 0
    if options.quick:
        options.shape = options.ckpt_shape = "128x2x2x128x50257"
        options.reps, options.steps = min(options.reps, 2), min(options.steps, 3)
    plans = {
        "precision": {
            "fp32": (options.shape, options.batch, "fp32", False),
            "bf16": (options.shape, options.batch, "bf16", False),
        },
        "checkpointing": {
            "off": (options.ckpt_shape, options.ckpt_batch, "fp32", False),
            "on": (options.ckpt_shape, options.ckpt_batch, "fp32", True),
        },
    }
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for study in options.only.split(","):
        raw[study] = {variant: [] for variant in plans[study]}
        for rep in range(options.reps):
            order = list(plans[study].items())
            order = order[rep % 2 :] + order[: rep % 2]  # alternate which variant goes first
            for variant, (spec, batch, precision, checkpointing) in order:
                payload = json.dumps([spec, batch, options.steps, precision, checkpointing])
                done = subprocess.run(
                    [sys.executable, __file__, "--worker", payload],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                raw[study][variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
                row = raw[study][variant][-1]
                print(
                    f"{study} rep {rep + 1} {variant}: {row['tokens_per_s']:.0f} tokens/s, "
                    f"peak RSS {row['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    summary: dict[str, Any] = {"cpu_flags": cpu_flags(), "reps": options.reps, "steps": options.steps}
    for study, variants in raw.items():
        rows = {
            v: {
                "tokens_per_s": spread([r["tokens_per_s"] for r in runs]),
                "peak_rss_mb": spread([r["peak_rss_mb"] for r in runs]),
            }
            for v, runs in variants.items()
        }
        first, second = list(rows)
        rows["ratio"] = {
            "tokens_per_s": rows[second]["tokens_per_s"]["median"] / rows[first]["tokens_per_s"]["median"],
            "peak_rss_mb": rows[second]["peak_rss_mb"]["median"] / rows[first]["peak_rss_mb"]["median"],
        }
        if study == "precision":
            curves = {v: runs[0]["losses"] for v, runs in variants.items()}
            rows["loss_curves"] = curves
            rows["max_loss_gap"] = max(
                abs(a - b) for a, b in zip(curves["fp32"], curves["bf16"], strict=True)
            )
        summary[study] = {"shape": plans[study][first][0], "batch": plans[study][first][1], **rows}
    text = json.dumps({"summary": summary, "raw": raw}, indent=2)
    print(json.dumps(summary, indent=2))
    options.out.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y-%m-%d')}-training{'-quick' if options.quick else ''}"
    (options.out / f"{name}.json").write_text(text + "\n")
    (options.out / f"{name}.md").write_text(markdown(summary))
    print(f"wrote {options.out / name}.json and .md")
    return 0


def markdown(summary: dict[str, Any]) -> str:
    """The tables: median [min-max] of every row, and the ratios."""
    lines = [f"# Training: bf16 and activation checkpointing ({time.strftime('%Y-%m-%d')})", ""]
    lines.append(
        f"CPU flags: {', '.join(summary['cpu_flags']) or 'none found'}; {summary['reps']} interleaved reps."
    )
    for study in ("precision", "checkpointing"):
        if study not in summary:
            continue
        s = summary[study]
        lines += ["", f"## {study} ({s['shape']}, batch {s['batch']})", ""]
        lines += ["| variant | tokens/s [min-max] | peak RSS MB [min-max] |", "|---|---|---|"]
        for variant, row in s.items():
            if variant != "ratio" and isinstance(row, dict) and "tokens_per_s" in row:
                t, m = row["tokens_per_s"], row["peak_rss_mb"]
                lines.append(
                    f"| {variant} | {t['median']:.0f} [{t['min']:.0f}-{t['max']:.0f}] "
                    f"| {m['median']:.0f} [{m['min']:.0f}-{m['max']:.0f}] |"
                )
        ratio = s["ratio"]
        lines.append(f"| ratio | {ratio['tokens_per_s']:.2f}x | {ratio['peak_rss_mb']:.2f}x |")
        if "max_loss_gap" in s:
            lines.append(f"\nLargest gap between the fp32 and bf16 loss curves: {s['max_loss_gap']:.4f}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
