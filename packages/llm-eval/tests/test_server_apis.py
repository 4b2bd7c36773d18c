"""Both APIs as real clients use them: Ollama's show/ps/embed, OpenAI's model/embeddings/logprobs, errors.

Spoken to with the official ``ollama`` and ``openai`` clients and with
lm-eval's ``local-completions`` model over 127.0.0.1.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import ollama
import openai
import pytest
import torch

from llm_eval.harness import CheckpointScorer
from llm_eval.server import ModelRunner, create_app, start_server
from llm_eval.serving import GenerationOptions, SerialEngine, ServerBusy
from llm_model import generate_text

NAME = "tiny-gpt"


def mean_hidden(runner: ModelRunner, text: str) -> torch.Tensor:
    """The reference embedding: the final norm's output (the head's input), averaged over the tokens."""
    model = runner.model
    ids = torch.tensor([runner.tokenizer.encode(text)])
    with torch.no_grad():
        x = model.tok_emb(ids) + model.pos_emb(torch.arange(ids.shape[1]))
        for block in model.trf_blocks:
            x = block(x)
        return model.final_norm(x)[0].mean(dim=0)  # (emb_dim,)


def test_ollama_show_ps_and_embeddings(served) -> None:
    server, runner = served
    client = ollama.Client(host=server.url)
    shown = client.show(NAME)
    assert shown.details.family == "gpt2" and shown.modelinfo["general.parameter_count"] > 0
    assert "completion" in shown.capabilities
    assert [m.model for m in client.ps().models] == [f"{NAME}:latest"]
    want = mean_hidden(runner, "Every effort moves you")
    raw = client.embeddings(model=NAME, prompt="Every effort moves you").embedding
    assert torch.allclose(torch.tensor(raw), want, atol=1e-5)
    both = client.embed(model=NAME, input=["Every effort moves you", "Hello"]).embeddings
    assert len(both) == 2 and torch.allclose(torch.tensor(both[0]), want / want.norm(), atol=1e-5)
    assert math.isclose(sum(v * v for v in both[1]), 1.0, rel_tol=1e-5)


def test_ollama_context_continues_an_answer(served) -> None:
    server, runner = served
    client = ollama.Client(host=server.url)
    options = {"temperature": 0, "num_predict": 4}
    first = client.generate(model=NAME, prompt="Every effort", options=options, stream=False)
    assert runner.tokenizer.decode(first.context) == "Every effort" + first.response
    second = client.generate(
        model=NAME, prompt=" moves", context=first.context, options=options, stream=False
    )
    whole = "Every effort" + first.response + " moves"
    want = generate_text(runner.model, runner.tokenizer, whole, 4, temperature=0.0)
    assert second.response == want and second.prompt_eval_count == len(first.context) + 1


def test_ollama_errors_have_ollamas_shape(served) -> None:
    server, _ = served
    client = ollama.Client(host=server.url)
    with pytest.raises(ollama.ResponseError) as info:
        client.show("llama3")
    assert info.value.status_code == 404 and "model 'llama3' not found" in info.value.error
    for method, path, status in [
        ("GET", "/api/nope", 404),
        ("GET", "/api/generate", 405),
        ("POST", "/api/tags", 405),
    ]:
        answer = httpx.request(method, f"{server.url}{path}", timeout=10)
        assert answer.status_code == status and isinstance(answer.json()["error"], str), (path, answer.text)
    unsupported = {"model": NAME, "prompt": "Hi", "format": "json", "stream": False}
    answer = httpx.post(f"{server.url}/api/generate", json=unsupported, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"].startswith("format: not supported")
    penalty = {
        "model": NAME,
        "messages": [{"role": "user", "content": "Hi"}],
        "options": {"repeat_penalty": 1.3},
    }
    answer = httpx.post(f"{server.url}/api/chat", json=penalty, timeout=10)
    assert answer.status_code == 400 and "options.repeat_penalty: not supported" in answer.json()["error"]


def test_openai_models_embeddings_and_errors(served) -> None:
    server, runner = served
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    assert client.models.retrieve(NAME).id == NAME
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-4")
    assert missing.value.body["code"] == "model_not_found"
    want = mean_hidden(runner, "Every effort moves you")
    vectors = client.embeddings.create(
        model=NAME, input=["Every effort moves you", "Hi"]
    )  # base64 on the wire
    assert [d.index for d in vectors.data] == [0, 1] and vectors.usage.prompt_tokens == 5
    assert torch.allclose(torch.tensor(vectors.data[0].embedding), want / want.norm(), atol=1e-5)
    as_floats = client.embeddings.create(model=NAME, input="Every effort moves you", encoding_format="float")
    assert torch.allclose(torch.tensor(as_floats.data[0].embedding), want / want.norm(), atol=1e-5)
    answer = httpx.get(f"{server.url}/v1/nope", timeout=10)
    error = answer.json()["error"]
    assert answer.status_code == 404 and set(error) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": 1}, "presence_penalty"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
    ],
)
def test_unsupported_openai_parameters_are_a_clear_400(served, extra: dict[str, Any], field: str) -> None:
    server, _ = served
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=2, **extra
        )
    assert info.value.body["param"] == field and "not supported" in info.value.body["message"]


def test_neutral_values_of_unsupported_parameters_pass(served) -> None:
    server, _ = served
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    done = client.chat.completions.create(
        model=NAME,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=2,
        n=1,
        frequency_penalty=0,
        presence_penalty=0,
        response_format={"type": "text"},
    )
    assert done.choices[0].finish_reason in ("length", "stop")


def test_streamed_usage(served) -> None:
    server, _ = served
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model=NAME,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=3,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3


def test_completion_logprobs_echo_and_token_prompts(served) -> None:
    server, runner = served
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    ids = runner.tokenizer.encode("Every effort moves you")
    done = client.completions.create(
        model=NAME, prompt=ids, max_tokens=3, temperature=0, logprobs=2, echo=True
    )
    choice = done.choices[0]
    logprobs = choice.logprobs
    assert choice.text.startswith("Every effort moves you") and len(logprobs.tokens) == len(ids) + 3
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
    with torch.no_grad():
        reference = torch.log_softmax(runner.model(torch.tensor([ids]))[0], dim=-1)  # (t, vocab)
    for position in range(1, len(ids)):
        expected = float(reference[position - 1, ids[position]])
        assert logprobs.token_logprobs[position] == pytest.approx(expected, abs=1e-4)
    for position in range(len(ids), len(ids) + 3):  # greedy: the chosen token is the likeliest one
        top = logprobs.top_logprobs[position]
        assert len(top) == 2 and logprobs.token_logprobs[position] == pytest.approx(max(top.values()))
    assert logprobs.text_offset[:2] == [0, len(logprobs.tokens[0])]
    plain = client.completions.create(model=NAME, prompt=[ids, ids[:2]], max_tokens=2, temperature=0)
    assert [c.index for c in plain.choices] == [0, 1] and plain.choices[0].logprobs is None
    assert plain.choices[0].text == choice.text[len("Every effort moves you") :][: len(plain.choices[0].text)]
    streamed = client.completions.create(
        model=NAME, prompt="Every effort moves you", max_tokens=3, temperature=0, logprobs=1, stream=True
    )
    tokens = [
        t for part in streamed for t in (part.choices[0].logprobs.tokens if part.choices[0].logprobs else [])
    ]
    assert tokens == logprobs.tokens[len(ids) :]
    bad = httpx.post(
        f"{server.url}/v1/completions", json={"model": NAME, "prompt": [[1, 2], [10**9]]}, timeout=10
    )
    assert bad.status_code == 400 and "token ids in 0..50256" in bad.json()["error"]["message"]


def test_lm_eval_local_completions_matches_the_in_process_adapter(served) -> None:
    """lm-eval's own API model against `serve`: the log-likelihoods of the in-process harness adapter."""
    api_models = pytest.importorskip("lm_eval.models.openai_completions", reason="lm-eval not installed")
    from lm_eval.api.instance import Instance

    server, runner = served
    lm = api_models.LocalCompletionsAPI(
        base_url=f"{server.url}/v1/completions", model=NAME, tokenizer_backend="auto", max_length=256
    )
    pairs = [("Every effort moves", " you"), ("The cat sat on the", " mat."), ("", "Hello world")]
    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(pairs)
    ]
    got = lm.loglikelihood(requests, disable_tqdm=True)
    want = CheckpointScorer(runner.model, runner.tokenizer).loglikelihoods(pairs)
    assert len(got) == len(want)
    for (score, greedy), (expected, expected_greedy) in zip(got, want, strict=True):
        assert score == pytest.approx(expected, abs=1e-4) and greedy == expected_greedy


