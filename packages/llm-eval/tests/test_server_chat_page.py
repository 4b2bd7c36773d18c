"""The chat page at ``/``: shipped in the package, self-contained, and streaming in a real browser.

The browser test drives headless Chromium (Debian's ``chromium``) with
Playwright: it types a prompt, sees the answer stream in, checks it against
the model's own greedy answer and keeps a screenshot under
``$SCRATCHLM_ARTEFACTS`` (default ``.nox/_artefacts``). Without Chromium or
Playwright it skips, unless ``SCRATCHLM_REQUIRE_BROWSER=1`` (``nox -s browser``).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from llm_eval.server import chat_prompt
from llm_eval.server_process import spawn_server
from llm_eval.serving.chat_page import chat_page
from llm_model import generate_text

CHROMIUM = os.environ.get("SCRATCHLM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[3]


def test_the_page_is_package_data_and_self_contained(served) -> None:
    server, _ = served
    page = httpx.get(f"{server.url}/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-model="tiny-gpt"' in page.text and "/v1/chat/completions" in page.text
    assert not re.search(r"https?://", chat_page()), "the page must not fetch anything from elsewhere"
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", chat_page())


def _browser_or_skip() -> object:
    required = os.environ.get("SCRATCHLM_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            pytest.fail(
                "SCRATCHLM_REQUIRE_BROWSER=1 but playwright is not installed (pip install playwright)"
            )
        pytest.skip("playwright not installed (pip install playwright; `nox -s browser` does it)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        if required:
            pytest.fail(
                f"SCRATCHLM_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install -y chromium)"
            )
        pytest.skip(f"{CHROMIUM} missing (apt-get install -y chromium; `nox -s browser` does it)")
    return sync_playwright


def test_the_chat_page_streams_an_answer_in_chromium(served, gpt2_checkpoint) -> None:
    """`scratchlm serve` (its own process, continuous batching) and its page in headless Chromium."""
    sync_playwright = _browser_or_skip()
    _, runner = served
    prompt = "Name a color."
    messages = [{"role": "user", "content": prompt}]
    want = generate_text(
        runner.model,
        runner.tokenizer,
        chat_prompt(messages),
        24,
        temperature=0.0,
        stop_strings=["### Instruction:"],
    )
    artefacts = Path(os.environ.get("SCRATCHLM_ARTEFACTS") or ROOT / ".nox" / "_artefacts")
    artefacts.mkdir(parents=True, exist_ok=True)
    env = {"SCRATCHLM_PLUGINS": ""}
    with spawn_server(gpt2_checkpoint, env=env) as server, sync_playwright() as playwright:  # type: ignore[operator]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 640})
            page.goto(f"{server.url}/")
            assert page.locator("#model").inner_text() == "tiny-gpt"
            page.fill("#temperature", "0")
            page.fill("#max-tokens", "24")
            page.fill("#prompt", prompt)
            page.press("#prompt", "Enter")
            page.wait_for_function(
                "document.querySelector('#status').textContent.includes('tokens/s,')", timeout=60_000
            )
            asked = page.locator(".user .content").all_inner_texts()
            answer = page.locator(".assistant .content").inner_text()
            status = page.locator("#status").inner_text()
            page.screenshot(path=str(artefacts / "chat-page.png"), full_page=True)
        finally:
            browser.close()
    assert asked == [prompt]
    assert answer.strip() == want.strip() and answer.strip()
    assert re.match(r"\d+ tokens, [\d.]+ tokens/s", status), status
    assert (artefacts / "chat-page.png").stat().st_size > 1000
