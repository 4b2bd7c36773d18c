"""Where a training step's time goes: matmuls against everything else, per implementation.

Runs a few forward + backward + AdamW steps of each implementation under
``torch.profiler`` (one process each, as `run.py` measures them) and splits the
self CPU time into matrix multiplications (``mm``, ``addmm``, ``bmm``, the
attention kernel) and the rest (elementwise, softmax, normalisation, optimizer,
copies). Matmuls do the same FLOPs in every implementation, so the rest bounds
how much faster one can be than another:

    python benchmarks/profile_step.py --shape 768x12x12x256x50257 --batch 2

Writes ``benchmarks/results/<date>-profile-<shape>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MATMUL_OPS = (
    "aten::mm",
    "aten::addmm",
    "aten::addmm_",
    "aten::bmm",
    "aten::baddbmm",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
)
IMPLS = ("scratchlm-sdpa", "scratchlm-logits", "hf")


def profile(impl: str, spec: str, batch: int, steps: int) -> dict[str, Any]:
    """One implementation's steps under the profiler: seconds per op group, top other ops."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    sys.path.insert(0, str(HERE))
    from run import training_setup

    _, step, _ = training_setup(impl, spec, batch)
    step()  # warm-up
    start = time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall = (time.perf_counter() - start) / steps
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    others = sorted((e for e in events if e.key not in MATMUL_OPS), key=lambda e: -e.self_cpu_time_total)
    return {
        "step_s_profiled": wall,
        "matmul_share": matmul / total,
        "matmul_s_per_step": matmul / 1e6 / steps,
        "other_s_per_step": (total - matmul) / 1e6 / steps,
        "top_other_ops": [
            {"op": e.key, "s_per_step": e.self_cpu_time_total / 1e6 / steps} for e in others[:8]
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", default="768x12x12x256x50257", help="emb x layers x heads x ctx x vocab")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(profile(options.worker, options.shape, options.batch, options.steps)))
        return 0
    results = {}
    for impl in IMPLS:
        args = [sys.executable, __file__, "--worker", impl, "--shape", options.shape]
        args += ["--batch", str(options.batch), "--steps", str(options.steps)]
        done = subprocess.run(args, capture_output=True, text=True, check=True)
        results[impl] = json.loads(done.stdout.strip().splitlines()[-1])
        row = results[impl]
        print(
            f"{impl}: {row['step_s_profiled']:.2f} s/step, matmuls {row['matmul_s_per_step']:.2f} s "
            f"({100 * row['matmul_share']:.0f} %), other {row['other_s_per_step']:.2f} s",
            flush=True,
        )
    hf_other = results["hf"]["other_s_per_step"]
    hf_step = results["hf"]["matmul_s_per_step"] + hf_other
    ceiling = hf_step / results["hf"]["matmul_s_per_step"]
    summary = {
        "shape": options.shape,
        "batch": options.batch,
        "speedup_ceiling_vs_hf_if_nothing_but_matmuls": ceiling,
        "results": results,
    }
    print(f"ceiling vs transformers with zero non-matmul time: {ceiling:.2f}x")
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / f"{time.strftime('%Y-%m-%d')}-profile-{options.shape}-b{options.batch}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
