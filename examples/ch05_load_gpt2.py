"""Chapter 5: load GPT-2 weights in the Hugging Face layout and generate.

    python examples/ch05_load_gpt2.py --hf-dir path/to/gpt2            # config.json + model.safetensors
    python examples/ch05_load_gpt2.py --hf-dir openai-community/gpt2   # the hub: pip install "llm-model[hub]"

Without --hf-dir (no network here), a randomly initialised tiny GPT-2 is
exported in that layout with `export_hf` first, so the real import path runs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from llm_data import get_tokenizer
from llm_model import build_model, export_hf, generate_text, import_hf

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--hf-dir", help="a local Hugging Face GPT-2 directory or a hub id")
args = parser.parse_args()

source = args.hf_dir
if source is None:
    torch.manual_seed(0)
    scratch = tempfile.TemporaryDirectory(prefix="load-gpt2-")  # removed at exit
    source = str(export_hf(build_model("gpt2", preset="tiny"), Path(scratch.name) / "random-gpt2"))
    print("no --hf-dir: exported a random tiny GPT-2 in the Hugging Face layout to", source)

model = import_hf(source).eval()
prompt = "Every effort moves you"
print(prompt + generate_text(model, get_tokenizer("gpt2"), prompt, max_new_tokens=20, temperature=0))
