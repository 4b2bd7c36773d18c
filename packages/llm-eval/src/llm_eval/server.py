"""Serve a checkpoint over HTTP with the Ollama and OpenAI APIs (``pip install 'llm-eval[serve]'``).

Endpoints:

* Ollama: ``GET /api/tags``, ``POST /api/generate``, ``POST /api/chat``
  (NDJSON streaming when ``"stream"`` is true, the Ollama default), ``GET /api/version``.
* OpenAI: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions``
  (server-sent events ending with ``data: [DONE]`` when ``"stream"`` is true).

Generation uses :func:`llm_model.stream_tokens` (KV cache). One request runs
the model at a time, on one generation thread; the others wait their turn in
arrival order, and a client that disconnects stops its generation at the next
token (or before it starts). On Ctrl-C or SIGTERM the server stops accepting
connections, lets the generations in progress go on for
``ServerLimits.shutdown_grace`` seconds, then ends each with its final chunk
(Ollama: ``"done": true, "done_reason": "shutdown"``; OpenAI: a ``finish_reason``
then ``data: [DONE]``) and exits with status 0. Chat messages are rendered
with the checkpoint's own chat template when its tokenizer has one (an imported
Llama or Mistral: the template's end-of-turn tokens end the answer), else turned
into the book's Alpaca prompt (:func:`chat_prompt`). ``/api/generate`` and
``/v1/completions`` continue the prompt text as is.

Errors: malformed JSON -> 400, a field of the wrong type or value -> 422, a
prompt longer than the context -> 400, an unknown model name -> 404 (what
Ollama and OpenAI answer), a body over the size limit -> 413, a body that
arrives too slowly -> 408, each with a message (``{"error": "..."}`` on the
Ollama routes, ``{"error": {"message": ...}}`` on the OpenAI routes). The limits
are a :class:`llm_eval.limits.ServerLimits`; ``GET /openapi.json`` describes
every route, its bounds and its answers (:mod:`llm_eval.openapi`).

The server has no authentication: :func:`start_server` and :func:`serve` bind
only loopback addresses unless ``allow_remote=True`` (``--allow-remote``).
"""

import asyncio
import errno
import hashlib
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llm_core.errors import ConfigError, DataError, MissingDependencyError
from llm_eval.limits import BodyLimit, ServerLimits, check_host, timed_h11_protocol
from llm_eval.openapi import (
    MAX_SEED,
    error_responses,
    ollama_request_body,
    openai_request_body,
    success_response,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "GenerationOptions",
    "ModelRunner",
    "RequestError",
    "RunningServer",
    "ServerLimits",
    "chat_prompt",
    "create_app",
    "serve",
    "start_server",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434
DEFAULT_MAX_TOKENS = 128
#: Where a chat answer ends in the Alpaca template: the model starting a new instruction.
CHAT_STOP = ("### Instruction:",)
#: Where a token budget over the server's limit comes from.
LIMIT_HINT = " (this server's limit: `scratchlm serve --max-tokens`)"
#: Sampling temperatures below this decode greedily: dividing logits by them overflows to inf.
GREEDY_BELOW = 1e-6


def _require_serve() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "serving needs fastapi and uvicorn: pip install 'llm-eval[serve]'"
        ) from None


