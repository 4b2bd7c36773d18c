"""LoRA: zero-initialised B changes nothing, merging changes nothing, counts, patterns, adapter files."""

from __future__ import annotations

import copy

import pytest
import torch

from llm_core.errors import ConfigError
from llm_finetune.adapters import load_lora_adapters, save_lora_adapters
from llm_finetune.lora import (
    LinearWithLoRA,
    LoRAConfig,
    apply_lora,
    lora_layers,
    merge_lora,
    remove_lora,
    unmerge_lora,
)
from llm_model import build_model


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(1)
    return build_model("gpt2", "tiny", vocab_size=97, context_length=16).eval()


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(2))


def _randomise_b(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora.B.normal_(0, 0.05)


def test_zero_b_gives_the_base_outputs(model, ids) -> None:
    base = copy.deepcopy(model)
    apply_lora(model, LoRAConfig(rank=4, alpha=8))
    torch.testing.assert_close(model(ids), base(ids), rtol=0, atol=0)


def test_merged_equals_unmerged_and_unmerge_restores(model, ids) -> None:
    apply_lora(model, LoRAConfig(rank=4, alpha=8))
    _randomise_b(model)
    weight_before = model.trf_blocks[0].att.W_query.linear.weight.clone()
    unmerged = model(ids)
    merge_lora(model)
    assert not torch.equal(model.trf_blocks[0].att.W_query.linear.weight, weight_before)
    torch.testing.assert_close(model(ids), unmerged, rtol=1e-5, atol=1e-5)
    unmerge_lora(model)
    torch.testing.assert_close(model.trf_blocks[0].att.W_query.linear.weight, weight_before)
    torch.testing.assert_close(model(ids), unmerged, rtol=1e-5, atol=1e-5)


def test_adapters_change_the_outputs(model, ids) -> None:
    base = copy.deepcopy(model)
    apply_lora(model, LoRAConfig(rank=4, alpha=8))
    _randomise_b(model)
    assert not torch.allclose(model(ids), base(ids))


@pytest.mark.parametrize("rank", [1, 4])
def test_trainable_parameters_are_rank_times_in_plus_out(model, rank) -> None:
    names = apply_lora(model, LoRAConfig(rank=rank))
    expected = 0
    for name in names:
        linear = model.get_submodule(name).linear
        expected += rank * (linear.in_features + linear.out_features)
    assert len(names) == 12  # 6 linear layers in each of the 2 blocks
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected
    assert all(isinstance(model.get_submodule(n), LinearWithLoRA) for n in names)


def test_regex_and_glob_patterns_choose_layers(model) -> None:
    names = apply_lora(model, LoRAConfig(targets=["re:.*W_(query|value)", "trf_blocks.1.ff.layers.0"]))
    assert names == [
        "trf_blocks.0.att.W_query",
        "trf_blocks.0.att.W_value",
        "trf_blocks.1.att.W_query",
        "trf_blocks.1.att.W_value",
        "trf_blocks.1.ff.layers.0",
    ]


def test_a_pattern_matching_no_layer_lists_the_layer_names(model) -> None:
    with pytest.raises(ConfigError, match=r"match no linear layer.*trf_blocks\.0\.att\.W_query.*out_head"):
        apply_lora(model, LoRAConfig(targets=["*.attention.q_proj"]))


@pytest.mark.parametrize(
    ("options", "message"),
    [({"rank": 0}, "rank"), ({"alpha": -1}, "alpha"), ({"targets": ["re:("]}, "regular expression")],
)
def test_bad_lora_settings_are_config_errors(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        LoRAConfig(**options)


def test_adapters_save_alone_and_load_onto_a_base(model, ids, tmp_path) -> None:
    base = copy.deepcopy(model)
    config = LoRAConfig(rank=2, alpha=4, targets=["*.ff.*"])
    apply_lora(model, config)
    _randomise_b(model)
    path = save_lora_adapters(model, tmp_path / "adapters.safetensors", config)
    from safetensors.torch import load_file

    assert set(load_file(str(path))) == {
        f"trf_blocks.{b}.ff.layers.{i}.lora.{m}" for b in (0, 1) for i in (0, 2) for m in "AB"
    }
    load_lora_adapters(base, path)
    torch.testing.assert_close(base(ids), model(ids))


def test_remove_lora_gives_a_plain_model_with_the_same_outputs(model, ids) -> None:
    apply_lora(model, LoRAConfig(rank=2))
    _randomise_b(model)
    expected = model(ids)
    remove_lora(model)
    assert not lora_layers(model)
    assert isinstance(model.trf_blocks[0].att.W_query, torch.nn.Linear)
    torch.testing.assert_close(model(ids), expected, rtol=1e-5, atol=1e-5)


def _rewrite_metadata(path, edit) -> None:
    """Rewrite an adapter file's LoRA metadata with ``edit(meta)`` (the tensors unchanged)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    meta = json.loads(metadata["scratchlm_lora"])
    edit(meta)
    metadata["scratchlm_lora"] = json.dumps(meta)
    save_file(tensors, str(path), metadata=metadata)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda m: m.update(modules_to_sav=m.pop("modules_to_save")),
            "unknown key 'modules_to_sav' (did you",
        ),
        (lambda m: m.pop("lora"), "missing key 'lora'"),
        (lambda m: m["lora"].update(rnak=m["lora"].pop("rank")), "lora: unknown key 'rnak'"),
        (lambda m: m["lora"].update(rank=0), "lora: lora rank=0: expected an integer >= 1"),
        (lambda m: m.update(modules_to_save="out_head"), "expected 'modules_to_save' to be a list"),
    ],
)
def test_adapter_metadata_with_a_bad_key_is_a_checkpoint_error_naming_it(
    model, tmp_path, edit, message
) -> None:
    from llm_core.errors import CheckpointError

    config = LoRAConfig(rank=2, alpha=4)
    apply_lora(model, config)
    path = save_lora_adapters(model, tmp_path / "adapters.safetensors", config, extra={"template": "alpaca"})
    _rewrite_metadata(path, edit)
    with pytest.raises(CheckpointError) as info:
        load_lora_adapters(build_model("gpt2", "tiny", vocab_size=97, context_length=16), path)
    assert str(info.value).startswith(f"{path}: metadata 'scratchlm_lora'") and message in str(info.value)


def test_unknown_extra_adapter_metadata_is_refused_on_save(model, tmp_path) -> None:
    config = LoRAConfig(rank=2)
    apply_lora(model, config)
    with pytest.raises(ConfigError, match="extra: unknown key\\(s\\) epochs"):
        save_lora_adapters(model, tmp_path / "a.safetensors", config, extra={"epochs": 3})
    assert not (tmp_path / "a.safetensors").exists()


@pytest.mark.parametrize(
    ("finetune", "message"),
    [
        ({"task": "instruct", "templte": "alpaca"}, "unknown key 'templte' (did you mean 'template'?)"),
        ({"template": "alpaca"}, "missing key 'task'"),
        (
            {"task": "instruct", "lora": {"rank": 2, "alpha": 4, "dropout": 0.0}},
            "lora: missing key 'targets'",
        ),
        ({"task": "classification", "num_classes": "2"}, "expected 'num_classes' to be an integer >= 1"),
    ],
)
def test_a_bad_finetune_entry_in_config_json_is_a_checkpoint_error(
    model, tmp_path, finetune, message
) -> None:
    from llm_core.errors import CheckpointError
    from llm_finetune.checkpoints import load_finetuned
    from llm_model import save_pretrained

    directory = save_pretrained(model, tmp_path / "ckpt", extra_config={"finetune": finetune})
    with pytest.raises(CheckpointError) as info:
        load_finetuned(directory)
    assert str(info.value).startswith(f"{directory / 'config.json'}: finetune") and message in str(info.value)
