"""Shared fixtures: tiny models, a tiny GPT-2-vocabulary checkpoint and a scripted fake judge server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch


def tiny_config(**overrides: Any) -> Any:
    from llm_model import GPTConfig

    values = dict(vocab_size=97, context_length=32, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
    values.update(overrides)
    return GPTConfig(**values)


@pytest.fixture
def tiny_model() -> Any:
    """A seeded GPT: vocab 97, context 32, emb 32, 2 layers."""
    from llm_model import GPTModel

    torch.manual_seed(0)
    return GPTModel(tiny_config()).eval()


@pytest.fixture(scope="session")
def gpt2_tokenizer() -> Any:
    from llm_data import get_tokenizer

    return get_tokenizer("gpt2")


@pytest.fixture(scope="session")
def gpt2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained GPT, GPT-2 vocabulary (emb 32, 2 layers, context 256), from save_pretrained."""
    from llm_model import GPTModel, save_pretrained

    torch.manual_seed(0)
    model = GPTModel(tiny_config(vocab_size=50257, context_length=256))
    return save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "tiny-gpt", tokenizer="gpt2")


class FakeJudge:
    """A scripted Ollama + OpenAI judge server on 127.0.0.1.

    ``script(prompt, n)`` -> ``("ok", text)``, ``("status", code)`` or ``("sleep", seconds, text)``;
    ``n`` counts the chat requests so far (1-based). ``prompts`` records every chat prompt.
    """

    def __init__(self) -> None:
        self.script: Callable[[str, int], tuple[Any, ...]] = lambda prompt, n: ("ok", "85")
        self.models = ["llama3:latest"]
        self.prompts: list[str] = []
        self.lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def send_json(self, code: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/api/tags":
                    self.send_json(200, {"models": [{"name": m, "model": m} for m in judge.models]})
                elif self.path == "/v1/models":
                    names = [m.split(":")[0] for m in judge.models]
                    self.send_json(
                        200, {"object": "list", "data": [{"id": m, "object": "model"} for m in names]}
                    )
                else:
                    self.send_json(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                with judge.lock:
                    judge.prompts.append(prompt)
                    n = len(judge.prompts)
                action = judge.script(prompt, n)
                if action[0] == "status":
                    self.send_json(action[1], {"error": f"scripted {action[1]}"})
                    return
                if action[0] == "sleep":
                    import time

                    time.sleep(action[1])
                text = action[-1]
                try:
                    if self.path == "/api/chat":
                        self.send_json(
                            200,
                            {
                                "model": body["model"],
                                "message": {"role": "assistant", "content": text},
                                "done": True,
                            },
                        )
                    else:
                        self.send_json(
                            200,
                            {
                                "id": "x",
                                "object": "chat.completion",
                                "created": 0,
                                "model": body["model"],
                                "choices": [
                                    {
                                        "index": 0,
                                        "message": {"role": "assistant", "content": text},
                                        "finish_reason": "stop",
                                    }
                                ],
                            },
                        )
                except (BrokenPipeError, ConnectionResetError):  # the client timed out
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeJudge:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_judge() -> Iterator[FakeJudge]:
    with FakeJudge() as judge:
        yield judge


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(gpt2_checkpoint: Path) -> Iterator[tuple[Any, Any]]:
    """``(RunningServer, ModelRunner)``: the tiny GPT-2 served on a free loopback port, per test module."""
    from llm_eval.server import create_app, load_runner, start_server

    runner = load_runner(gpt2_checkpoint)
    server = start_server(create_app(runner), "127.0.0.1", 0)
    try:
        yield server, runner
    finally:
        server.stop()