class RequestError(Exception):
    """A bad request: ``status`` (400, 404, 422) and a message for the client."""

    def __init__(self, status: int, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


@dataclass
class GenerationOptions:
    """Sampling options of one request (0 temperature = greedy)."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


def chat_prompt(messages: Sequence[dict[str, Any]]) -> str:
    """The book's Alpaca prompt for a chat: system + user messages become the instruction.

    Earlier user/assistant turns are rendered as previous instruction/response
    blocks; system messages are put before the first user message. The prompt
    ends with ``"### Response:\\n"``, where the model's answer goes.
    """
    from llm_data import format_input

    system = "\n\n".join(str(m["content"]) for m in messages if m["role"] == "system")
    text = ""
    pending: list[str] = [system] if system else []
    for message in messages:
        if message["role"] == "user":
            pending.append(str(message["content"]))
        elif message["role"] == "assistant":
            instruction = "\n\n".join(pending)
            text += format_input({"instruction": instruction, "input": ""})
            text += f"\n\n### Response:\n{message['content']}\n\n"
            pending = []
    return text + format_input({"instruction": "\n\n".join(pending), "input": ""}) + "\n\n### Response:\n"


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of ``text`` could be the start of a stop string."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


class ModelRunner:
    """The served model and tokenizer; generates text pieces, one request at a time."""

    def __init__(self, model: Any, tokenizer: Any, name: str, *, checkpoint: str | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.checkpoint = checkpoint
        self.context_length = int(model.config.context_length)
        from llm_model.generation import default_eos_ids

        self.eos_id = getattr(tokenizer, "eot_token", None)
        #: Every end-of-sequence id (a checkpoint's own tokenizer may have several: end of turn, of text).
        self.eos_ids = default_eos_ids(tokenizer)
        #: The checkpoint's own chat template (its tokenizer_config.json), else None: the Alpaca prompt.
        self.chat_template = getattr(tokenizer, "chat_template", None)
        self.lock = threading.Lock()
        #: The one thread generations run on, in arrival order (one thread: one malloc arena, flat memory).
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scratchlm-generate")
        self.created = int(time.time())
        #: Set once the server shuts down: generations end (or do not start) with ``done_reason="shutdown"``.
        self.closing = threading.Event()
        #: The cancel events of the requests in progress or waiting (touched on the event loop's thread only).
        self.active: set[threading.Event] = set()

    def close(self) -> None:
        """End every generation in progress or waiting, each with its final chunk (server shutdown)."""
        self.closing.set()
        for cancel in list(self.active):
            cancel.set()

    def accepts(self, model: Any) -> bool:
        """Whether a request's ``model`` names this model (``name`` or ``name:latest``)."""
        return isinstance(model, str) and model in (self.name, f"{self.name}:latest")

    @property
    def chat_stop(self) -> tuple[str, ...]:
        """Stop strings of a chat answer: none with the checkpoint's template (its EOS ids end a turn)."""
        return () if self.chat_template is not None else CHAT_STOP

    def encode_chat(self, messages: list[dict[str, Any]]) -> list[int]:
        """Token ids of a conversation: the checkpoint's chat template when it has one, else Alpaca."""
        if self.chat_template is None:
            return self.encode(chat_prompt(messages))
        try:
            ids = list(self.tokenizer.encode_chat(messages, add_generation_prompt=True))
        except DataError as exc:  # the template refused the conversation (raise_exception …)
            raise RequestError(400, f"messages: {exc}", param="messages") from None
        return self._checked(ids)

    def encode(self, prompt: str) -> list[int]:
        """Token ids of a prompt; an empty or too long prompt is a :class:`RequestError`."""
        try:
            ids = list(self.tokenizer.encode(prompt))
        except (ValueError, UnicodeError) as exc:
            raise RequestError(400, f"prompt: cannot be tokenized ({exc})", param="prompt") from None
        return self._checked(ids)

    def _checked(self, ids: list[int]) -> list[int]:
        if not ids:
            raise RequestError(400, "prompt: expected some text, got an empty prompt", param="prompt")
        if len(ids) > self.context_length:
            raise RequestError(
                400,
                f"prompt is {len(ids)} tokens but the model's context is {self.context_length} tokens; "
                "shorten the prompt",
                param="prompt",
            )
        return ids

    def pieces(
        self, ids: list[int], options: GenerationOptions, cancel: threading.Event, stats: dict[str, Any]
    ) -> Iterator[str]:
        """Yield the generated text piece by piece; ``stats`` gets ``done_reason`` and ``completion_tokens``.

        Stops at the end-of-text token, a stop string (not included), ``max_tokens``
        (``done_reason="length"``) or when ``cancel`` is set. Text is only
        emitted once it cannot be the start of a stop string or of a multi-byte character.
        """
        from llm_model import stream_tokens

        stats.update(done_reason="length", completion_tokens=0)
        new: list[int] = []
        emitted = ""
        text = ""
        stream = stream_tokens(
            self.model,
            ids,
            options.max_tokens,
            temperature=options.temperature if options.temperature >= GREEDY_BELOW else 0.0,
            top_k=options.top_k,
            top_p=options.top_p,
            seed=options.seed,
        )
        for token in stream:
            if cancel.is_set():
                stats["done_reason"] = "shutdown" if self.closing.is_set() else "cancelled"
                return
            token_id = int(token[0])
            if token_id in self.eos_ids:
                stats["done_reason"] = "stop"
                break
            new.append(token_id)
            stats["completion_tokens"] = len(new)
            text = self.tokenizer.decode(new)
            cuts = [text.find(s) for s in options.stop if s and s in text]
            if cuts:
                text = text[: min(cuts)]
                stats["done_reason"] = "stop"
                break
            if text.endswith("\ufffd"):
                continue  # an incomplete UTF-8 character: wait for the next token
            safe = text[: len(text) - _held_back(text, options.stop)]
            if len(safe) > len(emitted) and safe.startswith(emitted):
                yield safe[len(emitted) :]
                emitted = safe
        if len(text) > len(emitted) and text.startswith(emitted):
            yield text[len(emitted) :]

    def run(
        self,
        ids: list[int],
        options: GenerationOptions,
        put: Callable[[tuple[str, Any]], None],
        cancel: threading.Event,
    ) -> None:
        """Generate under the model lock; ``put`` text pieces, then the stats or an error.

        Nothing happens when ``cancel`` is already set (the client left while it waited),
        except during shutdown: then the request gets its final event with no tokens.
        """
        if cancel.is_set():
            if self.closing.is_set():
                put(
                    (
                        "done",
                        {
                            "prompt_tokens": len(ids),
                            "completion_tokens": 0,
                            "done_reason": "shutdown",
                            "duration_ns": 0,
                        },
                    )
                )
            return
        try:
            with self.lock:
                start = time.perf_counter_ns()
                stats: dict[str, Any] = {"prompt_tokens": len(ids)}
                for piece in self.pieces(ids, options, cancel, stats):
                    put(("text", piece))
                stats["duration_ns"] = time.perf_counter_ns() - start
            put(("done", stats))
        except Exception as exc:  # reported to the client, never kills the server
            put(("error", f"{type(exc).__name__}: {exc}"))

    def info(self) -> dict[str, Any]:
        """Size, digest and details of the served model (for ``/api/tags``)."""
        params = sum(p.numel() for p in self.model.parameters())
        size = sum(p.numel() * p.element_size() for p in self.model.parameters())
        digest = hashlib.sha256(f"{self.name}:{self.checkpoint}:{params}".encode()).hexdigest()
        return {"parameters": params, "size": size, "digest": digest}


async def _events(
    runner: ModelRunner, ids: list[int], options: GenerationOptions
) -> AsyncIterator[tuple[str, Any]]:
    """Run one generation in a worker thread and yield its events; closing this stops the generation."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancel = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shut down)
            cancel.set()

    runner.active.add(cancel)
    if runner.closing.is_set():
        cancel.set()
    runner.executor.submit(runner.run, ids, options, put, cancel)
    try:
        while True:
            kind, value = await queue.get()
            yield kind, value
            if kind in ("done", "error"):
                return
    finally:
        cancel.set()
        runner.active.discard(cancel)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


# ---- request parsing -----------------------------------------------------------------------------


def _number(
    body: dict[str, Any], key: str, *, low: float, high: float | None, integer: bool = False, hint: str = ""
) -> Any:
    value = body.get(key)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, kinds)
        or not math.isfinite(value)
        or value < low
        or (high is not None and value > high)
    ):
        expected = "an integer" if integer else "a number"
        bounds = f">= {low}" if high is None else f"in {low}..{high}"
        raise RequestError(422, f"{key}: expected {expected} {bounds}{hint}, got {value!r}", param=key)
    return value


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise RequestError(422, f"stop: expected a string or a list of strings, got {value!r}", param="stop")


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            422, "messages: expected a non-empty list of {role, content} objects", param="messages"
        )
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise RequestError(
                422,
                f"messages[{i}]: expected an object with role system, user or assistant",
                param="messages",
            )
        content = m.get("content", "")
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            texts = [p.get("text", "") for p in content if isinstance(p, dict)]
            content = "".join(texts) if all(isinstance(t, str) for t in texts) else None
        if not isinstance(content, str):
            raise RequestError(
                422, f"messages[{i}].content: expected a string, got {content!r}", param="messages"
            )
        out.append({"role": m["role"], "content": content})
    if out[-1]["role"] != "user":
        raise RequestError(422, "messages: expected the last message to be from the user", param="messages")
    return out


def _ollama_options(body: dict[str, Any], limit: int, default_stop: Sequence[str] = ()) -> GenerationOptions:
    """Ollama's ``options``; ``num_predict`` -1 or -2 (no limit, fill the context) mean ``limit`` tokens."""
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise RequestError(422, f"options: expected an object, got {options!r}", param="options")
    predict = _number(options, "num_predict", low=-2, high=limit, integer=True, hint=LIMIT_HINT)
    temperature = _number(options, "temperature", low=0, high=None)
    return GenerationOptions(
        max_tokens=min(DEFAULT_MAX_TOKENS, limit)
        if predict is None
        else (predict if predict >= 0 else limit),
        temperature=0.8 if temperature is None else float(temperature),
        top_k=_number(options, "top_k", low=1, high=None, integer=True) or None,
        top_p=_number(options, "top_p", low=0, high=1) or None,
        seed=_number(options, "seed", low=0, high=MAX_SEED, integer=True),
        stop=[*default_stop, *_stop(options.get("stop"))],
    )


def _openai_options(
    body: dict[str, Any], default_max: int, limit: int, default_stop: Sequence[str] = ()
) -> GenerationOptions:
    if _number(body, "n", low=1, high=1, integer=True) is None and body.get("n") is not None:
        raise RequestError(422, "n: only n=1 is supported", param="n")
    max_tokens = _number(body, "max_completion_tokens", low=0, high=limit, integer=True, hint=LIMIT_HINT)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", low=0, high=limit, integer=True, hint=LIMIT_HINT)
    temperature = _number(body, "temperature", low=0, high=2)
    return GenerationOptions(
        max_tokens=min(default_max, limit) if max_tokens is None else max_tokens,
        temperature=1.0 if temperature is None else float(temperature),
        top_p=_number(body, "top_p", low=0, high=1) or None,
        seed=_number(body, "seed", low=0, high=MAX_SEED, integer=True),
        stop=[*default_stop, *_stop(body.get("stop"))],
    )


# ---- the app -------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def create_app(runner: ModelRunner, limits: ServerLimits | None = None) -> Any:
    """The FastAPI application serving ``runner``'s model on the Ollama and OpenAI routes.

    ``limits`` (default :class:`ServerLimits`) bound the body size and the tokens per request;
    :func:`start_server` takes its timeouts from ``app.state.limits``.
    """
    _require_serve()
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

    limits = limits or ServerLimits()
    app = FastAPI(title="scratchlm serve", version="1")
    app.state.runner = runner
    app.state.limits = limits
    app.add_middleware(BodyLimit, limits=limits)
    name, most = runner.name, limits.max_tokens

    def ollama_error(exc: RequestError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    def openai_error(exc: RequestError) -> JSONResponse:
        kind = "not_found_error" if exc.status == 404 else "invalid_request_error"
        code = "model_not_found" if exc.status == 404 else None
        payload = {"message": exc.message, "type": kind, "param": exc.param, "code": code}
        return JSONResponse({"error": payload}, status_code=exc.status)

    async def read_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw or b"null", parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise RequestError(400, f"malformed JSON in the request body: {exc}") from None
        if not isinstance(body, dict):
            raise RequestError(400, f"expected a JSON object as the request body, got {type(body).__name__}")
        return body

    def check_model(body: dict[str, Any]) -> None:
        model = body.get("model")
        if not runner.accepts(model):
            raise RequestError(
                404, f"model {model!r} not found; this server serves {runner.name!r}", param="model"
            )

    def stream_flag(body: dict[str, Any], default: bool) -> bool:
        value = body.get("stream", default)
        if not isinstance(value, bool):
            raise RequestError(422, f"stream: expected true or false, got {value!r}", param="stream")
        return value

    # -- Ollama ------------------------------------------------------------------------------------

    @app.get("/", response_class=PlainTextResponse)
    def root() -> PlainTextResponse:
        return PlainTextResponse("scratchlm is running (Ollama and OpenAI compatible)")

    @app.get("/api/version")
    def version() -> dict[str, str]:
        from llm_eval import __version__

        return {"version": __version__}

    @app.get("/api/tags")
    def tags() -> dict[str, Any]:
        info = runner.info()
        arch = str(getattr(runner.model, "architecture", "gpt2"))
        return {
            "models": [
                {
                    "name": f"{runner.name}:latest",
                    "model": f"{runner.name}:latest",
                    "modified_at": datetime.fromtimestamp(runner.created, timezone.utc).isoformat(),
                    "size": info["size"],
                    "digest": info["digest"],
                    "details": {
                        "format": "safetensors",
                        "family": arch,
                        "families": [arch],
                        "parameter_size": f"{info['parameters'] / 1e6:.1f}M",
                        "quantization_level": "F32",
                        "parent_model": "",
                    },
                }
            ]
        }

    async def ollama_route(request: Request, chat: bool) -> Any:
        try:
            body = await read_body(request)
            check_model(body)
            stream = stream_flag(body, True)
            if chat:
                ids = runner.encode_chat(_messages(body))
                options = _ollama_options(body, most, runner.chat_stop)
            else:
                raw_prompt = body.get("prompt")
                if not isinstance(raw_prompt, str):
                    raise RequestError(422, f"prompt: expected a string, got {raw_prompt!r}", param="prompt")
                prompt = raw_prompt
                if isinstance(body.get("system"), str) and body["system"]:
                    prompt = f"{body['system']}\n\n{prompt}"
                options = _ollama_options(body, most)
                ids = runner.encode(prompt)
        except RequestError as exc:
            return ollama_error(exc)
        model_name = body["model"]

        def chunk(piece: str, done: bool) -> dict[str, Any]:
            item: dict[str, Any] = {"model": model_name, "created_at": _now()}
            if chat:
                item["message"] = {"role": "assistant", "content": piece}
            else:
                item["response"] = piece
            item["done"] = done
            return item

        def final(stats: dict[str, Any], text: str) -> dict[str, Any]:
            item = chunk(text, True)
            item.update(
                done_reason=stats["done_reason"],
                total_duration=stats["duration_ns"],
                prompt_eval_count=stats["prompt_tokens"],
                eval_count=stats["completion_tokens"],
            )
            if not chat:
                item["context"] = ids
            return item

        if stream:

            async def lines() -> AsyncIterator[bytes]:
                async for kind, value in _events(runner, ids, options):
                    if kind == "text":
                        yield (json.dumps(chunk(value, False)) + "\n").encode()
                    elif kind == "done":
                        yield (json.dumps(final(value, "")) + "\n").encode()
                    else:
                        yield (json.dumps({"error": value}) + "\n").encode()

            return StreamingResponse(lines(), media_type="application/x-ndjson")
        text = ""
        async for kind, value in _events(runner, ids, options):
            if kind == "text":
                text += value
            elif kind == "done":
                return final(value, text)
            else:
                return JSONResponse({"error": value}, status_code=500)
        return JSONResponse(
            {"error": "generation ended without a result"}, status_code=500
        )  # pragma: no cover

    def described(openai: bool, extra: dict[str, Any]) -> dict[str, Any]:
        return {"openapi_extra": extra, "responses": {**success_response(openai), **error_responses(openai)}}

    @app.post("/api/generate", **described(False, ollama_request_body(name, most, chat=False)))
    async def ollama_generate(request: Request) -> Any:
        return await ollama_route(request, chat=False)

    @app.post("/api/chat", **described(False, ollama_request_body(name, most, chat=True)))
    async def ollama_chat(request: Request) -> Any:
        return await ollama_route(request, chat=True)

    # -- OpenAI ------------------------------------------------------------------------------------

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": runner.name, "object": "model", "created": runner.created, "owned_by": "scratchlm"}
            ],
        }

    async def openai_route(request: Request, chat: bool) -> Any:
        try:
            body = await read_body(request)
            check_model(body)
            stream = stream_flag(body, False)
            if chat:
                ids = runner.encode_chat(_messages(body))
                options = _openai_options(body, DEFAULT_MAX_TOKENS, most, runner.chat_stop)
            else:
                raw_prompt = body.get("prompt")
                if isinstance(raw_prompt, list) and len(raw_prompt) == 1:
                    raw_prompt = raw_prompt[0]
                if not isinstance(raw_prompt, str):
                    raise RequestError(
                        422, "prompt: expected a string (one prompt per request)", param="prompt"
                    )
                prompt = raw_prompt
                options = _openai_options(body, 16, most)
                ids = runner.encode(prompt)
            stream_options = body.get("stream_options") or {}
            if not isinstance(stream_options, dict):
                raise RequestError(
                    422, f"stream_options: expected an object, got {stream_options!r}", param="stream_options"
                )
            usage_in_stream = bool(stream_options.get("include_usage"))
        except RequestError as exc:
            return openai_error(exc)
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        model_name = body["model"]
        kind_name = "chat.completion" if chat else "text_completion"

        def usage(stats: dict[str, Any]) -> dict[str, int]:
            p, c = stats["prompt_tokens"], stats["completion_tokens"]
            return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

        def reason(stats: dict[str, Any]) -> str:
            return "length" if stats["done_reason"] == "length" else "stop"

        def choice(
            piece: str | None, finish: str | None, *, first: bool = False, whole: bool = False
        ) -> dict:
            if not chat:
                return {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish}
            if whole:
                message = {"role": "assistant", "content": piece}
                return {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            delta: dict[str, Any] = {"role": "assistant"} if first else {}
            if piece is not None:
                delta["content"] = piece
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        def envelope(choices: list[dict[str, Any]], streaming: bool) -> dict[str, Any]:
            obj = f"{kind_name}.chunk" if streaming and chat else kind_name
            return {"id": ident, "object": obj, "created": created, "model": model_name, "choices": choices}

        if stream:

            async def sse() -> AsyncIterator[bytes]:
                def event(data: Any) -> bytes:
                    return f"data: {json.dumps(data)}\n\n".encode()

                if chat:
                    yield event(envelope([choice("", None, first=True)], True))
                async for kind, value in _events(runner, ids, options):
                    if kind == "text":
                        yield event(envelope([choice(value, None)], True))
                    elif kind == "done":
                        yield event(envelope([choice(None if chat else "", reason(value))], True))
                        if usage_in_stream:
                            yield event({**envelope([], True), "usage": usage(value)})
                    else:
                        yield event({"error": {"message": value, "type": "server_error"}})
                yield b"data: [DONE]\n\n"

            return StreamingResponse(sse(), media_type="text/event-stream")
        text = ""
        async for kind, value in _events(runner, ids, options):
            if kind == "text":
                text += value
            elif kind == "done":
                return {**envelope([choice(text, reason(value), whole=True)], False), "usage": usage(value)}
            else:
                return JSONResponse({"error": {"message": value, "type": "server_error"}}, status_code=500)
        return JSONResponse({"error": {"message": "no result"}}, status_code=500)  # pragma: no cover

    @app.post("/v1/completions", **described(True, openai_request_body(name, most, chat=False)))
    async def openai_completions(request: Request) -> Any:
        return await openai_route(request, chat=False)

    @app.post("/v1/chat/completions", **described(True, openai_request_body(name, most, chat=True)))
    async def openai_chat(request: Request) -> Any:
        return await openai_route(request, chat=True)

    return app


# ---- running it ----------------------------------------------------------------------------------


def _check_port(host: str, port: int) -> None:
    """Fail with one clear line when ``host:port`` cannot be bound (in use, or not a local address)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port: expected an integer in 0..65535, got {port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is already in use (another server, e.g. `ollama serve`?); "
                    "stop it or pass --port"
                ) from None
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass --host/--port"
            ) from None


class RunningServer:
    """A uvicorn server running in a background thread; ``stop()`` shuts it down gracefully."""

    def __init__(self, server: Any, thread: threading.Thread, host: str, port: int) -> None:
        self.server = server
        self.thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """``http://host:port`` of the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to finish the open requests and exit; wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _uvicorn_config(app: Any, host: str, port: int, log_level: str) -> Any:
    """uvicorn's config: h11 with a request-head deadline, timeouts from ``app.state.limits``."""
    import uvicorn

    limits = getattr(app.state, "limits", None) or ServerLimits()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="off",
        # the generations end after shutdown_grace; uvicorn cancels what is left (with tracebacks) later
        timeout_graceful_shutdown=math.ceil(limits.shutdown_grace) + 5,
        timeout_keep_alive=max(1, math.ceil(limits.keep_alive)),
        http=timed_h11_protocol(limits.request_timeout),
    )


