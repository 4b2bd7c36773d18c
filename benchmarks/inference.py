"""Decoding at the machine's limit (issue #23): scratchlm fp32 / bf16 / int8 against transformers' fp32.

Speed: GPT-2 124M (random weights: speed does not depend on them), a 16-token
prompt, greedy, batch 1 and 8, 200 new tokens. scratchlm's ``generate`` after
``quantize_model(model, none|bf16|int8)``, against ``transformers``'
``GPT2LMHeadModel.generate`` at its best configuration here: the fused
``gelu_pytorch_tanh`` GELU, no end-of-text stop (as ours: neither stops early),
sdpa attention, and its dynamic cache and its static cache both measured (the
ratios use the faster). Every measurement runs in its own process; repetitions
are interleaved across implementations, and each repetition also measures the
memory read bandwidth (summing a 1 GB tensor), so each row is set against the
ceiling that bandwidth puts on decoding: batch x bandwidth / the bytes one step
actually reads (every linear weight in its stored dtype and the tied head once,
the norms, the prompt's embedding rows and the KV cache at its mean length).

Quality: on trained checkpoints, perplexity on held-out tokens and top-1
next-token agreement with fp32, per precision: the demo's model (``--demo``:
the directory ``scratchlm demo --out DIR`` wrote; held out: its validation
shard) and the book's chapter-5 model (``--book-ch5``: a checkpoint directory,
e.g. ``scratchlm pretrain --config examples/configs/book-ch5.toml --out
runs/ch5`` then ``runs/ch5/final``; held out: the-verdict.txt's last 10 % of
characters, the book's validation split, then the book's instruction data's
responses, never trained on, up to 12,000 tokens).

The full run, on a quiet machine (about 25 minutes on 2 CPU cores, plus ~3 for the demo)::

    scratchlm demo --out runs/demo
    python benchmarks/inference.py --demo runs/demo --book-ch5 runs/ch5/final --label "quiet machine"

A short check that everything works (2 repetitions, 32 new tokens)::

    python benchmarks/inference.py --quick --label "busy machine"

Writes benchmarks/results/<date>-inference.json (raw + summary) and .md, and the
plot docs/assets/inference.png.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROMPT_TOKENS = 16
OURS = {"fp32": "none", "bf16": "bf16", "int8": "int8"}  # implementation -> quantize_model mode
PEERS = ("hf", "hf-static")
IMPLS = (*OURS, *PEERS)
LABELS = {
    "fp32": "scratchlm fp32",
    "bf16": "scratchlm bf16",
    "int8": "scratchlm int8",
    "hf": "transformers fp32",
    "hf-static": "transformers fp32, static cache",
}

# -- workers (each in its own process) ----------------------------------------------------------


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover - not Linux


def bytes_per_step(model: Any, batch: int, mean_length: float) -> dict[str, float]:
    """Bytes one decoding step of ``batch`` rows reads: weights as stored, and the KV cache.

    A linear layer's whole weight (a tied head too: it reads the embedding matrix), the
    other parameters of every module, ``batch`` rows of each embedding table; int8
    layers their int8 weight and float scales. The KV cache: keys and values of every
    layer at ``mean_length`` positions.
    """
    from torch import nn
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    weights = 0.0
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            weights += batch * module.embedding_dim * module.weight.element_size()
            continue
        if isinstance(module, DynamicInt8Linear):
            weight = module.weight()
            weights += weight.numel() + weight.shape[0] * 8  # int8 values, a scale and zero point a row
            bias = module.bias()
            weights += 0 if bias is None else bias.numel() * bias.element_size()
            continue
        for tensor in module.parameters(recurse=False):
            weights += tensor.numel() * tensor.element_size()
    config = model.config
    itemsize = model.tok_emb.weight.element_size()
    cache = 2 * config.n_layers * batch * mean_length * config.kv_heads * config.head_dim * itemsize
    return {"weights": weights, "kv_cache": cache, "total": weights + cache}


def worker_speed(impl: str, batch: int, new_tokens: int) -> dict[str, Any]:
    """Greedy tokens/s of ``impl`` for ``batch`` rows of ``new_tokens`` after a 16-token prompt."""
    import torch

    torch.manual_seed(0)
    prompt = torch.randint(0, 50257, (batch, PROMPT_TOKENS))
    from llm_model import build_model, generate, quantize_model

    ours = build_model("gpt2", "gpt2-124m", drop_rate=0.0, qkv_bias=True, tie_weights=True).eval()
    read = bytes_per_step(ours, batch, PROMPT_TOKENS + new_tokens / 2)  # fp32: transformers reads the same
    if impl in OURS:
        model = quantize_model(ours, OURS[impl])
        read = bytes_per_step(model, batch, PROMPT_TOKENS + new_tokens / 2)

        def run(n: int) -> Any:
            return generate(model, prompt, n)
    else:
        del ours
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(
            activation_function="gelu_pytorch_tanh", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0
        )
        hf = GPT2LMHeadModel(config).eval()
        options: dict[str, Any] = {"do_sample": False, "eos_token_id": None, "pad_token_id": 0}
        if impl == "hf-static":
            options["cache_implementation"] = "static"
        mask = torch.ones_like(prompt)

        def run(n: int) -> Any:
            return hf.generate(prompt, attention_mask=mask, max_new_tokens=n, **options)

    with torch.no_grad():
        run(4)  # warm-up: first-call allocations and kernel choices
        start = time.perf_counter()
        out = run(new_tokens)
        seconds = time.perf_counter() - start
    assert out.shape == (batch, PROMPT_TOKENS + new_tokens), out.shape
    return {
        "tokens_per_s": batch * new_tokens / seconds,
        "bytes_per_step": read,
        "peak_rss_mb": _peak_rss_mb(),
        "threads": torch.get_num_threads(),
    }


def worker_bandwidth(megabytes: int) -> dict[str, Any]:
    """Memory read bandwidth: summing a tensor far larger than the caches (what bounds decoding)."""
    import torch

    data = torch.ones(megabytes * 2**20 // 4)
    for _ in range(2):
        data.sum()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        data.sum()
        times.append(time.perf_counter() - start)
    return {"read_gb_per_s": data.numel() * 4 / statistics.median(times) / 1e9}


def _held_out(source: str, path: str, tokenizer: Any, limit: int) -> tuple[list[int], str]:
    """Held-out token ids for a quality row, and what they are."""
    import numpy as np

    if source == "demo":
        prepared = Path(path) / "data" / "prepared"
        index = json.loads((prepared / "index.json").read_text())
        shard = index["splits"]["val"]["shards"][0]["file"]
        ids = np.fromfile(prepared / shard, dtype=index["dtype"]).astype("int64").tolist()
        return ids[:limit], f"the demo's validation shard ({len(ids):,} tokens)"
    data = ROOT.parent / "shared" / "data"
    verdict = (data / "the-verdict.txt").read_text(encoding="utf-8")
    ids = tokenizer.encode(verdict[int(0.9 * len(verdict)) :])
    what = f"the-verdict.txt's validation 10 % ({len(ids)} tokens)"
    if len(ids) < limit:
        records = json.loads((data / "instruction-data.json").read_text(encoding="utf-8"))
        extra = tokenizer.encode("\n\n".join(r["output"] for r in records))[: limit - len(ids)]
        ids += extra
        what += f" + the book's instruction responses ({len(extra)} tokens)"
    return ids[:limit], what


def worker_quality(name: str, checkpoint: str, source: str, limit: int = 12_000) -> dict[str, Any]:
    """Held-out perplexity and top-1 agreement with fp32 of every precision, for one checkpoint."""
    import torch
    import torch.nn.functional as F

    from llm_core import load_tokenizer
    from llm_model import load_pretrained, quantize_model

    directory = Path(checkpoint)  # a checkpoint, a run directory (its final/) or a demo's --out (run/final/)
    candidates = (directory / "run" / "final", directory / "final", directory)
    model_dir = next((d for d in candidates if (d / "config.json").exists()), directory)
    base = load_pretrained(model_dir, dtype="fp32").eval()
    tokenizer = load_tokenizer(base.checkpoint_config.get("tokenizer") or "gpt2")
    ids, what = _held_out(source, checkpoint, tokenizer, limit)
    width = base.config.context_length
    n = (len(ids) - 1) // width
    tokens = torch.tensor(ids[: n * width + 1])
    inputs, targets = tokens[:-1].view(n, width), tokens[1:].view(n, width)  # (n, width)

    def logits(model: Any) -> torch.Tensor:
        # One window a forward, as a batch-1 prefill: int8's activation scale is one per input
        # tensor, so batching windows together coarsens it (docs/inference.md: the demo's model).
        with torch.no_grad():
            return torch.cat([model(row[None]).float() for row in inputs])  # (n, width, vocab)

    reference = logits(base)
    rows = []
    for label, mode in OURS.items():
        out = reference if mode == "none" else logits(quantize_model(copy.deepcopy(base), mode))
        nll = F.cross_entropy(out.flatten(0, 1), targets.flatten()).item()
        agreement = (out.argmax(-1) == reference.argmax(-1)).float().mean().item()
        rows.append({"precision": label, "perplexity": math.exp(nll), "top1_agreement": agreement})
    fp32 = rows[0]["perplexity"]
    for row in rows:
        row["perplexity_delta"] = row["perplexity"] / fp32 - 1
    return {"name": name, "held_out": what, "positions": targets.numel(), "rows": rows}


WORKERS = {"speed": worker_speed, "bandwidth": worker_bandwidth, "quality": worker_quality}


# -- the runner ----------------------------------------------------------------------------------


def run_worker(kind: str, threads: int | None, **kwargs: Any) -> dict[str, Any]:
    args = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--args", json.dumps(kwargs)]
    args += [] if threads is None else ["--threads", str(threads)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {kind} {kwargs} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarise(raw: dict[str, Any], batches: list[int]) -> dict[str, Any]:
    """Medians with spread per row, and per-repetition ratios (measured side by side) with theirs."""
    bandwidth = _spread([r["read_gb_per_s"] for r in raw["bandwidth"]]) if raw["bandwidth"] else None
    speed = []
    for batch in batches:
        reps = raw["speed"][str(batch)]  # one dict impl -> result per repetition
        if not reps:
            continue
        rows = {}
        for impl in IMPLS:
            results = [rep[impl] for rep in reps if impl in rep]
            if not results:
                continue
            tps = _spread([r["tokens_per_s"] for r in results])
            read = results[0]["bytes_per_step"]["total"]
            ceilings = [batch * bw["read_gb_per_s"] * 1e9 / read for bw in raw["bandwidth"]]
            rows[impl] = {
                "tokens_per_s": tps,
                "bytes_per_step_mb": read / 1e6,
                "ceiling_tokens_per_s": statistics.median(ceilings),
                "of_ceiling": tps["median"] / statistics.median(ceilings),
                "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in results),
            }
        best_peer = max((p for p in PEERS if p in rows), key=lambda p: rows[p]["tokens_per_s"]["median"])

        def ratio(a: str, b: str, reps: list[dict[str, Any]] = reps) -> dict[str, float]:
            return _spread([rep[a]["tokens_per_s"] / rep[b]["tokens_per_s"] for rep in reps])

        ratios = {f"{impl}_vs_transformers": ratio(impl, best_peer) for impl in OURS}
        ratios |= {f"{impl}_vs_fp32": ratio(impl, "fp32") for impl in ("bf16", "int8")}
        speed.append({"batch": batch, "best_transformers": best_peer, "rows": rows, "ratios": ratios})
    return {"memory_read_gb_per_s": bandwidth, "speed": speed, "quality": raw.get("quality", [])}


def markdown(meta: dict[str, Any], s: dict[str, Any]) -> str:
    lines = [
        f"# Inference: precisions against transformers ({meta['date']}, {meta['label']})",
        "",
        f"`python benchmarks/inference.py {meta['argv']}`; {meta['machine']}.",
    ]
    if s["speed"]:
        bw = s["memory_read_gb_per_s"]
        lines += [
            f"GPT-2 124M (random weights), {PROMPT_TOKENS}-token prompt, greedy, {meta['new_tokens']} new "
            f"tokens, {meta['reps']} interleaved repetitions. Memory read bandwidth {bw['median']:.1f} GB/s "
            f"(min {bw['min']:.1f}, max {bw['max']:.1f}).",
            "",
            "*Ceiling*: batch x bandwidth / bytes one step reads (weights as stored + KV cache at its mean "
            "length). Ratios are medians of per-repetition ratios (min-max).",
            "",
            "| batch | implementation | tokens/s (min-max) | MB read a step "
            "| ceiling tokens/s | of ceiling |",
            "|---|---|---|---|---|---|",
        ]
    for group in s["speed"]:
        for impl, row in group["rows"].items():
            t = row["tokens_per_s"]
            lines.append(
                f"| {group['batch']} | {LABELS[impl]} | {t['median']:.1f} ({t['min']:.1f}-{t['max']:.1f}) | "
                f"{row['bytes_per_step_mb']:.0f} | {row['ceiling_tokens_per_s']:.1f} | "
                f"{row['of_ceiling']:.0%} |"
            )
    if s["speed"]:
        lines += ["", "| batch | ratio | median (min-max) |", "|---|---|---|"]
    for group in s["speed"]:
        for key, r in group["ratios"].items():
            peer = LABELS[group["best_transformers"]] if key.endswith("transformers") else "scratchlm fp32"
            name = f"{LABELS[key.split('_vs_')[0]]} vs {peer}"
            lines.append(
                f"| {group['batch']} | {name} | {r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f}) |"
            )
    for q in s["quality"]:
        lines += [
            "",
            f"Quality, {q['name']}: {q['positions']:,} held-out positions ({q['held_out']}).",
            "",
            "| precision | perplexity | vs fp32 | top-1 agreement with fp32 |",
            "|---|---|---|---|",
        ]
        for row in q["rows"]:
            lines.append(
                f"| {row['precision']} | {row['perplexity']:.3f} | {row['perplexity_delta']:+.2%} | "
                f"{row['top1_agreement']:.2%} |"
            )
    return "\n".join(lines) + "\n"


def plot(s: dict[str, Any], path: Path, label: str) -> bool:
    """Tokens/s per implementation and batch against the ceiling, as a PNG; False without matplotlib."""
    if not s["speed"]:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(s["speed"]), figsize=(5 * len(s["speed"]), 4), squeeze=False)
    for ax, group in zip(axes[0], s["speed"], strict=True):
        impls = list(group["rows"])
        values = [group["rows"][i]["tokens_per_s"]["median"] for i in impls]
        errors = [
            [v - group["rows"][i]["tokens_per_s"]["min"] for i, v in zip(impls, values, strict=True)],
            [group["rows"][i]["tokens_per_s"]["max"] - v for i, v in zip(impls, values, strict=True)],
        ]
        ceilings = [group["rows"][i]["ceiling_tokens_per_s"] for i in impls]
        x = range(len(impls))
        ax.bar(
            x, values, yerr=errors, color=["#4c72b0", "#55a868", "#c44e52", "#8c8c8c", "#b0b0b0"][: len(x)]
        )
        ax.scatter(x, ceilings, marker="_", s=600, color="black", label="bandwidth ceiling")
        ax.set_xticks(list(x), [LABELS[i].replace(", ", "\n") for i in impls], rotation=30, fontsize=7)
        ax.set_title(f"GPT-2 124M, batch {group['batch']}")
        ax.set_ylabel("tokens/s")
        ax.legend(fontsize=7)
    fig.suptitle(f"Greedy decoding tokens/s ({label})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return True


def measure_speed(raw: dict[str, Any], meta: dict[str, Any], threads: int | None) -> None:
    """Every implementation at every batch size, once a repetition, with the bandwidth measured each time."""
    reps = meta["reps"]
    for rep in range(reps):  # interleave: every implementation once per repetition
        raw["bandwidth"].append(run_worker("bandwidth", threads, megabytes=1024))
        print(f"rep {rep + 1}/{reps}: bandwidth {raw['bandwidth'][-1]}", flush=True)
        for batch in meta["batches"]:
            results = {}
            for impl in IMPLS:
                results[impl] = run_worker(
                    "speed", threads, impl=impl, batch=batch, new_tokens=meta["new_tokens"]
                )
                speed = results[impl]["tokens_per_s"]
                print(f"rep {rep + 1}/{reps}: batch {batch} {impl}: {speed:.1f} tok/s", flush=True)
            raw["speed"][str(batch)].append(results)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 repetitions of 32 new tokens: a check, not figures"
    )
    parser.add_argument("--reps", type=int, help="interleaved repetitions (default 5; --quick 2)")
    parser.add_argument("--new-tokens", type=int, help="new tokens a row (default 200; --quick 32)")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    parser.add_argument("--demo", type=Path, help="a `scratchlm demo --out DIR` directory: its quality rows")
    parser.add_argument("--book-ch5", type=Path, help="the book's chapter-5 checkpoint: its quality rows")
    parser.add_argument("--label", default="quiet machine", help="how loaded the machine was, for the tables")
    parser.add_argument(
        "--threads", type=int, help="torch threads in every worker (default: torch's, one a core)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "assets" / "inference.png")
    parser.add_argument(
        "--from-results",
        type=Path,
        metavar="JSON",
        help="take the speed rows from an earlier results file (measure only the quality rows asked for)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        if options.threads is not None:
            import torch

            torch.set_num_threads(options.threads)
        print(json.dumps(WORKERS[options.worker](**json.loads(options.args))))
        return 0

    import platform

    import torch

    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "label": options.label,
        "argv": shlex.join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"torch threads: {options.threads or torch.get_num_threads()}",
        "reps": options.reps or (2 if options.quick else 5),
        "new_tokens": options.new_tokens or (32 if options.quick else 200),
        "batches": [int(b) for b in options.batches.split(",")],
    }
    raw: dict[str, Any] = {"bandwidth": [], "speed": {str(b): [] for b in meta["batches"]}, "quality": []}
    if options.from_results:  # its speed rows (and the quality rows not measured again)
        saved = json.loads(options.from_results.read_text())
        meta |= {k: saved["meta"][k] for k in ("label", "argv", "machine", "reps", "new_tokens")}
        meta["argv"] += f"; then {shlex.join(sys.argv[1:])}"
        raw = saved["raw"]
        meta["batches"] = [int(b) for b in raw["speed"]]
    else:
        measure_speed(raw, meta, options.threads)
    for name, path, source in (("demo", options.demo, "demo"), ("book-ch5", options.book_ch5, "book")):
        if path is not None:
            raw["quality"] = [q for q in raw["quality"] if q["name"] != name]
            raw["quality"].append(
                run_worker("quality", options.threads, name=name, checkpoint=str(path), source=source)
            )
            print(f"quality {name}: {raw['quality'][-1]}", flush=True)
    batches = meta["batches"]
    summary = summarise(raw, batches)
    options.out.mkdir(parents=True, exist_ok=True)
    stem = options.out / f"{meta['date']}-inference"
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": summary, "raw": raw}, indent=1))
    stem.with_suffix(".md").write_text(markdown(meta, summary))
    plotted = plot(summary, options.plot, options.label)
    print(markdown(meta, summary))
    print(f"wrote {stem}.json, {stem}.md" + (f", {options.plot}" if plotted else " (no matplotlib: no plot)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
