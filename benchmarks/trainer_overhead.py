"""The Trainer's overhead against the bare loop, in one process, interleaved, with op profiles.

One model, one random token stream. Each repetition runs, in turn, ``--steps``
steps of the bare loop (`run.py`'s ``training_setup``: forward, loss, backward,
fused AdamW) and the same number through ``llm_train.Trainer`` for each variant:

* ``trainer``: no clipping (``grad_clip=0``, what `run.py` measures), metrics every 10 steps
  (the default ``log_every``; a logged step adds one gradient-norm pass);
* ``trainer-log-every-step``: the same with ``log_every=1``;
* ``trainer-clip``: ``grad_clip=1.0`` (the default: one norm pass and one scaling pass
  over the gradients, which the bare loop does not do);
* ``trainer-clip-huge``: ``grad_clip=1e30``, which is what ``grad_clip=null`` cost before
  this change (``clip_grad_norm_(max_norm=inf)``: the norm, then every gradient times 1.0).

Wall seconds per step are medians over the repetitions (each rep's median step), so
a busy machine's noise hits every variant alike; the profile counts, per variant, the
ops the bare loop does not run (self CPU seconds per step) and the Python frames.

    python benchmarks/trainer_overhead.py --shape 768x12x12x256x50257 --batch 2 --reps 3

Writes ``benchmarks/results/<date>-trainer-overhead-<shape>-b<batch>.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: variant -> (grad_clip, log_every)
VARIANTS = {
    "trainer": (0.0, 10),
    "trainer-log-every-step": (0.0, 1),
    "trainer-clip": (1.0, 10),
    "trainer-clip-huge": (1e30, 10),
}


def trainer_steps(
    model: Any,
    tokens: Any,
    batch: int,
    steps: int,
    grad_clip: float = 0.0,
    log_every: int = 10,
    *,
    compile_model: bool = False,
) -> list[float]:
    """Seconds of ``steps`` loop iterations of ``Trainer.fit`` (one step's start to the next's)."""
    from llm_train import TrainConfig, Trainer

    config = TrainConfig(
        data="benchmark",
        batch_size=batch,
        max_steps=steps + 2,
        lr=1e-4,
        weight_decay=0.01,
        decay_all=True,
        grad_clip=grad_clip,
        eval_every=0,
        checkpoint_every=0,
        log_every=log_every,
        progress=False,
        compile=compile_model,
    )
    starts: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, config, train_tokens=tokens, run_dir=tmp)
        inner = trainer._train_step

        def timed() -> Any:
            starts.append(time.perf_counter())
            return inner()

        trainer._train_step = timed  # type: ignore[method-assign]
        trainer.save = lambda name=None: None  # type: ignore[method-assign]  # no checkpoint writes
        trainer.fit()
    return [b - a for a, b in itertools.pairwise(starts[1:])]  # the first allocates AdamW's state


def bare_steps(step: Any, steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def op_profile(run: Any, steps: int) -> dict[str, tuple[float, float]]:
    """Per step, the calls and self CPU seconds of each op while ``run()`` does ``steps`` steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return {e.key: (e.count / steps, e.self_cpu_time_total / 1e6 / steps) for e in prof.key_averages()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", default="768x12x12x256x50257", help="emb x layers x heads x ctx x vocab")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="a comma list of " + ", ".join(VARIANTS)
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    options = parser.parse_args()

    import numpy as np
    import torch
    from run import _shape, training_setup

    variants = {name: VARIANTS[name] for name in options.variants.split(",")}
    shape = _shape(options.shape)
    model, bare, _ = training_setup("scratchlm-sdpa", options.shape, options.batch)
    size = (options.steps + 2) * options.batch * (shape["context_length"] + 1)
    tokens = np.random.default_rng(0).integers(0, shape["vocab_size"], size=size)
    bare()  # warm-up: the allocator, the optimizer's state
    medians: dict[str, list[float]] = {"bare": [], **{v: [] for v in variants}}
    for rep in range(options.reps):
        medians["bare"].append(statistics.median(bare_steps(bare, options.steps)))
        for variant, settings in variants.items():
            times = trainer_steps(model, tokens, options.batch, options.steps, *settings)
            medians[variant].append(statistics.median(times))
        print(f"rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in medians.items()), flush=True)
    summary: dict[str, Any] = {
        "shape": options.shape,
        "batch": options.batch,
        "steps_per_rep": options.steps,
        "reps": options.reps,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "step_s": {
            k: {"median": statistics.median(v), "min": min(v), "max": max(v), "all": v}
            for k, v in medians.items()
        },
    }
    bare_median = summary["step_s"]["bare"]["median"]
    summary["vs_bare_loop"] = {k: bare_median / summary["step_s"][k]["median"] for k in variants}
    if not options.no_profile:
        profiles = {"bare": op_profile(lambda: bare_steps(bare, options.steps), options.steps)}
        for variant, settings in variants.items():
            profiles[variant] = op_profile(
                lambda s=settings: trainer_steps(model, tokens, options.batch, options.steps, *s),
                options.steps + 2,
            )
        extra: dict[str, Any] = {}
        for variant in variants:
            rows = []
            for op, (calls, seconds) in profiles[variant].items():
                base_calls, base_seconds = profiles["bare"].get(op, (0.0, 0.0))
                if calls > base_calls + 0.5 or seconds - base_seconds > 0.01:
                    rows.append(
                        {
                            "op": op,
                            "extra_calls_per_step": calls - base_calls,
                            "extra_self_s_per_step": seconds - base_seconds,
                        }
                    )
            extra[variant] = sorted(rows, key=lambda r: -r["extra_self_s_per_step"])[:20]
        summary["ops_beyond_the_bare_loop"] = extra
        summary["total_self_s_per_step"] = {k: sum(s for _, s in p.values()) for k, p in profiles.items()}
    print(json.dumps(summary, indent=2))
    options.out.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y-%m-%d')}-trainer-overhead-{options.shape}-b{options.batch}.json"
    (options.out / name).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {options.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
