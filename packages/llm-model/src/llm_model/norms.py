"""Normalisation layers beyond the book's LayerNorm: RMSNorm, as in Llama and Mistral.

(``LayerNorm``, used by GPT-2 and Phi, is in :mod:`llm_model.blocks`.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RMSNorm"]


class RMSNorm(nn.Module):
    """Root-mean-square normalisation (Zhang & Sennrich 2019) with a learned ``scale``, no shift.

    ``x / sqrt(mean(x**2) + eps) * scale`` over the last dimension. The
    statistics are computed in float32 and the result is cast back to the
    input's dtype before scaling, as Hugging Face's ``LlamaRMSNorm`` does.
    """

    def __init__(self, emb_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm_x = F.rms_norm(x.to(torch.float32), self.scale.shape, eps=self.eps)  # one fused pass
        return self.scale * norm_x.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.scale.shape[0]}, eps={self.eps}"
