"""Parity with transformers' Llama, Mistral and Phi (test-only dependency): import, generation, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from llm_core.errors import CheckpointError, ConfigError
from llm_model import LlamaModel, MistralModel, PhiModel, build_model, export_hf, generate, import_hf

transformers = pytest.importorskip("transformers")

VOCAB = 300
SHAPE = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 64,
}
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,  # shorter than the test sequences, so the scaling matters
}


def hf_model(family: str, **extra: Any) -> Any:
    torch.manual_seed(0)
    if family == "llama":
        config = transformers.LlamaConfig(
            **SHAPE, intermediate_size=128, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=500000.0
        )
        config.rope_parameters = {**LLAMA3_ROPE, "rope_theta": 500000.0}
        model_class = transformers.LlamaForCausalLM
    elif family == "mistral":
        config = transformers.MistralConfig(
            **SHAPE, intermediate_size=128, num_key_value_heads=2, rms_norm_eps=1e-5, sliding_window=4
        )
        model_class = transformers.MistralForCausalLM
    else:
        config = transformers.PhiConfig(**SHAPE, intermediate_size=256, partial_rotary_factor=0.5)
        model_class = transformers.PhiForCausalLM
    for key, value in extra.items():
        setattr(config, key, value)
    config._attn_implementation = "eager"
    return model_class(config).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Path]]:
    """One random-init transformers model per family, saved with safetensors."""
    out = {}
    for family in ("llama", "mistral", "phi"):
        model = hf_model(family)
        directory = tmp_path_factory.mktemp("hf") / family
        model.save_pretrained(directory, safe_serialization=True)
        out[family] = (model, directory)
    return out


def hf_logits(model: Any, idx: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(idx).logits


FAMILIES = {"llama": LlamaModel, "mistral": MistralModel, "phi": PhiModel}


@pytest.mark.parametrize("family", FAMILIES)
def test_import_gives_the_same_logits(saved: dict[str, tuple[Any, Path]], family: str) -> None:
    hf, directory = saved[family]
    ours = import_hf(directory)
    assert type(ours) is FAMILIES[family] and ours.architecture == family
    idx = torch.randint(0, VOCAB, (2, 40))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf_logits(hf, idx), atol=1e-5, rtol=0)


def test_imported_configs_carry_gqa_window_scaling_and_partial_rotary(
    saved: dict[str, tuple[Any, Path]],
) -> None:
    llama = import_hf(saved["llama"][1]).config
    assert llama.n_kv_heads == 2 and llama.rope_theta == 500000.0 and llama.norm_eps == 1e-5
    assert llama.rope_scaling == {
        "type": "llama3",
        **{k: v for k, v in LLAMA3_ROPE.items() if k != "rope_type"},
    }
    assert import_hf(saved["mistral"][1]).config.sliding_window == 4
    phi = import_hf(saved["phi"][1]).config
    assert phi.partial_rotary_factor == 0.5 and phi.rotary_dim == 8


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generation_matches_transformers(saved: dict[str, tuple[Any, Path]], family: str) -> None:
    hf, directory = saved[family]
    ours = import_hf(directory)
    idx = torch.randint(0, VOCAB, (1, 8))  # 8 + 20 tokens: well past Mistral's window of 4
    expected = hf.generate(
        idx,
        attention_mask=torch.ones_like(idx),
        max_new_tokens=20,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=None,
    )
    assert torch.equal(generate(ours, idx, 20, use_cache=True), expected)
    assert torch.equal(generate(ours, idx, 20, use_cache=False), expected)


def test_the_mistral_window_matters_in_both_implementations(saved: dict[str, tuple[Any, Path]]) -> None:
    hf, directory = saved["mistral"]
    full = hf_model("mistral", sliding_window=None)
    full.load_state_dict(hf.state_dict())
    idx = torch.randint(0, VOCAB, (1, 24))
    windowed_logits, full_logits = hf_logits(hf, idx), hf_logits(full, idx)
    assert not torch.allclose(windowed_logits[:, 4:], full_logits[:, 4:], atol=1e-3)
    ours = import_hf(directory)
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), windowed_logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_export_loads_in_transformers_with_the_same_logits(family: str, tmp_path: Path) -> None:
    torch.manual_seed(3)
    overrides: dict[str, Any] = {"vocab_size": VOCAB}
    if family == "llama":  # also a tied head and linear RoPE scaling
        overrides |= {"tie_weights": True, "rope_scaling": {"type": "linear", "factor": 2.0}}
    ours = build_model(family, f"{family}-tiny", **overrides).eval()
    export_hf(ours, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    hf_class = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "phi": "PhiForCausalLM"}[family]
    assert config["model_type"] == family and config["architectures"] == [hf_class]
    hf = getattr(transformers, hf_class).from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    idx = torch.randint(0, VOCAB, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(hf_logits(hf, idx), ours(idx), atol=1e-5, rtol=0)
    back = import_hf(tmp_path / "hf")
    assert back.config == ours.config
    with torch.no_grad():
        assert torch.equal(back(idx), ours(idx))


def test_old_style_rope_keys_import(saved: dict[str, tuple[Any, Path]], tmp_path: Path) -> None:
    """transformers 4.x writes rope_theta/rope_scaling at the top level instead of rope_parameters."""
    hf, directory = saved["llama"]
    config = json.loads((directory / "config.json").read_text())
    config.pop("rope_parameters", None)
    config |= {"rope_theta": 500000.0, "rope_scaling": dict(LLAMA3_ROPE)}
    (tmp_path / "config.json").write_text(json.dumps(config))
    tensors = {f"model.{k}": v for k, v in hf.model.state_dict().items()} | {
        "lm_head.weight": hf.lm_head.weight.detach(),
        "model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(8),  # an old buffer, ignored
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp_path / "model.safetensors"))
    idx = torch.randint(0, VOCAB, (1, 30))
    with torch.no_grad():
        torch.testing.assert_close(import_hf(tmp_path)(idx), hf_logits(hf, idx), atol=1e-5, rtol=0)


def write_config(tmp_path: Path, source: Path, **changes: Any) -> Path:
    config = json.loads((source / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **changes}))
    (tmp_path / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    return tmp_path


@pytest.mark.parametrize(
    ("family", "changes", "message"),
    [
        (
            "llama",
            {"model_type": "bert"},
            r"model_type 'bert' is not supported; expected one of gpt2, llama, mistral, phi",
        ),
        ("llama", {"hidden_act": "gelu"}, r"expected hidden_act 'silu' \(SwiGLU\), found 'gelu'"),
        ("llama", {"attention_bias": True}, r"expected attention_bias false"),
        (
            "llama",
            {"rope_parameters": {"rope_type": "yarn", "factor": 4.0}},
            r"rope type 'yarn' is not supported; expected one of default, linear, llama3",
        ),
        (
            "llama",
            {"num_key_value_heads": 3},
            r"n_kv_heads=3 does not divide n_heads=4; choose n_kv_heads from 1, 2, 4",
        ),
        ("phi", {"qk_layernorm": True}, r"expected qk_layernorm false"),
        ("phi", {"hidden_act": "relu"}, r"expected hidden_act a tanh-approximated GELU"),
    ],
)
def test_unsupported_hf_configs_are_config_errors(
    saved: dict[str, tuple[Any, Path]], tmp_path: Path, family: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        import_hf(write_config(tmp_path, saved[family][1], **changes))


def test_missing_and_misshaped_tensors_are_all_listed(
    saved: dict[str, tuple[Any, Path]], tmp_path: Path
) -> None:
    directory = saved["phi"][1]
    tensors = load_file(str(directory / "model.safetensors"))
    del tensors["model.layers.1.mlp.fc1.bias"]
    tensors["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(32, 64)
    (tmp_path / "config.json").write_text((directory / "config.json").read_text())
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(
        CheckpointError,
        match=r"missing 1: layers\.1\.mlp\.fc1\.bias.*k_proj\.weight: expected shape \(64, 64\)",
    ):
        import_hf(tmp_path)


def test_export_refuses_scaling_without_an_hf_equivalent(tmp_path: Path) -> None:
    model = build_model("llama", "llama-tiny", rope_scaling={"type": "ntk", "factor": 2.0})
    with pytest.raises(ConfigError, match=r"rope scaling 'ntk' has no exact Hugging Face equivalent"):
        export_hf(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
