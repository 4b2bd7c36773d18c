"""`scratchlm serve` (continuous batching) under 1, 4, 8 and 16 concurrent streaming clients.

Full run, on a quiet machine (about 20 minutes on 2 CPUs; results/<date>-serve.{json,md}):

    python benchmarks/serve.py

  = --models tiny,gpt2-124m --concurrency 1,4,8,16 --new-tokens 128 --reps 5
    --requests-per-client 3 --threads 1

Quick check that it works (a couple of minutes; write it elsewhere, it is not a result):

    python benchmarks/serve.py --quick --out /tmp/serve-bench

For each model (random weights: ``tiny`` is GPT-2-style 256 x 4 layers x 4 heads,
context 256, GPT-2 vocabulary; ``gpt2-124m`` the preset; or any
``emb x layers x heads x ctx x vocab``), a checkpoint is served by
``scratchlm serve --max-batch-size <most clients>`` on 127.0.0.1 in its own
process. Each repetition runs every concurrency level once (interleaved, the
order rotated each repetition, so drift on a noisy machine hits every row alike):
N client threads each stream ``--requests-per-client`` greedy ``/api/generate``
requests of ``--new-tokens`` tokens, one after the other. ``--direct`` adds a
row per model: a fresh process calling ``llm_model.generate`` on the same
prompts, one at a time (the one-stream ceiling without HTTP).

Reported per model and level: aggregate generated tokens/s (median of the
repetitions, with min-max), p50 time to the first streamed piece (median of
each repetition's p50, with min-max), p50/p99 request latency (pooled), the
server's resident memory after each repetition and its peak (``VmHWM``), and
the ratios the targets are about: tokens/s at N clients over 1 client's, p50
time to first token at N clients over 1 client's (each the median of the
per-repetition ratios, the rows of one repetition being measured side by side).
Targets (issue 23): at 8 clients, >= 4x the tokens/s and <= 2x the p50 time to
first token of 1 client; memory flat from the first repetition to the last.
Server and direct worker get ``--threads`` torch threads (default 1: on a
2-CPU machine the load generator needs the other one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import _fmt, _shape  # noqa: E402  (the house helpers of benchmarks/run.py)

NAME = "bench-gpt"
#: Named models: a registered GPT-2 preset, or a shape (emb x layers x heads x ctx x vocab).
MODELS = {"tiny": "256x4x4x256x50257", "gpt2-124m": "gpt2-124m"}


def make_checkpoint(directory: Path, model: str) -> Path:
    """A GPT-2-style checkpoint with random weights: ``model`` is a name of :data:`MODELS` or a shape."""
    import torch

    from llm_model import build_model, save_pretrained

    spec = MODELS.get(model, model)
    torch.manual_seed(0)
    if "x" in spec:
        net = build_model("gpt2", **_shape(spec), drop_rate=0.0, qkv_bias=True, tie_weights=True)
    else:
        net = build_model("gpt2", spec, drop_rate=0.0)
    return save_pretrained(net, directory / model / NAME, tokenizer="gpt2")


def make_prompts(count: int, tokens: int) -> list[str]:
    """``count`` prompts of about ``tokens`` GPT-2 tokens each, cut from CPython's documentation."""
    from llm_data import get_tokenizer, python_docs_text

    tokenizer = get_tokenizer("gpt2")
    ids = tokenizer.encode(python_docs_text()[:200_000])
    return [tokenizer.decode(ids[i * 97 : i * 97 + tokens]) for i in range(count)]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def memory(pid: int) -> dict[str, int | None]:
    """Resident memory of ``pid`` now (``VmRSS``) and at its peak (``VmHWM``), in bytes."""
    found: dict[str, int | None] = {"rss": None, "peak": None}
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return found
    for line in status.splitlines():
        key = {"VmRSS:": "rss", "VmHWM:": "peak"}.get(line.split(":")[0] + ":")
        if key:
            found[key] = int(line.split()[1]) * 1024
    return found


# -- direct generation (a worker process of its own) ------------------------------------------------


