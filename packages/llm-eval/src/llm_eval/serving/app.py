"""The FastAPI application of ``scratchlm serve``: the routers, the body limit, errors in each API's shape."""

from typing import Any

from llm_eval.limits import BodyLimit, ServerLimits
from llm_eval.serving.chat_page import chat_page_router
from llm_eval.serving.engine import Engine, SerialEngine
from llm_eval.serving.errors import RequestError
from llm_eval.serving.ollama_api import ollama_error, ollama_router
from llm_eval.serving.openai_api import openai_error, openai_router, tokenizer_router
from llm_eval.serving.runner import ModelRunner

__all__ = ["create_app", "error_answer"]


def error_answer(path: str, status: int, message: str, param: str | None = None) -> Any:
    """An error in the shape of the API ``path`` belongs to (Ollama under /api, OpenAI elsewhere)."""
    exc = RequestError(status, message, param=param)
    return ollama_error(exc) if path == "/api" or path.startswith("/api/") else openai_error(exc)


def create_app(
    runner: ModelRunner, limits: ServerLimits | None = None, *, engine: Engine | None = None
) -> Any:
    """The FastAPI application serving ``runner``'s model on the Ollama and OpenAI routes and the chat page.

    ``limits`` (default :class:`ServerLimits`) bound the body size and the tokens per request;
    ``engine`` generates (default: a :class:`~llm_eval.serving.engine.SerialEngine`).
    ``app.state`` holds ``runner``, ``engine`` and ``limits``; :func:`llm_eval.server.start_server`
    takes its timeouts from ``app.state.limits`` and ends the generations through ``app.state.engine``.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    limits = limits or ServerLimits()
    engine = engine if engine is not None else SerialEngine(runner)
    app = FastAPI(title="scratchlm serve", version="1")
    app.state.runner = runner
    app.state.engine = engine
    app.state.limits = limits
    app.add_middleware(BodyLimit, limits=limits)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Any:
        path = request.url.path
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"{request.method} {path}: no such route on this server (see GET /openapi.json)"
        elif exc.status_code == 405:
            message = f"{request.method} {path}: method not allowed (see GET /openapi.json)"
        return error_answer(path, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Any:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
            for error in exc.errors()
        )
        return error_answer(request.url.path, 422, problems or "invalid request")

    app.include_router(ollama_router(runner, engine, limits))
    app.include_router(openai_router(runner, engine, limits))
    app.include_router(tokenizer_router(runner))
    app.include_router(chat_page_router(runner, limits))
    return app
