"""Checkpoints: round trip, tied weights, atomic replace, and every bad-input case."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from llm_core.errors import CheckpointError, ConfigError, PluginError
from llm_model import (
    GPTModel,
    load_pretrained,
    read_checkpoint_config,
    save_pretrained,
    tied_parameter_aliases,
    write_model_files,
)


def test_round_trip_restores_config_and_logits(model: GPTModel, tmp_path: Path) -> None:
    path = save_pretrained(model, tmp_path / "ckpt", tokenizer="gpt2")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((path / "config.json").read_text())
    assert config["architecture"] == "gpt2" and config["format_version"] == 1
    assert config["tokenizer"] == "gpt2" and config["emb_dim"] == 32 and config["dtype"] == "float32"
    loaded = load_pretrained(path)
    assert loaded.config == model.config and loaded.architecture == "gpt2" and not loaded.training
    idx = torch.randint(0, 97, (2, 9))
    assert torch.equal(loaded(idx), model(idx))
    assert loaded.checkpoint_config["tokenizer"] == "gpt2"


def test_tied_weights_are_stored_once_and_re_tied(
    make_model: Callable[..., GPTModel], tmp_path: Path
) -> None:
    model = make_model(tie_weights=True)
    save_pretrained(model, tmp_path / "tied")
    stored = load_file(str(tmp_path / "tied" / "model.safetensors"))
    assert "tok_emb.weight" in stored and "out_head.weight" not in stored
    loaded = load_pretrained(tmp_path / "tied")
    assert loaded.out_head.weight is loaded.tok_emb.weight
    idx = torch.randint(0, 97, (1, 5))
    assert torch.equal(loaded(idx), model(idx))


def test_bfloat16_models_keep_their_dtype(make_model: Callable[..., GPTModel], tmp_path: Path) -> None:
    model = make_model().to(torch.bfloat16)
    save_pretrained(model, tmp_path / "bf16")
    loaded = load_pretrained(tmp_path / "bf16")
    assert loaded.tok_emb.weight.dtype == torch.bfloat16
    assert torch.equal(loaded.tok_emb.weight, model.tok_emb.weight)


def test_save_replaces_an_existing_checkpoint(make_model: Callable[..., GPTModel], tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    save_pretrained(make_model(seed=1), target)
    second = make_model(seed=2)
    save_pretrained(second, target)
    assert torch.equal(load_pretrained(target).tok_emb.weight, second.tok_emb.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp or backup directory left


def test_a_failed_save_leaves_the_old_checkpoint(
    make_model: Callable[..., GPTModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ckpt"
    first = make_model(seed=1)
    save_pretrained(first, target)

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("llm_model.safetensors_io.write_safetensors", crash)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(make_model(seed=2), target)
    assert torch.equal(load_pretrained(target).tok_emb.weight, first.tok_emb.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_refuses_to_replace_a_directory_that_is_not_a_checkpoint(model: GPTModel, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="refusing to replace a non-empty directory"):
        save_pretrained(model, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_write_model_files_into_an_existing_directory(model: GPTModel, tmp_path: Path) -> None:
    write_model_files(model, tmp_path, extra_config={"tokenizer": "char", "metadata": {"trained_steps": 10}})
    data = read_checkpoint_config(tmp_path)
    assert data["metadata"] == {"trained_steps": 10} and data["tokenizer"] == "char"
    assert load_pretrained(tmp_path).config == model.config
    with pytest.raises(ConfigError, match="extra_config: key\\(s\\) emb_dim would overwrite"):
        write_model_files(model, tmp_path, extra_config={"emb_dim": 3})
    with pytest.raises(CheckpointError, match="expected an existing directory"):
        write_model_files(model, tmp_path / "missing")


def test_write_model_files_from_a_given_state_dict_drops_tied_names(
    make_model: Callable[..., GPTModel], tmp_path: Path
) -> None:
    tied = make_model(tie_weights=True)
    assert tied_parameter_aliases(tied) == {"out_head.weight": "tok_emb.weight"}
    full = {name: tensor.clone() + 1 for name, tensor in tied.state_dict().items()}  # e.g. gathered shards
    write_model_files(tied, tmp_path, state_dict=full)
    stored = load_file(str(tmp_path / "model.safetensors"))
    assert "out_head.weight" not in stored and stored.keys() == full.keys() - {"out_head.weight"}
    assert all(torch.equal(stored[name], full[name]) for name in stored)
    loaded = load_pretrained(tmp_path)
    assert loaded.out_head.weight is loaded.tok_emb.weight


def test_every_mismatched_tensor_is_reported_at_once(model: GPTModel, tmp_path: Path) -> None:
    save_pretrained(model, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    tensors = load_file(str(weights))
    del tensors["trf_blocks.0.norm1.scale"], tensors["final_norm.shift"]
    tensors["pos_emb.weight"] = torch.zeros(16, 32)
    tensors["out_head.weight"] = tensors["out_head.weight"].double()
    tensors["extra.weight"] = torch.zeros(2)
    save_file(tensors, str(weights))
    with pytest.raises(CheckpointError) as info:
        load_pretrained(tmp_path / "ckpt", verify=False)  # past the checksum, to the tensor check
    message = str(info.value)
    assert "5 problem(s)" in message
    assert "missing 2: trf_blocks.0.norm1.scale, final_norm.shift" in message
    assert "unexpected 1: extra.weight" in message
    assert "pos_emb.weight: expected shape (32, 32), found (16, 32)" in message
    assert "out_head.weight: expected dtype torch.float32, found torch.float64" in message


@pytest.mark.parametrize("content", [b"PK\x03\x04 a zip, not safetensors", b""])
def test_a_non_safetensors_file_names_the_file(model: GPTModel, tmp_path: Path, content: bytes) -> None:
    save_pretrained(model, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: expected a safetensors file"):
        load_pretrained(tmp_path / "ckpt", verify=False)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: checksum mismatch"):
        load_pretrained(tmp_path / "ckpt")


def test_a_truncated_file_names_the_file(model: GPTModel, tmp_path: Path) -> None:
    save_pretrained(model, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: expected a safetensors file"):
        load_pretrained(tmp_path / "ckpt", verify=False)


def _edit_config(directory: Path, **changes: object) -> None:
    path = directory / "config.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_a_newer_format_version_says_to_upgrade(model: GPTModel, tmp_path: Path) -> None:
    save_pretrained(model, tmp_path / "ckpt")
    _edit_config(tmp_path / "ckpt", format_version=2)
    with pytest.raises(CheckpointError, match=r"format_version 2 is newer .* upgrade llm-model"):
        load_pretrained(tmp_path / "ckpt")


def test_an_unknown_architecture_lists_the_registered_ones(model: GPTModel, tmp_path: Path) -> None:
    save_pretrained(model, tmp_path / "ckpt")
    _edit_config(tmp_path / "ckpt", architecture="mamba")
    with pytest.raises(PluginError, match=r"config.json: unknown architecture 'mamba'; available: .*gpt2"):
        load_pretrained(tmp_path / "ckpt")


def test_a_bad_hyperparameter_is_a_config_error(model: GPTModel, tmp_path: Path) -> None:
    save_pretrained(model, tmp_path / "ckpt")
    _edit_config(tmp_path / "ckpt", n_heads=5)
    with pytest.raises(ConfigError, match=r"config.json: n_heads=5 does not divide emb_dim=32"):
        load_pretrained(tmp_path / "ckpt", verify=False)
    with pytest.raises(CheckpointError, match=r"config.json: checksum mismatch: its contents changed"):
        load_pretrained(tmp_path / "ckpt")


def test_missing_files_and_bad_json(model: GPTModel, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="expected a checkpoint directory"):
        load_pretrained(tmp_path / "nope")
    with pytest.raises(
        CheckpointError, match=r"config.json: expected a checkpoint config, found no such file"
    ):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config.json: expected a JSON object"):
        load_pretrained(tmp_path)
    save_pretrained(model, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors: expected the file whose sha256"):
        load_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="expected the model weights, found no such file"):
        load_pretrained(tmp_path / "ckpt", verify=False)


def test_loading_never_unpickles(model: GPTModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_pretrained(model, tmp_path / "ckpt")

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", forbidden)
    load_pretrained(tmp_path / "ckpt")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_save_records_the_sha256_of_the_config_and_the_weights(model: GPTModel, tmp_path: Path) -> None:
    directory = save_pretrained(model, tmp_path / "ckpt", tokenizer="gpt2")
    recorded = json.loads((directory / "config.json").read_text())["sha256"]
    assert set(recorded) == {"config.json", "model.safetensors"}
    assert recorded["model.safetensors"] == _sha256(directory / "model.safetensors")


def test_a_flipped_bit_in_the_tensor_data_is_a_checksum_error(
    model: GPTModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_model import checksum_verification

    directory = save_pretrained(model, tmp_path / "ckpt")
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's data: still a valid safetensors file
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"ckpt/model\.safetensors: checksum mismatch .*--no-verify"):
        load_pretrained(directory)
    assert load_pretrained(directory, verify=False).config == model.config  # the escape for huge files
    with checksum_verification(False):
        load_pretrained(directory)
    monkeypatch.setenv("SCRATCHLM_NO_VERIFY", "1")
    load_pretrained(directory)


def test_a_checkpoint_without_checksums_still_loads(model: GPTModel, tmp_path: Path) -> None:
    directory = save_pretrained(model, tmp_path / "ckpt")
    path = directory / "config.json"
    data = json.loads(path.read_text())
    del data["sha256"]  # as saved before checksums existed
    path.write_text(json.dumps(data))
    assert torch.equal(load_pretrained(directory).tok_emb.weight, model.tok_emb.weight)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop_rbte": 0.0}, "unknown key 'drop_rbte' (did you mean 'drop_rate'?)"),
        ({"dtype": None}, "missing key 'dtype'"),
        ({"trained_steps": 3}, "unknown key 'trained_steps'"),
    ],
)
def test_unknown_misspelled_or_missing_config_keys_are_named(
    model: GPTModel, tmp_path: Path, change: dict, message: str
) -> None:
    directory = save_pretrained(model, tmp_path / "ckpt")
    path = directory / "config.json"
    data = json.loads(path.read_text())
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path.write_text(json.dumps(data))
    for verify in (True, False):
        with pytest.raises(CheckpointError) as info:
            load_pretrained(directory, verify=verify)
        assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_unknown_extra_config_keys_are_refused_on_save(model: GPTModel, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"extra_config: unknown key\(s\) trained_steps; expected tok"):
        save_pretrained(model, tmp_path / "ckpt", extra_config={"trained_steps": 3})
    assert not (tmp_path / "ckpt").exists()