class BusyEngine(SerialEngine):
    """An engine whose queue is always full."""

    def stream(self, ids: list[int], options: GenerationOptions) -> Any:
        raise ServerBusy("the server is busy: 3 requests already wait; retry in 2 s", retry_after=2)


def test_a_busy_engine_is_a_503_with_retry_after(served) -> None:
    _, runner = served
    with start_server(create_app(runner, engine=BusyEngine(runner)), "127.0.0.1", 0) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(
                model=NAME, messages=[{"role": "user", "content": "Hi"}], stream=True
            )
        assert info.value.status_code == 503 and info.value.response.headers["retry-after"] == "2"
        body = {"model": NAME, "prompt": "Hi"}
        answer = httpx.post(f"{server.url}/api/generate", json=body, timeout=10)
        assert answer.status_code == 503 and answer.json()["error"].startswith("the server is busy")
        assert answer.headers["retry-after"] == "2"


def test_an_lm_eval_task_against_serve_scores_like_the_in_process_adapter(
    served, gpt2_checkpoint, tmp_path, monkeypatch
) -> None:
    """lm-eval's `local-completions` runs a multiple-choice task against `serve`: each choice's
    log-likelihood and the accuracy are those of the in-process `scratchlm` model."""
    lm_eval = pytest.importorskip("lm_eval", reason="lm-eval not installed (llm-eval[harness])")
    pytest.importorskip("tenacity", reason="lm-eval's API models need lm-eval[api] (llm-eval[harness])")
    import datasets.config
    from lm_eval.tasks import TaskManager

    from llm_eval.harness import register_harness_model

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    server, _ = served
    docs = [
        {"question": q, "choices": ["blue", "green", "white"], "answer": i % 3}
        for i, q in enumerate(["The sky is", "Grass is", "Snow is", "The sea is"])
    ]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    (tmp_path / "mc.yaml").write_text(
        "task: serve_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {tmp_path / 'docs.jsonl'}\n  cache_dir: {tmp_path / 'cache'}\ntest_split: test\n"
        'output_type: multiple_choice\ndoc_to_text: "{{question}}"\ndoc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{answer}}"\nmetric_list:\n  - metric: acc\n'
    )
    register_harness_model()
    common = {
        "tasks": ["serve_mc"],
        "task_manager": TaskManager(include_path=str(tmp_path), include_defaults=False),
        "bootstrap_iters": 0,
        "log_samples": True,
    }
    remote = lm_eval.simple_evaluate(
        model="local-completions",
        model_args=f"model={NAME},base_url={server.url}/v1/completions,tokenizer_backend=auto,max_length=256",
        **common,
    )
    local = lm_eval.simple_evaluate(model="scratchlm", model_args=f"checkpoint={gpt2_checkpoint}", **common)

    def scores(run: dict[str, Any]) -> list[float]:
        samples = sorted(run["samples"]["serve_mc"], key=lambda s: s["doc_id"])
        return [float(r[0]) for s in samples for r in s["filtered_resps"]]

    assert len(scores(remote)) == 12 and scores(remote) == pytest.approx(scores(local), abs=1e-4)
    assert remote["results"]["serve_mc"]["acc,none"] == local["results"]["serve_mc"]["acc,none"]
