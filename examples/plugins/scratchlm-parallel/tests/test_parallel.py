"""The parallel block: what it computes, and that llm_model's tools work with it unchanged."""

from __future__ import annotations

import torch
from scratchlm_parallel import ParallelBlock, ParallelGPT

from llm_model import build_model, count_parameters, generate, init_weights, load_pretrained, save_pretrained

TINY = dict(vocab_size=50, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def test_the_block_adds_both_branches_of_one_norm_to_the_residual() -> None:
    torch.manual_seed(0)
    model = build_model("gpt2-parallel", **TINY).eval()
    block = model.trf_blocks[0]
    assert isinstance(model, ParallelGPT) and isinstance(block, ParallelBlock)
    x = torch.randn(2, 5, 32)
    h = block.norm(x)
    with torch.no_grad():
        assert torch.allclose(block(x), x + block.att(h) + block.ff(h), atol=1e-6)


def test_one_norm_per_block_fewer_parameters_than_gpt2() -> None:
    parallel, sequential = build_model("gpt2-parallel", **TINY), build_model("gpt2", **TINY)
    assert count_parameters(sequential) - count_parameters(parallel) == TINY["n_layers"] * 2 * 32


def test_gpt2_initialisation_reaches_the_new_blocks() -> None:
    torch.manual_seed(1)
    model = build_model("gpt2-parallel", **{**TINY, "emb_dim": 256, "n_layers": 8})
    out_proj, query = model.trf_blocks[0].att.out_proj.weight, model.trf_blocks[0].att.W_query.weight
    assert abs(float(out_proj.std()) - 0.02 / 4) < 5e-4 and abs(float(query.std()) - 0.02) < 1e-3
    torch.manual_seed(2)
    again = init_weights(build_model("gpt2-parallel", **TINY, init="pytorch"), "gpt2")
    torch.manual_seed(2)
    built = build_model("gpt2-parallel", **TINY)
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), built.parameters(), strict=True))


def test_generate_and_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model("gpt2-parallel", **TINY).eval()
    prompt = torch.tensor([[1, 2, 3]])
    out = generate(model, prompt, max_new_tokens=5)
    save_pretrained(model, tmp_path / "ckpt")
    loaded = load_pretrained(tmp_path / "ckpt")
    assert type(loaded) is ParallelGPT and loaded.config == model.config
    assert torch.equal(generate(loaded, prompt, max_new_tokens=5), out)
