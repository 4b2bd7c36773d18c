"""Continuous batching: batched greedy decoding equals generate alone; the queue is bounded; stalls end."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from llm_core.errors import ConfigError
from llm_eval.batching import BatchDecoder, ContinuousBatcher, QueueFull, RequestStream
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


@dataclass
class Options:
    max_tokens: int = 8
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


def alone(model: Any, ids: list[int], n: int, **kwargs: Any) -> list[int]:
    return generate(model, ids, n, **kwargs)[len(ids) :].tolist()


def prompt(length: int, start: int) -> list[int]:
    return [(start + 7 * i) % 90 + 1 for i in range(length)]


# Prompt length, the step at which it joins, new tokens. Lengths above the running length at join
# time leave a gap in the others' rows; 20 + 30 > 32 slides past the context; 3 finishes early.
SCHEDULE = [(5, 0, 12), (12, 2, 6), (3, 3, 3), (20, 5, 30), (9, 7, 14), (30, 9, 4)]


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
        for k, (_, at, _) in sorted(pending.items()):
            if at <= step and not decoder.full:
                nxt[k] = int(decoder.add(k, prompts[k]).argmax())
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
    decoder = BatchDecoder(model, 1)
    decoder.add("a", [1, 2])
    with pytest.raises(ConfigError, match="already in the batch"):
        decoder.add("a", [1])
    with pytest.raises(ConfigError, match="full"):
        decoder.add("b", [1])
    with pytest.raises(ConfigError, match="no token"):
        decoder.step({})


# -- the engine ------------------------------------------------------------------------------------


async def collect(stream: RequestStream) -> tuple[str, dict[str, Any]]:
    text = ""
    async for kind, value in stream:
        if kind == "text":
            text += value
        elif kind == "done":
            return text, value
        else:
            raise AssertionError(value)
    raise AssertionError("no final event")


def engine(model: Any, **kwargs: Any) -> ContinuousBatcher:
    return ContinuousBatcher(model, CharTokenizer(), eos_ids=[96], **kwargs)


def test_engine_requests_keep_their_own_options() -> None:
    model = tiny("llama")
    requests = [
        ([1, 2, 3], Options(max_tokens=10)),
        ([4] * 11, Options(max_tokens=5)),
        ([5, 6], Options(max_tokens=9, temperature=0.9, top_k=20, top_p=0.9, seed=3)),
        ([7, 8, 9, 10], Options(max_tokens=0)),
        ([11], Options(max_tokens=12, temperature=1.3, seed=7)),
    ]

    async def main() -> list[tuple[str, dict[str, Any]]]:
        batcher = engine(model, max_batch_size=3).start()
        try:
            streams = []
            for ids, options in requests:
                streams.append(batcher.submit(ids, options))
                await asyncio.sleep(0)  # later ones join a running batch
            return list(await asyncio.gather(*(collect(s) for s in streams)))
        finally:
            batcher.close()

    results = asyncio.run(main())
    for (ids, options), (text, stats) in zip(requests, results, strict=True):
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
        if want and want[-1] == 96:
            want, reason = want[:-1], "stop"
        else:
            reason = "length"
        assert stats["token_ids"] == want and stats["done_reason"] == reason
        assert text == CharTokenizer().decode(want) and stats["completion_tokens"] == len(want)


def test_engine_stop_strings_end_one_sequence() -> None:
    model = tiny("gpt2")
    ids = [1, 2, 3]
    full = CharTokenizer().decode(alone(model, ids, 12))
    stop = full[4:6]

    async def main() -> list[tuple[str, dict[str, Any]]]:
        batcher = engine(model).start()
        try:
            a = batcher.submit(ids, Options(max_tokens=12, stop=[stop]))
            b = batcher.submit(ids, Options(max_tokens=12))
            return list(await asyncio.gather(collect(a), collect(b)))
        finally:
            batcher.close()

    (cut, stats), (whole, _) = asyncio.run(main())
    assert cut == full[: full.find(stop)] and stats["done_reason"] == "stop"
    assert whole == full


def test_engine_queue_is_bounded() -> None:
    model = tiny("gpt2")

    async def main() -> QueueFull:
        batcher = engine(model, max_batch_size=1, max_queue=1)  # not started: nothing is admitted
        batcher.submit([1], Options())  # takes the one row's place
        batcher.submit([1], Options())  # waits
        with pytest.raises(QueueFull) as refused:
            batcher.submit([1], Options())
        return refused.value

    refused = asyncio.run(main())
    assert refused.retry_after >= 1 and "--max-queue" in str(refused)


def wait_until(condition: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds  # a no-hang guard, not a timing assertion
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_client_that_stops_reading_is_timed_out_and_freed() -> None:
    model = tiny("gpt2")

    async def main() -> tuple[str, dict[str, Any]]:
        batcher = engine(model, max_batch_size=2, stall_timeout=0.2).start()
        try:
            stalled = batcher.submit([1, 2], Options(max_tokens=10_000))  # never read while it runs

            def ended() -> bool:  # admitted, then ended by the engine
                return stalled.sent > 0 and stalled not in batcher.active

            await asyncio.to_thread(wait_until, ended)
            assert stalled not in batcher.decoder
            _, stats = await collect(batcher.submit([3], Options(max_tokens=4)))  # the engine goes on
            assert stats["completion_tokens"] == 4
            return await collect(stalled)
        finally:
            batcher.close()

    _, stats = asyncio.run(main())
    assert stats["done_reason"] == "timeout" and 0 < stats["completion_tokens"] < 10_000


def test_a_client_that_leaves_frees_its_row() -> None:
    model = tiny("gpt2")

    async def main() -> None:
        batcher = engine(model, max_batch_size=1).start()
        try:
            stream = batcher.submit([1, 2], Options(max_tokens=10_000))
            async for kind, _ in stream:
                assert kind == "text"
                break  # the client leaves after its first piece
            await asyncio.to_thread(wait_until, lambda: len(batcher.decoder) == 0)
            _, stats = await collect(batcher.submit([3], Options(max_tokens=2)))
            assert stats["done_reason"] == "length"
        finally:
            batcher.close()

    asyncio.run(main())


def test_close_ends_running_and_waiting_requests() -> None:
    model = tiny("gpt2")

    async def main() -> list[tuple[str, dict[str, Any]]]:
        batcher = engine(model, max_batch_size=1).start()
        running = batcher.submit([1], Options(max_tokens=10_000))
        waiting = batcher.submit([2], Options(max_tokens=10_000))
        await asyncio.to_thread(wait_until, lambda: running in batcher.active)
        await asyncio.to_thread(batcher.close)
        after = batcher.submit([3], Options())
        return list(await asyncio.gather(collect(running), collect(waiting), collect(after)))

    results = asyncio.run(main())
    assert [stats["done_reason"] for _, stats in results] == ["shutdown"] * 3
    assert results[1][1]["completion_tokens"] == 0