def worker_direct(checkpoint: str, prompts: list[str], new_tokens: int) -> dict[str, Any]:
    """Greedy ``generate`` on every prompt in turn, after one warm-up; seconds and tokens."""
    from llm_eval.checkpoints import load_model_and_tokenizer
    from llm_model import generate

    model, tokenizer = load_model_and_tokenizer(checkpoint)
    eos = tokenizer.eot_token
    generate(model, tokenizer.encode(prompts[0]), 4, eos_id=eos)  # warm-up
    latencies, produced = [], 0
    start = time.perf_counter()
    for prompt in prompts:
        begin = time.perf_counter()
        ids = tokenizer.encode(prompt)
        new = generate(model, ids, new_tokens, eos_id=eos)[len(ids) :].tolist()
        produced += len(new) - (1 if new and new[-1] == eos else 0)
        tokenizer.decode(new)
        latencies.append(time.perf_counter() - begin)
    return {
        "requests": len(prompts),
        "tokens": produced,
        "seconds": time.perf_counter() - start,
        "latencies": latencies,
    }


def run_direct(checkpoint: Path, prompts: list[str], new_tokens: int, env: dict[str, str]) -> dict[str, Any]:
    args = json.dumps({"checkpoint": str(checkpoint), "prompts": prompts, "new_tokens": new_tokens})
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", args],
        capture_output=True,
        text=True,
        timeout=3600,
        env={**os.environ, **env},
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- load through the server -----------------------------------------------------------------------


def run_load(url: str, prompts: list[str], new_tokens: int, clients: int, per_client: int) -> dict[str, Any]:
    """``clients`` threads, each streaming ``per_client`` greedy requests one after the other."""
    import httpx

    lock = threading.Lock()
    latencies: list[float] = []
    first_pieces: list[float] = []
    steady: list[float] = []  # first pieces of the requests after each client's first (no burst)
    tokens = [0]
    errors: list[str] = []
    go = threading.Barrier(clients)

    def client(index: int) -> None:
        with httpx.Client(timeout=600) as http:
            go.wait()  # every client starts at once
            for k in range(per_client):
                body = {
                    "model": NAME,
                    "prompt": prompts[(index * per_client + k) % len(prompts)],
                    "options": {"num_predict": new_tokens, "temperature": 0},
                }
                begin = time.perf_counter()
                first = None
                try:
                    with http.stream("POST", f"{url}/api/generate", json=body) as response:
                        response.raise_for_status()
                        for line in response.iter_lines():
                            if not line:
                                continue
                            item = json.loads(line)
                            if first is None and item.get("response"):
                                first = time.perf_counter() - begin
                            if item.get("done"):
                                with lock:
                                    tokens[0] += int(item["eval_count"])
                except Exception as exc:  # counted and reported, never silent
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - begin
                with lock:
                    latencies.append(elapsed)
                    first_pieces.append(elapsed if first is None else first)
                    if k > 0:
                        steady.append(first_pieces[-1])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "requests": len(latencies),
        "tokens": tokens[0],
        "seconds": time.perf_counter() - start,
        "latencies": latencies,
        "first_pieces": first_pieces,
        "first_pieces_steady": steady,
        "errors": errors,
    }


# -- the summary -----------------------------------------------------------------------------------


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(model: str, raw: dict[str, list[dict[str, Any]]], levels: list[int]) -> list[dict[str, Any]]:
    """One row per mode of ``model``: rates with their spread over repetitions, ratios to 1 client."""
    rows = []
    for mode, results in raw.items():
        ok = [r for r in results if "error" not in r]
        rates = [r["tokens"] / r["seconds"] for r in ok]
        ttft = [p for r in ok if (p := percentile(r.get("first_pieces", []), 50)) is not None]
        steady = [p for r in ok if (p := percentile(r.get("first_pieces_steady", []), 50)) is not None]
        latencies = [x for r in ok for x in r["latencies"]]
        row: dict[str, Any] = {
            "model": model,
            "mode": mode,
            "repetitions": len(ok),
            "requests": sum(r["requests"] for r in ok),
            "errors": sum(len(r.get("errors", [])) for r in ok) + len(results) - len(ok),
            "tokens_per_s": _spread(rates),
            "p50_first_piece_s": _spread(ttft),
            "p50_first_piece_steady_s": _spread(steady),
            "p50_latency_s": percentile(latencies, 50),
            "p99_latency_s": percentile(latencies, 99),
            "rss_mb_after_each_rep": [round(r["rss"] / 2**20, 1) for r in ok if r.get("rss") is not None],
        }
        rows.append(row)
    one = raw.get("serve c1", [])
    for row in rows:
        if not row["mode"].startswith("serve c") or not one:
            continue
        mine = raw[row["mode"]]
        pairs = [(a, b) for a, b in zip(mine, one, strict=False) if "error" not in a and "error" not in b]
        speedups = [(a["tokens"] / a["seconds"]) / (b["tokens"] / b["seconds"]) for a, b in pairs]
        row["tokens_per_s_vs_c1"] = _spread(speedups)
        for key in ("first_pieces", "first_pieces_steady"):
            ratios = [
                pa / pb
                for a, b in pairs
                if (pa := percentile(a.get(key, []), 50)) and (pb := percentile(b.get(key, []), 50))
            ]
            row[f"p50_{key.replace('pieces', 'piece')}_vs_c1"] = _spread(ratios)
    return rows


