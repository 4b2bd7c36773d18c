"""Continuous batching for ``scratchlm serve``: many requests decoded together, one step at a time.

Two layers:

* :class:`BatchDecoder` holds the running batch: one padded key/value cache
  for every sequence, and each sequence's own length. A new sequence is
  prefilled alone (its prompt run once into a cache of its own), then its keys
  and values are copied into a free row of the batch cache; every decoding step
  then feeds the newest token of every row at once. Rows share one write
  column; the columns a row does not use (before its prompt, or a gap left when
  a longer prompt joined) are padding, masked out of attention by the
  ``padding_mask`` every scratchlm architecture takes. Positions count real
  tokens only (GPT-2's learned positions and RoPE alike), so each row gets the
  logits it would get alone. A finished row is removed at once (the last row
  moves into its place). When the shared length would pass the context, the
  rows are packed to the right again; a row whose own length reaches the
  context slides its window as :func:`llm_model.generate` does (the last
  ``context_length`` tokens re-run every step, outside the batch).
* :class:`ContinuousBatcher` is a serving engine (the seam
  :class:`llm_eval.serving.Engine`: ``stream``, ``call``, ``close``) that runs
  a :class:`BatchDecoder` on one background thread. ``stream(ids, options)``
  queues a request at once — or raises :class:`QueueFull` when ``max_queue``
  requests already wait, which the server answers with 503 and ``Retry-After``
  — and the thread admits waiting requests whenever a row is free, at the next
  step, without waiting for the others to finish. Every request gets its own
  async queue of events (``("text", Piece)`` ..., then ``("done", stats)`` or
  ``("error", message)``) and keeps its own sampling options (temperature,
  top-k, top-p, seed), stop strings and token budget. A client that stops
  reading for ``stall_timeout`` seconds has its sequence freed
  (``done_reason="timeout"``); one that leaves (the iterator is closed) frees
  it at the next step.

Greedy decoding gives the token ids :func:`llm_model.generate` gives for each
request alone (tested for GPT-2 and Llama-style models, requests joining at
different steps); the float rounding of a batched step can differ in the last
bit, so a near-tie between two tokens could in principle break differently.
With ``--quantize int8`` (dynamic quantization: one activation scale per
tensor, so per batch) a request's tokens depend on the others in its batch.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from llm_attention import LayerKVCache
from llm_core.errors import ConfigError
from llm_eval.serving.engine import GREEDY_BELOW, Event, GenerationOptions, PieceDecoder
from llm_eval.serving.errors import ServerBusy

# The one sampling rule of the family (greedy, temperature, top-k, top-p): shared, not copied.
from llm_model.generation import _next_token

__all__ = ["BatchDecoder", "ContinuousBatcher", "QueueFull"]

#: The first length capacity of the batch cache (doubled as needed, up to the context).
FIRST_CAPACITY = 64
#: Pack the batch cache once its shared length passes twice the longest row plus this many columns.
PACK_SLACK = 32


T = TypeVar("T")


class _BatchView:
    """The rows ``[:b]`` of the batch storage as a cache a model takes (``length``, ``layer(i)``)."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], b: int, length: int) -> None:
        self.layers = []
        for k, v in zip(keys, values, strict=True):
            layer = LayerKVCache(k[:b], v[:b])  # views: the model's step writes into the storage
            layer.length = length
            self.layers.append(layer)

    @property
    def length(self) -> int:
        return self.layers[0].length

    def layer(self, i: int) -> LayerKVCache:
        return self.layers[i]


@dataclass
class _Row:
    tokens: list[int]  # prompt + generated tokens so far
    cached: int  # real tokens whose keys/values are in the batch cache


