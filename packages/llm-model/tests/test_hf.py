"""Parity with Hugging Face transformers' GPT-2 (test-only dependency): import, export, generation."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from llm_core.errors import CheckpointError, ConfigError, MissingDependencyError
from llm_model import GPTModel, export_hf, generate, import_hf

transformers = pytest.importorskip("transformers")

SMALL_HF = {"vocab_size": 1000, "n_positions": 64, "n_embd": 64, "n_layer": 2, "n_head": 4}


def hf_model(**shape: Any) -> Any:
    torch.manual_seed(0)
    config = transformers.GPT2Config(**shape)
    return transformers.GPT2LMHeadModel(config).eval()


def save_hf(model: Any, directory: Path) -> Path:
    model.save_pretrained(directory, safe_serialization=True)
    return directory


@pytest.fixture(scope="module")
def small_hf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    model = hf_model(**SMALL_HF)
    return model, save_hf(model, tmp_path_factory.mktemp("hf") / "gpt2-small-random")


def hf_logits(model: Any, idx: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(idx).logits


def test_import_gives_the_same_logits(small_hf: tuple[Any, Path]) -> None:
    hf, directory = small_hf
    ours = import_hf(directory)
    assert ours.config.qkv_bias and ours.config.tie_weights and ours.config.context_length == 64
    assert ours.out_head.weight is ours.tok_emb.weight
    idx = torch.randint(0, 1000, (2, 64))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf_logits(hf, idx), atol=1e-5, rtol=0)


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_generation_matches_transformers(small_hf: tuple[Any, Path], use_cache: bool) -> None:
    hf, directory = small_hf
    ours = import_hf(directory)
    idx = torch.randint(0, 1000, (1, 8))
    expected = hf.generate(
        idx, attention_mask=torch.ones_like(idx), max_new_tokens=40, do_sample=False, pad_token_id=0
    )
    assert torch.equal(generate(ours, idx, 40, use_cache=use_cache), expected)


def test_export_loads_in_transformers_with_the_same_logits(tmp_path: Path) -> None:
    torch.manual_seed(3)
    ours = GPTModel(
        GPTModel.config_class(
            vocab_size=300, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0
        )
    ).eval()  # qkv_bias False, untied head: zero c_attn biases and a stored lm_head
    export_hf(ours, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert config["activation_function"] == "gelu_new" and config["layer_norm_epsilon"] == 1e-5
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    idx = torch.randint(0, 300, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(hf_logits(hf, idx), ours(idx), atol=1e-5, rtol=0)


def test_export_then_import_round_trips_a_tied_model(small_hf: tuple[Any, Path], tmp_path: Path) -> None:
    ours = import_hf(small_hf[1])
    export_hf(ours, tmp_path / "again")
    back = import_hf(tmp_path / "again")
    idx = torch.randint(0, 1000, (1, 20))
    with torch.no_grad():
        assert torch.equal(back(idx), ours(idx))


def test_prefixless_openai_files_with_mask_buffers_import(small_hf: tuple[Any, Path], tmp_path: Path) -> None:
    hf, directory = small_hf
    tensors = {
        k.removeprefix("transformer."): v for k, v in load_file(str(directory / "model.safetensors")).items()
    }
    tensors["h.0.attn.bias"] = torch.ones(1, 1, 64, 64)  # old-style buffers are ignored
    tensors["h.0.attn.masked_bias"] = torch.tensor(-1e4)
    tensors["lm_head.weight"] = tensors["wte.weight"].clone()
    (tmp_path / "config.json").write_text((directory / "config.json").read_text())
    save_file(tensors, str(tmp_path / "model.safetensors"))
    idx = torch.randint(0, 1000, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(import_hf(tmp_path)(idx), hf_logits(hf, idx), atol=1e-5, rtol=0)


def test_missing_and_misshaped_hf_tensors_are_all_listed(small_hf: tuple[Any, Path], tmp_path: Path) -> None:
    directory = small_hf[1]
    tensors = load_file(str(directory / "model.safetensors"))
    del tensors["transformer.h.1.mlp.c_fc.bias"]
    tensors["transformer.h.0.attn.c_attn.weight"] = torch.zeros(64, 64)
    (tmp_path / "config.json").write_text((directory / "config.json").read_text())
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"missing 1: h\.1\.mlp\.c_fc\.bias.*c_attn\.weight: expected shape"
    ):
        import_hf(tmp_path)


def test_unsupported_hf_configs_are_config_errors(small_hf: tuple[Any, Path], tmp_path: Path) -> None:
    config = json.loads((small_hf[1] / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
    with pytest.raises(ConfigError, match="expected a tanh-approximated GELU"):
        import_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ConfigError, match="model_type 'bert' is not supported; expected one of gpt2, llama"):
        import_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: expected a safetensors file"):
        import_hf(tmp_path)


def test_a_path_that_is_neither_a_directory_nor_a_repo_id(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"expected a local directory .* or a hub repo id"):
        import_hf(tmp_path / "missing" / "dir")


def test_hub_ids_need_the_hub_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'llm-model\[hub\]'"):
        import_hf("openai-community/gpt2")


def test_hub_ids_and_aliases_download_config_weights_and_tokenizer_only(
    small_hf: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, Any]] = []

    class FakeHub:
        @staticmethod
        def snapshot_download(repo_id: str, allow_patterns: Any = None) -> str:
            calls.append((repo_id, allow_patterns))
            return str(small_hf[1])

    monkeypatch.setitem(sys.modules, "huggingface_hub", FakeHub)
    import_hf("gpt2-medium")
    import_hf("openai-community/gpt2")
    assert [repo for repo, _ in calls] == ["openai-community/gpt2-medium", "openai-community/gpt2"]
    patterns = calls[0][1]
    assert {"config.json", "model.safetensors", "model.safetensors.index.json", "tokenizer.json"} <= set(
        patterns
    )
    assert not any(p.endswith((".bin", ".pt", ".pth", "*")) for p in patterns)  # no pickles, no whole repo


@pytest.mark.parametrize("preset", ["tiny", "small", "medium"])
def test_preset_shapes_match_transformers(preset: str, tmp_path: Path) -> None:
    from llm_model import get_preset

    config = get_preset(preset, vocab_size=512)
    hf = hf_model(
        vocab_size=512,
        n_positions=config.context_length,
        n_embd=config.emb_dim,
        n_layer=config.n_layers,
        n_head=config.n_heads,
    )
    ours = import_hf(save_hf(hf, tmp_path / preset))
    idx = torch.randint(0, 512, (1, config.context_length))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf_logits(hf, idx), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_full_gpt2_124m_shape_parity(tmp_path: Path) -> None:
    """The real GPT-2 124M shape (random weights: no hub access), logits and 20 greedy tokens."""
    start = time.perf_counter()
    hf = hf_model()  # GPT2Config() defaults: the 124M shape
    ours = import_hf(save_hf(hf, tmp_path / "gpt2"))
    assert sum(p.numel() for p in ours.parameters()) == 124_439_808  # 124M with qkv biases
    idx = torch.randint(0, 50257, (1, 64))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf_logits(hf, idx), atol=1e-4, rtol=0)
    expected = hf.generate(
        idx[:, :8], attention_mask=torch.ones(1, 8), max_new_tokens=20, do_sample=False, pad_token_id=0
    )
    assert torch.equal(generate(ours, idx[:, :8], 20), expected)
    print(f"gpt2-124m parity: {time.perf_counter() - start:.1f}s")
