"""The output head + cross-entropy alone (forward and backward), by chunk size, against full logits.

GPT-2's head (50,257 x 768, fp32) over 512 and 1,024 tokens: ``llm_model.linear_cross_entropy``
with chunks of 8, 16, 32 and 64 Mi logits (``CHUNK_ELEMENTS``; 8 Mi is the default, ~166
tokens a chunk) against ``cross_entropy(hidden @ W.T)``. Variants interleaved, median
[min-max] of ``--reps`` calls after one warm-up each.

    python benchmarks/head_chunks.py --reps 5

Writes ``benchmarks/results/<date>-head-chunks.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

import llm_model.head_loss as head_loss

HERE = Path(__file__).resolve().parent
CHUNKS = {"chunk8Mi": 1 << 23, "chunk16Mi": 1 << 24, "chunk32Mi": 1 << 25, "chunk64Mi": 1 << 26}


def variants(hidden: Tensor, weight: Tensor, targets: Tensor) -> dict[str, Callable[[], None]]:
    """Each variant: one forward and backward of the head and its loss."""

    def full() -> None:
        torch.nn.functional.cross_entropy(hidden @ weight.t(), targets).backward()  # (n, vocab) logits

    def chunked(elements: int) -> Callable[[], None]:
        def run() -> None:
            head_loss.CHUNK_ELEMENTS = elements
            head_loss.linear_cross_entropy(hidden, weight, targets).backward()

        return run

    return {"full-logits": full, **{name: chunked(n) for name, n in CHUNKS.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    options = parser.parse_args()
    default = head_loss.CHUNK_ELEMENTS
    torch.manual_seed(0)
    vocab, dim = 50257, 768
    weight = (torch.randn(vocab, dim) * 0.02).requires_grad_()
    rows = []
    for tokens in (512, 1024):
        hidden = torch.randn(tokens, dim, requires_grad=True)
        targets = torch.randint(0, vocab, (tokens,))
        runs = variants(hidden, weight, targets)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for run in runs.values():
            run()  # warm-up
        for rep in range(options.reps):
            order = list(runs) if rep % 2 == 0 else list(runs)[::-1]
            for name in order:
                weight.grad = hidden.grad = None
                started = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - started)
        full = statistics.median(times["full-logits"])
        for name, values in times.items():
            median = statistics.median(values)
            rows.append(
                {
                    "tokens": tokens,
                    "variant": name,
                    "median_s": median,
                    "min_s": min(values),
                    "max_s": max(values),
                    "full_logits_time_over_this": full / median,
                }
            )
            print(f"{tokens} tokens {name}: {median:.3f} s [{min(values):.3f}-{max(values):.3f}]", flush=True)
    head_loss.CHUNK_ELEMENTS = default
    result = {"threads": torch.get_num_threads(), "torch": torch.__version__, "reps": options.reps}
    result["rows"] = rows
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / f"{time.strftime('%Y-%m-%d')}-head-chunks.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