class BatchDecoder:
    """A running batch of sequences over one model: add (prefill), step all, remove.

    ``model``: a scratchlm decoder (``new_cache``, ``forward(idx, cache=, padding_mask=)``,
    ``config.context_length``), in eval mode. Sequences are named by any hashable key.
    Storage: per layer ``(rows, n_kv_heads, capacity, head_dim)`` keys and values, grown
    on demand up to ``max_batch_size`` rows and the context, freed when the batch empties.
    """

    def __init__(self, model: Any, max_batch_size: int) -> None:
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ConfigError(f"max_batch_size: expected an integer >= 1, got {max_batch_size!r}")
        if not self.supports(model):
            raise ConfigError(
                f"{type(model).__name__} cannot be batched: it needs a KV cache (new_cache) and "
                "accepts_padding_mask = True; serve it one request at a time (SerialEngine)"
            )
        self.model = model
        self.max_batch_size = max_batch_size
        self.context = int(model.config.context_length)
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.mask = torch.zeros(0, 0, dtype=torch.bool)  # (rows, capacity): true where a row has a token
        self.order: list[Hashable] = []  # the key of each batch row, in row order
        self.length = 0  # the shared write column of the next step
        self.rows: dict[Hashable, _Row] = {}
        self.sliding: set[Hashable] = set()  # rows at the context: their window re-runs each step

    @staticmethod
    def supports(model: Any) -> bool:
        """Whether ``model`` can be batched: a KV cache and left-padding masks (every built-in can)."""
        return callable(getattr(model, "new_cache", None)) and bool(
            getattr(model, "accepts_padding_mask", False)
        )

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def add(self, key: Hashable, ids: Sequence[int]) -> torch.Tensor:
        """Prefill ``ids`` and join the batch; return the logits of the next token ``(vocab,)``."""
        return self.add_many({key: ids})[key]

    def add_many(self, prompts: Mapping[Hashable, Sequence[int]]) -> dict[Hashable, torch.Tensor]:
        """Prefill several sequences in one forward (left-padded) and join them; each one's next logits.

        A prompt longer than the context keeps its last ``context_length`` tokens (as ``generate``).
        """
        taken = [key for key in prompts if key in self.rows]
        if taken:
            raise ConfigError(f"sequence(s) {taken!r} are already in the batch")
        if len(self.rows) + len(prompts) > self.max_batch_size:
            raise ConfigError(
                f"the batch holds {self.max_batch_size} sequences: {len(self.rows)} running + "
                f"{len(prompts)} new do not fit; remove some first"
            )
        cropped = {key: [int(i) for i in ids][-self.context :] for key, ids in prompts.items()}
        if not cropped or not all(cropped.values()):
            raise ConfigError("prompt: expected at least one token per sequence, got an empty prompt")
        width = max(len(ids) for ids in cropped.values())
        device = self.model.tok_emb.weight.device
        idx = torch.zeros(len(cropped), width, dtype=torch.long, device=device)  # (n, width), left-padded
        mask = torch.zeros(len(cropped), width, dtype=torch.bool, device=device)
        for row, ids in enumerate(cropped.values()):
            idx[row, width - len(ids) :] = torch.tensor(ids, device=device)
            mask[row, width - len(ids) :] = True
        cache = self.model.new_cache(len(cropped), max_len=width)
        with torch.no_grad():
            logits = _last_logits(self.model, idx, cache, None if bool(mask.all()) else mask)  # (n, vocab)
        out = {}
        for row, (key, ids) in enumerate(cropped.items()):
            self.rows[key] = _Row(tokens=ids, cached=len(ids))
            if len(ids) >= self.context:
                self.sliding.add(key)
            else:
                self._join(key, cache, row, width - len(ids), len(ids))
            out[key] = logits[row]
        return out

    def remove(self, key: Hashable) -> None:
        """Free ``key``'s row (a no-op for an unknown key)."""
        if self.rows.pop(key, None) is None:
            return
        if key in self.sliding:
            self.sliding.discard(key)
            return
        i, last = self.order.index(key), len(self.order) - 1
        if i != last:  # move the last row into the freed one
            for k, v in zip(self.keys, self.values, strict=True):
                k[i, :, : self.length] = k[last, :, : self.length]
                v[i, :, : self.length] = v[last, :, : self.length]
            self.mask[i, : self.length] = self.mask[last, : self.length]
            self.order[i] = self.order[last]
        self.order.pop()
        if not self.order:  # an idle server gives its cache memory back
            self.keys, self.values, self.length = [], [], 0
            self.mask = torch.zeros(0, 0, dtype=torch.bool)

    def step(self, tokens: Mapping[Hashable, int]) -> dict[Hashable, torch.Tensor]:
        """Feed each sequence's newest token (``tokens[key]``, every key); return each one's next logits."""
        missing = set(self.rows) - set(tokens)
        if missing:
            raise ConfigError(f"step: no token for sequence(s) {sorted(map(repr, missing))}")
        out: dict[Hashable, torch.Tensor] = {}
        for key in [k for k in self.order if self.rows[k].cached >= self.context]:
            self._slide(key)  # its own length reached the context
        device = self.model.tok_emb.weight.device
        if self.order:
            self._make_room()
            b = len(self.order)
            self.mask[:b, self.length] = True
            cache = _BatchView(self.keys, self.values, b, self.length)
            idx = torch.tensor([[tokens[k]] for k in self.order], device=device)  # (b, 1)
            with torch.no_grad():
                logits = self.model(idx, cache=cache, padding_mask=self.mask[:b, : self.length + 1])
            self.length += 1
            for row, key in enumerate(self.order):
                self.rows[key].tokens.append(int(tokens[key]))
                self.rows[key].cached += 1
                out[key] = logits[row, -1]  # (vocab,)
        for key in self.sliding:  # as generate: the last `context` tokens re-run, no cache kept
            window = [*self.rows[key].tokens, int(tokens[key])][-self.context :]
            self.rows[key].tokens.append(int(tokens[key]))
            with torch.no_grad():
                out[key] = _last_logits(self.model, torch.tensor([window], device=device), None, None)[0]
        return out

    # -- the storage ------------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Columns the storage holds."""
        return self.mask.shape[1]

    def _join(self, key: Hashable, cache: Any, source: int, first: int, p: int) -> None:
        """Copy row ``source`` of ``cache`` (real tokens in columns ``first .. first + p``) into the batch."""
        if self.length < p:  # the others get a gap of padding up to the new prompt's end
            self._reserve(len(self.order) + 1, p)
            self.mask[: len(self.order), self.length : p] = False
            self.length = p
        else:
            self._reserve(len(self.order) + 1, self.length)
        row, start = len(self.order), self.length - p
        for k, v, layer in zip(self.keys, self.values, cache.layers, strict=True):
            k[row, :, start : self.length] = layer.keys[source, :, first : first + p]
            v[row, :, start : self.length] = layer.values[source, :, first : first + p]
        self.mask[row, :start] = False
        self.mask[row, start : self.length] = True
        self.order.append(key)

    def _reserve(self, rows: int, columns: int) -> None:
        """Grow the storage (doubling, up to the batch size and the context) to ``rows`` x ``columns``."""
        have_rows = self.mask.shape[0]
        if rows <= have_rows and columns <= self.capacity:
            return
        if columns > self.context:
            raise ConfigError(f"batch cache: {columns} columns exceed the context ({self.context})")
        new_rows = max(have_rows, min(self.max_batch_size, max(rows, 2 * have_rows)))
        new_cols = self.capacity
        while new_cols < columns:
            new_cols = min(self.context, max(FIRST_CAPACITY, 2 * new_cols))
        b, n = len(self.order), self.length
        keys, values = [], []
        for i, probe in enumerate(self.model.new_cache(1, max_len=1)):  # each layer's heads, dim, dtype
            _, heads, _, dim = probe.keys.shape
            k = probe.keys.new_zeros(new_rows, heads, new_cols, dim)  # (rows, n_kv_heads, capacity, head_dim)
            v = probe.values.new_zeros(new_rows, heads, new_cols, dim)
            if self.keys:
                k[:b, :, :n] = self.keys[i][:b, :, :n]
                v[:b, :, :n] = self.values[i][:b, :, :n]
            keys.append(k)
            values.append(v)
        mask = torch.zeros(new_rows, new_cols, dtype=torch.bool, device=keys[0].device)
        mask[:b, :n] = self.mask[:b, :n]
        self.keys, self.values, self.mask = keys, values, mask

    def _make_room(self) -> None:
        """Room for the next column: pack the rows to the right when the padding is the context or
        most of the cache (every step attends over it), then grow the storage if needed."""
        width = max(self.rows[k].cached for k in self.order)  # < context: longer rows slide
        if self.length >= self.context or self.length > 2 * width + PACK_SLACK:
            for row in range(len(self.order)):
                real = self.mask[row, : self.length].nonzero().flatten()  # (cached,)
                start = width - real.numel()
                for k, v in zip(self.keys, self.values, strict=True):
                    k[row, :, start:width] = k[row, :, real]  # the index makes a copy: overlap is safe
                    v[row, :, start:width] = v[row, :, real]
                self.mask[row, :start] = False
                self.mask[row, start:width] = True
            self.length = width
        self._reserve(len(self.order), self.length + 1)

    def _slide(self, key: Hashable) -> None:
        """Move ``key`` out of the batch cache: from now on its window is re-run each step."""
        tokens = self.rows[key].tokens
        self.remove(key)
        self.rows[key] = _Row(tokens=tokens, cached=self.context)
        self.sliding.add(key)


