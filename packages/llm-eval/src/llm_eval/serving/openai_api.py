"""OpenAI's API under ``/v1`` (models, completions, chat completions, embeddings) and vLLM's tokenizer routes.

``/v1/completions`` takes a string, a list of strings, a list of token ids or a
list of lists of them (one choice per prompt), and answers ``logprobs`` (with
that many likeliest alternatives per token) and ``echo`` (the prompt's tokens
scored too): what lm-eval's ``local-completions`` model asks for a
log-likelihood. ``/tokenizer_info``, ``/tokenize`` and ``/detokenize`` are vLLM's
routes, which lm-eval uses to tokenize with the served model's own tokenizer.
Every error under ``/v1`` is OpenAI's ``{"error": {"message", "type", "param", "code"}}``.
"""

import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from llm_eval.limits import ServerLimits
from llm_eval.openapi import (
    error_responses,
    json_request_body,
    json_response,
    openai_request_body,
    success_response,
)
from llm_eval.serving.engine import Engine
from llm_eval.serving.errors import RequestError
from llm_eval.serving.parsing import (
    check_model,
    messages_field,
    model_request,
    number,
    openai_options,
    read_body,
    reject_unsupported,
    stream_flag,
)
from llm_eval.serving.runner import ModelRunner, TokenScore

__all__ = ["MAX_LOGPROBS", "openai_error", "openai_router", "tokenizer_router"]

#: Most alternatives per token ``logprobs`` may ask for.
MAX_LOGPROBS = 20
_KINDS = {404: "not_found_error", 405: "invalid_request_error", 500: "server_error", 503: "server_error"}


def openai_error(exc: RequestError) -> Any:
    """OpenAI's error answer: ``{"error": {"message", "type", "param", "code"}}`` with the error's status."""
    from fastapi.responses import JSONResponse

    kind = exc.kind or _KINDS.get(exc.status, "invalid_request_error")
    code = "model_not_found" if exc.status == 404 and exc.param == "model" else None
    payload = {"message": exc.message, "type": kind, "param": exc.param, "code": code}
    return JSONResponse({"error": payload}, status_code=exc.status, headers=exc.headers)


def _prompts(runner: ModelRunner, body: dict[str, Any]) -> list[list[int]]:
    """The token ids of each prompt of a completion request (string, strings, ids, lists of ids)."""
    raw = body.get("prompt")
    expected = "a string, a list of strings, a list of token ids or a list of lists of token ids"
    if isinstance(raw, str):
        return [runner.encode(raw)]
    if isinstance(raw, list) and raw:
        if all(isinstance(p, str) for p in raw):
            return [runner.encode(p) for p in raw]
        if all(isinstance(i, int) and not isinstance(i, bool) for i in raw):
            return [runner.checked(list(raw))]
        if all(isinstance(p, list) and all(isinstance(i, int) for i in p) for p in raw):
            return [runner.checked(list(p)) for p in raw]
    raise RequestError(422, f"prompt: expected {expected}", param="prompt")


class _Logprobs:
    """OpenAI's completion ``logprobs`` object, built token by token."""

    def __init__(self, runner: ModelRunner, offset: int) -> None:
        self.runner = runner
        self.offset = offset
        self.value: dict[str, list[Any]] = {
            "tokens": [],
            "token_logprobs": [],
            "top_logprobs": [],
            "text_offset": [],
        }

    def add(self, scores: list[TokenScore], top: int) -> dict[str, list[Any]]:
        """Append ``scores``; the part they added (for a streamed chunk)."""
        part: dict[str, list[Any]] = {key: [] for key in self.value}
        for score in scores:
            token = self.runner.decode([score.token_id])
            alternatives = None
            if score.logprob is not None:
                alternatives = {self.runner.decode([i]): lp for i, lp in score.top[:top]}
                alternatives.setdefault(token, score.logprob)
            part["tokens"].append(token)
            part["token_logprobs"].append(score.logprob)
            part["top_logprobs"].append(alternatives)
            part["text_offset"].append(self.offset)
            self.offset += len(token)
        for key, values in part.items():
            self.value[key].extend(values)
        return part


