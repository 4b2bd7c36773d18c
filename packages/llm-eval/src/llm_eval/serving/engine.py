"""The seam between the routes and the model: "generate tokens for this request".

Every generating route turns its request into prompt token ids and a
:class:`GenerationOptions`, then iterates ``engine.stream(ids, options)``, an
async iterator of events:

* ``("text", Piece)``: the next piece of text and the token ids it came from;
* then exactly one ``("done", stats)`` — ``stats`` has ``prompt_tokens``,
  ``completion_tokens``, ``done_reason`` (``"stop"``, ``"length"``,
  ``"cancelled"``, ``"shutdown"``) and ``duration_ns`` — or ``("error", message)``.

Closing the iterator early (the client left) cancels the generation. Work on
the model that is not decoding (scoring a prompt, embeddings) goes through
``await engine.call(function)``, so it never races the decoder. ``close()``
ends every generation in progress or waiting with its final event (server
shutdown). Anything with these three methods is an :class:`Engine`;
:class:`SerialEngine` is the simplest one: one request at a time, on one thread.
:class:`PieceDecoder` turns one sequence's new token ids into text pieces
(end-of-sequence ids, stop strings, incomplete UTF-8), for any engine to reuse.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from llm_eval.serving.runner import ModelRunner

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "GREEDY_BELOW",
    "Engine",
    "Event",
    "GenerationOptions",
    "Piece",
    "PieceDecoder",
    "SerialEngine",
]

DEFAULT_MAX_TOKENS = 128
#: Sampling temperatures below this decode greedily: dividing logits by them overflows to inf.
GREEDY_BELOW = 1e-6

T = TypeVar("T")
#: ``("text", Piece)``, ``("done", stats)`` or ``("error", message)``.
Event = tuple[str, Any]


@dataclass
class GenerationOptions:
    """Sampling options of one request (0 temperature = greedy); ``max_tokens`` new tokens at most."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Piece:
    """A piece of generated text and the new token ids it was decoded from (in order)."""

    text: str
    token_ids: tuple[int, ...]


