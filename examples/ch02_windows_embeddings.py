"""Chapter 2: sliding windows of (input, target) token ids, then token + position embeddings.

python examples/ch02_windows_embeddings.py [--text the-verdict.txt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from llm_data import create_dataloader, python_docs_text

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--text", type=Path, help="a UTF-8 text file [default: Python's documentation]")
args = parser.parse_args()
text = args.text.read_text(encoding="utf-8") if args.text else python_docs_text()[:50_000]

loader = create_dataloader(text, batch_size=8, max_length=4, stride=4, shuffle=False)
inputs, targets = next(iter(loader))
print("inputs:\n", inputs)  # (8, 4)
print("targets (shifted by one):\n", targets)

torch.manual_seed(123)
vocab_size, output_dim, context_length = 50257, 256, 4
token_embedding = torch.nn.Embedding(vocab_size, output_dim)
pos_embedding = torch.nn.Embedding(context_length, output_dim)
x = token_embedding(inputs) + pos_embedding(torch.arange(context_length))  # (8, 4, 256)
print("input embeddings:", tuple(x.shape))
assert x.shape == (8, 4, 256)