def openai_router(runner: ModelRunner, engine: Engine, limits: ServerLimits) -> Any:
    """The ``APIRouter`` of OpenAI's routes for ``runner``'s model, generating through ``engine``."""
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    router = APIRouter(prefix="/v1", tags=["openai"])
    name, most = runner.name, limits.max_tokens

    def model_object() -> dict[str, Any]:
        return {"id": name, "object": "model", "created": runner.created, "owned_by": "scratchlm"}

    @router.get("/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_object()]}

    errors = error_responses(True)
    token_lists = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
    inputs = {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1},
            token_lists,
            {"type": "array", "items": token_lists, "minItems": 1},
        ]
    }

    @router.get("/models/{model_id:path}", responses={404: errors[404]})
    def model(model_id: str) -> Any:
        try:
            check_model(runner, {"model": model_id})
        except RequestError as exc:
            return openai_error(exc)
        return model_object()

    @router.post(
        "/embeddings",
        openapi_extra=json_request_body(
            ["model", "input"],
            {
                "model": {"type": "string", "enum": [name]},
                "input": inputs,
                "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            },
        ),
        responses={**json_response("One L2-normalised mean-pooled hidden state per input"), **errors},
    )
    async def embeddings(request: Request) -> Any:
        try:
            body = await model_request(runner, request)
            raw = body.get("input")
            if isinstance(raw, str) or (
                isinstance(raw, list) and raw and all(isinstance(i, int) for i in raw)
            ):
                raw = [raw]
            if not isinstance(raw, list) or not raw:
                raise RequestError(
                    422, "input: expected a string, a list of strings or of token id lists", param="input"
                )
            inputs = [
                runner.encode(item, param="input")
                if isinstance(item, str)
                else runner.checked(item if isinstance(item, list) else [item], param="input")
                for item in raw
            ]
            encoding = body.get("encoding_format", "float")
            if encoding not in ("float", "base64"):
                raise RequestError(
                    422,
                    f"encoding_format: expected float or base64, got {encoding!r}",
                    param="encoding_format",
                )
            width = int(runner.model.config.emb_dim)
            reject_unsupported(body, {"dimensions": width})
        except RequestError as exc:
            return openai_error(exc)
        data = []
        for index, ids in enumerate(inputs):
            vector = await engine.call(partial(runner.embed, ids, normalise=True))
            value: Any = vector
            if encoding == "base64":  # little-endian float32, as OpenAI's client decodes it
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": value})
        count = sum(len(ids) for ids in inputs)
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": count, "total_tokens": count},
        }

    async def completion(request: Request, chat: bool) -> Any:
        try:
            body = await model_request(runner, request)
            stream = stream_flag(body, False)
            if chat:
                reject_unsupported(body, {"logprobs": False, "top_logprobs": 0})
                prompts = [runner.encode_chat(messages_field(body))]
                options = openai_options(body, 128, most, runner.chat_stop)
                echo, top = False, None
            else:
                prompts = _prompts(runner, body)
                options = openai_options(body, 16, most)
                echo = body.get("echo", False)
                if not isinstance(echo, bool):
                    raise RequestError(422, f"echo: expected true or false, got {echo!r}", param="echo")
                top = number(body, "logprobs", low=0, high=MAX_LOGPROBS, integer=True)
            if stream and len(prompts) > 1:
                raise RequestError(
                    400, "prompt: streaming takes one prompt; send one request each", param="prompt"
                )
            stream_options = body.get("stream_options") or {}
            if not isinstance(stream_options, dict):
                raise RequestError(
                    422, f"stream_options: expected an object, got {stream_options!r}", param="stream_options"
                )
            usage_in_stream = bool(stream_options.get("include_usage"))
            first_events = engine.stream(prompts[0], options)  # a busy engine refuses here: 503
        except RequestError as exc:
            return openai_error(exc)
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        model_name = body["model"]
        kind_name = "chat.completion" if chat else "text_completion"

        def reason(stats: dict[str, Any]) -> str:
            return "length" if stats["done_reason"] == "length" else "stop"

        def choice(
            index: int, piece: str | None, finish: str | None, *, first: bool = False, whole: bool = False
        ) -> dict[str, Any]:
            if not chat:
                return {"index": index, "text": piece or "", "logprobs": None, "finish_reason": finish}
            if whole:
                message = {"role": "assistant", "content": piece}
                return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}
            delta: dict[str, Any] = {"role": "assistant"} if first else {}
            if piece is not None:
                delta["content"] = piece
            return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

        def envelope(choices: list[dict[str, Any]], streaming: bool) -> dict[str, Any]:
            obj = f"{kind_name}.chunk" if streaming and chat else kind_name
            return {"id": ident, "object": obj, "created": created, "model": model_name, "choices": choices}

        def usage(all_stats: list[dict[str, Any]]) -> dict[str, int]:
            p = sum(s["prompt_tokens"] for s in all_stats)
            c = sum(s["completion_tokens"] for s in all_stats)
            return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

        async def scored(ids: list[int], start: int) -> list[TokenScore]:
            return await engine.call(lambda: runner.score(ids, start, top or 0))

        if stream:
            ids = prompts[0]

            async def sse() -> AsyncIterator[bytes]:
                def event(data: Any) -> bytes:
                    return f"data: {json.dumps(data)}\n\n".encode()

                if chat:
                    yield event(envelope([choice(0, "", None, first=True)], True))
                logprobs = _Logprobs(runner, 0 if echo else len(runner.decode(ids)))
                sequence = list(ids)
                if echo:
                    item = choice(0, runner.decode(ids), None)
                    if top is not None:
                        item["logprobs"] = logprobs.add(await scored(sequence, 0), top)
                    yield event(envelope([item], True))
                async for kind, value in first_events:
                    if kind == "text":
                        item = choice(0, value.text, None)
                        if top is not None:
                            start = len(sequence)
                            sequence.extend(value.token_ids)
                            item["logprobs"] = logprobs.add(await scored(sequence, start), top)
                        yield event(envelope([item], True))
                    elif kind == "done":
                        yield event(envelope([choice(0, None if chat else "", reason(value))], True))
                        if usage_in_stream:
                            yield event({**envelope([], True), "usage": usage([value])})
                    else:
                        yield event(
                            {"error": {"message": value, "type": "server_error", "param": None, "code": None}}
                        )
                yield b"data: [DONE]\n\n"

            return StreamingResponse(sse(), media_type="text/event-stream")

        choices, all_stats = [], []
        for index, ids in enumerate(prompts):
            text, new = "", []
            try:
                events = first_events if index == 0 else engine.stream(ids, options)
            except RequestError as exc:
                return openai_error(exc)
            async for kind, value in events:
                if kind == "text":
                    text += value.text
                    new.extend(value.token_ids)
                elif kind == "done":
                    all_stats.append(value)
                    item = choice(
                        index, (runner.decode(ids) if echo else "") + text, reason(value), whole=True
                    )
                    if top is not None:
                        logprobs = _Logprobs(runner, 0 if echo else len(runner.decode(ids)))
                        item["logprobs"] = logprobs.add(await scored(ids + new, 0 if echo else len(ids)), top)
                    choices.append(item)
                else:
                    payload = {"message": value, "type": "server_error", "param": None, "code": None}
                    return JSONResponse({"error": payload}, status_code=500)
        return {**envelope(choices, False), "usage": usage(all_stats)}

    answers: dict[int | str, Any] = {**success_response(True), **error_responses(True)}

    @router.post("/completions", openapi_extra=openai_request_body(name, most, chat=False), responses=answers)
    async def completions(request: Request) -> Any:
        return await completion(request, chat=False)

    @router.post(
        "/chat/completions", openapi_extra=openai_request_body(name, most, chat=True), responses=answers
    )
    async def chat_completions(request: Request) -> Any:
        return await completion(request, chat=True)

    return router


