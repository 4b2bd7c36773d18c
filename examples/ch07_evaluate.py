"""Chapter 7: evaluate a checkpoint — perplexity with a sliding window (and the LLM judge with a server).

    python examples/ch07_evaluate.py [--checkpoint RUN_DIR/final] [--text file.txt]

The judge (`scratchlm judge`) needs an Ollama or OpenAI-compatible server: `scratchlm serve CHECKPOINT`
starts one locally; see docs/eval.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from llm_data import get_tokenizer, python_docs_text
from llm_eval import strided_perplexity
from llm_model import build_model, load_pretrained

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--checkpoint", type=Path, help="a checkpoint directory [default: an untrained tiny GPT]")
parser.add_argument("--text", type=Path, help="UTF-8 text to score [default: Python documentation]")
args = parser.parse_args()

torch.manual_seed(0)
model = load_pretrained(args.checkpoint) if args.checkpoint else build_model("gpt2", preset="tiny").eval()
text = args.text.read_text(encoding="utf-8") if args.text else python_docs_text()[:5_000]
tokens = get_tokenizer(getattr(model, "checkpoint_config", {}).get("tokenizer", "gpt2")).encode(text)
report = strided_perplexity(model, tokens, stride=32)
loss, perplexity, n = report["loss"], report["perplexity"], report["tokens"]
print(f"loss {loss:.3f} nats/token, perplexity {perplexity:.1f} over {n} tokens")
