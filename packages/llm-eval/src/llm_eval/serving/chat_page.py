"""The chat page at ``/``: static HTML + JS in the package, streaming from ``/v1/chat/completions``."""

from importlib.resources import files
from typing import Any

from llm_eval.limits import ServerLimits
from llm_eval.serving.runner import ModelRunner

__all__ = ["chat_page", "chat_page_router"]


def chat_page() -> str:
    """The chat page's HTML (``llm_eval/serving/static/chat.html``: no build step, nothing fetched)."""
    return files("llm_eval.serving").joinpath("static/chat.html").read_text(encoding="utf-8")


def chat_page_router(runner: ModelRunner, limits: ServerLimits) -> Any:
    """The ``APIRouter`` of ``GET /``: the chat page, told the served model's name and token limit."""
    import html

    from fastapi import APIRouter
    from fastapi.responses import HTMLResponse

    router = APIRouter(tags=["chat page"])
    page = (
        chat_page()
        .replace("{{MODEL}}", html.escape(runner.name, quote=True))
        .replace("{{MAX_TOKENS}}", str(limits.max_tokens))
    )

    @router.get("/", response_class=HTMLResponse)
    def root() -> HTMLResponse:
        return HTMLResponse(page)

    return router
