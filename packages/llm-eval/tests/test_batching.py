"""Continuous batching: batched greedy decoding equals generate alone; the queue is bounded; stalls end."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import torch

from llm_core.errors import ConfigError
from llm_eval.batching import BatchDecoder, ContinuousBatcher, QueueFull
from llm_eval.serving import GenerationOptions as Options
from llm_eval.serving import ServerBusy
from llm_model import build_model, generate


def tiny(arch: str) -> Any:
    torch.manual_seed(0)
    if arch == "gpt2":
        model = build_model(
            "gpt2", vocab_size=97, context_length=32, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0
        )
    else:
        model = build_model(arch, "llama-tiny", context_length=32)
    return model.eval()


class CharTokenizer:
    """Token ``i`` is the letter ``chr(97 + i % 26)``: enough text for stop strings."""

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(97 + i % 26) for i in ids)


def alone(model: Any, ids: list[int], n: int, **kwargs: Any) -> list[int]:
    return generate(model, ids, n, **kwargs)[len(ids) :].tolist()


def prompt(length: int, start: int) -> list[int]:
    return [(start + 7 * i) % 90 + 1 for i in range(length)]


# Prompt length, the step at which it joins, new tokens. Lengths above the running length at join
# time leave a gap in the others' rows; 20 + 30 > 32 slides past the context; 3 finishes early;
# those joining at one step (or waiting for a free row) share one left-padded prefill.
SCHEDULE = [(5, 0, 12), (12, 2, 6), (3, 2, 3), (20, 5, 30), (9, 7, 14), (30, 9, 4), (7, 9, 5)]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_greedy_batch_equals_generate_alone(arch: str) -> None:
    model = tiny(arch)
    decoder = BatchDecoder(model, max_batch_size=4)
    prompts = {k: prompt(length, k) for k, (length, _, _) in enumerate(SCHEDULE)}
    got: dict[int, list[int]] = {k: [] for k in prompts}
    pending = dict(enumerate(SCHEDULE))
    nxt: dict[int, int] = {}
    step = 0
    while pending or len(decoder):
        free = decoder.max_batch_size - len(decoder)
        joining = [k for k, (_, at, _) in sorted(pending.items()) if at <= step][:free]
        for k, logits in decoder.add_many({k: prompts[k] for k in joining}).items() if joining else ():
            nxt[k] = int(logits.argmax())  # several join at once: one left-padded prefill
            got[k].append(nxt[k])
            del pending[k]
        for k in [k for k in list(nxt) if len(got[k]) == SCHEDULE[k][2]]:
            decoder.remove(k)  # finished: leaves without stalling the others
            del nxt[k]
        if nxt:
            for k, logits in decoder.step(nxt).items():
                nxt[k] = int(logits.argmax())
                got[k].append(nxt[k])
        step += 1
    assert not decoder.keys  # an empty batch frees its cache
    for k, (_, _, n) in enumerate(SCHEDULE):
        assert got[k] == alone(model, prompts[k], n), f"request {k}"


def test_decoder_refuses_bad_use() -> None:
    model = tiny("gpt2")
    with pytest.raises(ConfigError, match="max_batch_size"):
        BatchDecoder(model, 0)
    with pytest.raises(ConfigError, match="accepts_padding_mask"):
        BatchDecoder(torch.nn.Linear(2, 2), 2)  # no KV cache, no padding masks: serve uses SerialEngine
    decoder = BatchDecoder(model, 1)
    decoder.add("a", [1, 2])
    with pytest.raises(ConfigError, match="already in the batch"):
        decoder.add("a", [1])
    with pytest.raises(ConfigError, match="do not fit"):
        decoder.add("b", [1])
    with pytest.raises(ConfigError, match="no token"):
        decoder.step({})


# -- the engine ------------------------------------------------------------------------------------


async def collect(events: AsyncIterator[Any]) -> tuple[str, list[int], dict[str, Any]]:
    """The text and the new token ids of the pieces, and the final stats."""
    text, ids = "", []
    async for kind, value in events:
        if kind == "text":
            text += value.text
            ids += value.token_ids
        elif kind == "done":
            return text, ids, value
        else:
            raise AssertionError(value)
    raise AssertionError("no final event")


def engine(model: Any, **kwargs: Any) -> ContinuousBatcher:
    return ContinuousBatcher(model, CharTokenizer(), eos_ids=[96], **kwargs)


def wait_until(condition: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds  # a no-hang guard, not a timing assertion
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_engine_requests_keep_their_own_options() -> None:
    model = tiny("llama")
    requests = [
        ([1, 2, 3], Options(max_tokens=10, temperature=0)),
        ([4] * 11, Options(max_tokens=5, temperature=0)),
        ([5, 6], Options(max_tokens=9, temperature=0.9, top_k=20, top_p=0.9, seed=3)),
        ([7, 8, 9, 10], Options(max_tokens=0)),
        ([11], Options(max_tokens=12, temperature=1.3, seed=7)),
    ]

    async def main() -> list[tuple[str, list[int], dict[str, Any]]]:
        batcher = engine(model, max_batch_size=3).start()
        try:
            streams = []
            for ids, options in requests:
                streams.append(batcher.stream(ids, options))
                await asyncio.sleep(0)  # later ones join a running batch
            return list(await asyncio.gather(*(collect(s) for s in streams)))
        finally:
            batcher.close()

    results = asyncio.run(main())
    for (ids, options), (text, new, stats) in zip(requests, results, strict=True):
        want = alone(
            model,
            ids,
            options.max_tokens,
            temperature=options.temperature,
            top_k=options.top_k,
            top_p=options.top_p,
            seed=options.seed,
            eos_id=96,
        )
        reason = "stop" if want and want[-1] == 96 else "length"
        want = want[:-1] if reason == "stop" else want
        assert new == want and stats["done_reason"] == reason and stats["completion_tokens"] == len(want)
        assert text == CharTokenizer().decode(want) and stats["prompt_tokens"] == len(ids)


def test_engine_stop_strings_end_one_sequence() -> None:
    model = tiny("gpt2")
    ids = [1, 2, 3]
    full = CharTokenizer().decode(alone(model, ids, 12))
    stop = full[4:6]

    async def main() -> list[tuple[str, list[int], dict[str, Any]]]:
        batcher = engine(model).start()
        try:
            a = batcher.stream(ids, Options(max_tokens=12, temperature=0, stop=[stop]))
            b = batcher.stream(ids, Options(max_tokens=12, temperature=0))
            return list(await asyncio.gather(collect(a), collect(b)))
        finally:
            batcher.close()

    (cut, _, stats), (whole, _, _) = asyncio.run(main())
    assert cut == full[: full.find(stop)] and stats["done_reason"] == "stop"
    assert whole == full


def test_engine_call_runs_between_steps() -> None:
    model = tiny("gpt2")

    async def main() -> tuple[Any, list[int]]:
        batcher = engine(model).start()
        try:
            events = batcher.stream([1, 2], Options(max_tokens=6, temperature=0))
            scored = await batcher.call(lambda: int(model(torch.tensor([[1, 2]]))[0, -1].argmax()))
            with pytest.raises(ZeroDivisionError):
                await batcher.call(lambda: 1 // 0)
            _, new, _ = await collect(events)
            return scored, new
        finally:
            batcher.close()

    first, new = asyncio.run(main())
    assert first == new[0]


def test_engine_queue_is_bounded() -> None:
    model = tiny("gpt2")

    async def main() -> QueueFull:
        batcher = engine(model, max_batch_size=1, max_queue=1)  # not started: nothing is admitted
        batcher.stream([1], Options())  # will take the one row
        batcher.stream([1], Options())  # waits
        with pytest.raises(QueueFull) as refused:
            batcher.stream([1], Options())
        return refused.value

    refused = asyncio.run(main())
    assert refused.retry_after >= 1 and "--max-queue" in str(refused)


def test_a_client_that_stops_reading_is_timed_out_and_freed() -> None:
    model = tiny("gpt2")

    async def main() -> dict[str, Any]:
        batcher = engine(model, max_batch_size=2, stall_timeout=0.2).start()
        try:
            stalled = batcher.stream(
                [1, 2], Options(max_tokens=10_000, temperature=0)
            )  # not read while it runs
            await asyncio.to_thread(wait_until, lambda: len(batcher.durations) == 1)  # it ended
            assert not batcher.active and len(batcher.decoder) == 0
            _, _, stats = await collect(
                batcher.stream([3], Options(max_tokens=4, temperature=0))
            )  # the engine goes on
            assert stats["completion_tokens"] == 4
            return (await collect(stalled))[2]
        finally:
            batcher.close()

    stats = asyncio.run(main())
    assert stats["done_reason"] == "timeout" and 0 < stats["completion_tokens"] < 10_000


def test_a_client_that_leaves_frees_its_row() -> None:
    model = tiny("gpt2")

    async def main() -> None:
        batcher = engine(model, max_batch_size=1).start()
        try:
            events = batcher.stream([1, 2], Options(max_tokens=10_000, temperature=0))
            async for kind, _ in events:
                assert kind == "text"
                break  # the client leaves after its first piece
            await events.aclose()  # what the server does when the connection drops
            await asyncio.to_thread(wait_until, lambda: len(batcher.decoder) == 0)
            _, _, stats = await collect(batcher.stream([3], Options(max_tokens=2, temperature=0)))
            assert stats["done_reason"] == "length"
        finally:
            batcher.close()

    asyncio.run(main())


def test_close_ends_running_and_waiting_requests() -> None:
    model = tiny("gpt2")

    async def main() -> list[tuple[str, list[int], dict[str, Any]]]:
        batcher = engine(model, max_batch_size=1).start()
        running = batcher.stream([1], Options(max_tokens=10_000, temperature=0))
        waiting = batcher.stream([2], Options(max_tokens=10_000, temperature=0))
        await asyncio.to_thread(wait_until, lambda: len(batcher.active) == 1)
        batcher.close()
        after = batcher.stream([3], Options())
        results = list(await asyncio.gather(collect(running), collect(waiting), collect(after)))
        await asyncio.to_thread(batcher.join)
        assert not batcher.thread.is_alive()
        with pytest.raises(ServerBusy, match="shutting down"):
            await batcher.call(lambda: None)
        return results

    results = asyncio.run(main())
    assert [stats["done_reason"] for _, _, stats in results] == ["shutdown"] * 3
    assert results[1][2]["completion_tokens"] == 0 and results[0][2]["completion_tokens"] > 0


# -- through the server ------------------------------------------------------------------------------


@pytest.fixture
def batched_server(gpt2_checkpoint: Any) -> Any:
    """``serve``'s app on 127.0.0.1 with a ContinuousBatcher of 2 rows and no waiting room."""
    pytest.importorskip("uvicorn")
    from llm_eval.server import create_app, load_runner, start_server

    runner = load_runner(gpt2_checkpoint)
    batcher = ContinuousBatcher(
        runner.model, runner.tokenizer, eos_ids=runner.eos_ids, max_batch_size=2, max_queue=0
    ).start()
    server = start_server(create_app(runner, engine=batcher), "127.0.0.1", 0)
    try:
        yield server, runner
    finally:
        batcher.close()
        server.stop()