def markdown(machine: dict[str, Any], settings: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    load = machine["load_average_1min"]
    lines = [
        f"# Serving benchmark (continuous batching), {time.strftime('%Y-%m-%d')}"
        + (" — quick check" if settings["quick"] else ""),
        "",
        f"Machine: {machine['processor']}, {machine['cpus']} CPUs, torch {machine['torch']}, "
        f"{machine['platform']}; {settings['threads']} torch thread(s) in the server, the load generator in "
        f"another process on the same CPUs (1-minute load average {load['start']:.1f} at the start, "
        f"{load['end']:.1f} at the end). Models: random weights, GPT-2 vocabulary. "
        f"{settings['prompts']} prompts of ~{settings['prompt_tokens']} tokens; each client streams "
        f"{settings['requests_per_client']} greedy `/api/generate` requests of {settings['new_tokens']} new "
        f"tokens one after the other; `scratchlm serve --max-batch-size {settings['max_batch_size']}`. "
        f"{settings['reps']} interleaved repetitions: medians with [min-max].",
        "",
        "| model | mode | requests | errors | tokens/s | vs 1 client | p50 first token s | vs 1 client "
        "| p50 first token s, steady | vs 1 client | p50 / p99 latency s | RSS MB after each rep |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def spread(value: dict[str, Any] | None, spec: str, suffix: str = "") -> str:
        if not value or value["median"] is None:
            return "n/a"
        return (
            f"{_fmt(value['median'], spec)}{suffix} [{_fmt(value['min'], spec)}-{_fmt(value['max'], spec)}]"
        )

    for r in rows:
        lines.append(
            f"| {r['model']} | {r['mode']} | {r['requests']} | {r['errors']} "
            f"| {spread(r['tokens_per_s'], '.1f')} | {spread(r.get('tokens_per_s_vs_c1'), '.2f', 'x')} "
            f"| {spread(r['p50_first_piece_s'], '.3f')} "
            f"| {spread(r.get('p50_first_piece_vs_c1'), '.2f', 'x')} "
            f"| {spread(r['p50_first_piece_steady_s'], '.3f')} "
            f"| {spread(r.get('p50_first_piece_steady_vs_c1'), '.2f', 'x')} "
            f"| {_fmt(r['p50_latency_s'], '.2f')} / {_fmt(r['p99_latency_s'], '.2f')} "
            f"| {', '.join(str(x) for x in r['rss_mb_after_each_rep']) or 'n/a'} |"
        )
    lines += [
        "",
        "Peak server RSS (VmHWM): "
        + ", ".join(f"{model} {_fmt(mb, '.0f')} MB" for model, mb in machine["server_peak_rss_mb"].items())
        + ".",
    ]
    lines += [
        "",
        '"Steady": the requests after each client\'s first, which arrive while the others decode; the first '
        "wave arrives at once and is prefilled together (compute-bound: 8 prompts cost about 8 times one).",
        "",
        "Targets at 8 clients: tokens/s >= 4x and p50 first token <= 2x one client's (all; steady):",
    ]

    def verdict(value: float | None, ok: bool) -> str:
        return f"{_fmt(value, '.2f')}x ({'met' if ok else 'missed'})"

    for r in rows:
        if r["mode"] == "serve c8" and r.get("tokens_per_s_vs_c1"):
            speed = r["tokens_per_s_vs_c1"]["median"]
            ttft = r["p50_first_piece_vs_c1"]["median"]
            steady = r["p50_first_piece_steady_vs_c1"]["median"]
            lines.append(
                f"- {r['model']}: tokens/s {verdict(speed, speed is not None and speed >= 4)}; first token "
                f"{verdict(ttft, ttft is not None and ttft <= 2)}; steady "
                f"{verdict(steady, steady is not None and steady <= 2)}"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny,gpt2-124m", help="comma list: tiny, gpt2-124m or shapes")
    parser.add_argument("--concurrency", default="1,4,8,16", help="comma list of concurrent clients")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--requests-per-client", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=16, help="distinct prompts")
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server (and --direct)")
    parser.add_argument("--direct", action="store_true", help="add direct llm_model.generate rows")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a check that it works: tiny only, 1,4,8 clients, 32 new tokens, 2 repetitions, 2 requests each",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(worker_direct(**json.loads(options.worker))))
        return 0
    if options.quick:
        options.models, options.concurrency, options.new_tokens = "tiny", "1,4,8", 32
        options.reps, options.requests_per_client = 2, 2

    import torch

    from llm_eval.server_process import spawn_server

    load_start = os.getloadavg()[0]  # a shared machine: other work slows every row alike
    levels = [int(c) for c in options.concurrency.split(",")]
    prompts = make_prompts(options.prompts, options.prompt_tokens)
    threads = {"OMP_NUM_THREADS": str(options.threads)}
    serve_args = ["--name", NAME, "--max-batch-size", str(max(levels))]
    rows, raws, peaks = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in options.models.split(","):
            checkpoint = make_checkpoint(Path(tmp), model)
            raw: dict[str, list[dict[str, Any]]] = {f"serve c{c}": [] for c in levels}
            if options.direct:
                raw["direct"] = []
            with spawn_server(checkpoint, args=serve_args, env=threads) as server:
                run_load(server.url, prompts, 4, max(levels), 1)  # warm-up at the widest batch
                for rep in range(options.reps):
                    order = levels[rep % len(levels) :] + levels[: rep % len(levels)]  # rotated
                    for c in order:
                        result = run_load(
                            server.url, prompts, options.new_tokens, c, options.requests_per_client
                        )
                        result["rss"] = memory(server.pid)["rss"]
                        raw[f"serve c{c}"].append(result)
                        print(f"{model} rep {rep} serve c{c}: {_brief(result)}", flush=True)
                    if options.direct:
                        direct_prompts = prompts[: options.requests_per_client]
                        raw["direct"].append(
                            run_direct(checkpoint, direct_prompts, options.new_tokens, threads)
                        )
                        print(f"{model} rep {rep} direct: {_brief(raw['direct'][-1])}", flush=True)
                peak = memory(server.pid)["peak"]
            peaks[model] = None if peak is None else round(peak / 2**20, 1)
            rows += summarize(model, raw, levels)
            raws[model] = raw
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "server_peak_rss_mb": peaks,
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
    }
    settings = {
        "models": options.models.split(","),
        "reps": options.reps,
        "prompts": options.prompts,
        "prompt_tokens": options.prompt_tokens,
        "new_tokens": options.new_tokens,
        "requests_per_client": options.requests_per_client,
        "concurrency": levels,
        "max_batch_size": max(levels),
        "threads": options.threads,
        "quick": options.quick,
    }
    name = f"{time.strftime('%Y-%m-%d')}-serve" + ("-quick" if options.quick else "")
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / f"{name}.json").write_text(
        json.dumps({"machine": machine, "settings": settings, "summary": rows, "raw": raws}, indent=2)
    )
    (options.out / f"{name}.md").write_text(markdown(machine, settings, rows))
    print((options.out / f"{name}.md").read_text())
    return 0


def _brief(result: dict[str, Any]) -> str:
    if "error" in result:
        return result["error"]
    ttft = percentile(result.get("first_pieces", []), 50)
    return (
        f"{result['requests']} requests, {result['tokens']} tokens in {result['seconds']:.2f} s "
        f"({result['tokens'] / result['seconds']:.1f} tok/s, p50 first token {_fmt(ttft, '.3f')} s), "
        f"{len(result.get('errors', []))} errors"
    )


if __name__ == "__main__":
    sys.exit(main())
