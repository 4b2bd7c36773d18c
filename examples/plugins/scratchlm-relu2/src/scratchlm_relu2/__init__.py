"""scratchlm-relu2: a GPT variant with a ReLU² feed-forward and QK-norm, as a scratchlm plugin."""

from __future__ import annotations

from scratchlm_relu2.model import HeadNormLinear, ReLU2Block, ReLU2Config, ReLU2FeedForward, ReLU2GPT

__all__ = ["HeadNormLinear", "ReLU2Block", "ReLU2Config", "ReLU2FeedForward", "ReLU2GPT"]
