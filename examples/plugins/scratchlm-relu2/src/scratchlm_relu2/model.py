"""GPT-2 with two modern changes, built from llm_model's and llm_attention's pieces.

* ReLU² feed-forward (So et al., 2021, "Primer"): ``relu(x) ** 2`` instead of GELU.
* QK-norm (Dehghani et al., 2023): queries and keys are RMS-normalised per head
  before the dot product, which keeps attention logits bounded.

Everything else (embeddings, pre-LayerNorm blocks, KV cache, generation,
checkpoints) is llm_model's :class:`~llm_model.GPTModel`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from llm_model import GPTConfig, GPTModel, TransformerBlock

__all__ = ["HeadNormLinear", "ReLU2Block", "ReLU2Config", "ReLU2FeedForward", "ReLU2GPT"]


@dataclass(frozen=True)
class ReLU2Config(GPTConfig):
    """:class:`~llm_model.GPTConfig` plus ``qk_norm_eps``, the epsilon of the query/key RMS norms."""

    qk_norm_eps: float = 1e-6


class ReLU2(nn.Module):
    """``relu(x) ** 2``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x).square()


class ReLU2FeedForward(nn.Module):
    """``emb_dim -> 4 * emb_dim -> ReLU² -> emb_dim`` (same submodule names as llm_model's FeedForward)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(config.emb_dim, 4 * config.emb_dim),
            ReLU2(),
            nn.Linear(4 * config.emb_dim, config.emb_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (b, t, emb_dim)


class HeadNormLinear(nn.Module):
    """A query or key projection followed by an RMS norm over each head's features."""

    def __init__(self, projection: nn.Linear, head_dim: int, eps: float) -> None:
        super().__init__()
        self.projection = projection
        self.head_dim = head_dim
        self.norm = nn.RMSNorm(head_dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        y = self.projection(x).view(b, t, -1, self.head_dim)  # (b, t, heads, head_dim)
        return self.norm(y).view(b, t, -1)  # (b, t, heads * head_dim)


class ReLU2Block(TransformerBlock):
    """llm_model's pre-LayerNorm block with a ReLU² MLP and QK-norm in its attention."""

    def __init__(self, config: ReLU2Config) -> None:
        super().__init__(config)
        self.ff = ReLU2FeedForward(config)
        att = self.att
        att.W_query = HeadNormLinear(att.W_query, att.head_dim, config.qk_norm_eps)
        att.W_key = HeadNormLinear(att.W_key, att.head_dim, config.qk_norm_eps)


class ReLU2GPT(GPTModel):
    """GPT-2 with :class:`ReLU2Block` blocks; registered as ``gpt2-relu2``.

    ``block_class`` is all it changes: GPTModel builds the blocks and initialises
    them (``llm_model.init_weights``, GPT-2's scheme by default) with the rest.
    """

    config_class = ReLU2Config
    architecture = "gpt2-relu2"
    block_class = ReLU2Block
