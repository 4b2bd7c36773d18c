"""``scratchlm demo``: the book's path in a few CPU minutes, offline.

Python's own documentation (shipped with every CPython) is the corpus: train
a byte-level BPE tokenizer on it, prepare token shards, pretrain a small GPT,
and compare generated text before and after, with the loss plot.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llm_core.errors import ConfigError
from llm_core.output_dirs import claim_output_dir
from llm_data import BPETokenizer, get_tokenizer, prepare_corpus, python_docs_text
from llm_model import generate_text
from llm_train.config import TrainConfig
from llm_train.plots import plot_runs
from llm_train.pretrain import build_trainer

__all__ = ["DemoResult", "demo_config", "run_demo", "scratchlm_command"]

PROMPT = "The Python interpreter"
VOCAB_SIZE = 4096
#: How the "after" sample is drawn (the same settings the printed `generate` step uses): greedy
#: decoding of a small model falls into loops of blank lines, sampling shows what it learned.
SAMPLE = {"temperature": 0.8, "top_k": 40, "seed": 123}


@dataclass
class DemoResult:
    """What the demo made and measured."""

    out_dir: Path
    before: str
    after: str
    initial_val_loss: float | None
    val_loss: float | None
    plot: Path | None
    seconds: float


def demo_config(data: Path, tokenizer: Path, *, max_steps: int, seed: int) -> TrainConfig:
    """The demo's run: the `small` preset (4 layers, 4 heads, 128 wide) with a 4096-token BPE vocabulary."""
    return TrainConfig(
        data=str(data),
        preset="small",
        tokenizer=str(tokenizer),
        model={"tie_weights": True, "drop_rate": 0.1},
        batch_size=16,
        context_length=128,
        max_steps=max_steps,
        lr=2e-3,
        scheduler="warmup-cosine",
        warmup_steps=min(50, max_steps // 10),
        min_lr_ratio=0.1,
        eval_every=max(1, max_steps // 10),
        eval_batches=4,
        sample_every=max(1, max_steps // 4),
        sample_prompt=PROMPT,
        checkpoint_every=max(1, max_steps // 4),
        log_every=10,
        seed=seed,
    )


def scratchlm_command() -> str:
    """How to run this environment's ``scratchlm`` from a shell: the bare name when it is on PATH,
    else its full path (after ``nox -s demo`` it lives in ``.nox/demo/bin``, not on PATH)."""
    here = Path(sys.executable).with_name("scratchlm")
    on_path = shutil.which("scratchlm")
    if on_path is not None and (not here.exists() or Path(on_path).resolve() == here.resolve()):
        return "scratchlm"
    return str(here) if here.exists() else "scratchlm"


def prepare_demo_data(data_dir: Path, echo: Callable[[str], None]) -> tuple[Path, Path]:
    """Write the corpus, train the BPE tokenizer and prepare shards (skipped when already done)."""
    prepared, tokenizer_path = data_dir / "prepared", data_dir / "tokenizer.json"
    if (prepared / "index.json").is_file() and tokenizer_path.is_file():
        return prepared, tokenizer_path
    data_dir.mkdir(parents=True, exist_ok=True)
    text = python_docs_text()
    corpus = data_dir / "python-docs.txt"
    corpus.write_text(text, encoding="utf-8")
    echo(f"Corpus: Python's documentation, {len(text.encode()) / 1e6:.2f} MB -> {corpus}")
    echo(f"Training a byte-level BPE tokenizer ({VOCAB_SIZE} tokens) on it ...")
    BPETokenizer.train(text, VOCAB_SIZE).save(tokenizer_path)
    prepare_corpus([corpus], prepared, tokenizer=str(tokenizer_path), val_fraction=0.1, overwrite=True)
    return prepared, tokenizer_path


def run_demo(
    out_dir: str | Path = "runs/demo",
    *,
    max_steps: int = 400,
    seed: int = 123,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Prepare the embedded corpus, train, compare text before/after, plot the losses.

    ``out_dir`` must be new, empty or an earlier demo's (an interrupted one continues);
    ``overwrite`` writes into any directory.
    """
    out_dir = claim_output_dir(Path(out_dir).absolute(), command="demo", overwrite=overwrite)
    run_dir = out_dir / "run"
    if (run_dir / "final").exists():
        raise ConfigError(f"{run_dir} already holds a finished demo run; delete it or pass --out NEW_DIR")
    prepared, tokenizer_path = prepare_demo_data(out_dir / "data", echo)
    tokenizer = get_tokenizer(tokenizer_path)
    config = demo_config(prepared, tokenizer_path, max_steps=max_steps, seed=seed)
    resume = any(run_dir.glob("step-*"))  # an interrupted demo continues where it stopped
    trainer = build_trainer(config, run_dir)
    trainer.model.eval()
    before = generate_text(trainer.model, tokenizer, PROMPT, max_new_tokens=40)
    echo(f"Before training: {PROMPT}{before}")
    result = trainer.fit(resume=resume)
    trainer.model.eval()
    after = generate_text(trainer.model, tokenizer, PROMPT, max_new_tokens=40, **SAMPLE)
    try:
        plot = plot_runs([run_dir], out_dir / "loss.png")
    except Exception as exc:  # the plot is a bonus: report and go on
        echo(f"(no plot: {exc})")
        plot = None
    echo(f"After training:  {PROMPT}{after}")
    if result.initial_val_loss is not None and result.val_loss is not None:
        echo(f"Validation loss: {result.initial_val_loss:.3f} -> {result.val_loss:.3f} ")
    echo(f"Trained {result.steps} steps ({result.tokens_seen:,} tokens) in {result.seconds / 60:.1f} min")
    echo(f"Checkpoint: {result.final_dir}")
    echo(f"Metrics:    {run_dir / 'metrics.jsonl'}")
    if plot:
        echo(f"Loss plot:  {plot}")
    command = scratchlm_command()
    echo("Next:")
    echo(
        f'  {command} generate {result.final_dir} "{PROMPT}" --max-new-tokens 50 --temperature 0.8 --top-k 40'
    )
    echo(f"  {command} plot {run_dir}")
    echo(f"  {command} pretrain --data {prepared} --tokenizer {tokenizer_path} --preset small \\")
    echo("      --max-steps 5000 --out runs/longer")
    return DemoResult(out_dir, before, after, result.initial_val_loss, result.val_loss, plot, result.seconds)
