"""A bounded load test of `scratchlm serve`: many concurrent streaming clients against one server process.

CI: 20 clients for 10 s; ``SCRATCHLM_NIGHTLY=1``: 200 clients for 60 s. Every
client streams greedy completions, half over Ollama's NDJSON and half over
OpenAI's server-sent events, each for a prompt of its own, and checks the
answer equals what ``generate_text`` gives for that prompt in this process: a
request lost, cut short or mixed with another's fails the test. The server's
resident memory is sampled throughout and must stay flat (a generous bound);
latency percentiles and the memory figures are reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_eval.server_process import spawn_server

NAME = "tiny-gpt"
NIGHTLY = os.environ.get("SCRATCHLM_NIGHTLY") == "1"
CONCURRENCY, DURATION = (200, 60.0) if NIGHTLY else (20, 10.0)
TOKENS = 12
#: Allowed growth of the server's RSS from the first quarter of the run to the last.
RSS_GROWTH_BOUND = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def expected(checkpoint: Path) -> dict[str, str]:
    """Two prompts per client and their greedy answers from direct generation, no two answers alike.

    The untrained model's answer depends mostly on the last tokens, so random prompts
    are drawn until enough of them have distinct answers: a request given another
    request's answer, or pieces of it, cannot then pass.
    """
    import random

    from llm_eval.checkpoints import load_model_and_tokenizer
    from llm_model import generate_text

    model, tokenizer = load_model_and_tokenizer(checkpoint)
    rng = random.Random(0)
    answers: dict[str, str] = {}
    for _ in range(20 * CONCURRENCY):
        prompt = tokenizer.decode([rng.randrange(256, 50000) for _ in range(6)])
        answer = str(generate_text(model, tokenizer, prompt, TOKENS))
        if prompt not in answers and answer not in answers.values():
            answers[prompt] = answer
        if len(answers) == 2 * CONCURRENCY:
            return answers
    raise AssertionError(f"only {len(answers)} prompts with distinct answers found")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def one_request(
    http: httpx.AsyncClient, url: str, prompt: str, openai: bool
) -> tuple[str, float, float]:
    """Stream one completion; ``(text, seconds to the first piece, seconds in all)``."""
    start = time.perf_counter()
    first = None
    pieces: list[str] = []
    finished = False
    if openai:
        route, body = "/v1/completions", {"model": NAME, "prompt": prompt, "max_tokens": TOKENS}
        body.update(temperature=0, stream=True)
    else:
        route = "/api/generate"
        body = {"model": NAME, "prompt": prompt, "options": {"num_predict": TOKENS, "temperature": 0}}
    async with http.stream("POST", url + route, json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if not line:
                continue
            if openai:
                assert line.startswith("data: "), line
                if line == "data: [DONE]":
                    finished = True
                    continue
                choice = json.loads(line[6:])["choices"][0]
                piece = choice["text"]
            else:
                item = json.loads(line)
                assert "error" not in item, item
                piece, finished = item["response"], item["done"]
            if piece and first is None:
                first = time.perf_counter() - start
            pieces.append(piece)
    assert finished, f"the stream for {prompt!r} ended without its final message"
    total = time.perf_counter() - start
    return "".join(pieces), total if first is None else first, total


async def drive(url: str, expected: dict[str, str], sample_rss: Any) -> dict[str, Any]:
    """CONCURRENCY clients for DURATION seconds, RSS sampled every 0.2 s; what happened."""
    prompts = list(expected)
    loop = asyncio.get_running_loop()
    end = loop.time() + DURATION
    latencies: list[float] = []
    first_pieces: list[float] = []
    wrong: list[tuple[str, str]] = []
    errors: list[str] = []
    counts = {"sent": 0, "answered": 0}
    rss: list[tuple[float, int]] = []

    async def client(i: int) -> None:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(timeout=httpx.Timeout(120.0), limits=limits) as http:
            n = 0
            while loop.time() < end:
                prompt = prompts[(i + n * CONCURRENCY) % len(prompts)]
                n += 1
                counts["sent"] += 1
                try:
                    text, first, total = await one_request(http, url, prompt, openai=i % 2 == 1)
                except Exception as exc:  # every failure is counted and reported, the others go on
                    errors.append(f"client {i}: {type(exc).__name__}: {exc}")
                    continue
                counts["answered"] += 1
                latencies.append(total)
                first_pieces.append(first)
                if text != expected[prompt]:
                    wrong.append((prompt, text))

    async def sampler() -> None:
        start = loop.time()
        while loop.time() < end + 1:
            value = sample_rss()
            if value is not None:
                rss.append((loop.time() - start, value))
            await asyncio.sleep(0.2)

    sampling = asyncio.create_task(sampler())
    await asyncio.gather(*(client(i) for i in range(CONCURRENCY)))
    sampling.cancel()
    return {
        "latencies": latencies,
        "first": first_pieces,
        "wrong": wrong,
        "errors": errors,
        **counts,
        "rss": rss,
    }


def test_concurrent_streams_are_neither_lost_nor_mixed_and_memory_stays_flat(
    checkpoint: Path, expected: dict[str, str], figures: dict[str, dict[str, Any]]
) -> None:
    with spawn_server(checkpoint, args=["--name", NAME]) as server:
        rss_idle = server.rss_bytes()
        result = asyncio.run(drive(server.url, expected, server.rss_bytes))
        after = httpx.get(f"{server.url}/api/tags", timeout=30)  # still serving
        assert after.status_code == 200
    assert server.process.returncode is not None
    assert result["errors"] == [], result["errors"][:5]
    assert result["wrong"] == [], result["wrong"][:5]
    assert result["answered"] == result["sent"] >= CONCURRENCY
    rss = result["rss"]
    quarter = DURATION / 4
    early = max(v for t, v in rss if t <= quarter)
    late = max(v for t, v in rss if t >= DURATION - quarter)
    peak = max(v for _, v in rss)
    figures["test_server_load"].update(
        clients=CONCURRENCY,
        seconds=DURATION,
        requests=result["answered"],
        requests_per_s=round(result["answered"] / DURATION, 1),
        p50_latency_s=round(statistics.median(result["latencies"]), 3),
        p99_latency_s=round(percentile(result["latencies"], 99), 3),
        p50_first_token_s=round(statistics.median(result["first"]), 3),
        p99_first_token_s=round(percentile(result["first"], 99), 3),
        rss_idle_mb=round((rss_idle or 0) / 2**20, 1),
        rss_first_quarter_mb=round(early / 2**20, 1),
        rss_last_quarter_mb=round(late / 2**20, 1),
        rss_peak_mb=round(peak / 2**20, 1),
    )
    assert late - early < RSS_GROWTH_BOUND, figures["test_server_load"]