def _last_logits(model: Any, idx: torch.Tensor, cache: Any, mask: torch.Tensor | None) -> torch.Tensor:
    """The logits of the last position only, ``(b, vocab)``: the output head skips the others.

    A prompt of ``t`` tokens would otherwise pay ``t`` times the head (half of a small
    GPT-2's prefill with the 50257-token vocabulary). Every scratchlm decoder ends with ``self.out_head(x)``;
    a model without ``out_head`` computes every position's logits.
    """
    head = getattr(model, "out_head", None)
    if not isinstance(head, torch.nn.Module):
        return model(idx, cache=cache, padding_mask=mask)[:, -1]
    handle = head.register_forward_pre_hook(lambda _, args: (args[0][:, -1:], *args[1:]))
    try:
        return model(idx, cache=cache, padding_mask=mask)[:, -1]  # (b, vocab)
    finally:
        handle.remove()


# -- the serving engine ------------------------------------------------------------------------------


class QueueFull(ServerBusy):
    """Every row is busy and ``max_queue`` requests already wait: 503, retry after ``retry_after`` seconds."""

    def __init__(self, waiting: int, retry_after: int) -> None:
        super().__init__(
            f"the server is busy: {waiting} requests already wait for a free slot; "
            f"retry in {retry_after} s (this server's limit: `scratchlm serve --max-queue`)",
            retry_after,
        )


