"""scratchlm side by side with its peers, in one run: `nox -s bench` (`-- --quick` for ~5 minutes).

Every measurement runs in its own subprocess (so each gets its own peak RSS),
and repetitions are interleaved across implementations: this machine is
noisy, so we report medians and ratios measured in the same run, never a
lone absolute time. Writes benchmarks/results/<date>.json and .md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# -- workers (run in a subprocess each) ---------------------------------------------------------


def _peak_rss_mb() -> float:
    """This process's own peak RSS: ``VmHWM`` on Linux.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries it across ``exec``, so a worker
    started by ``subprocess`` would report at least its parent's peak (the runner,
    which has held a corpus in memory), hiding any worker smaller than that.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _children_peak_rss_mb() -> float:
    """The largest peak RSS among this process's finished children (prepare's worker processes)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _shape(spec: str) -> dict[str, int]:
    emb, layers, heads, ctx, vocab = (int(x) for x in spec.split("x"))
    return {"emb_dim": emb, "n_layers": layers, "n_heads": heads, "context_length": ctx, "vocab_size": vocab}


def _build(impl: str, shape: dict[str, int]) -> Any:
    import torch

    torch.manual_seed(0)
    if impl.startswith("scratchlm"):
        from llm_model import build_model

        attention = "naive" if impl == "scratchlm-naive" else "sdpa"
        model = build_model(
            "gpt2", **shape, drop_rate=0.0, qkv_bias=True, tie_weights=True, attention=attention
        )
        return torch.compile(model) if impl == "scratchlm-compile" else model
    if impl == "hf":
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(
            n_embd=shape["emb_dim"],
            n_layer=shape["n_layers"],
            n_head=shape["n_heads"],
            n_positions=shape["context_length"],
            vocab_size=shape["vocab_size"],
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            # its best documented CPU configuration: the fused tanh GELU (GPT-2's default
            # gelu_new is unfused) and torch's scaled_dot_product_attention
            activation_function="gelu_pytorch_tanh",
            attn_implementation="sdpa",
        )
        model = GPT2LMHeadModel(config)

        class Logits(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, idx: Any) -> Any:
                return self.inner(idx).logits

        return Logits(model)
    if impl == "textbook":
        sys.path.insert(0, str(HERE))
        from textbook import GPTModel

        return GPTModel({**shape, "drop_rate": 0.0})
    raise ValueError(impl)


def training_setup(impl: str, spec: str, batch: int) -> tuple[Any, Callable[[], None], int]:
    """A model of ``impl`` and ``spec``, fused AdamW and one random batch: ``(model, step, tokens)``.

    ``step()`` runs forward, loss, backward and the optimizer once. scratchlm rows
    compute the loss as its Trainer does, ``model(x, targets=y)`` (the head and
    cross-entropy chunk by chunk); ``scratchlm-logits`` is the same model through
    its full logits and ``cross_entropy``, the way the other rows run.
    """
    import torch

    shape = _shape(spec)
    model = _build(impl, shape)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randint(0, shape["vocab_size"], (batch, shape["context_length"]))
    y = torch.randint(0, shape["vocab_size"], (batch, shape["context_length"]))
    chunked_loss = impl.startswith("scratchlm") and impl != "scratchlm-logits"

    def step() -> None:
        if chunked_loss:
            loss = model(x, targets=y)
        else:
            loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return model, step, x.numel()


def worker_train(impl: str, spec: str, batch: int, steps: int) -> dict[str, Any]:
    """A bare hand-written loop (:func:`training_setup`), fused AdamW for every implementation."""
    if impl.startswith("scratchlm-trainer"):
        return worker_trainer(spec, batch, steps, compile_model=impl.endswith("compile"))
    model, step, tokens = training_setup(impl, spec, batch)
    times = []
    for i in range(steps + 2):  # two warm-up steps (compilation, allocator)
        start = time.perf_counter()
        step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return {
        "tokens_per_s": tokens / statistics.median(times),
        "peak_rss_mb": _peak_rss_mb(),
        "params": sum(p.numel() for p in model.parameters()),
    }


def worker_trainer(spec: str, batch: int, steps: int, *, compile_model: bool) -> dict[str, Any]:
    """The same model and optimizer through ``llm_train.Trainer``: data sampling, logging and all.

    Seconds per step are the median loop iteration of ``Trainer.fit`` (timed from one
    step's start to the next's, ``trainer_overhead.trainer_steps``), with the default
    ``log_every`` (a logged step, 1 in 10, adds a gradient-norm pass); gradient
    clipping, evaluation and checkpoints are off, as in the bare loop.
    """
    import numpy as np
    from trainer_overhead import trainer_steps

    shape = _shape(spec)
    model = _build("scratchlm-sdpa", shape)
    context = shape["context_length"]
    tokens = np.random.default_rng(0).integers(
        0, shape["vocab_size"], size=(steps + 3) * batch * (context + 1)
    )
    times = trainer_steps(model, tokens, batch, steps, compile_model=compile_model)
    return {
        "tokens_per_s": batch * context / statistics.median(times),
        "peak_rss_mb": _peak_rss_mb(),
        "params": sum(p.numel() for p in model.parameters()),
    }


def worker_generate(impl: str, spec: str, batch: int, new_tokens: int) -> dict[str, Any]:
    import torch

    shape = _shape(spec)
    model = _build("hf" if impl == "hf" else "scratchlm-sdpa", shape).eval()
    prompt = torch.randint(0, shape["vocab_size"], (batch, 16))
    with torch.no_grad():
        start = time.perf_counter()
        if impl == "hf":  # EOS handling matched: neither side looks for an end token
            config = model.inner.generation_config
            config.pad_token_id, config.eos_token_id = 0, None
            out = model.inner.generate(prompt, max_new_tokens=new_tokens, do_sample=False)
        else:
            from llm_model import generate

            out = generate(model, prompt, new_tokens, use_cache=impl == "cache", eos_id=None)
        seconds = time.perf_counter() - start
    assert out.shape == (batch, 16 + new_tokens), out.shape
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return {
        "tokens_per_s": batch * new_tokens / seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "weight_bytes": weight_bytes,
    }


def worker_prepare(impl: str, corpus: str, workers: int) -> dict[str, Any]:
    size = Path(corpus).stat().st_size
    start = time.perf_counter()
    if impl == "tiktoken":
        from llm_data import gpt2_encoding

        encoding = gpt2_encoding()
        with open(corpus, encoding="utf-8") as handle:
            chunks = iter(lambda: handle.read(1 << 22), "")
            if workers == 1:
                total = sum(len(encoding.encode_ordinary(chunk)) for chunk in chunks)
            else:  # tiktoken's own threads, as many as prepare's workers
                total = 0
                while batch := list(itertools.islice(chunks, 4 * workers)):
                    encoded = encoding.encode_ordinary_batch(batch, num_threads=workers)
                    total += sum(len(ids) for ids in encoded)
    else:
        from llm_data import prepare_corpus

        with tempfile.TemporaryDirectory() as tmp:
            prepare_corpus([corpus], Path(tmp) / "out", tokenizer="gpt2", val_fraction=0.0, workers=workers)
            index = json.loads((Path(tmp) / "out" / "index.json").read_text())
            total = sum(split["tokens"] for split in index["splits"].values())
    seconds = time.perf_counter() - start
    return {
        "mb_per_s": size / 1e6 / seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "worker_peak_rss_mb": _children_peak_rss_mb(),
        "tokens": total,
    }


def worker_bpe(impl: str, corpus: str, vocab_size: int) -> dict[str, Any]:
    """Train a byte-level BPE of ``vocab_size`` on the corpus: ours vs Hugging Face ``tokenizers``."""
    text = Path(corpus).read_text(encoding="utf-8")
    start = time.perf_counter()
    if impl == "tokenizers":
        from tokenizers import ByteLevelBPETokenizer

        ByteLevelBPETokenizer().train_from_iterator([text], vocab_size=vocab_size, show_progress=False)
    else:
        from llm_data import BPETokenizer

        BPETokenizer.train(text, vocab_size)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_rss_mb()}


def worker_matmul(n: int) -> dict[str, Any]:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return {"gflops": 2 * n**3 / statistics.median(times) / 1e9}


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


WORKERS = {
    "bandwidth": worker_bandwidth,
    "train": worker_train,
    "generate": worker_generate,
    "prepare": worker_prepare,
    "bpe": worker_bpe,
    "matmul": worker_matmul,
}


# -- the runner ----------------------------------------------------------------------------------


def run_worker(kind: str, **kwargs: Any) -> dict[str, Any]:
    args = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--args", json.dumps(kwargs)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def train_flops_per_token(spec: str) -> float:
    """GPT-2's matmul FLOPs per trained token: 6 x (12 L d^2 + V d) + 12 L d T (forward + backward).

    The same analytic count for every implementation of a shape (they compute the same
    math), so MFU compares like with like whether or not the output head is tied.
    """
    s = _shape(spec)
    d, layers, ctx, vocab = s["emb_dim"], s["n_layers"], s["context_length"], s["vocab_size"]
    return 6 * (12 * layers * d * d + vocab * d) + 12 * layers * d * ctx


def make_distinct_corpus(path: Path, megabytes: float) -> None:
    """``megabytes`` of text that never repeats: CPython's documentation, then the standard
    library's source files (tests and site-packages left out) in path order; fails if short."""
    import sysconfig

    from llm_data import python_docs_text

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "test", "tests"}
    sources = sorted(f for f in stdlib.rglob("*.py") if not skip & set(f.parts))
    needed = int(megabytes * 1_000_000)
    text = python_docs_text()
    for source in sources:
        if len(text) >= needed:
            break
        text += source.read_text(encoding="utf-8", errors="replace")
    if len(text) < needed:
        raise SystemExit(f"only {len(text) / 1e6:.1f} M characters of distinct text, {megabytes} MB asked")
    path.write_text(text[:needed], encoding="utf-8")


