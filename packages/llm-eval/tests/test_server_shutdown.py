"""Ctrl-C or SIGTERM to `scratchlm serve` mid-stream: the stream gets a final chunk, exit 0, no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")


def _serve(checkpoint: Path, port: int, grace: float) -> tuple[subprocess.Popen[str], list[str]]:
    """`scratchlm serve` in a child process; returns once it listens. Its stderr lines are collected."""
    command = [sys.executable, "-m", "llm_core.cli", "serve", str(checkpoint), "--port", str(port)]
    command += ["--max-new-tokens", "1000000", "--shutdown-grace", str(grace)]
    env = {**os.environ, "SCRATCHLM_PLUGINS": ""}  # built-in plugins only: no third-party warnings
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if line.startswith("scratchlm serve: listening on"):
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(120) or not any(line.startswith("scratchlm serve: listening") for line in lines):
        process.kill()
        pytest.fail(f"the server did not start: {''.join(lines)[-2000:]}")
    return process, lines


def _stream(url: str, api: str, received: list[Any], started: threading.Event) -> None:
    if api == "ollama":
        body = {"model": "tiny-gpt", "prompt": "Hello", "stream": True, "options": {"num_predict": 1000000}}
        path = "/api/generate"
    else:
        body = {"model": "tiny-gpt", "prompt": "Hello", "stream": True, "max_tokens": 1000000}
        path = "/v1/completions"
    with httpx.stream("POST", url + path, json=body, timeout=60) as response:
        for line in response.iter_lines():
            if not line.strip():
                continue
            payload = line.removeprefix("data: ")
            received.append(payload if payload == "[DONE]" else json.loads(payload))
            if len(received) >= 5:
                started.set()


@pytest.mark.parametrize(("sig", "api"), [(signal.SIGINT, "ollama"), (signal.SIGTERM, "openai")])
def test_a_signal_mid_stream_ends_it_with_a_final_chunk_and_exits_0(
    gpt2_checkpoint: Path, free_port: int, sig: signal.Signals, api: str
) -> None:
    process, log = _serve(gpt2_checkpoint, free_port, grace=1.0)
    received: list[Any] = []
    started = threading.Event()
    errors: list[BaseException] = []

    def client() -> None:
        try:
            _stream(f"http://127.0.0.1:{free_port}", api, received, started)
        except BaseException as exc:  # checked below
            errors.append(exc)

    thread = threading.Thread(target=client, daemon=True)
    try:
        thread.start()
        assert started.wait(60), f"no stream: {errors} {''.join(log)[-1000:]}"
        process.send_signal(sig)
        signalled = time.monotonic()
        code = process.wait(120)  # generous: a loaded machine must not turn this into a timing test
        thread.join(60)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = "".join(log)
    assert code == 0, stderr
    assert not thread.is_alive(), f"the client is still reading {time.monotonic() - signalled:.0f} s later"
    assert errors == [], errors
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
    if api == "ollama":
        final = received[-1]
        assert final["done"] is True and final["done_reason"] == "shutdown"
        assert all(chunk["done"] is False for chunk in received[:-1])
    else:
        assert received[-1] == "[DONE]"
        assert received[-2]["choices"][0]["finish_reason"] == "stop"
