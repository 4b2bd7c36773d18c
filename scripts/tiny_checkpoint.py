"""Save a tiny random GPT-2-style checkpoint with the ``simple`` tokenizer, for smoke tests.

``nox -s index`` runs it in a virtualenv that installed llm-model and llm-data by name from
a local index, then runs ``scratchlm generate`` on the result; no download, no training:

    python scripts/tiny_checkpoint.py OUT_DIR
"""

from __future__ import annotations

import sys

import torch

from llm_core import load_tokenizer
from llm_model import build_model, save_pretrained


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    torch.manual_seed(0)
    tokenizer = load_tokenizer("simple")
    model = build_model(
        "gpt2", vocab_size=tokenizer.n_vocab, context_length=32, emb_dim=32, n_heads=2, n_layers=2
    )
    path = save_pretrained(model, argv[0], tokenizer="simple")
    print(f"{path}: {sum(p.numel() for p in model.parameters()):,} parameters, tokenizer 'simple'")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