def tokenizer_router(runner: ModelRunner) -> Any:
    """vLLM's ``/tokenizer_info``, ``/tokenize`` and ``/detokenize`` for ``runner``'s tokenizer."""
    from fastapi import APIRouter, Request

    router = APIRouter(tags=["tokenizer"])
    errors = error_responses(True)

    @router.get("/tokenizer_info")
    def tokenizer_info() -> dict[str, Any]:
        eos = None
        if runner.eos_id is not None:
            text = runner.decode([runner.eos_id])
            if runner.tokenize(text) == [runner.eos_id]:
                eos = text
        return {
            "tokenizer_class": type(runner.tokenizer).__name__,
            "eos_token": eos,
            "bos_token": None,
            "pad_token": None,
            "model_max_length": runner.context_length,
            "chat_template": runner.chat_template,
        }

    @router.post(
        "/tokenize",
        openapi_extra=json_request_body(["prompt"], {"prompt": {"type": "string"}}),
        responses={**json_response("The prompt's token ids"), **errors},
    )
    async def tokenize(request: Request) -> Any:
        try:
            body = await read_body(request)
            if "messages" in body:
                tokens = runner.encode_chat(messages_field(body))
            elif isinstance(body.get("prompt"), str):
                tokens = runner.tokenize(body["prompt"])
            else:
                raise RequestError(422, "prompt: expected a string (or messages)", param="prompt")
        except RequestError as exc:
            return openai_error(exc)
        return {"count": len(tokens), "max_model_len": runner.context_length, "tokens": tokens}

    @router.post(
        "/detokenize",
        openapi_extra=json_request_body(
            ["tokens"], {"tokens": {"type": "array", "items": {"type": "integer", "minimum": 0}}}
        ),
        responses={**json_response("The text of the token ids"), **errors},
    )
    async def detokenize(request: Request) -> Any:
        try:
            body = await read_body(request)
            tokens = body.get("tokens")
            if not isinstance(tokens, list) or not all(
                isinstance(t, int) and not isinstance(t, bool) and 0 <= t < runner.vocab_size for t in tokens
            ):
                raise RequestError(422, f"tokens: expected a list of token ids in 0..{runner.vocab_size - 1}")
        except RequestError as exc:
            return openai_error(exc)
        return {"prompt": runner.decode(tokens)}

    return router
