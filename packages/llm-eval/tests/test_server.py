"""End to end over 127.0.0.1: a tiny checkpoint served, spoken to with the ollama and openai clients."""

from __future__ import annotations

import json
import threading

import httpx
import ollama
import openai
import pytest

from llm_core.errors import ConfigError
from llm_eval.judge import OllamaJudge, OpenAIJudge, read_scores, run_judge
from llm_eval.limits import ServerLimits
from llm_eval.server import ModelRunner, chat_prompt, create_app, load_runner, start_server
from llm_eval.server_process import spawn_server
from llm_model import generate_text

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a color."},
]


def expected(runner: ModelRunner, prompt: str, n: int, stop: list[str] | None = None) -> str:
    return generate_text(runner.model, runner.tokenizer, prompt, n, temperature=0.0, stop_strings=stop)


def test_chat_template_is_the_books_alpaca_prompt() -> None:
    assert chat_prompt(MESSAGES) == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nBe brief.\n\nName a color.\n\n### Response:\n"
    )


def test_ollama_client_generate_and_chat(served) -> None:
    server, runner = served
    client = ollama.Client(host=server.url)
    assert [m.model for m in client.list().models] == ["tiny-gpt:latest"]
    options = {"temperature": 0, "num_predict": 6}
    want = expected(runner, "Once upon a time", 6)
    reply = client.generate(model="tiny-gpt", prompt="Once upon a time", options=options, stream=False)
    assert reply.response == want and reply.done and reply.eval_count == 6 and reply.done_reason == "length"
    chunks = list(
        client.generate(model="tiny-gpt:latest", prompt="Once upon a time", options=options, stream=True)
    )
    assert "".join(c.response for c in chunks) == want
    assert chunks[-1].done and not any(c.done for c in chunks[:-1])
    want_chat = expected(runner, chat_prompt(MESSAGES), 6, ["### Instruction:"])
    chat = client.chat(model="tiny-gpt", messages=MESSAGES, options=options, stream=False)
    assert chat.message.content == want_chat and chat.message.role == "assistant"
    streamed = "".join(
        c.message.content
        for c in client.chat(model="tiny-gpt", messages=MESSAGES, options=options, stream=True)
    )
    assert streamed == want_chat


def test_openai_client_completions_and_chat(served) -> None:
    server, runner = served
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny-gpt"]
    want = expected(runner, "Hello", 5)
    done = client.completions.create(model="tiny-gpt", prompt="Hello", max_tokens=5, temperature=0)
    assert done.choices[0].text == want and done.choices[0].finish_reason == "length"
    assert done.usage.completion_tokens == 5
    parts = client.completions.create(
        model="tiny-gpt", prompt="Hello", max_tokens=5, temperature=0, stream=True
    )
    assert "".join(p.choices[0].text for p in parts) == want
    want_chat = expected(runner, chat_prompt(MESSAGES), 5, ["### Instruction:"])
    chat = client.chat.completions.create(model="tiny-gpt", messages=MESSAGES, max_tokens=5, temperature=0)
    assert chat.choices[0].message.content == want_chat
    stream = client.chat.completions.create(
        model="tiny-gpt", messages=MESSAGES, max_tokens=5, temperature=0, stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == want_chat
    assert chunks[-1].choices[0].finish_reason == "length"


def test_sse_stream_ends_with_done(served) -> None:
    server, _ = served
    body = {"model": "tiny-gpt", "prompt": "Hi", "max_tokens": 3, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=30) as response:
        lines = [line for line in response.iter_lines() if line]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)


def test_bad_requests_get_clear_errors(served) -> None:
    server, _ = served
    client = ollama.Client(host=server.url)
    with pytest.raises(ollama.ResponseError) as info:
        client.generate(model="llama3", prompt="hi", stream=False)
    assert info.value.status_code == 404 and "model 'llama3' not found" in info.value.error
    oa = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="not found; this server serves 'tiny-gpt'"):
        oa.chat.completions.create(model="gpt-4", messages=MESSAGES)
    bad = httpx.post(f"{server.url}/api/chat", content=b'{"model": "tiny-gpt", "messages": [', timeout=30)
    assert bad.status_code == 400 and bad.json()["error"].startswith("malformed JSON")
    bad = httpx.post(f"{server.url}/v1/completions", content=b"{nope", timeout=30)
    assert bad.status_code == 400 and "malformed JSON" in bad.json()["error"]["message"]
    long_prompt = "word " * 300  # more than the 256-token context
    with pytest.raises(openai.BadRequestError, match="model's context is 256 tokens"):
        oa.completions.create(model="tiny-gpt", prompt=long_prompt, max_tokens=1)
    with pytest.raises(ollama.ResponseError, match="model's context is 256 tokens"):
        client.generate(model="tiny-gpt", prompt=long_prompt, stream=True).__next__()
    wrong = httpx.post(f"{server.url}/api/chat", json={"model": "tiny-gpt", "messages": "hi"}, timeout=30)
    assert wrong.status_code == 422 and "messages: expected a non-empty list" in wrong.json()["error"]
    wrong = httpx.post(
        f"{server.url}/v1/completions", json={"model": "tiny-gpt", "prompt": "x", "temperature": -1}
    )
    assert wrong.status_code == 422 and "temperature" in wrong.json()["error"]["message"]


def test_concurrent_requests_get_their_own_answers(served) -> None:
    server, runner = served
    prompts = ["The cat", "A dog", "Numbers: 1, 2", "Once"]
    want = {p: expected(runner, p, 8) for p in prompts}
    got: dict[str, str] = {}

    def ask(prompt: str) -> None:
        body = {"model": "tiny-gpt", "prompt": prompt, "options": {"temperature": 0, "num_predict": 8}}
        with httpx.stream("POST", f"{server.url}/api/generate", json=body, timeout=60) as response:
            got[prompt] = "".join(json.loads(line)["response"] for line in response.iter_lines() if line)

    threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert got == want


