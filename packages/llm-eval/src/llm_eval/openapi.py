"""The OpenAPI description of ``scratchlm serve``'s routes: request bodies, responses, error formats.

The routes parse their bodies themselves (for Ollama's and OpenAI's error
messages), so FastAPI cannot derive these schemas; the routers of
:mod:`llm_eval.serving` attach them to each route, and ``GET /openapi.json`` serves them. They
describe what the server accepts and answers, bounds included (``max_tokens``
up to the server's limit), so a schema-driven tester such as schemathesis can
check every answer against them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "error_responses",
    "json_request_body",
    "json_response",
    "model_name_schema",
    "ollama_request_body",
    "openai_request_body",
    "success_response",
]

#: Largest seed torch's generators accept.
MAX_SEED = (1 << 64) - 1

_STOP = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "user", "assistant"]},
        "content": {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"type": {"type": "string"}, "text": {"type": "string"}},
                    },
                },
            ]
        },
    },
}


def model_name_schema(name: str) -> dict[str, Any]:
    """The ``model`` field of a request: the served name, or ``name:latest``."""
    return {"type": "string", "enum": [name, f"{name}:latest"]}


def ollama_request_body(name: str, max_tokens: int, *, chat: bool) -> dict[str, Any]:
    """``openapi_extra`` request body of ``/api/generate`` (``chat=False``) or ``/api/chat``."""
    options = {
        "type": "object",
        "properties": {
            "num_predict": {"type": "integer", "minimum": -2, "maximum": max_tokens},
            "temperature": {"type": "number", "minimum": 0},
            "top_k": {"type": "integer", "minimum": 1},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
            "stop": _STOP,
        },
    }
    properties: dict[str, Any] = {
        "model": model_name_schema(name),
        "stream": {"type": "boolean"},
        "options": options,
    }
    if chat:
        properties["messages"] = {"type": "array", "minItems": 1, "items": _MESSAGE}
        required = ["model", "messages"]
    else:
        properties.update(
            prompt={"type": "string"},
            system={"type": "string"},
            context={"type": "array", "items": {"type": "integer", "minimum": 0}},
        )
        required = ["model", "prompt"]
    schema = {"type": "object", "required": required, "properties": properties}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def openai_request_body(name: str, max_tokens: int, *, chat: bool) -> dict[str, Any]:
    """``openapi_extra`` request body of ``/v1/completions`` (``chat=False``) or ``/v1/chat/completions``."""
    properties: dict[str, Any] = {
        "model": {"type": "string", "enum": [name]},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        "max_tokens": {"type": "integer", "minimum": 0, "maximum": max_tokens},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "top_k": {"type": "integer", "minimum": 1},
        "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
        "n": {"type": "integer", "enum": [1]},
        "stop": _STOP,
    }
    if chat:
        properties["messages"] = {"type": "array", "minItems": 1, "items": _MESSAGE}
        properties["max_completion_tokens"] = properties["max_tokens"]
        required = ["model", "messages"]
    else:
        properties["prompt"] = {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
                },
            ]
        }
        properties["echo"] = {"type": "boolean"}
        properties["logprobs"] = {"type": "integer", "minimum": 0, "maximum": 20}
        required = ["model", "prompt"]
    schema = {"type": "object", "required": required, "properties": properties}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def json_request_body(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` of a route whose body is a JSON object with these fields."""
    schema = {"type": "object", "required": required, "properties": properties}
    return {"requestBody": {"required": True, "content": _json(schema)}}


def json_response(description: str, schema: dict[str, Any] | None = None) -> dict[int | str, Any]:
    """The 200 answer of a route that answers one JSON object (``schema``: any object by default)."""
    return {200: {"description": description, "content": _json(schema or {"type": "object"})}}


_OLLAMA_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def error_responses(openai: bool) -> dict[int | str, Any]:
    """The error answers every POST route may give, in the Ollama or OpenAI format."""
    schema = _OPENAI_ERROR if openai else _OLLAMA_ERROR
    reasons = {
        400: "Malformed JSON, not an object, an empty prompt or one longer than the context, "
        "or a parameter this server does not support",
        404: "Unknown model",
        408: "The request body arrived too slowly",
        413: "The request body is larger than the server's limit",
        422: "A field of the wrong type or out of range",
        503: "The server is busy (its queue is full): retry after the Retry-After header's seconds",
    }
    return {status: {"description": text, "content": _json(schema)} for status, text in reasons.items()}


_OLLAMA_DONE = {
    "type": "object",
    "required": ["model", "created_at", "done"],
    "properties": {
        "model": {"type": "string"},
        "created_at": {"type": "string"},
        "done": {"type": "boolean"},
        "response": {"type": "string"},
        "message": {
            "type": "object",
            "required": ["role", "content"],
            "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
        },
        "done_reason": {"type": "string", "enum": ["stop", "length", "cancelled"]},
        "eval_count": {"type": "integer", "minimum": 0},
        "prompt_eval_count": {"type": "integer", "minimum": 1},
        "total_duration": {"type": "integer", "minimum": 0},
        "context": {"type": "array", "items": {"type": "integer"}},
    },
}
_USAGE = {
    "type": "object",
    "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
    "properties": {
        k: {"type": "integer", "minimum": 0} for k in ("prompt_tokens", "completion_tokens", "total_tokens")
    },
}
_OPENAI_DONE = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices", "usage"],
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["text_completion", "chat.completion"]},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "usage": _USAGE,
        "choices": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["index", "finish_reason"],
                "properties": {
                    "index": {"type": "integer"},
                    "text": {"type": "string"},
                    "message": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
                    },
                    "finish_reason": {"type": "string", "enum": ["stop", "length"]},
                },
            },
        },
    },
}


_OPENAI_CHUNK = {
    "type": "object",
    "anyOf": [
        {"required": ["id", "object", "created", "model", "choices"]},  # a piece (or the usage, no choices)
        {"required": ["error"]},  # generation failed mid-stream
    ],
    "properties": {"choices": {"type": "array", "maxItems": 1}, "usage": _USAGE, "error": {"type": "object"}},
}
#: One server-sent event: ``data:`` holds a JSON chunk, or ``[DONE]`` at the end.
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "anyOf": [
                {"const": "[DONE]"},
                {"type": "string", "contentMediaType": "application/json", "contentSchema": _OPENAI_CHUNK},
            ]
        }
    },
}


def success_response(openai: bool) -> dict[int | str, Any]:
    """The 200 answer of a generation route: one JSON object, or a stream (NDJSON / server-sent events)."""
    if openai:
        content = {**_json(_OPENAI_DONE), "text/event-stream": {"schema": _SSE_EVENT}}
        text = "The completion (`stream: false`, the default) or server-sent events ending in `data: [DONE]`"
    else:
        content = {**_json(_OLLAMA_DONE), "application/x-ndjson": {"schema": {"type": "string"}}}
        text = (
            "JSON lines (`stream: true`, the default), the last with `done: true`; or only that last object"
        )
    return {200: {"description": text, "content": content}}
