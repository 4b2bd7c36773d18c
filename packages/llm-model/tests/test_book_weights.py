"""import-book: a state dict saved from the book's own chapter-4 GPTModel, against a copy of that code."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from llm_core.cli import main
from llm_core.errors import CheckpointError
from llm_model import generate, load_pretrained
from llm_model.book_weights import import_book

# --- the book's chapter-4 model, as printed (names and arithmetic kept) ----------------------------


class MultiHeadAttention(nn.Module):
    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool
    ):
        super().__init__()
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, _ = x.shape
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        attn_scores = queries @ keys.transpose(2, 3)
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = self.dropout(torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1))
        context_vec = (attn_weights @ values).transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


class LayerNorm(nn.Module):
    def __init__(self, emb_dim: int):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class GELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


class FeedForward(nn.Module):
    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        e = cfg["emb_dim"]
        self.layers = nn.Sequential(nn.Linear(e, 4 * e), GELU(), nn.Linear(4 * e, e))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransformerBlock(nn.Module):
    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.att = MultiHeadAttention(
            cfg["emb_dim"],
            cfg["emb_dim"],
            cfg["context_length"],
            cfg["drop_rate"],
            cfg["n_heads"],
            cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))


class BookGPTModel(nn.Module):
    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        _, seq_len = in_idx.shape
        x = self.tok_emb(in_idx) + self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = self.final_norm(self.trf_blocks(self.drop_emb(x)))
        return self.out_head(x)


def generate_text_simple(
    model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int
) -> torch.Tensor:
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(idx[:, -context_size:])[:, -1, :]
        idx = torch.cat((idx, torch.argmax(logits, dim=-1, keepdim=True)), dim=1)
    return idx


# --- tests -------------------------------------------------------------------------------------------

#: The ``tiny`` preset as the book's config dict (chapter 5 uses context_length 256 the same way).
TINY = {
    "vocab_size": 50257,
    "context_length": 64,
    "emb_dim": 64,
    "n_layers": 2,
    "n_heads": 4,
    "drop_rate": 0.1,
}


@pytest.fixture(params=[False, True], ids=["no-qkv-bias", "qkv-bias"])
def book(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[nn.Module, Path, bool]:
    torch.manual_seed(0)
    qkv_bias = request.param
    model = BookGPTModel({**TINY, "qkv_bias": qkv_bias}).eval()
    with torch.no_grad():  # the book's layers start with zero biases and unit scales: make every tensor count
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / "model.pth"
    torch.save(model.state_dict(), path)
    return model, path, qkv_bias


def test_import_book_gives_the_books_logits_and_greedy_tokens(
    book: tuple[nn.Module, Path, bool], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference, path, qkv_bias = book
    argv = ["import-book", str(path), "--out", str(tmp_path / "ckpt"), "--preset", "tiny"] + (
        ["--qkv-bias"] if qkv_bias else []
    )
    assert main(argv) == 0, capsys.readouterr().err
    ours = load_pretrained(tmp_path / "ckpt")
    assert ours.checkpoint_config["tokenizer"] == "gpt2" and ours.config.qkv_bias is qkv_bias
    idx = torch.randint(0, 50257, (2, 64))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), reference(idx), atol=1e-5, rtol=0)
    prompt = torch.randint(0, 50257, (1, 6))
    expected = generate_text_simple(reference, prompt, 20, context_size=64)
    assert torch.equal(generate(ours, prompt, 20), expected)


def test_chapter_5_model_and_optimizer_file_is_read(
    book: tuple[nn.Module, Path, bool], tmp_path: Path
) -> None:
    reference, _, qkv_bias = book
    torch.save(
        {"model_state_dict": reference.state_dict(), "optimizer_state_dict": {}}, tmp_path / "both.pth"
    )
    ours = import_book(tmp_path / "both.pth", preset="tiny", qkv_bias=qkv_bias)
    assert torch.equal(ours.trf_blocks[1].ff.layers[2].weight, reference.trf_blocks[1].ff.layers[2].weight)


def test_a_wrong_preset_or_missing_flag_names_what_differs(
    book: tuple[nn.Module, Path, bool], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path, qkv_bias = book
    flag = [] if qkv_bias else ["--qkv-bias"]  # the wrong one
    assert main(["import-book", str(path), "--out", str(tmp_path / "out"), "--preset", "tiny", *flag]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "att.W_query.bias" in err
    assert not (tmp_path / "out").exists()
    assert main(["import-book", str(path), "--out", str(tmp_path / "out"), "--preset", "small"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tok_emb.weight: expected shape (50257, 128), found (50257, 64)" in err


def test_a_missing_key_or_a_pickle_is_one_error(book: tuple[nn.Module, Path, bool], tmp_path: Path) -> None:
    reference, _, qkv_bias = book
    state = reference.state_dict()
    del state["trf_blocks.1.norm2.shift"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing 1: trf_blocks\.1\.norm2\.shift"):
        import_book(tmp_path / "missing.pth", preset="tiny", qkv_bias=qkv_bias)
    torch.save({"model": reference}, tmp_path / "pickled.pth")  # a whole module: refused by weights_only
    with pytest.raises(CheckpointError, match="weights_only=True"):
        import_book(tmp_path / "pickled.pth", preset="tiny", qkv_bias=qkv_bias)
