"""The ReLU² + QK-norm GPT: what changed, and that llm_model's tools work with it."""

from __future__ import annotations

import torch
from scratchlm_relu2 import HeadNormLinear, ReLU2Block

from llm_model import build_model, generate, load_pretrained, save_pretrained

TINY = dict(vocab_size=50, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def test_blocks_use_relu_squared_and_normalised_queries_and_keys() -> None:
    torch.manual_seed(0)
    model = build_model("gpt2-relu2", **TINY)
    block = model.trf_blocks[0]
    assert isinstance(block, ReLU2Block) and isinstance(block.att.W_query, HeadNormLinear)
    x = torch.tensor([[-2.0, -0.5, 0.0, 1.5]])
    assert torch.equal(block.ff.layers[1](x), torch.tensor([[0.0, 0.0, 0.0, 2.25]]))
    q = block.att.W_query(torch.randn(1, 3, 32) * 100)  # (1, 3, 32): 4 heads of 8
    rms = q.view(1, 3, 4, 8).pow(2).mean(-1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-3)  # per-head unit RMS whatever the scale


def test_generate_and_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model("gpt2-relu2", **TINY).eval()
    prompt = torch.tensor([[1, 2, 3]])
    out = generate(model, prompt, max_new_tokens=5)
    save_pretrained(model, tmp_path / "ckpt")
    loaded = load_pretrained(tmp_path / "ckpt")
    assert type(loaded) is type(model) and loaded.config == model.config
    assert torch.equal(generate(loaded, prompt, max_new_tokens=5), out)