class _Request:
    """One request between the event loop and the decoding thread."""

    def __init__(self, ids: list[int], options: GenerationOptions, loop: asyncio.AbstractEventLoop) -> None:
        self.ids = ids
        self.options = options
        self.loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.sent = 0  # events put (decoding thread)
        self.read = 0  # events taken (event loop)
        self.sent_at: deque[float] = deque()  # when each event not yet known to be read was put

    def put(self, event: Event, outbox: list[tuple[_Request, Event]]) -> None:
        """Count an event for the client and add it to ``outbox`` (decoding thread)."""
        self.sent += 1
        self.sent_at.append(time.monotonic())
        outbox.append((self, event))

    def stalled_for(self, now: float) -> float:
        """Seconds the oldest unread event has waited (0 when the client is up to date)."""
        unread = self.sent - self.read
        while len(self.sent_at) > unread:
            self.sent_at.popleft()
        return now - self.sent_at[0] if self.sent_at else 0.0

    def stats(self, reason: str, completion_tokens: int = 0, duration_ns: int = 0) -> dict[str, Any]:
        return {
            "prompt_tokens": len(self.ids),
            "completion_tokens": completion_tokens,
            "done_reason": reason,
            "duration_ns": duration_ns,
        }


@dataclass
class _Active:
    """A request in the batch: its sampler, its text so far, when it started."""

    decoder: PieceDecoder
    generator: torch.Generator | None
    started: int = field(default_factory=time.perf_counter_ns)
    next_token: int = 0