def _graceful_server(config: Any) -> Any:
    """uvicorn's server that ends the generations ``shutdown_grace`` s into a shutdown; exits 0 on a signal.

    uvicorn re-raises the signal that stopped it once it has shut down (Ctrl-C then
    exits 130, SIGTERM kills the process); a server that shut down cleanly should not.
    A second Ctrl-C ends the generations at once.
    """
    import uvicorn

    state = getattr(config.app, "state", None)
    runner: ModelRunner | None = getattr(state, "runner", None)
    limits: ServerLimits = getattr(state, "limits", None) or ServerLimits()

    class GracefulServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit and sig == signal.SIGINT and runner is not None:
                runner.close()  # the second Ctrl-C: do not wait for the grace period
            self.should_exit = True

        async def shutdown(self, sockets: Any = None) -> None:
            ending = None
            if runner is not None:
                ending = asyncio.get_running_loop().call_later(limits.shutdown_grace, runner.close)
            try:
                await super().shutdown(sockets)
            finally:
                if ending is not None:
                    ending.cancel()

    return GracefulServer(config)


def _bound_port(server: Any, port: int) -> int:
    """The port ``server`` listens on (the OS's choice when ``port`` is 0)."""
    if port == 0 and server.servers:
        return int(server.servers[0].sockets[0].getsockname()[1])
    return port


