"""`scratchlm serve` under hostile and broken clients, and a server that dies mid-answer.

* schemathesis generates requests from the server's own OpenAPI schema
  (valid and invalid ones): no answer is a 5xx, every status code, content type
  and JSON body is one the schema documents;
* an oversized body gets 413 with a message, a late body 408, a late request
  head a closed connection, all without disturbing the next client;
* a non-loopback host is refused without ``--allow-remote``;
* SIGKILL of the server mid-stream: httpx, the ollama client and the openai
  client each raise a connection error within seconds, never a silent short answer.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from llm_core.errors import ConfigError
from llm_eval.limits import ServerLimits, is_loopback
from llm_eval.server import RunningServer, create_app, load_runner, start_server
from llm_eval.server_process import spawn_server

try:
    import schemathesis
except ImportError:  # only the schema tests need it
    schemathesis = None
needs_schemathesis = pytest.mark.skipif(
    schemathesis is None, reason="schemathesis not installed (tests/reliability/requirements.txt)"
)

NAME = "tiny-gpt"
NIGHTLY = os.environ.get("SCRATCHLM_NIGHTLY") == "1"
TIMEOUT = 1.0  # request_timeout of the servers started here, seconds


@pytest.fixture(scope="module")
def served(checkpoint: Path) -> Iterator[RunningServer]:
    """The app on 127.0.0.1 in a thread: at most 8 tokens per request, 4 kB bodies, 1 s to send a request."""
    limits = ServerLimits(max_body_bytes=4096, max_tokens=8, request_timeout=TIMEOUT, keep_alive=1)
    server = start_server(create_app(load_runner(checkpoint), limits), "127.0.0.1", 0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(served: RunningServer) -> Any:
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json")


#: The schemathesis checks run on every answer.
CONFORMANCE = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
]
ROUTES = [
    ("GET", "/"),
    ("GET", "/api/version"),
    ("GET", "/api/tags"),
    ("GET", "/api/ps"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model_id}"),
    ("GET", "/tokenizer_info"),
    ("POST", "/api/generate"),
    ("POST", "/api/chat"),
    ("POST", "/api/show"),
    ("POST", "/api/embed"),
    ("POST", "/api/embeddings"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/tokenize"),
    ("POST", "/detokenize"),
]
CASES = [(m, p, "positive") for m, p in ROUTES] + [(m, p, "negative") for m, p in ROUTES if m == "POST"]


@needs_schemathesis
@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_answer_conforms_to_the_openapi_schema(
    api_schema: Any, served: RunningServer, method: str, path: str, mode: str
) -> None:
    """Requests made from the schema (``negative``: breaking it) never get a 5xx or an undocumented answer."""
    operation = api_schema[path][method]
    checks = [getattr(schemathesis.checks, name) for name in CONFORMANCE]
    examples = (300 if NIGHTLY else 20) if method == "POST" else 3

    @given(case=operation.as_strategy(schemathesis.GenerationMode(mode)))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        case.call_and_validate(base_url=served.url, checks=checks, timeout=30)

    check()


@needs_schemathesis
def test_every_route_is_fuzzed(api_schema: Any) -> None:
    documented = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert documented == set(ROUTES)


def test_the_schema_documents_the_limits(served: RunningServer) -> None:
    spec = httpx.get(f"{served.url}/openapi.json", timeout=10).json()
    body = spec["paths"]["/v1/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["max_tokens"]["maximum"] == 8 and body["properties"]["model"]["enum"] == [NAME]
    statuses = spec["paths"]["/api/chat"]["post"]["responses"]
    assert {"200", "400", "404", "408", "413", "422"} <= set(statuses)


def test_oversized_bodies_get_413_with_a_message(served: RunningServer) -> None:
    big = {"model": NAME, "prompt": "x" * 5000, "stream": False}
    answer = httpx.post(f"{served.url}/api/generate", json=big, timeout=10)  # Content-Length says it all
    assert (
        answer.status_code == 413 and "more than this server's limit of 4096 bytes" in answer.json()["error"]
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
        yield b'{"model": "tiny-gpt", "prompt": "'
        for _ in range(10):
            yield b"y" * 1000

    answer = httpx.post(f"{served.url}/v1/completions", content=chunks(), timeout=10)
    assert answer.status_code == 413 and "--max-body-bytes" in answer.json()["error"]["message"]
    ok = httpx.post(f"{served.url}/api/generate", json={**big, "prompt": "Hi"}, timeout=10)
    assert ok.status_code == 200 and ok.json()["done"]


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_a_late_body_gets_408_and_a_late_head_a_closed_connection(served: RunningServer) -> None:
    host, port = "127.0.0.1", served.port
    with socket.create_connection((host, port), timeout=10) as slow_body:
        slow_body.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
        start = time.monotonic()
        answer = read_until_closed(slow_body)
        assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in answer
        assert TIMEOUT * 0.9 <= time.monotonic() - start < TIMEOUT + 5
    with socket.create_connection((host, port), timeout=10) as slow_head:
        slow_head.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        start = time.monotonic()
        assert read_until_closed(slow_head) == b""  # closed by the server, nothing sent
        assert TIMEOUT * 0.9 <= time.monotonic() - start < TIMEOUT + 5
    with socket.create_connection((host, port), timeout=10) as silent:  # connects, never sends
        start = time.monotonic()
        assert read_until_closed(silent) == b"" and time.monotonic() - start < TIMEOUT + 5
    tags = httpx.get(f"{served.url}/api/tags", timeout=10)  # the server is still fine
    assert tags.status_code == 200 and tags.json()["models"][0]["name"] == f"{NAME}:latest"


def test_non_loopback_hosts_need_allow_remote(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    runner = load_runner(checkpoint)
    with pytest.raises(ConfigError, match=r"host '0.0.0.0' is not a loopback address.*--allow-remote"):
        start_server(create_app(runner), "0.0.0.0", 0)
    from llm_core.cli import main

    assert main(["serve", str(checkpoint), "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "not a loopback address" in err and len(err.strip().splitlines()) == 1
    server = start_server(create_app(runner), "0.0.0.0", 0, allow_remote=True)
    try:
        assert httpx.get(f"http://127.0.0.1:{server.port}/api/version", timeout=10).status_code == 200
    finally:
        server.stop()


def _stream_httpx(url: str, got: list[Any]) -> None:
    body = {"model": NAME, "prompt": "Once", "options": {"num_predict": 4000, "temperature": 0}}
    with httpx.stream("POST", f"{url}/api/generate", json=body, timeout=60) as response:
        for line in response.iter_lines():
            got.append(json.loads(line))


def _stream_ollama(url: str, got: list[Any]) -> None:
    import ollama

    client = ollama.Client(host=url, timeout=60)
    for part in client.generate(model=NAME, prompt="Once", options={"num_predict": 4000}, stream=True):
        got.append(part.model_dump())


def _stream_openai(url: str, got: list[Any]) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
    for part in client.completions.create(model=NAME, prompt="Once", max_tokens=4000, stream=True):
        got.append(part.model_dump())


def _connection_errors() -> tuple[type[BaseException], ...]:
    import openai

    return (httpx.TransportError, openai.APIConnectionError)


def test_server_killed_mid_stream_is_a_clean_client_error(checkpoint: Path) -> None:
    """httpx reads tokens; the ollama and openai clients wait in their streams (one request runs at once)."""
    server = spawn_server(checkpoint, args=["--name", NAME])
    clients = {"httpx": _stream_httpx, "ollama": _stream_ollama, "openai": _stream_openai}
    got: dict[str, list[Any]] = {name: [] for name in clients}
    outcome: dict[str, BaseException | None] = {}

    def run(name: str) -> None:
        try:
            clients[name](server.url, got[name])
            outcome[name] = None
        except BaseException as exc:  # recorded and checked below
            outcome[name] = exc

    threads = {name: threading.Thread(target=run, args=(name,), daemon=True) for name in clients}
    try:
        threads["httpx"].start()
        deadline = time.monotonic() + 60
        while len(got["httpx"]) < 2 and threads["httpx"].is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(got["httpx"]) >= 2, f"no stream started: {outcome} {list(server.log)[-3:]}"
        threads["ollama"].start()
        threads["openai"].start()
        time.sleep(0.5)  # their requests are in (waiting for the model)
        server.kill()
        killed = time.monotonic()
        for thread in threads.values():
            thread.join(30)
        assert not any(t.is_alive() for t in threads.values()), "a client hangs after the server died"
        assert time.monotonic() - killed < 10
    finally:
        server.kill()
    assert set(outcome) == set(clients)
    for name, error in outcome.items():
        assert isinstance(error, _connection_errors()), f"{name}: {error!r}"
        finished = [
            p for p in got[name] if p.get("done") or (p.get("choices") or [{}])[0].get("finish_reason")
        ]
        assert not finished, f"{name} saw a finished answer from a killed server"
