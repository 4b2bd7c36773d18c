"""Reading the requests of both APIs: JSON bodies, fields, sampling options, what is not supported.

The routes parse their bodies themselves (not with pydantic models) so every
mistake is one message in the API's own error shape, naming the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from llm_eval.openapi import MAX_SEED
from llm_eval.serving.engine import DEFAULT_MAX_TOKENS, GenerationOptions
from llm_eval.serving.errors import RequestError
from llm_eval.serving.runner import ModelRunner

__all__ = [
    "LIMIT_HINT",
    "check_model",
    "messages_field",
    "model_request",
    "now",
    "number",
    "ollama_options",
    "openai_options",
    "read_body",
    "reject_unsupported",
    "stop_field",
    "stream_flag",
]

#: Where a token budget over the server's limit comes from.
LIMIT_HINT = " (this server's limit: `scratchlm serve --max-new-tokens`)"


def now() -> str:
    """The current UTC time as Ollama writes it (``2024-01-01T00:00:00.000000Z``)."""
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def read_body(request: Any) -> dict[str, Any]:
    """The request's JSON object; malformed JSON, NaN or a non-object is a 400."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"null", parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestError(400, f"malformed JSON in the request body: {exc}") from None
    if not isinstance(body, dict):
        raise RequestError(400, f"expected a JSON object as the request body, got {type(body).__name__}")
    return body


def check_model(runner: ModelRunner, body: dict[str, Any], key: str = "model") -> None:
    """A 404 unless ``body[key]`` names the served model."""
    model = body.get(key)
    if not runner.accepts(model):
        raise RequestError(404, f"model {model!r} not found; this server serves {runner.name!r}", param=key)


async def model_request(runner: ModelRunner, request: Any) -> dict[str, Any]:
    """The JSON body of a request for the served model (:func:`read_body`, then :func:`check_model`)."""
    body = await read_body(request)
    check_model(runner, body)
    return body


def stream_flag(body: dict[str, Any], default: bool) -> bool:
    """``body["stream"]`` (``default`` when absent); anything but true/false is a 422."""
    value = body.get("stream", default)
    if not isinstance(value, bool):
        raise RequestError(422, f"stream: expected true or false, got {value!r}", param="stream")
    return value


def number(
    body: dict[str, Any], key: str, *, low: float, high: float | None, integer: bool = False, hint: str = ""
) -> Any:
    """``body[key]`` checked to be a finite number (an integer) in ``low..high``; ``None`` when absent."""
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


def stop_field(value: Any) -> list[str]:
    """A ``stop`` field: a string or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise RequestError(422, f"stop: expected a string or a list of strings, got {value!r}", param="stop")


def messages_field(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``messages`` of a chat: ``{role, content}`` objects ending with the user's turn."""
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
        if m.get("images") or m.get("tool_calls"):
            raise RequestError(
                400,
                f"messages[{i}]: images and tool calls are not supported by this server",
                param="messages",
            )
        out.append({"role": m["role"], "content": content})
    if out[-1]["role"] != "user":
        raise RequestError(422, "messages: expected the last message to be from the user", param="messages")
    return out


def reject_unsupported(body: dict[str, Any], neutral: dict[str, Any], where: str = "") -> None:
    """A 400 for each field of ``body`` this server does not implement, unless it has its neutral value.

    ``neutral`` maps a field to the value that asks for nothing (``0`` for a
    penalty, ``None`` for tools); absent fields and neutral values pass.
    """
    for key, value in neutral.items():
        given = body.get(key)
        if given is None or given == value or (value in (None, [], "") and given in ([], {}, "")):
            continue
        raise RequestError(
            400,
            f"{where}{key}: not supported by this server (got {given!r}); leave it out"
            + ("" if value in (None, [], "") else f" or send {json.dumps(value)}"),
            param=key,
        )


#: Ollama's fields (top level, and in ``options``) that ask for something this server does not do.
OLLAMA_UNSUPPORTED: dict[str, Any] = {
    "format": None,
    "tools": [],
    "images": [],
    "suffix": "",
    "template": "",
    "think": False,
}
OLLAMA_UNSUPPORTED_OPTIONS: dict[str, Any] = {
    "repeat_penalty": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "mirostat": 0,
    "min_p": 0,
    "typical_p": 1,
}


def ollama_options(body: dict[str, Any], limit: int, default_stop: Sequence[str] = ()) -> GenerationOptions:
    """Ollama's ``options``; ``num_predict`` -1 or -2 (no limit, fill the context) mean ``limit`` tokens."""
    reject_unsupported(body, OLLAMA_UNSUPPORTED)
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise RequestError(422, f"options: expected an object, got {options!r}", param="options")
    reject_unsupported(options, OLLAMA_UNSUPPORTED_OPTIONS, "options.")
    predict = number(options, "num_predict", low=-2, high=limit, integer=True, hint=LIMIT_HINT)
    temperature = number(options, "temperature", low=0, high=None)
    return GenerationOptions(
        max_tokens=min(DEFAULT_MAX_TOKENS, limit)
        if predict is None
        else (predict if predict >= 0 else limit),
        temperature=0.8 if temperature is None else float(temperature),
        top_k=number(options, "top_k", low=1, high=None, integer=True) or None,
        top_p=number(options, "top_p", low=0, high=1) or None,
        seed=number(options, "seed", low=0, high=MAX_SEED, integer=True),
        stop=[*default_stop, *stop_field(options.get("stop"))],
    )


#: OpenAI's fields that ask for something this server does not do, with the value that asks for nothing.
OPENAI_UNSUPPORTED: dict[str, Any] = {
    "tools": [],
    "tool_choice": None,
    "functions": [],
    "function_call": None,
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "logit_bias": [],
    "best_of": 1,
    "suffix": "",
    "audio": None,
    "prediction": None,
    "n": 1,
}


def openai_options(
    body: dict[str, Any], default_max: int, limit: int, default_stop: Sequence[str] = ()
) -> GenerationOptions:
    """The sampling options of an OpenAI request; unsupported ones are a 400."""
    reject_unsupported(body, OPENAI_UNSUPPORTED)
    response_format = body.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise RequestError(
            400,
            f"response_format: not supported by this server (got {response_format!r}); "
            'leave it out or send {"type": "text"}',
            param="response_format",
        )
    max_tokens = number(body, "max_completion_tokens", low=0, high=limit, integer=True, hint=LIMIT_HINT)
    if max_tokens is None:
        max_tokens = number(body, "max_tokens", low=0, high=limit, integer=True, hint=LIMIT_HINT)
    temperature = number(body, "temperature", low=0, high=2)
    return GenerationOptions(
        max_tokens=min(default_max, limit) if max_tokens is None else max_tokens,
        temperature=1.0 if temperature is None else float(temperature),
        top_k=number(body, "top_k", low=1, high=None, integer=True) or None,
        top_p=number(body, "top_p", low=0, high=1) or None,
        seed=number(body, "seed", low=0, high=MAX_SEED, integer=True),
        stop=[*default_stop, *stop_field(body.get("stop"))],
    )
