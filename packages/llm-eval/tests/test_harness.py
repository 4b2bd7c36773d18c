"""The lm-evaluation-harness adapter's three request types, checked against direct computations."""

from __future__ import annotations

import sys

import pytest
import torch

from llm_core.errors import MissingDependencyError
from llm_eval.harness import CheckpointScorer, harness_lm_class
from llm_model import generate_text, load_pretrained


@pytest.fixture(scope="module")
def scorer(gpt2_checkpoint, gpt2_tokenizer) -> CheckpointScorer:
    return CheckpointScorer(load_pretrained(gpt2_checkpoint), gpt2_tokenizer)


def test_loglikelihood_matches_direct_sum(scorer, gpt2_tokenizer) -> None:
    ctx, cont = gpt2_tokenizer.encode("The sky is"), gpt2_tokenizer.encode(" blue today")
    with torch.no_grad():
        logprobs = torch.log_softmax(scorer.model(torch.tensor([ctx + cont[:-1]]))[0], dim=-1)
    expected = sum(float(logprobs[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))
    total, _ = scorer.loglikelihood("The sky is ", "blue today")  # trailing space moves over
    assert total == pytest.approx(expected, rel=1e-5)
    best = int(logprobs[len(ctx) - 1].argmax())
    assert scorer.loglikelihood("The sky is", gpt2_tokenizer.decode([best]))[1] is True


def test_rolling_loglikelihood_is_minus_total_nll(scorer, gpt2_tokenizer) -> None:
    text = "a b c d e f g"
    ids = [gpt2_tokenizer.eot_token, *gpt2_tokenizer.encode(text)]
    with torch.no_grad():
        logprobs = torch.log_softmax(scorer.model(torch.tensor([ids[:-1]]))[0], dim=-1)
    expected = sum(float(logprobs[i, t]) for i, t in enumerate(ids[1:]))
    assert scorer.loglikelihood_rolling(text) == pytest.approx(expected, rel=1e-5)


def test_generate_until_is_greedy_and_stops(scorer, gpt2_tokenizer) -> None:
    full = generate_text(scorer.model, gpt2_tokenizer, "Hello", 8)
    assert scorer.generate_until("Hello", {"until": [], "max_gen_toks": 8}) == full
    stop = full[2:4]
    if stop.strip():
        assert (
            scorer.generate_until("Hello", {"until": [stop], "max_gen_toks": 8}) == full[: full.index(stop)]
        )


def test_missing_lm_eval_names_the_extra(monkeypatch) -> None:
    import llm_eval.harness as harness

    monkeypatch.setattr(harness, "_LM_CLASS", None)
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    monkeypatch.setitem(sys.modules, "lm_eval.api", None)
    monkeypatch.setitem(sys.modules, "lm_eval.api.model", None)
    with pytest.raises(MissingDependencyError, match=r"llm-eval\[harness\]"):
        harness_lm_class()


def test_lm_subclass_when_lm_eval_is_installed(gpt2_checkpoint) -> None:
    pytest.importorskip("lm_eval", reason="lm-eval not installed (llm-eval[harness])")
    from llm_eval.harness import register_harness_model

    cls = register_harness_model()
    lm = cls.create_from_arg_string(f"checkpoint={gpt2_checkpoint}")
    ll = lm.loglikelihood([("Hello", " world")])
    assert len(ll) == 1 and ll[0][0] < 0