def start_server(
    app: Any,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    allow_remote: bool = False,
    log_level: str = "warning",
    timeout: float = 30.0,
) -> RunningServer:
    """Start ``app`` with uvicorn in a daemon thread and wait until it accepts connections.

    A non-loopback ``host`` needs ``allow_remote=True`` (the server has no authentication).
    """
    _require_serve()
    check_host(host, allow_remote)
    _check_port(host, port)
    server = _graceful_server(_uvicorn_config(app, host, port, log_level))
    thread = threading.Thread(target=server.run, name=f"scratchlm-serve-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ConfigError(f"the server on {host}:{port} did not start; is the port free? pass --port")
        time.sleep(0.02)
    return RunningServer(server, thread, host, _bound_port(server, port))


def load_runner(
    checkpoint: str | os.PathLike[str], *, tokenizer: Any = None, name: str | None = None, device: str = "cpu"
) -> ModelRunner:
    """A :class:`ModelRunner` for a checkpoint directory (served name: ``name`` or the directory's name)."""
    from llm_eval.checkpoints import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(checkpoint, tokenizer, device=device)
    served = name or Path(checkpoint).resolve().name.lower().replace(" ", "-") or "scratchlm"
    return ModelRunner(model, tok, served, checkpoint=str(checkpoint))


#: The line :func:`serve` prints to stderr once it accepts connections (``{url}`` filled in).
READY_LINE = "scratchlm serve: listening on {url}"


def serve(
    checkpoint: str | os.PathLike[str],
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    tokenizer: Any = None,
    name: str | None = None,
    device: str = "cpu",
    log_level: str = "info",
    allow_remote: bool = False,
    limits: ServerLimits | None = None,
) -> None:
    """Serve a checkpoint until interrupted (Ctrl-C or SIGTERM end the open requests cleanly, then return).

    Once it accepts connections it prints :data:`READY_LINE` with the real URL to
    stderr (``port=0`` lets the OS choose a free port). A non-loopback ``host``
    needs ``allow_remote=True``.
    """
    _require_serve()
    check_host(host, allow_remote)
    _check_port(host, port)
    runner = load_runner(checkpoint, tokenizer=tokenizer, name=name, device=device)
    server = _graceful_server(_uvicorn_config(create_app(runner, limits), host, port, log_level))
    startup = server.startup

    async def announcing_startup(sockets: Any = None) -> None:
        await startup(sockets)
        if server.started:
            url = RunningServer(server, threading.current_thread(), host, _bound_port(server, port)).url
            print(READY_LINE.format(url=url), file=sys.stderr, flush=True)

    server.startup = announcing_startup
    server.run()
