"""The chunked output head + cross-entropy against the plain logits path (the reference)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import llm_model.head_loss as head_loss
from llm_model import GPTModel, accepts_targets, build_model, linear_cross_entropy, masked_cross_entropy


def _reference(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, bias: Any = None) -> Any:
    logits = F.linear(hidden, weight, bias)
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten())


TINY_GPT = {
    "vocab_size": 97,
    "context_length": 32,
    "emb_dim": 32,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.0,
}


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 7 rows, so the tests cross several chunks and a ragged last one."""
    monkeypatch.setattr(head_loss, "_chunk_rows", lambda tokens, vocab_size: 7)


def test_chunks_are_equal_and_near_the_logits_budget() -> None:
    assert head_loss._chunk_rows(2048, 50257) == 158  # 13 chunks of <= 166 rows (32 MiB of logits)
    assert head_loss._chunk_rows(166, 50257) == 166
    assert head_loss._chunk_rows(167, 50257) == 84  # two equal chunks, not 166 + 1
    assert head_loss._chunk_rows(40, 97) == 40  # small vocabulary: one chunk
    assert head_loss._chunk_rows(1, 50257) == 1


@pytest.mark.parametrize("with_bias", [False, True])
def test_loss_and_every_gradient_match_cross_entropy(small_chunks: None, with_bias: bool) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(3, 13, 8, requires_grad=True)  # 39 rows: chunks of 16, 16, 7
    weight = torch.randn(50, 8, requires_grad=True)
    bias = torch.randn(50, requires_grad=True) if with_bias else None
    targets = torch.randint(0, 50, (3, 13))
    targets[0, :5] = -100  # ignored positions, as instruction finetuning masks prompts
    targets[2, -1] = -100
    inputs = [hidden, weight] + ([bias] if with_bias else [])

    expected = _reference(hidden, weight, targets, bias)
    expected_grads = torch.autograd.grad(expected * 2.5, inputs)  # a non-unit upstream gradient
    got = linear_cross_entropy(hidden, weight, targets, bias)
    got_grads = torch.autograd.grad(got * 2.5, inputs)

    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    for g, e in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


def test_every_target_ignored_gives_zero_loss_and_zero_gradients() -> None:
    hidden = torch.randn(4, 8, requires_grad=True)
    weight = torch.randn(10, 8, requires_grad=True)
    loss = linear_cross_entropy(hidden, weight, torch.full((4,), -100))
    loss.backward()
    assert loss.item() == 0.0
    assert hidden.grad is not None and weight.grad is not None
    assert not hidden.grad.any() and not weight.grad.any()


def _matmuls(run: Callable[[], Any]) -> int:
    """How many matrix products ``run`` launches (``torch.profiler`` op counts)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return sum(e.count for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm", "aten::addmm_"))


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_without_gradients_only_the_loss_is_computed(small_chunks: None, context: Any) -> None:
    """A model's weights require grad even while it is evaluated: the caller's grad mode decides."""
    torch.manual_seed(1)
    hidden = torch.randn(40, 8, requires_grad=True)
    weight = torch.randn(50, 8, requires_grad=True)
    targets = torch.randint(0, 50, (40,))
    with context():
        loss = linear_cross_entropy(hidden, weight, targets)
        evaluating = _matmuls(lambda: linear_cross_entropy(hidden, weight, targets))
    torch.testing.assert_close(loss, _reference(hidden, weight, targets).detach())
    assert not loss.requires_grad
    training = _matmuls(lambda: linear_cross_entropy(hidden, weight, targets))
    chunks = 6  # 40 rows, 7 a chunk
    assert (evaluating, training) == (chunks, 3 * chunks)  # logits only; logits and both gradients


def test_masked_cross_entropy_is_the_mean_over_kept_targets_and_0_when_none() -> None:
    torch.manual_seed(2)
    logits, targets = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    targets[0, :2] = -100
    expected = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    torch.testing.assert_close(masked_cross_entropy(logits, targets), expected)
    assert masked_cross_entropy(logits, torch.full((2, 5), -100)).item() == 0.0


def test_mismatched_shapes_are_one_clear_error() -> None:
    with pytest.raises(ValueError, match="must agree on every dimension but the last"):
        linear_cross_entropy(torch.randn(2, 5, 8), torch.randn(10, 8), torch.zeros(2, 4, dtype=torch.long))


def _loss_and_grads(model: nn.Module, idx: torch.Tensor, targets: torch.Tensor, fused: bool) -> Any:
    model.zero_grad(set_to_none=True)
    if fused:
        loss = model(idx, targets=targets)
    else:
        loss = F.cross_entropy(model(idx).flatten(0, 1), targets.flatten())
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    "build",
    [
        lambda: build_model("gpt2", **TINY_GPT, tie_weights=False),
        lambda: build_model("gpt2", **TINY_GPT, tie_weights=True),
        lambda: build_model("llama", "llama-tiny"),
        lambda: build_model("phi", "phi-tiny"),  # a head with a bias
    ],
    ids=["gpt2", "gpt2-tied", "llama", "phi"],
)
def test_model_forward_with_targets_equals_the_logits_path(
    small_chunks: None, build: Callable[[], nn.Module]
) -> None:
    torch.manual_seed(0)
    model = build().train()
    vocab = model.config.vocab_size
    idx = torch.randint(0, vocab, (2, 16))
    targets = torch.randint(0, vocab, (2, 16))
    targets[1, :3] = -100
    expected_loss, expected = _loss_and_grads(model, idx, targets, fused=False)
    loss, grads = _loss_and_grads(model, idx, targets, fused=True)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == expected.keys()
    for name in expected:  # the tied embedding/head weight gets both contributions
        torch.testing.assert_close(grads[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_replaced_head_goes_through_its_own_forward(make_model: Callable[..., GPTModel]) -> None:
    """A LoRA-wrapped or otherwise replaced head is not bypassed by reading its weight."""
    model = make_model()
    model.out_head = nn.Sequential(model.out_head, nn.Tanh())  # not a plain nn.Linear
    idx = torch.randint(0, 97, (2, 8))
    targets = torch.randint(0, 97, (2, 8))
    expected = F.cross_entropy(model(idx).flatten(0, 1), targets.flatten())
    torch.testing.assert_close(model(idx, targets=targets), expected)


def test_under_autocast_with_gradients_the_plain_path_is_used(make_model: Callable[..., GPTModel]) -> None:
    model = make_model().train()
    idx = torch.randint(0, 97, (2, 8))
    targets = torch.randint(0, 97, (2, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = F.cross_entropy(model(idx).float().flatten(0, 1), targets.flatten())
        loss = model(idx, targets=targets)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert model.tok_emb.weight.grad is not None


def test_accepts_targets_sees_through_wrappers(make_model: Callable[..., GPTModel]) -> None:
    model = make_model()

    class Wrapper(nn.Module):  # stands in for DistributedDataParallel, which needs a process group
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    assert accepts_targets(model)
    assert accepts_targets(Wrapper(model))
    assert accepts_targets(torch.compile(model))  # compiled lazily: nothing runs here
    assert not accepts_targets(nn.Linear(2, 2))
    assert not accepts_targets(Wrapper(nn.Linear(2, 2)))
