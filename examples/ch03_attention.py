"""Chapter 3: attention from simplified self-attention to multi-head attention with a KV cache.

python examples/ch03_attention.py
"""

from __future__ import annotations

import torch

from llm_attention import KVCache, MultiHeadAttention, simplified_self_attention

inputs = torch.tensor(
    [
        [0.43, 0.15, 0.89],
        [0.55, 0.87, 0.66],
        [0.57, 0.85, 0.64],
        [0.22, 0.58, 0.33],
        [0.77, 0.25, 0.10],
        [0.05, 0.80, 0.55],
    ]
)  # "Your journey starts with one step", 3-d embeddings
print("context vector of 'journey':", simplified_self_attention(inputs)[1])  # [0.4419, 0.6515, 0.5683]

torch.manual_seed(123)
mha = MultiHeadAttention(3, 4, 2, context_length=6, backend="naive").eval()
batch = torch.stack([inputs, inputs])  # (2, 6, 3)
full = mha(batch)  # (2, 6, 4)

cache = KVCache(1, batch_size=2, n_kv_heads=2, max_len=6, head_dim=2)
with torch.no_grad():
    steps = [mha(batch[:, i : i + 1], cache=cache[0]) for i in range(6)]  # one token at a time
incremental = torch.cat(steps, dim=1)
print("token-by-token with the KV cache equals the full pass:", torch.allclose(full, incremental, atol=1e-6))
assert torch.allclose(full, incremental, atol=1e-6)

sdpa = MultiHeadAttention(3, 4, 2, context_length=6, backend="sdpa").eval()
sdpa.load_state_dict(mha.state_dict())
print("naive vs sdpa max difference:", (sdpa(batch) - full).abs().max().item())