def test_served_concurrent_streams_equal_generate_alone(batched_server: Any) -> None:
    import httpx

    from llm_model import generate_text

    server, runner = batched_server
    asks = [("Once upon a time", 9), ("The", 4), ("In the beginning was the word, and", 7)]

    async def ask(client: httpx.AsyncClient, prompt: str, n: int) -> str:
        body = {"model": "tiny-gpt", "prompt": prompt, "options": {"temperature": 0, "num_predict": n}}
        text = ""
        async with client.stream("POST", f"{server.url}/api/generate", json=body) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.strip():
                    text += json.loads(line)["response"]
        return text

    async def main() -> list[str]:
        async with httpx.AsyncClient(timeout=60) as client:
            first = asyncio.ensure_future(ask(client, *asks[0]))
            second = asyncio.ensure_future(ask(client, *asks[1]))
            done = await asyncio.gather(first, second)
            return [*done, await ask(client, *asks[2])]  # joins an idle engine

    got = asyncio.run(main())
    assert got == [generate_text(runner.model, runner.tokenizer, p, n, temperature=0.0) for p, n in asks]


def test_a_full_server_answers_503_with_retry_after(batched_server: Any) -> None:
    import httpx

    server, _ = batched_server
    body = {"model": "tiny-gpt", "prompt": "Hi", "options": {"temperature": 0, "num_predict": 4000}}
    with (
        httpx.Client(timeout=60) as first,
        httpx.Client(timeout=60) as second,
        first.stream("POST", f"{server.url}/api/generate", json=body) as a,
        second.stream("POST", f"{server.url}/api/generate", json=body) as b,
    ):
        assert a.status_code == b.status_code == 200  # both rows taken
        refused = httpx.post(f"{server.url}/api/generate", json=body, timeout=60)
        chat = {"model": "tiny-gpt", "messages": [{"role": "user", "content": "Hi"}]}
        openai = httpx.post(f"{server.url}/v1/chat/completions", json=chat, timeout=60)
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert "--max-queue" in refused.json()["error"]
    assert openai.status_code == 503 and openai.headers["retry-after"]
    assert openai.json()["error"]["type"] == "server_error"
