"""The llama, mistral and phi architectures: conformance, structure, presets, padding, config errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from llm_core import get_registry
from llm_core.cli import main
from llm_core.conformance import checks_for
from llm_core.errors import ConfigError
from llm_model import (
    LlamaConfig,
    LlamaModel,
    MistralConfig,
    MistralModel,
    PhiConfig,
    PhiModel,
    RMSNorm,
    build_model,
    load_pretrained,
    model_info,
    save_pretrained,
)
from llm_model import conformance as model_conformance

ARCHS = {"llama": LlamaModel, "mistral": MistralModel, "phi": PhiModel}
CHECKS = [c for c in checks_for("architectures") if c.function.__module__ == model_conformance.__name__]


def tiny(arch: str, seed: int = 0, **overrides: Any) -> Any:
    torch.manual_seed(seed)
    return build_model(arch, f"{arch}-tiny", **overrides).eval()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
@pytest.mark.parametrize("arch", ARCHS)
def test_conformance_checks_pass(arch: str, check: Any) -> None:
    check.function(arch, ARCHS[arch])


def test_registered_with_tiny_and_real_presets() -> None:
    registry = get_registry("architectures")
    assert {"gpt2", "llama", "mistral", "phi"} <= set(registry)
    assert set(registry["llama"].meta["presets"]) == {
        "llama-tiny",
        "llama-3.2-1b",
        "llama-3.2-3b",
        "llama-3.1-8b",
    }
    assert set(registry["mistral"].meta["presets"]) == {"mistral-tiny", "mistral-7b"}
    assert set(registry["phi"].meta["presets"]) == {"phi-tiny", "phi-2"}


@pytest.mark.parametrize(
    ("arch", "preset", "parameters"),
    [  # the published parameter counts of these models
        ("llama", "llama-3.2-1b", 1_235_814_400),
        ("llama", "llama-3.2-3b", 3_212_749_824),
        ("llama", "llama-3.1-8b", 8_030_261_248),
        ("mistral", "mistral-7b", 7_241_732_096),
        ("phi", "phi-2", 2_779_683_840),
    ],
)
def test_real_preset_shapes_have_the_published_parameter_counts(
    arch: str, preset: str, parameters: int
) -> None:
    with torch.device("meta"):
        model = build_model(arch, preset)
    assert model_info(model)["parameters"] == parameters


def test_llama3_presets_use_llama3_rope_scaling() -> None:
    with torch.device("meta"):
        model = build_model("llama", "llama-3.1-8b")
    rope = model.trf_blocks[0].att.rope
    assert rope.theta == 500000.0 and rope.scaling["type"] == "llama3" and rope.scaling["factor"] == 8.0
    assert model.config.context_length == 131072 and model.config.kv_heads == 8


def test_model_info_command_for_a_llama_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model-info", "--arch", "llama", "--preset", "llama-3.2-1b", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == "llama" and info["parameters"] == 1_235_814_400
    assert info["parameters_without_head"] == info["parameters"]  # tied embeddings


def test_llama_has_no_biases_and_an_untied_head_unless_asked() -> None:
    model = tiny("llama")
    assert not [n for n, _ in model.named_parameters() if n.endswith("bias")]
    assert model.out_head.weight is not model.tok_emb.weight
    assert isinstance(model.final_norm, RMSNorm) and model.trf_blocks[0].att.n_kv_heads == 2
    tied = tiny("llama", tie_weights=True)
    assert tied.out_head.weight is tied.tok_emb.weight


def test_rmsnorm_matches_its_definition() -> None:
    torch.manual_seed(0)
    norm = RMSNorm(8, eps=1e-5)
    norm.scale.data.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 8)
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5) * norm.scale
    torch.testing.assert_close(norm(x), expected)


def test_phi_block_runs_attention_and_mlp_in_parallel_on_one_norm() -> None:
    model = tiny("phi")
    block = model.trf_blocks[0]
    assert model.out_head.bias is not None and block.att.W_query.bias is not None
    assert block.att.rope.rotary_dim == model.config.rotary_dim == 8  # 0.5 * head_dim 16
    x = torch.randn(2, 5, 64)
    with torch.no_grad():
        h = block.norm(x)
        torch.testing.assert_close(block(x), x + block.att(h) + block.ff(h))


def test_partial_rotary_leaves_the_other_features_unrotated() -> None:
    model = tiny("phi")
    rope = model.trf_blocks[0].att.rope
    q = torch.randn(1, 4, 6, 16)
    rotated = rope(q, offset=3)
    assert torch.equal(rotated[..., 8:], q[..., 8:]) and not torch.allclose(rotated[..., :8], q[..., :8])


def test_the_mistral_window_hides_old_tokens() -> None:
    windowed = tiny("mistral")  # sliding_window 8
    full = MistralModel(MistralConfig(**{**windowed.config.to_dict(), "sliding_window": None})).eval()
    full.load_state_dict(windowed.state_dict())
    idx = torch.randint(0, 256, (1, 20))
    with torch.no_grad():
        a, b = windowed(idx), full(idx)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:], atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_left_padded_row_gets_the_logits_it_gets_alone(arch: str) -> None:
    model = tiny(arch)
    alone = torch.randint(0, 256, (1, 12))
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), alone], dim=1)
    mask = torch.cat([torch.zeros(1, 4, dtype=torch.bool), torch.ones(1, 12, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        expected = model(alone)
        got = model(padded, padding_mask=mask)[:, 4:]
        cache = model.new_cache(1)
        prefill = model(padded[:, :10], cache=cache, padding_mask=mask[:, :10])
        steps = [
            model(padded[:, i : i + 1], cache=cache, padding_mask=mask[:, : i + 1]) for i in range(10, 16)
        ]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat([prefill[:, 4:], *steps], dim=1), expected, atol=1e-5, rtol=0)


def test_checkpoint_config_records_the_architecture(tmp_path: Path) -> None:
    model = tiny("mistral")
    save_pretrained(model, tmp_path / "ckpt")
    data = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert data["architecture"] == "mistral" and data["sliding_window"] == 8 and data["n_kv_heads"] == 2
    loaded = load_pretrained(tmp_path / "ckpt")
    assert isinstance(loaded, MistralModel) and loaded.config == model.config


def test_a_too_long_sequence_names_the_context_length() -> None:
    with pytest.raises(ConfigError, match="exceeds context_length=64"):
        tiny("llama")(torch.zeros(1, 65, dtype=torch.long))


@pytest.mark.parametrize(
    ("config_class", "values", "message"),
    [
        (
            LlamaConfig,
            {"n_heads": 4, "n_kv_heads": 3},
            r"n_kv_heads=3 does not divide n_heads=4; choose n_kv_heads from 1, 2, 4",
        ),
        (
            LlamaConfig,
            {"emb_dim": 60, "n_heads": 4},
            r"head_dim=15, but RoPE needs an even head_dim; choose n_heads from 1, 2, 3, 5, 6",
        ),
        (
            LlamaConfig,
            {"emb_dim": 64, "n_heads": 5},
            r"n_heads=5 does not divide emb_dim=64; choose n_heads from 1, 2, 4",
        ),
        (
            LlamaConfig,
            {"rope_scaling": {"type": "yarn"}},
            r"rope scaling type 'yarn' is not supported; choose from linear, ntk",
        ),
        (LlamaConfig, {"norm_eps": 0}, r"norm_eps: expected a positive number"),
        (LlamaConfig, {"attention": "flash9"}, r"unknown backend 'flash9'; choose from .*sdpa"),
        (MistralConfig, {"sliding_window": 0}, r"sliding_window: expected a positive integer"),
        (
            PhiConfig,
            {"emb_dim": 64, "n_heads": 4, "partial_rotary_factor": 0.1},
            r"rotates int\(0.1 \* head_dim=16\) = 1 features.*choose from 0.125, 0.25",
        ),
        (PhiConfig, {"partial_rotary_factor": 1.5}, r"partial_rotary_factor: expected a number in \(0, 1\]"),
    ],
)
def test_bad_configs_are_config_errors_listing_valid_choices(
    config_class: type[Any], values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config_class(**values)


def test_a_model_refuses_another_family_s_config() -> None:
    with pytest.raises(ConfigError, match="PhiModel: expected a PhiConfig, got LlamaConfig"):
        PhiModel(LlamaConfig(emb_dim=64, n_heads=4, n_layers=1, hidden_dim=32, vocab_size=10))
    with pytest.raises(ConfigError, match="unknown preset 'llama-70b' for architecture 'llama'"):
        build_model("llama", "llama-70b")


def test_the_new_modules_never_import_transformers() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llm_model.llama, llm_model.phi, llm_model.hf_families;"
        "assert 'transformers' not in sys.modules, 'transformers imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
