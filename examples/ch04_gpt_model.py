"""Chapter 4: the GPT model, its parameter count, and text from an untrained model.

python examples/ch04_gpt_model.py
"""

from __future__ import annotations

import torch

from llm_data import get_tokenizer
from llm_model import build_model, generate_text, model_info

with torch.device("meta"):  # count the 124M model without allocating its weights
    info = model_info(build_model("gpt2", preset="gpt2-124m"))
print(
    f"GPT-2 124M: {info['parameters']:,} parameters, {info['parameters_without_head']:,} with the head tied,"
)
print(f"{info['size_mb_fp32']:.2f} MB in fp32")  # the book: 163,009,536 / 124,412,160 / 621.83 MB

torch.manual_seed(123)
model = build_model("gpt2", preset="tiny").eval()
print("untrained tiny GPT:", "Hello, I am" + generate_text(model, get_tokenizer("gpt2"), "Hello, I am", 10))