class Engine(Protocol):
    """What the routes need of a generation engine (see the module docstring)."""

    def stream(self, ids: list[int], options: GenerationOptions) -> AsyncIterator[Event]:
        """Generate after the prompt ``ids``: ``("text", Piece)`` events, then ``done`` or ``error``.

        Called on the event loop before the answer starts: an engine that cannot
        take the request raises :class:`~llm_eval.serving.errors.ServerBusy` here (503).
        """
        ...

    async def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` (a forward pass outside decoding) where it cannot race the decoder."""
        ...

    def close(self) -> None:
        """End every generation in progress or waiting, each with its final event."""
        ...


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of ``text`` could be the start of a stop string."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


class PieceDecoder:
    """One sequence's new token ids -> text pieces, holding back what could start a stop string.

    :meth:`push` each new token id; it returns the piece that became safe to send
    (or ``None``) and sets :attr:`done_reason` to ``"stop"`` at an end-of-sequence
    id or a stop string (the stop string itself is never sent). :meth:`flush`
    returns what is left at the end.
    """

    def __init__(self, tokenizer: Any, eos_ids: Sequence[int], stop: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.eos_ids = set(eos_ids)
        self.stop = [s for s in stop if s]
        #: The new token ids so far (end-of-sequence ids excluded).
        self.token_ids: list[int] = []
        self.done_reason: str | None = None
        self._text = ""
        self._emitted = ""
        self._sent_ids = 0

    def _piece(self, text: str, upto: int) -> Piece | None:
        if not text:
            return None  # its tokens go with the next piece
        ids = tuple(self.token_ids[self._sent_ids : upto])
        self._emitted += text
        self._sent_ids = upto
        return Piece(text, ids)

    def push(self, token_id: int) -> Piece | None:
        """Take the next token id; the piece now safe to send, if any."""
        if token_id in self.eos_ids:
            self.done_reason = "stop"
            return None
        self.token_ids.append(token_id)
        self._text = self.tokenizer.decode(self.token_ids)
        cuts = [self._text.find(s) for s in self.stop if s in self._text]
        if cuts:
            self._text = self._text[: min(cuts)]
            self.done_reason = "stop"
            upto = len(self.token_ids)
            while upto > self._sent_ids + 1 and len(self.tokenizer.decode(self.token_ids[: upto - 1])) >= len(
                self._text
            ):
                upto -= 1  # the tokens that only hold the stop string are not part of the answer
            return self._piece(self._text[len(self._emitted) :], upto)
        if self._text.endswith("\ufffd"):
            return None  # an incomplete UTF-8 character: wait for the next token
        safe = self._text[: len(self._text) - _held_back(self._text, self.stop)]
        if len(safe) > len(self._emitted) and safe.startswith(self._emitted):
            return self._piece(safe[len(self._emitted) :], len(self.token_ids))
        return None

    def flush(self) -> Piece | None:
        """The text (and token ids) not sent yet, at the end of the generation."""
        rest = self._text[len(self._emitted) :] if self._text.startswith(self._emitted) else ""
        return self._piece(rest, len(self.token_ids))


class SerialEngine:
    """One request decodes at a time, on one thread, in arrival order (:func:`llm_model.stream_tokens`).

    A client that disconnects stops its generation at the next token (or before
    it starts). One thread also means one malloc arena: memory stays flat.
    """

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scratchlm-generate")
        #: Set once the server shuts down: generations end (or do not start) with ``done_reason="shutdown"``.
        self.closing = threading.Event()
        #: The cancel events of the requests in progress or waiting (touched on the event loop's thread only).
        self.active: set[threading.Event] = set()

    def close(self) -> None:
        """End every generation in progress or waiting, each with its final chunk (server shutdown)."""
        self.closing.set()
        for cancel in list(self.active):
            cancel.set()

    async def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the generation thread, between two requests."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function)

    def _generate(
        self,
        ids: list[int],
        options: GenerationOptions,
        put: Callable[[Event], None],
        cancel: threading.Event,
    ) -> None:
        """Decode on this thread; ``put`` each event. Nothing but the final event once cancelled."""
        from llm_model import stream_tokens

        stats: dict[str, Any] = {"prompt_tokens": len(ids), "completion_tokens": 0, "duration_ns": 0}
        if cancel.is_set():
            if self.closing.is_set():
                put(("done", {**stats, "done_reason": "shutdown"}))
            return
        start = time.perf_counter_ns()
        try:
            decoder = PieceDecoder(self.runner.tokenizer, self.runner.eos_ids, options.stop)
            stream = stream_tokens(
                self.runner.model,
                ids,
                options.max_tokens,
                temperature=options.temperature if options.temperature >= GREEDY_BELOW else 0.0,
                top_k=options.top_k,
                top_p=options.top_p,
                seed=options.seed,
            )
            reason = "length"
            for token in stream:
                if cancel.is_set():
                    reason = "shutdown" if self.closing.is_set() else "cancelled"
                    break
                piece = decoder.push(int(token[0]))
                if piece is not None:
                    put(("text", piece))
                if decoder.done_reason is not None:
                    reason = decoder.done_reason
                    break
            if reason in ("length", "stop"):
                rest = decoder.flush()
                if rest is not None:
                    put(("text", rest))
            stats.update(
                completion_tokens=len(decoder.token_ids),
                done_reason=reason,
                duration_ns=time.perf_counter_ns() - start,
            )
            put(("done", stats))
        except Exception as exc:  # reported to the client, never kills the server
            put(("error", f"{type(exc).__name__}: {exc}"))

    async def stream(self, ids: list[int], options: GenerationOptions) -> AsyncIterator[Event]:
        """Queue one generation on the generation thread and yield its events (see the module doc)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: Event) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone (server shut down)
                cancel.set()

        self.active.add(cancel)
        if self.closing.is_set():
            cancel.set()
        self.executor.submit(self._generate, ids, options, put, cancel)
        try:
            while True:
                kind, value = await queue.get()
                yield kind, value
                if kind in ("done", "error"):
                    return
        finally:
            cancel.set()
            self.active.discard(cancel)
