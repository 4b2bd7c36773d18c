"""init_weights: GPT-2's and torch's initialisation for any module tree, and the built-ins use it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from llm_core.errors import ConfigError
from llm_model import GPTConfig, GPTModel, LayerNorm, RMSNorm, build_model, init_weights

TINY = {"vocab_size": 97, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 3, "drop_rate": 0.0}


def book_gpt2_init(model: nn.Module, n_layers: int | None) -> None:
    """The hand-written loops the built-ins used before init_weights: the reference it must equal bitwise.

    GPTModel's scaled the residual projections by 1/sqrt(2 n_layers); the rotary decoders' did not (None).
    """

    def init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    with torch.no_grad():
        model.apply(init)
        for name, param in model.named_parameters() if n_layers else ():
            if name.endswith(("att.out_proj.weight", "ff.layers.2.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * n_layers))


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_gpt2_scheme_equals_the_former_hand_written_loop_bitwise(qkv_bias: bool) -> None:
    torch.manual_seed(5)
    ours = GPTModel(GPTConfig(**TINY, qkv_bias=qkv_bias, init="pytorch"))
    init_weights(ours, "gpt2")
    torch.manual_seed(5)
    reference = GPTModel(GPTConfig(**TINY, qkv_bias=qkv_bias, init="pytorch"))
    book_gpt2_init(reference, TINY["n_layers"])
    for (name, a), (_, b) in zip(ours.state_dict().items(), reference.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    torch.manual_seed(5)
    built = GPTModel(GPTConfig(**TINY, qkv_bias=qkv_bias, init="gpt2"))  # what the constructor does
    assert all(torch.equal(a, b) for a, b in zip(built.parameters(), ours.parameters(), strict=True))


def test_gpt2_scheme_values() -> None:
    torch.manual_seed(0)
    model = init_weights(nn.Sequential(nn.Linear(64, 4096), LayerNorm(4096), nn.Embedding(4096, 64)), "gpt2")
    linear, norm, embedding = model
    assert abs(float(linear.weight.std()) - 0.02) < 1e-3 and torch.equal(linear.bias, torch.zeros(4096))
    assert abs(float(embedding.weight.std()) - 0.02) < 1e-3
    assert torch.equal(norm.scale, torch.ones(4096)) and torch.equal(norm.shift, torch.zeros(4096))


def test_residual_projections_are_scaled_by_depth_unless_asked_not_to() -> None:
    torch.manual_seed(0)
    config = GPTConfig(**{**TINY, "emb_dim": 256, "n_heads": 4, "n_layers": 8})
    model = GPTModel(config)
    out_proj = model.trf_blocks[0].att.out_proj.weight
    assert abs(float(out_proj.std()) - 0.02 / math.sqrt(16)) < 5e-4
    assert abs(float(model.trf_blocks[0].att.W_query.weight.std()) - 0.02) < 1e-3
    init_weights(model, "gpt2", scale_residual=False)
    assert abs(float(out_proj.std()) - 0.02) < 1e-3


def test_pytorch_scheme_is_each_layers_own_reset() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(4096, 64), RMSNorm(64), nn.Linear(64, 64))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(7.0)
    init_weights(model, "pytorch")
    embedding, norm, linear = model
    assert abs(float(embedding.weight.std()) - 1.0) < 0.02  # torch's N(0, 1)
    assert torch.equal(norm.scale, torch.ones(64))
    bound = 1 / math.sqrt(64)  # Kaiming-uniform with a=sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert float(linear.weight.abs().max()) <= bound and float(linear.bias.abs().max()) <= bound


def test_book_parity_model_keeps_torch_defaults() -> None:
    """init="pytorch" draws nothing after the layers are built: the book's seed-123 weights."""
    torch.manual_seed(123)
    model = GPTModel(GPTConfig(**TINY, init="pytorch"))
    torch.manual_seed(123)
    embedding = nn.Embedding(TINY["vocab_size"], TINY["emb_dim"])  # the first layer GPTModel builds
    assert torch.equal(model.tok_emb.weight, embedding.weight)


def test_tied_weights_stay_tied() -> None:
    model = build_model("gpt2", **TINY, tie_weights=True)
    init_weights(model, "pytorch")
    assert model.out_head.weight is model.tok_emb.weight


def test_unknown_scheme_is_a_config_error_listing_the_schemes() -> None:
    with pytest.raises(ConfigError, match=r"unknown scheme 'xavier'; choose one of gpt2, pytorch"):
        init_weights(nn.Linear(2, 2), "xavier")


class Scaled(nn.Module):
    def __init__(self, reset: bool) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.full((3, 3), float("nan")))
        self.bias = nn.Parameter(torch.full((3,), float("nan")))
        if reset:
            self.reset_parameters = lambda: nn.init.eye_(self.gain)  # type: ignore[method-assign]


def test_a_parameter_without_a_rule_uses_reset_parameters_or_is_named_in_the_error() -> None:
    module = init_weights(nn.Sequential(Scaled(reset=True)), "gpt2")
    assert torch.equal(module[0].gain, torch.eye(3)) and torch.equal(module[0].bias, torch.zeros(3))
    with pytest.raises(ConfigError, match=r"no rule for 0\.gain \(a parameter of Scaled\)"):
        init_weights(nn.Sequential(Scaled(reset=False)), "gpt2")


@pytest.mark.parametrize("arch", ["llama", "mistral", "phi"])
def test_rotary_decoders_init_equals_the_former_unscaled_loop_bitwise(arch: str) -> None:
    overrides = {"hidden_dim": 48, "n_kv_heads": 2}
    if arch == "phi":
        overrides["partial_rotary_factor"] = 0.5
    ours, reference = (build_model(arch, **{**TINY, **overrides}) for _ in range(2))
    torch.manual_seed(9)
    init_weights(ours, "gpt2", scale_residual=False)
    torch.manual_seed(9)
    book_gpt2_init(reference, n_layers=None)
    for (name, a), (_, b) in zip(ours.state_dict().items(), reference.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