class ContinuousBatcher:
    """A serving :class:`~llm_eval.serving.Engine` that decodes every request in one running batch.

    ``eos_ids``: end-of-sequence ids (a request stops at any). ``max_batch_size``
    sequences decode together; ``max_queue`` more may wait for a row, beyond that
    :meth:`stream` raises :class:`QueueFull` (the server answers 503 with
    ``Retry-After``). A request whose client has not read an event for
    ``stall_timeout`` seconds ends with ``done_reason="timeout"`` and frees its row.
    Call :meth:`start` once, :meth:`close` at shutdown.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        eos_ids: Sequence[int] = (),
        max_batch_size: int = 8,
        max_queue: int = 32,
        stall_timeout: float = 30.0,
    ) -> None:
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 0:
            raise ConfigError(f"max_queue: expected an integer >= 0, got {max_queue!r}")
        if not (
            isinstance(stall_timeout, (int, float)) and stall_timeout > 0 and math.isfinite(stall_timeout)
        ):
            raise ConfigError(f"stall_timeout: expected a number of seconds > 0, got {stall_timeout!r}")
        self.decoder = BatchDecoder(model, max_batch_size)
        self.tokenizer = tokenizer
        self.eos_ids = tuple(int(i) for i in eos_ids)
        self.max_queue = max_queue
        self.stall_timeout = float(stall_timeout)
        self.waiting: deque[_Request] = deque()
        self.active: dict[_Request, _Active] = {}
        self.calls: deque[tuple[Callable[[], Any], asyncio.Future[Any]]] = deque()
        #: Events of this step, handed to their event loops together (one wake-up per loop and step).
        self.outbox: list[tuple[_Request, Event]] = []
        self.wake = threading.Condition()
        self.closing = threading.Event()
        self.durations: deque[float] = deque(maxlen=32)  # seconds of the last requests, for Retry-After
        self.thread = threading.Thread(target=self._loop, name="scratchlm-batch", daemon=True)

    @property
    def max_batch_size(self) -> int:
        """How many sequences decode together."""
        return self.decoder.max_batch_size

    def start(self) -> ContinuousBatcher:
        """Start the decoding thread (once); returns ``self``."""
        if not self.thread.is_alive():
            self.thread.start()
        return self

    def close(self) -> None:
        """End every request in progress or waiting with ``done_reason="shutdown"``; the thread stops."""
        self.closing.set()
        with self.wake:
            self.wake.notify()

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the decoding thread to stop (after :meth:`close`)."""
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout)

    def retry_after(self) -> int:
        """Seconds a refused client should wait: about one request's duration (at least 1)."""
        typical = sorted(self.durations)[len(self.durations) // 2] if self.durations else 1.0
        return max(1, math.ceil(typical))

    def stream(self, ids: list[int], options: GenerationOptions) -> AsyncIterator[Event]:
        """Queue a request now (from the serving event loop) and return its events.

        ``("text", Piece)`` events, then ``("done", stats)`` or ``("error", message)``.
        Raises :class:`QueueFull` at once when ``max_queue`` requests already wait
        for a row. Closing the iterator early frees the request's row.
        """
        request = _Request([int(i) for i in ids], options, asyncio.get_running_loop())
        with self.wake:
            if self.closing.is_set():  # the decoding thread has stopped or is stopping
                request.queue.put_nowait(("done", request.stats("shutdown")))  # on the loop already
            else:
                free_rows = max(0, self.max_batch_size - len(self.active))
                if len(self.waiting) >= free_rows + self.max_queue:
                    raise QueueFull(len(self.waiting) - free_rows, self.retry_after())
                self.waiting.append(request)
                self.wake.notify()
        return self._events(request)

    async def _events(self, request: _Request) -> AsyncIterator[Event]:
        try:
            while True:
                kind, value = await request.queue.get()
                request.read += 1
                yield kind, value
                if kind in ("done", "error"):
                    return
        finally:
            request.cancelled.set()

    async def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the decoding thread, between two steps (:class:`ServerBusy` once closed)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self.wake:
            if self.closing.is_set():
                raise ServerBusy("the server is shutting down; retry on another one", retry_after=1)
            self.calls.append((function, future))
            self.wake.notify()
        return await future

    # -- the decoding thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        with torch.no_grad():
            while True:
                with self.wake:
                    while not (self.active or self.waiting or self.calls or self.closing.is_set()):
                        self.wake.wait()
                self._run_calls()
                self._drop_finished()
                if self.closing.is_set():
                    self._shut_down()
                    return
                self._admit()
                self._flush()  # the first tokens go out before the next step
                if self.active:
                    self._step()
                self._flush()

    def _flush(self) -> None:
        """Hand this step's events to their event loops, one call per loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Request, Event]]] = {}
        for request, event in self.outbox:
            by_loop.setdefault(request.loop, []).append((request, event))
        self.outbox = []
        for loop, events in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, events)
            except RuntimeError:  # the event loop is gone (server shut down)
                for request, _ in events:
                    request.cancelled.set()

    def _run_calls(self) -> None:
        while self.calls:
            function, future = self.calls.popleft()
            try:
                result, error = function(), None
            except Exception as exc:  # raised in the caller's coroutine
                result, error = None, exc
            future.get_loop().call_soon_threadsafe(_settle, future, result, error)

    def _admit(self) -> None:
        """Prefill the waiting requests that fit, in one forward; each gets its first token at once."""
        free = self.max_batch_size - len(self.decoder)
        with self.wake:
            taken = [self.waiting.popleft() for _ in range(min(free, len(self.waiting)))]
        device = self.decoder.model.tok_emb.weight.device
        joining = []
        for request in taken:
            if request.cancelled.is_set():
                continue
            seed = request.options.seed
            self.active[request] = _Active(
                PieceDecoder(self.tokenizer, self.eos_ids, request.options.stop),
                None if seed is None else torch.Generator(device=device).manual_seed(seed),
            )
            if request.options.max_tokens == 0:
                self._finish(request, "length")
            else:
                joining.append(request)
        if not joining:
            return
        try:
            logits = self.decoder.add_many({request: request.ids for request in joining})
        except Exception as exc:  # reported to their clients, never kills the engine
            for request in joining:
                self._fail(request, exc)
            return
        for request in joining:
            self._take(request, logits[request])

    def _step(self) -> None:
        try:
            logits = self.decoder.step({r: a.next_token for r, a in self.active.items()})
        except Exception as exc:  # the whole batch failed: every request in it gets the error
            for request in list(self.active):
                self._fail(request, exc)
            return
        for request in list(self.active):
            self._take(request, logits[request])

    def _take(self, request: _Request, logits: torch.Tensor) -> None:
        """Sample ``request``'s next token from ``logits`` ``(vocab,)``; send its text; stop if done."""
        active = self.active[request]
        options = request.options
        temperature = options.temperature if options.temperature >= GREEDY_BELOW else 0.0
        sampled = _next_token(
            logits[None].float(), temperature, options.top_k, options.top_p, active.generator
        )
        active.next_token = int(sampled[0])
        piece = active.decoder.push(active.next_token)
        if piece is not None:
            request.put(("text", piece), self.outbox)
        if active.decoder.done_reason is not None:
            self._finish(request, active.decoder.done_reason)
        elif len(active.decoder.token_ids) >= options.max_tokens:
            self._finish(request, "length")

    def _finish(self, request: _Request, reason: str) -> None:
        """Send what is held back (at a normal end) and the stats; free the row."""
        self.decoder.remove(request)
        active = self.active.pop(request)
        if reason in ("stop", "length"):
            rest = active.decoder.flush()
            if rest is not None:
                request.put(("text", rest), self.outbox)
        duration = time.perf_counter_ns() - active.started
        self.durations.append(duration / 1e9)
        request.put(("done", request.stats(reason, len(active.decoder.token_ids), duration)), self.outbox)

    def _fail(self, request: _Request, exc: Exception) -> None:
        self.decoder.remove(request)
        self.active.pop(request, None)
        request.put(("error", f"{type(exc).__name__}: {exc}"), self.outbox)

    def _drop_finished(self) -> None:
        """Free the rows of clients that left, and end those that stopped reading."""
        now = time.monotonic()
        for request in list(self.active):
            if request.cancelled.is_set() and not self.closing.is_set():
                self.decoder.remove(request)
                self.active.pop(request)
            elif request.stalled_for(now) > self.stall_timeout:
                self._finish(request, "timeout")

    def _shut_down(self) -> None:
        """Every request, running or waiting, ends with its final event."""
        for request in list(self.active):
            self._finish(request, "shutdown")
        with self.wake:
            waiting, self.waiting = list(self.waiting), deque()
        for request in waiting:
            request.put(("done", request.stats("shutdown")), self.outbox)
        self._flush()
        self._run_calls()


def _deliver(events: list[tuple[_Request, Event]]) -> None:
    for request, event in events:
        request.queue.put_nowait(event)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