def test_port_in_use_is_a_clear_error(served, gpt2_checkpoint, capsys) -> None:
    server, runner = served
    with pytest.raises(ConfigError, match=f"port {server.port} on 127.0.0.1 is already in use.*--port"):
        start_server(create_app(runner), "127.0.0.1", server.port)
    from llm_core.cli import main

    assert main(["serve", str(gpt2_checkpoint), "--port", str(server.port)]) == 2
    assert "already in use" in capsys.readouterr().err


def test_shutdown_frees_the_port(gpt2_checkpoint) -> None:
    runner = load_runner(gpt2_checkpoint, name="other")
    server = start_server(create_app(runner), "127.0.0.1", 0)
    assert httpx.get(f"{server.url}/api/tags", timeout=10).json()["models"][0]["name"] == "other:latest"
    server.stop()
    assert not server.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/api/tags", timeout=5)


@pytest.mark.parametrize("backend", ["ollama", "openai"])
def test_judge_pipeline_against_our_server(served, tmp_path, backend) -> None:
    server, _ = served
    records = [
        {"instruction": "Name a color.", "input": "", "output": "Blue.", "model_response": "Red."},
        {"instruction": "Add 2 and 2.", "input": "", "output": "4", "model_response": "5"},
    ]
    cls = OllamaJudge if backend == "ollama" else OpenAIJudge
    judge = cls(server.url, model="tiny-gpt", timeout=60, options={"temperature": 0, "num_predict": 4}
                if backend == "ollama" else {"temperature": 0, "max_tokens": 4})  # fmt: skip
    report = run_judge(records, judge, tmp_path / "s.jsonl", max_tries=2, concurrency=2)
    assert report["scored"] + report["failed"] == 2
    saved = read_scores(tmp_path / "s.jsonl")
    assert len(saved) == 2
    for item in saved.values():
        assert item["replies"] and all(isinstance(r, str) for r in item["replies"])  # every raw reply kept
        assert item["ok"] == (item["score"] is not None)
        if not item["ok"]:
            assert item["tries"] == 2 and len(item["replies"]) == 2


def test_limits_bound_tokens_and_bodies(gpt2_checkpoint) -> None:
    limits = ServerLimits(max_body_bytes=2000, max_tokens=5)
    server = start_server(create_app(load_runner(gpt2_checkpoint), limits), "127.0.0.1", 0)
    try:
        url = server.url
        body = {"model": "tiny-gpt", "prompt": "Hi", "stream": False, "options": {"num_predict": -1}}
        assert httpx.post(f"{url}/api/generate", json=body, timeout=30).json()["eval_count"] == 5
        over = {"model": "tiny-gpt", "prompt": "Hi", "max_tokens": 6}
        answer = httpx.post(f"{url}/v1/completions", json=over, timeout=30)
        assert answer.status_code == 422 and "0..5 (this server's limit" in answer.json()["error"]["message"]
        nan = b'{"model": "tiny-gpt", "prompt": "Hi", "temperature": NaN}'
        answer = httpx.post(f"{url}/api/generate", content=nan, timeout=30)
        assert answer.status_code == 400 and "NaN is not a JSON number" in answer.json()["error"]
        big = httpx.post(f"{url}/api/generate", json={**body, "prompt": "x" * 3000}, timeout=30)
        assert big.status_code == 413 and "limit of 2000 bytes" in big.json()["error"]
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_body_bytes", 0), ("max_tokens", 1.5), ("request_timeout", 0), ("keep_alive", float("inf"))],
)
def test_bad_limits_are_config_errors(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"{field}: expected a positive"):
        ServerLimits(**{field: value})


def test_non_loopback_host_needs_allow_remote(gpt2_checkpoint) -> None:
    with pytest.raises(ConfigError, match=r"not a loopback address.*--allow-remote"):
        start_server(create_app(load_runner(gpt2_checkpoint)), "0.0.0.0", 0)


def test_spawn_server_reports_a_server_that_cannot_start(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"did not start.*error:"):
        spawn_server(tmp_path / "no-such-checkpoint", timeout=60)


def test_serve_speaks_the_shared_vocabulary(served, gpt2_checkpoint, capsys) -> None:
    """--max-new-tokens, --device, --dtype, --quantize; the old --max-tokens works, with a warning."""
    server, _ = served
    from llm_core.cli import main

    assert main(["serve", str(gpt2_checkpoint), "--max-tokens", "5", "--port", str(server.port)]) == 2
    err = capsys.readouterr().err
    assert "--max-tokens is deprecated" in err and "use --max-new-tokens" in err and "already in use" in err
    assert main(["serve", "--help"]) == 0
    shown = capsys.readouterr().out
    for option in ("--max-new-tokens", "--device", "--dtype", "--quantize"):
        assert option in shown
    assert "--max-tokens " not in shown


def test_serve_quantized_int8_answers_like_the_quantized_model(gpt2_checkpoint) -> None:
    runner = load_runner(gpt2_checkpoint, quantize="int8")
    assert getattr(runner.model, "quantization", None) == "int8"
    with start_server(create_app(runner), "127.0.0.1", 0) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        done = client.completions.create(model="tiny-gpt", prompt="Hello", max_tokens=5, temperature=0)
        tags = httpx.get(f"{server.url}/api/tags", timeout=10).json()
    assert done.choices[0].text == expected(runner, "Hello", 5)
    assert tags["models"][0]["details"]["quantization_level"] == "INT8"
