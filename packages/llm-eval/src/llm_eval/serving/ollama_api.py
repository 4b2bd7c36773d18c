"""Ollama's API under ``/api``: generate, chat, embeddings, and what front ends ask before (tags, show, ps).

Every error is Ollama's ``{"error": "..."}`` (the app's handlers give 404, 405
and 422 of unknown routes the same shape).
"""

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

from llm_eval.limits import ServerLimits
from llm_eval.openapi import (
    error_responses,
    json_request_body,
    json_response,
    model_name_schema,
    ollama_request_body,
    success_response,
)
from llm_eval.serving.engine import Engine
from llm_eval.serving.errors import RequestError
from llm_eval.serving.parsing import (
    check_model,
    messages_field,
    model_request,
    now,
    ollama_options,
    read_body,
    stream_flag,
)
from llm_eval.serving.runner import ModelRunner

__all__ = ["ollama_error", "ollama_router"]


def ollama_error(exc: RequestError) -> Any:
    """Ollama's error answer: ``{"error": message}`` with the error's status."""
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)


def ollama_router(runner: ModelRunner, engine: Engine, limits: ServerLimits) -> Any:
    """The ``APIRouter`` of Ollama's routes for ``runner``'s model, generating through ``engine``."""
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    router = APIRouter(prefix="/api", tags=["ollama"])
    name, most = runner.name, limits.max_tokens
    arch = str(getattr(runner.model, "architecture", "gpt2"))

    def details() -> dict[str, Any]:
        info = runner.info()
        return {
            "parent_model": "",
            "format": "safetensors",
            "family": arch,
            "families": [arch],
            "parameter_size": f"{info['parameters'] / 1e6:.1f}M",
            "quantization_level": info["quantization_level"],
        }

    def listing() -> dict[str, Any]:
        info = runner.info()
        return {
            "name": f"{name}:latest",
            "model": f"{name}:latest",
            "modified_at": datetime.fromtimestamp(runner.created, timezone.utc).isoformat(),
            "size": info["size"],
            "digest": info["digest"],
            "details": details(),
        }

    @router.get("/version")
    def version() -> dict[str, str]:
        from llm_eval import __version__

        return {"version": __version__}

    @router.get("/tags")
    def tags() -> dict[str, Any]:
        return {"models": [listing()]}

    @router.get("/ps")
    def ps() -> dict[str, Any]:
        expires = datetime.now(timezone.utc) + timedelta(days=365)  # loaded for as long as the server runs
        entry = {**listing(), "expires_at": expires.isoformat(), "size_vram": 0}
        return {"models": [entry]}

    errors = error_responses(False)
    model_field = {"model": model_name_schema(name)}
    texts = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}

    @router.post(
        "/show",
        openapi_extra=json_request_body(["model"], model_field),
        responses={**json_response("The model's details, template and parameters"), **errors},
    )
    async def show(request: Request) -> Any:
        try:
            body = await read_body(request)
            check_model(runner, body, "model" if "model" in body else "name")
        except RequestError as exc:
            return ollama_error(exc)
        config = runner.model.config
        fields = {k: v for k, v in vars(config).items() if isinstance(v, (int, float, str, bool))}
        model_info = {f"{arch}.{k}": v for k, v in sorted(fields.items())}
        model_info["general.architecture"] = arch
        model_info["general.parameter_count"] = runner.info()["parameters"]
        template = runner.chat_template or "{{ .Prompt }}"
        return {
            "license": "",
            "modelfile": f"# served by scratchlm\nFROM {runner.checkpoint or name}\n",
            "parameters": f"num_ctx {runner.context_length}",
            "template": template,
            "details": details(),
            "model_info": model_info,
            "capabilities": ["completion", "embedding"],
            "modified_at": datetime.fromtimestamp(runner.created, timezone.utc).isoformat(),
        }

    async def embed_inputs(body: dict[str, Any], key: str, normalise: bool) -> tuple[list[list[float]], int]:
        raw = body.get(key)
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise RequestError(422, f"{key}: expected a string or a non-empty list of strings", param=key)
        truncate = body.get("truncate", True)
        if not isinstance(truncate, bool):
            raise RequestError(422, f"truncate: expected true or false, got {truncate!r}", param="truncate")
        vectors, count = [], 0
        for text in texts:
            ids = runner.tokenize(text, param=key)
            if truncate:
                ids = ids[: runner.context_length]
            ids = runner.checked(ids, param=key)
            count += len(ids)
            vectors.append(await engine.call(partial(runner.embed, ids, normalise=normalise)))
        return vectors, count

    @router.post(
        "/embed",
        openapi_extra=json_request_body(
            ["model", "input"], {**model_field, "input": texts, "truncate": {"type": "boolean"}}
        ),
        responses={**json_response("One L2-normalised mean-pooled hidden state per input"), **errors},
    )
    async def embed(request: Request) -> Any:
        start = time.perf_counter_ns()
        try:
            body = await model_request(runner, request)
            vectors, count = await embed_inputs(body, "input", normalise=True)
        except RequestError as exc:
            return ollama_error(exc)
        return {
            "model": body["model"],
            "embeddings": vectors,
            "total_duration": time.perf_counter_ns() - start,
            "load_duration": 0,
            "prompt_eval_count": count,
        }

    @router.post(
        "/embeddings",
        openapi_extra=json_request_body(["model", "prompt"], {**model_field, "prompt": {"type": "string"}}),
        responses={**json_response("The mean-pooled hidden state of the prompt"), **errors},
    )
    async def embeddings(request: Request) -> Any:
        try:
            body = await model_request(runner, request)
            if not isinstance(body.get("prompt"), str):
                raise RequestError(422, "prompt: expected a string", param="prompt")
            vectors, _ = await embed_inputs(body, "prompt", normalise=False)
        except RequestError as exc:
            return ollama_error(exc)
        return {"embedding": vectors[0]}

    async def generation(request: Request, chat: bool) -> Any:
        try:
            body = await model_request(runner, request)
            stream = stream_flag(body, True)
            if chat:
                ids = runner.encode_chat(messages_field(body))
                options = ollama_options(body, most, runner.chat_stop)
            else:
                raw_prompt = body.get("prompt")
                if not isinstance(raw_prompt, str):
                    raise RequestError(422, f"prompt: expected a string, got {raw_prompt!r}", param="prompt")
                prompt = raw_prompt
                if isinstance(body.get("system"), str) and body["system"]:
                    prompt = f"{body['system']}\n\n{prompt}"
                options = ollama_options(body, most)
                context = body.get("context") or []
                if not isinstance(context, list):
                    raise RequestError(
                        422, "context: expected the token ids of an earlier answer", param="context"
                    )
                ids = runner.checked([*context, *runner.tokenize(prompt)])  # an earlier exchange goes first
            events = engine.stream(ids, options)  # a busy engine refuses here: 503
        except RequestError as exc:
            return ollama_error(exc)
        model_name = body["model"]

        def chunk(piece: str, done: bool) -> dict[str, Any]:
            item: dict[str, Any] = {"model": model_name, "created_at": now()}
            if chat:
                item["message"] = {"role": "assistant", "content": piece}
            else:
                item["response"] = piece
            item["done"] = done
            return item

        new_ids: list[int] = []  # the answer's token ids, for Ollama's "context"

        def final(stats: dict[str, Any], text: str) -> dict[str, Any]:
            item = chunk(text, True)
            item.update(
                done_reason=stats["done_reason"],
                total_duration=stats["duration_ns"],
                prompt_eval_count=stats["prompt_tokens"],
                eval_count=stats["completion_tokens"],
            )
            if not chat:
                item["context"] = [*ids, *new_ids]  # send it back as "context" to continue
            return item

        if stream:

            async def lines() -> AsyncIterator[bytes]:
                async for kind, value in events:
                    if kind == "text":
                        new_ids.extend(value.token_ids)
                        yield (json.dumps(chunk(value.text, False)) + "\n").encode()
                    elif kind == "done":
                        yield (json.dumps(final(value, "")) + "\n").encode()
                    else:
                        yield (json.dumps({"error": value}) + "\n").encode()

            return StreamingResponse(lines(), media_type="application/x-ndjson")
        text = ""
        async for kind, value in events:
            if kind == "text":
                text += value.text
                new_ids.extend(value.token_ids)
            elif kind == "done":
                return final(value, text)
            else:
                return JSONResponse({"error": value}, status_code=500)
        return JSONResponse(
            {"error": "generation ended without a result"}, status_code=500
        )  # pragma: no cover

    answers: dict[int | str, Any] = {**success_response(False), **error_responses(False)}

    @router.post("/generate", openapi_extra=ollama_request_body(name, most, chat=False), responses=answers)
    async def generate(request: Request) -> Any:
        return await generation(request, chat=False)

    @router.post("/chat", openapi_extra=ollama_request_body(name, most, chat=True), responses=answers)
    async def chat(request: Request) -> Any:
        return await generation(request, chat=True)

    return router
