"""Losses, parameter groups, optimizers and schedules against hand-computed references."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from llm_core import PluginError, get_registry
from llm_train import calc_loss_batch, calc_loss_loader, lr_multiplier, param_groups, perplexity
from llm_train.optimizers import build_optimizer, can_fuse


class Marked(torch.Tensor):
    """A tensor subclass, like FSDP's DTensor parameters."""


class Bigram(nn.Module):
    def __init__(self, vocab: int = 11) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, vocab)
        self.norm = nn.LayerNorm(vocab)
        self.proj = nn.Linear(vocab, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(self.emb(idx)))


def test_loss_batch_is_mean_token_cross_entropy() -> None:
    torch.manual_seed(0)
    model = Bigram()
    inputs, targets = torch.randint(0, 11, (3, 5)), torch.randint(0, 11, (3, 5))
    logits = model(inputs)
    manual = -torch.log_softmax(logits, -1).gather(-1, targets[..., None]).mean()
    assert torch.allclose(calc_loss_batch(inputs, targets, model, "cpu"), manual)


def test_loss_loader_averages_first_batches() -> None:
    torch.manual_seed(0)
    model = Bigram()
    batches = [(torch.randint(0, 11, (2, 4)), torch.randint(0, 11, (2, 4))) for _ in range(3)]
    each = [calc_loss_batch(i, t, model, "cpu").item() for i, t in batches]
    assert calc_loss_loader(batches, model, "cpu", num_batches=2) == pytest.approx(sum(each[:2]) / 2)
    assert calc_loss_loader(batches, model, "cpu") == pytest.approx(sum(each) / 3)
    assert math.isnan(calc_loss_loader([], model, "cpu"))
    assert perplexity(math.log(50257)) == pytest.approx(50257)


def test_weight_decay_skips_norms_biases_embeddings() -> None:
    model = Bigram()
    decay, no_decay = param_groups(model, 0.1)
    assert [p.shape for p in decay["params"]] == [model.proj.weight.shape]
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert len(no_decay["params"]) == 4  # embedding, norm weight and bias, linear bias
    [everything] = [g for g in param_groups(model, 0.1, decay_all=True) if g["weight_decay"] == 0.1]
    assert len(everything["params"]) == 5


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_builtin_optimizers_reduce_a_regression_loss(name: str) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    optimizer = build_optimizer(name, model, lr=0.05, weight_decay=0.0)
    first = None
    for _ in range(60):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        first = first if first is not None else loss.item()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2 * first


@pytest.mark.parametrize("name", ["adamw", "adam"])
def test_adam_family_is_fused_on_cpu_and_matches_the_for_loop_version(name: str) -> None:
    torch.manual_seed(0)
    fused_model, loop_model = Bigram(), Bigram()
    loop_model.load_state_dict(fused_model.state_dict())
    fused = build_optimizer(name, fused_model, lr=1e-2, weight_decay=0.1)
    loop = build_optimizer(name, loop_model, lr=1e-2, weight_decay=0.1, fused=False)
    assert all(g["fused"] for g in fused.param_groups) and not any(g["fused"] for g in loop.param_groups)
    x = torch.randint(0, 11, (8, 5))
    for _ in range(5):
        for model, optimizer in [(fused_model, fused), (loop_model, loop)]:
            optimizer.zero_grad()
            model(x).logsumexp(-1).mean().backward()
            optimizer.step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    assert not can_fuse([{"params": [nn.Parameter(torch.zeros(2, device="meta"))]}])  # no fused kernel there
    assert not can_fuse([{"params": [nn.Parameter(torch.zeros(2)), torch.zeros(2).as_subclass(Marked)]}])
    assert not can_fuse([{"params": []}])


def test_unknown_optimizer_lists_available() -> None:
    with pytest.raises(PluginError, match=r"unknown optimizer 'lion'; available: adam, adamw, sgd"):
        build_optimizer("lion", nn.Linear(2, 2), lr=1e-3, weight_decay=0.0)


def test_schedules() -> None:
    assert lr_multiplier("constant", 50, max_steps=100) == 1.0
    assert lr_multiplier("constant", 0, max_steps=100, warmup_steps=10) == pytest.approx(0.1)
    cosine = [
        lr_multiplier("warmup-cosine", s, max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
        for s in range(101)
    ]
    assert cosine[9] == pytest.approx(1.0)
    assert cosine[10] == pytest.approx(1.0)
    assert cosine[55] == pytest.approx(0.1 + 0.9 * 0.5)
    assert cosine[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(cosine[10:]))
    wsd = [lr_multiplier("wsd", s, max_steps=100, warmup_steps=5, decay_fraction=0.2) for s in range(101)]
    assert wsd[4] == pytest.approx(1.0) and wsd[50] == 1.0 and wsd[79] == 1.0
    assert wsd[90] == pytest.approx(0.5) and wsd[100] == pytest.approx(0.0)
    assert (
        get_registry("schedulers")["linear-warmup+cosine"].obj
        is get_registry("schedulers")["warmup-cosine"].obj
    )


def test_unknown_scheduler_lists_available() -> None:
    with pytest.raises(PluginError, match="unknown scheduler 'cyclic'; available: constant"):
        lr_multiplier("cyclic", 0, max_steps=10)