def make_corpus(path: Path, megabytes: int) -> None:
    """A deterministic English-like corpus: CPython's documentation repeated."""
    from llm_data import python_docs_text

    text = python_docs_text()
    with path.open("w", encoding="utf-8") as handle:
        written = 0
        while written < megabytes * 1_000_000:
            handle.write(text)
            written += len(text.encode("utf-8"))


def plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "reps": 5,
            "train": [("256x4x4x256x50257", 4, 3)],
            "train_impls": [
                "scratchlm-naive",
                "scratchlm-sdpa",
                "scratchlm-logits",
                "scratchlm-trainer",
                "hf",
                "textbook",
            ],
            "generate": [("256x4x4x256x50257", 1, 50), ("256x4x4x256x50257", 8, 50)],
            "prepare_mb": 20,
            "prepare_rss_mb": None,
            "bpe_mb": 1,
            "matmul": 1024,
        }
    return {
        "reps": 5,
        "train": [("256x4x4x256x50257", 8, 5), ("768x12x12x256x50257", 2, 3), ("768x12x12x1024x50257", 1, 2)],
        "train_impls": [
            "scratchlm-naive",
            "scratchlm-sdpa",
            "scratchlm-logits",
            "scratchlm-compile",
            "scratchlm-trainer",
            "scratchlm-trainer-compile",
            "hf",
            "textbook",
        ],
        "generate": [("768x12x12x1024x50257", 1, 200), ("768x12x12x1024x50257", 8, 200)],
        "prepare_mb": 200,  # MB/s, three repetitions of each
        "prepare_rss_mb": 1000,  # peak RSS of one `prepare` run (2 workers) on 1 GB
        "bpe_mb": 5,
        "matmul": 2048,
    }


