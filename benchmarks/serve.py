"""`scratchlm serve` under bounded concurrent load vs direct `generate`, in one run.

Run: ``python benchmarks/serve.py`` (about 3 minutes on 2 CPUs).

One checkpoint (random GPT-2-style weights, shape ``--shape``) is served by
``scratchlm serve`` on 127.0.0.1 in its own process. Each repetition runs, in
turn (interleaved, so drift on this noisy machine hits every row alike):

* ``direct``: a fresh process that loads the checkpoint and calls
  ``llm_model.generate`` (greedy, KV cache, stop at end-of-text) on every prompt,
  one after the other;
* ``serve cN`` for each ``--concurrency`` N: N client threads stream greedy
  ``/api/generate`` requests for the same prompts until ``max(len(prompts), 2N)``
  requests are answered.

Server and direct worker get the same ``--threads`` torch threads (default 1:
on a 2-CPU machine, 2 spinning threads per process next to the load generator
slow both down many times over). Reported per row: requests/s, generated
tokens/s, p50/p99 latency and p50 time to the first piece (pooled over
repetitions), medians of the per-repetition rates, and the ratio of tokens/s
through the server to direct generation.
Writes ``results/<date>-serve.json`` (raw + summary) and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import _fmt, _shape, median_of  # noqa: E402  (the house helpers of benchmarks/run.py)

NAME = "bench-gpt"


def make_checkpoint(directory: Path, spec: str) -> Path:
    """A GPT-2-style checkpoint of shape ``spec`` (emb x layers x heads x ctx x vocab), random weights."""
    import torch

    from llm_model import build_model, save_pretrained

    torch.manual_seed(0)
    model = build_model("gpt2", **_shape(spec), drop_rate=0.0, qkv_bias=True, tie_weights=True)
    return save_pretrained(model, directory / NAME, tokenizer="gpt2")


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


# -- direct generation (a worker process of its own) ------------------------------------------------


def worker_direct(checkpoint: str, prompts: list[str], new_tokens: int) -> dict[str, Any]:
    """Greedy ``generate`` on every prompt in turn, after one warm-up; seconds and tokens."""
    import torch

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
        out = generate(model, ids, new_tokens, eos_id=eos)
        new = out[len(ids) :].tolist()
        produced += len(new) - (1 if new and new[-1] == eos else 0)
        tokenizer.decode(new)
        latencies.append(time.perf_counter() - begin)
    seconds = time.perf_counter() - start
    return {
        "requests": len(prompts),
        "tokens": produced,
        "seconds": seconds,
        "latencies": latencies,
        "threads": torch.get_num_threads(),
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


def run_load(url: str, prompts: list[str], new_tokens: int, concurrency: int) -> dict[str, Any]:
    """``concurrency`` client threads streaming greedy requests until ``max(len(prompts), 2N)`` are done."""
    import httpx

    total = max(len(prompts), 2 * concurrency)
    lock = threading.Lock()
    queue = list(range(total))
    latencies: list[float] = []
    first_pieces: list[float] = []
    tokens = [0]
    errors: list[str] = []

    def client() -> None:
        with httpx.Client(timeout=600) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    k = queue.pop()
                body = {
                    "model": NAME,
                    "prompt": prompts[k % len(prompts)],
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

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "tokens": tokens[0],
        "seconds": seconds,
        "latencies": latencies,
        "first_pieces": first_pieces,
        "errors": errors,
    }


# -- the run ---------------------------------------------------------------------------------------


def summarize(raw: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    direct_tps = None
    for key, results in raw.items():
        ok = [r for r in results if "error" not in r]
        for r in ok:
            r["requests_per_s"] = r["requests"] / r["seconds"]
            r["tokens_per_s"] = r["tokens"] / r["seconds"]
        latencies = [x for r in ok for x in r["latencies"]]
        first = [x for r in ok for x in r.get("first_pieces", [])]
        row = {
            "mode": key,
            "repetitions": len(ok),
            "requests": sum(r["requests"] for r in ok),
            "errors": sum(len(r.get("errors", [])) for r in ok) + len(results) - len(ok),
            "requests_per_s": median_of(ok, "requests_per_s"),
            "tokens_per_s": median_of(ok, "tokens_per_s"),
            "p50_latency_s": percentile(latencies, 50),
            "p99_latency_s": percentile(latencies, 99),
            "p50_first_piece_s": percentile(first, 50),
        }
        if key == "direct":
            direct_tps = row["tokens_per_s"]
        rows.append(row)
    for row in rows:
        tps = row["tokens_per_s"]
        row["tokens_per_s_vs_direct"] = tps / direct_tps if tps and direct_tps else None
    return rows


def markdown(machine: dict[str, Any], options: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        f"# Serving benchmark, {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {machine['processor']}, {machine['cpus']} CPUs, torch {machine['torch']}, "
        f"{machine['platform']}; torch threads = {machine['threads']} in the server and the direct worker, "
        "the load generator in a third process on the same CPUs" + _load(machine) + ". "
        f"Checkpoint: GPT-2 style {options['shape']} (emb x layers x heads x ctx x vocab), random weights. "
        f"{options['prompts']} prompts of ~{options['prompt_tokens']} tokens, "
        f"{options['new_tokens']} new tokens each, greedy, streamed over `/api/generate`; "
        f"{options['reps']} interleaved repetitions; rates are medians of the repetitions, "
        "latency percentiles are pooled.",
        "",
        "| mode | requests | errors | requests/s | tokens/s | vs direct | p50 latency s | p99 latency s "
        "| p50 first piece s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['requests']} | {r['errors']} | {_fmt(r['requests_per_s'], '.2f')} "
            f"| {_fmt(r['tokens_per_s'], '.1f')} | {_fmt(r['tokens_per_s_vs_direct'], '.2f')}x "
            f"| {_fmt(r['p50_latency_s'], '.3f')} | {_fmt(r['p99_latency_s'], '.3f')} "
            f"| {_fmt(r['p50_first_piece_s'], '.3f')} |"
        )
    lines += [
        "",
        "The server runs one generation at a time (one generation thread, arrival order), so more concurrent "
        "clients queue: throughput stays near one stream's, and latency grows with the queue.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", default="256x4x4x256x50257", help="emb x layers x heads x ctx x vocab")
    parser.add_argument("--concurrency", default="1,4,16", help="comma list of concurrent clients")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--prompts", type=int, default=16, help="distinct prompts")
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the server and of the direct worker"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(worker_direct(**json.loads(options.worker))))
        return 0

    import torch

    from llm_eval.server_process import spawn_server

    load_start = os.getloadavg()[0]  # a shared machine: other work slows every row alike
    levels = [int(c) for c in options.concurrency.split(",")]
    prompts = make_prompts(options.prompts, options.prompt_tokens)
    raw: dict[str, list[dict[str, Any]]] = {"direct": [], **{f"serve c{c}": [] for c in levels}}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = make_checkpoint(Path(tmp), options.shape)
        threads = {"OMP_NUM_THREADS": str(options.threads)}
        with spawn_server(checkpoint, args=["--name", NAME], env=threads) as server:
            run_load(server.url, prompts[:2], 4, 1)  # warm-up
            for rep in range(options.reps):  # interleaved: every mode once per repetition
                raw["direct"].append(run_direct(checkpoint, prompts, options.new_tokens, threads))
                print(f"rep {rep} direct: {_brief(raw['direct'][-1])}", flush=True)
                for c in levels:
                    raw[f"serve c{c}"].append(run_load(server.url, prompts, options.new_tokens, c))
                    print(f"rep {rep} serve c{c}: {_brief(raw[f'serve c{c}'][-1])}", flush=True)
            rss = server.rss_bytes()
    rows = summarize(raw)
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": next((r["threads"] for r in raw["direct"] if "threads" in r), options.threads),
        "server_rss_mb_after": None if rss is None else round(rss / 2**20, 1),
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
    }
    settings = {
        "shape": options.shape,
        "reps": options.reps,
        "prompts": options.prompts,
        "prompt_tokens": options.prompt_tokens,
        "new_tokens": options.new_tokens,
        "concurrency": levels,
    }
    name = f"{time.strftime('%Y-%m-%d')}-serve"
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / f"{name}.json").write_text(
        json.dumps({"machine": machine, "settings": settings, "summary": rows, "raw": raw}, indent=2)
    )
    (options.out / f"{name}.md").write_text(markdown(machine, settings, rows))
    print((options.out / f"{name}.md").read_text())
    return 0


def _load(machine: dict[str, Any]) -> str:
    load = machine.get("load_average_1min")
    return (
        f" (1-minute load average {load['start']:.1f} at the start, {load['end']:.1f} at the end)"
        if load
        else ""
    )


def _brief(result: dict[str, Any]) -> str:
    if "error" in result:
        return result["error"]
    return (
        f"{result['requests']} requests, {result['tokens']} tokens in {result['seconds']:.2f} s "
        f"({result['tokens'] / result['seconds']:.1f} tok/s), {len(result.get('errors', []))} errors"
    )


if __name__ == "__main__":
    sys.exit(main())
