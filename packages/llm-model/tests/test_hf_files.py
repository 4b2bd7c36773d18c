"""Weights as published: sharded bf16 safetensors, pytorch_model.bin, mapped loading, the memory check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from llm_core.errors import CheckpointError, ConfigError
from llm_model import GPTConfig, GPTModel, import_hf, load_pretrained, loading, save_pretrained
from llm_model.safetensors_io import mmap_tensors, read_header, write_safetensors

transformers = pytest.importorskip("transformers")

LLAMA = {
    "vocab_size": 128,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
}


def llama(dtype: torch.dtype = torch.bfloat16) -> Any:
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA)).eval()
    return model.to(dtype)


def save_sharded(model: Any, directory: Path, **options: Any) -> Path:
    model.save_pretrained(directory, max_shard_size="20KB", **options)
    return directory


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    model = llama()
    return model, save_sharded(model, tmp_path_factory.mktemp("hf") / "llama-bf16")


def storages(model: torch.nn.Module) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in model.parameters()}


def test_sharded_bf16_imports_in_bf16_without_copies(sharded: tuple[Any, Path]) -> None:
    hf, directory = sharded
    shards = sorted(directory.glob("model-*.safetensors"))
    assert len(shards) >= 2 and (directory / "model.safetensors.index.json").is_file()
    ours = import_hf(directory)
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16}  # kept, not upcast
    theirs = dict(hf.named_parameters())
    assert torch.equal(ours.tok_emb.weight, theirs["model.embed_tokens.weight"])
    assert torch.equal(ours.trf_blocks[1].ff.down.weight, theirs["model.layers.1.mlp.down_proj.weight"])
    # every parameter is a view of one of the mapped shard files: nothing was copied
    assert len(storages(ours)) <= len(shards)


def test_sharded_import_with_dtype_fp32_matches_transformers_logits(sharded: tuple[Any, Path]) -> None:
    hf, directory = sharded
    ours = import_hf(directory, dtype=torch.float32)
    assert {p.dtype for p in ours.parameters()} == {torch.float32}
    reference = llama(torch.float32)
    reference.load_state_dict({k: v.float() for k, v in hf.state_dict().items()})
    idx = torch.randint(0, 128, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), reference(idx).logits, atol=1e-5, rtol=0)


def test_pytorch_model_bin_is_read_only_without_safetensors(tmp_path: Path) -> None:
    hf = llama(torch.float32)
    directory = tmp_path / "bin"
    hf.config.save_pretrained(
        directory
    )  # transformers 5 writes safetensors only: the .bin as older releases did
    torch.save(hf.state_dict(), directory / "pytorch_model.bin")
    assert (directory / "pytorch_model.bin").is_file() and not list(directory.glob("*.safetensors"))
    ours = import_hf(directory)
    idx = torch.randint(0, 128, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf(idx).logits, atol=1e-5, rtol=0)
    # with safetensors beside it, the pickle is never opened
    hf.save_pretrained(tmp_path / "st")
    (tmp_path / "st" / "pytorch_model.bin").write_bytes(b"not a pickle at all")
    import_hf(tmp_path / "st")


def test_every_shape_and_dtype_mismatch_is_listed_in_one_error(tmp_path: Path) -> None:
    hf = llama()
    directory = save_sharded(hf, tmp_path / "bad")
    index = json.loads((directory / "model.safetensors.index.json").read_text())["weight_map"]
    edits = {
        "model.norm.weight": lambda t: t.float(),  # an fp32 tensor among bf16 ones
        "model.layers.1.mlp.up_proj.weight": lambda t: t[:5],  # a wrong shape
    }
    for name, edit in edits.items():
        shard = directory / index[name]
        tensors = {k: v.clone() for k, v in mmap_tensors(shard).items()}
        tensors[name] = edit(tensors[name])
        write_safetensors(shard, tensors)
    with pytest.raises(CheckpointError) as info:
        import_hf(directory)
    message = str(info.value)
    assert "\n" not in message and "model.safetensors.index.json" in message and "2 problem(s)" in message
    assert "norm.weight: expected dtype torch.bfloat16, found torch.float32" in message
    assert "up_proj.weight: expected shape (64, 32), found (5, 32)" in message


def test_safetensors_writer_and_reader_agree_with_the_library(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = {
        "a": torch.randn(3, 5).bfloat16(),
        "b": torch.arange(7),
        "t": torch.randn(4, 2).T,  # not contiguous
        "empty": torch.zeros(0, 4),
    }
    write_safetensors(tmp_path / "ours.safetensors", tensors, {"format": "pt"})
    for name, tensor in load_file(tmp_path / "ours.safetensors").items():
        assert torch.equal(tensor, tensors[name])
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp_path / "theirs.safetensors")
    for name, tensor in mmap_tensors(tmp_path / "theirs.safetensors").items():
        assert torch.equal(tensor, tensors[name]) and tensor.dtype == tensors[name].dtype
    assert read_header(tmp_path / "theirs.safetensors")["a"].shape == (3, 5)


@pytest.mark.parametrize(("arch", "preset"), [("gpt2", "tiny"), ("llama", "llama-tiny"), ("phi", "phi-tiny")])
def test_parameter_bytes_is_exact_and_extrapolates_layers(arch: str, preset: str) -> None:
    from llm_model import build_model

    model = build_model(arch, preset, n_layers=5)
    real = sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )
    assert loading.parameter_bytes(type(model), model.config) == real
    assert loading.parameter_bytes(type(model), model.config, torch.bfloat16) < real


def test_load_pretrained_maps_weights_and_honours_dtype(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = GPTModel(
        GPTConfig(vocab_size=97, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0)
    )
    save_pretrained(model.to(torch.bfloat16), tmp_path / "ckpt")
    loaded = load_pretrained(tmp_path / "ckpt")
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert len(storages(loaded)) == 1  # views of the one mapped file
    assert {p.dtype for p in load_pretrained(tmp_path / "ckpt", dtype="fp32").parameters()} == {torch.float32}
    assert load_pretrained(tmp_path / "ckpt", dtype="auto").tok_emb.weight.dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="--dtype: expected one of auto, fp32, bf16"):
        load_pretrained(tmp_path / "ckpt", dtype="fp8")


def huge_checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = GPTModel(
        GPTConfig(vocab_size=97, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0)
    )
    directory = save_pretrained(model, tmp_path / "huge")
    config = json.loads((directory / "config.json").read_text())
    config.pop("sha256", None)  # edited by hand: an unverified config
    config |= {"n_layers": 100_000, "emb_dim": 100_000, "n_heads": 10}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_a_huge_config_is_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    import time

    directory = huge_checkpoint(tmp_path)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_pretrained(directory)
    assert time.perf_counter() - start < 120  # a guard against hanging, not a speed test
    message = str(info.value)
    assert "\n" not in message and "config.json: the model's parameters (float32) need" in message
    assert "PB, more than the" in message and "available (MemAvailable in /proc/meminfo)" in message
    assert "--force" in message


def test_force_skips_the_memory_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = GPTModel(
        GPTConfig(vocab_size=97, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0)
    )
    save_pretrained(model, tmp_path / "ckpt")
    monkeypatch.setattr(loading, "available_memory", lambda device="cpu": (1000, "a test limit"))
    with pytest.raises(
        ConfigError, match=r"need 1\d\d\.\d KB, more than the 1.0 KB available \(a test limit\)"
    ):
        load_pretrained(tmp_path / "ckpt")
    assert load_pretrained(tmp_path / "ckpt", force=True).config.n_layers == 2


def test_generate_refuses_a_huge_config_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llm_core.cli import main

    directory = huge_checkpoint(tmp_path)
    assert main(["generate", str(directory), "hi", "--tokenizer", "bpe"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "need" in err and "--force" in err and "Traceback" not in err