def spread(rows: list[dict[str, Any]], key: str, against: list[dict[str, Any]] | None = None) -> Any:
    """``[min, max]`` of ``key`` over ``rows``, or of the per-repetition ratio to ``against``
    (the i-th measurement of each, taken in the same interleaved repetition); None if none."""
    if against is None:
        values = [r[key] for r in rows if key in r]
    else:
        values = [a[key] / b[key] for a, b in zip(rows, against, strict=False) if key in a and b.get(key)]
    return [min(values), max(values)] if values else None


def median_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small shapes and corpus, about 5 minutes")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--from-raw",
        type=Path,
        nargs="+",
        metavar="RAW_JSON",
        help="write the tables from saved measurements instead of measuring: NAME.raw.json (kept when a "
        "run stops early) or a results NAME.json; several files are pooled (their repetitions add up)",
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 3)")
    parser.add_argument(
        "--only",
        help="comma-separated sections to measure: train, generate, data (default: all)",
    )
    parser.add_argument("--impls", help="comma-separated training implementations (default: the plan's)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(WORKERS[options.worker](**json.loads(options.args))))
        return 0

    p = plan(options.quick)
    p["reps"] = options.reps or p["reps"]
    if options.impls:
        p["train_impls"] = options.impls.split(",")
    sections = set((options.only or "train,generate,data").split(","))
    if not sections <= {"train", "generate", "data"}:
        parser.error(f"--only: expected train, generate and/or data, got {options.only!r}")
    name = f"{time.strftime('%Y-%m-%d')}{'-quick' if options.quick else ''}"
    options.out.mkdir(parents=True, exist_ok=True)
    raw_path = options.out / f"{name}.raw.json"
    raw: dict[str, list[dict[str, Any]]] = {}
    if options.from_raw:
        for path in options.from_raw:
            loaded = json.loads(path.read_text())
            for key, rows in loaded.get("raw", loaded).items():
                raw.setdefault(key, []).extend(rows)
        return write_results(raw, p, options.out, name, options.quick)

    def record(key: str, result: dict[str, Any]) -> None:
        raw.setdefault(key, []).append(result)
        print(f"{key}: {result}", flush=True)
        raw_path.write_text(json.dumps(raw, indent=1))  # nothing measured is lost if the run stops

    train = p["train"] if "train" in sections else []
    generation = p["generate"] if "generate" in sections else []
    data = "data" in sections
    with tempfile.TemporaryDirectory() as tmp:
        corpus, bpe_corpus = Path(tmp) / "corpus.txt", Path(tmp) / "bpe.txt"
        if data:
            make_corpus(corpus, p["prepare_mb"])
            make_distinct_corpus(bpe_corpus, p["bpe_mb"])  # merges on repeated text come cheaper
        for _ in range(p["reps"]):  # interleave: every implementation once per repetition
            record("matmul", run_worker("matmul", n=p["matmul"]))
            record("bandwidth", run_worker("bandwidth", megabytes=1024))
            for spec, batch, steps in train:
                for impl in p["train_impls"]:
                    record(
                        f"train|{spec}|b{batch}|{impl}",
                        run_worker("train", impl=impl, spec=spec, batch=batch, steps=steps),
                    )
            for spec, batch, new in generation:
                for impl in ("cache", "nocache", "hf"):
                    record(
                        f"generate|{spec}|b{batch}|{impl}",
                        run_worker("generate", impl=impl, spec=spec, batch=batch, new_tokens=new),
                    )
            if not data:
                continue
            for impl in ("scratchlm", "tokenizers"):
                record(f"bpe|{impl}", run_worker("bpe", impl=impl, corpus=str(bpe_corpus), vocab_size=4096))
            for impl, workers in (("tiktoken", 1), ("scratchlm", 1), ("tiktoken", 2), ("scratchlm", 2)):
                record(
                    f"prepare|{impl}|w{workers}",
                    run_worker("prepare", impl=impl, corpus=str(corpus), workers=workers),
                )

        if data and p["prepare_rss_mb"]:  # one run on the big corpus: the memory target, not a speed ratio
            big = Path(tmp) / "big.txt"
            make_corpus(big, p["prepare_rss_mb"])
            record(
                "prepare_rss|scratchlm|w2",
                run_worker("prepare", impl="scratchlm", corpus=str(big), workers=2),
            )

    write_results(raw, p, options.out, name, options.quick)
    raw_path.unlink()  # now inside NAME.json
    return 0


def write_results(
    raw: dict[str, list[dict[str, Any]]], p: dict[str, Any], out: Path, name: str, quick: bool
) -> int:
    """Medians and ratios of the measurements in ``raw``: ``out/NAME.json`` and ``.md``.

    Rows of the plan with no measurement (a run stopped early) are left out.
    """
    reps = max((len(v) for v in raw.values()), default=0)
    peak = median_of(raw.get("matmul", []), "gflops") or float("nan")
    bandwidth = median_of(raw.get("bandwidth", []), "read_gb_per_s")
    summary: dict[str, Any] = {
        "matmul_gflops_fp32": peak,
        "memory_read_gb_per_s": bandwidth,
        "repetitions": reps,
        "train": [],
        "generate": [],
        "prepare": [],
        "bpe": [],
    }
    for spec, batch, _ in p["train"]:
        hf_rows = raw.get(f"train|{spec}|b{batch}|hf", [])
        hf = median_of(hf_rows, "tokens_per_s")
        hf_mem = median_of(hf_rows, "peak_rss_mb")
        for impl in p["train_impls"]:
            rows = raw.get(f"train|{spec}|b{batch}|{impl}", [])
            if not rows:
                continue
            tps, mem = median_of(rows, "tokens_per_s"), median_of(rows, "peak_rss_mb")
            mfu = tps * train_flops_per_token(spec) / (peak * 1e9) if tps else None
            bare_impl = {
                "scratchlm-trainer": "scratchlm-sdpa",
                "scratchlm-trainer-compile": "scratchlm-compile",
            }
            bare_rows = raw.get(f"train|{spec}|b{batch}|{bare_impl.get(impl)}", [])
            bare = median_of(bare_rows, "tokens_per_s")
            summary["train"].append(
                {
                    "shape": spec,
                    "batch": batch,
                    "impl": impl,
                    "n": len(rows),
                    "tokens_per_s": tps,
                    "tokens_per_s_range": spread(rows, "tokens_per_s"),
                    "peak_rss_mb": mem,
                    "vs_hf": tps / hf if tps and hf else None,
                    "vs_hf_range": spread(rows, "tokens_per_s", hf_rows),
                    "vs_bare_loop": tps / bare if tps and bare else None,
                    "vs_bare_loop_range": spread(rows, "tokens_per_s", bare_rows),
                    "rss_vs_hf": mem / hf_mem if mem and hf_mem else None,
                    "mfu": mfu,
                    "errors": [r["error"] for r in rows if "error" in r],
                }
            )
    for spec, batch, new in p["generate"]:
        rows = {i: raw.get(f"generate|{spec}|b{batch}|{i}", []) for i in ("cache", "nocache", "hf")}
        if not any(rows.values()):
            continue
        values = {i: median_of(r, "tokens_per_s") for i, r in rows.items()}
        weight_bytes = median_of(rows["cache"], "weight_bytes")
        # Each decoding step reads every weight once: at best bandwidth / weight bytes steps per second.
        ceiling = batch * bandwidth * 1e9 / weight_bytes if bandwidth and weight_bytes else None
        summary["generate"].append(
            {
                "shape": spec,
                "batch": batch,
                "new_tokens": new,
                "n": min(len(r) for r in rows.values()),
                "bandwidth_ceiling_tokens_per_s": ceiling,
                "cache_vs_ceiling": values["cache"] / ceiling if values["cache"] and ceiling else None,
                **{f"{k}_tokens_per_s": v for k, v in values.items()},
                "cache_vs_hf": values["cache"] / values["hf"] if values["cache"] and values["hf"] else None,
                "cache_vs_hf_range": spread(rows["cache"], "tokens_per_s", rows["hf"]),
                "cache_vs_nocache": values["cache"] / values["nocache"]
                if values["cache"] and values["nocache"]
                else None,
            }
        )
    base = median_of(raw.get("prepare|tiktoken|w1", []), "mb_per_s")
    for key in ("prepare|tiktoken|w1", "prepare|scratchlm|w1", "prepare|tiktoken|w2", "prepare|scratchlm|w2"):
        if not raw.get(key):
            continue
        mbps, mem = median_of(raw.get(key, []), "mb_per_s"), median_of(raw.get(key, []), "peak_rss_mb")
        summary["prepare"].append(
            {
                "impl": key,
                "corpus_mb": p["prepare_mb"],
                "mb_per_s": mbps,
                "peak_rss_mb": mem,
                "vs_tiktoken": mbps / base if mbps and base else None,
            }
        )

    for row in raw.get("prepare_rss|scratchlm|w2", []):
        summary["prepare"].append(
            {
                "impl": "prepare|scratchlm|w2 (memory run)",
                "corpus_mb": p["prepare_rss_mb"],
                "mb_per_s": row.get("mb_per_s"),
                "peak_rss_mb": row.get("peak_rss_mb"),
                "worker_peak_rss_mb": row.get("worker_peak_rss_mb"),
                "vs_tiktoken": None,
            }
        )

    ours, theirs = (
        median_of(raw.get("bpe|scratchlm", []), "seconds"),
        median_of(raw.get("bpe|tokenizers", []), "seconds"),
    )
    if ours or theirs:
        summary["bpe"].append(
            {
                "corpus_mb": p["bpe_mb"],
                "vocab_size": 4096,
                "scratchlm_s": ours,
                "tokenizers_s": theirs,
                "time_vs_tokenizers": ours / theirs if ours and theirs else None,
            }
        )
    import torch

    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    (out / f"{name}.json").write_text(
        json.dumps({"machine": machine, "summary": summary, "raw": raw}, indent=2)
    )
    (out / f"{name}.md").write_text(markdown(machine, summary, quick))
    print((out / f"{name}.md").read_text())
    return 0


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _range(bounds: list[float] | None, spec: str) -> str:
    return "" if not bounds else f" [{format(bounds[0], spec)}-{format(bounds[1], spec)}]"


def _fmt(value: Any, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(machine: dict[str, Any], s: dict[str, Any], quick: bool) -> str:
    lines = [
        f"# Benchmarks ({'quick' if quick else 'full'}), {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {machine['processor']}, {machine['cpus']} CPUs, torch {machine['torch']} "
        f"({machine['threads']} threads), {machine['platform']}. Measured fp32 matmul peak: "
        f"{s['matmul_gflops_fp32']:.1f} GFLOP/s; memory read bandwidth: "
        f"{_fmt(s.get('memory_read_gb_per_s'), '.1f')} GB/s. Medians of interleaved repetitions (`n` per "
        "row), one process each; [min-max] over the repetitions, of a ratio over each repetition's pair.",
        "",
        "## Training (forward + backward + AdamW)",
        "",
        "Every implementation uses fused `torch.optim.AdamW`. `scratchlm-trainer` is the same model "
        "through `llm_train.Trainer` (data sampling, per-step metrics); *vs bare loop* is its overhead. "
        "scratchlm rows compute the loss as the Trainer does, `model(x, targets=y)` (output head and "
        "cross-entropy a chunk of tokens at a time); `scratchlm-logits` is `scratchlm-sdpa` through "
        "full logits and `cross_entropy`, as transformers and the textbook model run.",
        "",
        "| shape (emb x layers x heads x ctx x vocab) | batch | implementation | n | tokens/s | vs transformers | vs bare loop | peak RSS MB | RSS vs transformers | MFU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["train"]:
        lines.append(
            f"| {r['shape']} | {r['batch']} | {r['impl']} | {r.get('n', '')} | {_fmt(r['tokens_per_s'])}{_range(r.get('tokens_per_s_range'), '.0f')} | {_fmt(r['vs_hf'], '.2f')}x{_range(r.get('vs_hf_range'), '.2f')} "
            f"| {_ratio(r.get('vs_bare_loop'))}{_range(r.get('vs_bare_loop_range'), '.2f')} | {_fmt(r['peak_rss_mb'])} | {_fmt(r['rss_vs_hf'], '.2f')} | {_fmt(r['mfu'] and 100 * r['mfu'], '.1f')}% |"
        )
    lines += [
        "",
        "## Generation (greedy, prompt 16 tokens)",
        "",
        "*Bandwidth ceiling*: batch x memory bandwidth / weight bytes, the rate at which decoding could "
        "run if reading every weight once per step were its only cost.",
        "",
        "| shape | batch | new tokens | n | KV cache tok/s | no cache tok/s | transformers tok/s | cache vs transformers | cache vs no cache | bandwidth ceiling tok/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["generate"]:
        lines.append(
            f"| {r['shape']} | {r['batch']} | {r['new_tokens']} | {r.get('n', '')} | {_fmt(r['cache_tokens_per_s'])} | "
            f"{_fmt(r['nocache_tokens_per_s'])} | {_fmt(r['hf_tokens_per_s'])} | {_fmt(r['cache_vs_hf'], '.2f')}x{_range(r.get('cache_vs_hf_range'), '.2f')} | "
            f"{_fmt(r['cache_vs_nocache'], '.2f')}x | {_fmt(r.get('bandwidth_ceiling_tokens_per_s'))} |"
        )
    lines += [
        "",
        "## Data preparation (GPT-2 BPE)",
        "",
        "| implementation | corpus MB | MB/s | vs bare tiktoken | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for r in s["prepare"]:
        lines.append(
            f"| {r['impl']} | {r['corpus_mb']} | {_fmt(r['mb_per_s'], '.2f')} | {_ratio(r['vs_tiktoken'])} | {_fmt(r['peak_rss_mb'])} |"
        )
    lines += [
        "",
        "## BPE training (byte-level, 4096 tokens)",
        "",
        "| corpus MB | scratchlm s | tokenizers s | time vs tokenizers |",
        "|---|---|---|---|",
    ]
    for r in s["bpe"]:
        lines.append(
            f"| {r['corpus_mb']} | {_fmt(r['scratchlm_s'], '.2f')} | {_fmt(r['tokenizers_s'], '.2f')} | {_fmt(r['time_vs_tokenizers'], '.1f')}x |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
