"""Chapter 5: pretrain a tiny GPT on a text file, watch the losses and plot them.

python examples/ch05_pretrain.py --text ../shared/data/the-verdict.txt --steps 200 --out runs/verdict

Without --text it trains on 100,000 characters of Python's documentation. To continue a run,
`scratchlm pretrain ... --resume` (see the "Pretraining" page of the docs).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from llm_data import python_docs_text
from llm_train import TrainConfig, plot_runs, pretrain

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument(
    "--text", type=Path, help="a UTF-8 text file [default: a slice of Python's documentation]"
)
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--out", type=Path, help="run directory [default: a temporary one]")
args = parser.parse_args()

scratch = tempfile.TemporaryDirectory(prefix="pretrain-")  # removed at exit: pass --out to keep the run
out = args.out or Path(scratch.name) / "run"
text = args.text
if text is None:  # beside the run, not in it: a run directory holds only what pretrain writes
    text = Path(scratch.name) / "corpus.txt"
    text.write_text(python_docs_text()[:100_000], encoding="utf-8")
config = TrainConfig(
    data=str(text),
    preset="tiny",
    context_length=64,
    batch_size=8,
    max_steps=args.steps,
    lr=1e-3,
    eval_every=max(1, args.steps // 5),
    checkpoint_every=max(1, args.steps // 2),
    sample_every=0,
    progress=False,
)
result = pretrain(config, out)
print(f"validation loss {result.initial_val_loss:.2f} -> {result.val_loss:.2f} after {result.steps} steps")
print("loss plot:", plot_runs([out], out / "loss.png"))
assert result.val_loss < result.initial_val_loss
if args.out is None:
    print("note: the run is in a temporary directory, removed on exit; pass --out DIR to keep it")
