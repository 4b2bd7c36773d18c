"""``scratchlm demo``: pretrain a small GPT on Python's own documentation, offline, in minutes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llm_core.errors import ConfigError
from llm_data import get_tokenizer, prepare_corpus, python_docs_text
from llm_model import generate_text

from llm_train.config import TrainConfig
from llm_train.plots import plot_runs
from llm_train.pretrain import build_trainer

__all__ = ["DemoResult", "demo_config", "run_demo"]

PROMPT = "The Python interpreter"


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


def demo_config(data: Path, *, max_steps: int, seed: int) -> TrainConfig:
    """The demo's run: the `small` preset, context 128, AdamW with warmup + cosine."""
    return TrainConfig(
        data=str(data),
        preset="small",
        model={"tie_weights": True, "drop_rate": 0.0},
        batch_size=8,
        context_length=128,
        max_steps=max_steps,
        lr=2e-3,
        scheduler="warmup-cosine",
        warmup_steps=min(30, max_steps // 10),
        min_lr_ratio=0.1,
        eval_every=max(1, max_steps // 10),
        eval_batches=8,
        sample_every=max(1, max_steps // 4),
        sample_prompt=PROMPT,
        checkpoint_every=max(1, max_steps // 4),
        log_every=10,
        seed=seed,
    )


def run_demo(
    out_dir: str | Path = "runs/demo",
    *,
    max_steps: int = 600,
    seed: int = 123,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Prepare the embedded corpus, train, compare text before/after, plot the losses."""
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    prepared = data_dir / "prepared"
    if not (prepared / "index.json").is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        corpus = data_dir / "python-docs.txt"
        corpus.write_text(python_docs_text(), encoding="utf-8")
        echo(f"Preparing the embedded python-docs corpus ({corpus.stat().st_size / 1e6:.1f} MB) ...")
        prepare_corpus([corpus], prepared, tokenizer="gpt2", val_fraction=0.1)
    run_dir = out_dir / "run"
    if (run_dir / "final").exists():
        raise ConfigError(f"{run_dir} already holds a finished demo run; delete it or pass --out NEW_DIR")
    resume = any(run_dir.glob("step-*"))  # an interrupted demo continues where it stopped
    config = demo_config(prepared, max_steps=max_steps, seed=seed)
    trainer = build_trainer(config, run_dir)
    tokenizer = get_tokenizer("gpt2")
    trainer.model.eval()
    before = generate_text(trainer.model, tokenizer, PROMPT, max_new_tokens=30)
    echo(f"Before training: {before!r}")
    result = trainer.fit(resume=resume)
    trainer.model.eval()
    after = generate_text(trainer.model, tokenizer, PROMPT, max_new_tokens=30)
    try:
        plot = plot_runs([run_dir], out_dir / "loss.png")
    except Exception as exc:  # the plot is a bonus: report and go on
        echo(f"(no plot: {exc})")
        plot = None
    echo(f"After training:  {after!r}")
    echo(
        f"Validation loss: {result.initial_val_loss:.3f} -> {result.val_loss:.3f} "
        f"in {result.steps} steps, {result.seconds / 60:.1f} min"
    )
    echo(f"Checkpoint: {result.final_dir}")
    echo(f"Metrics:    {run_dir / 'metrics.jsonl'}")
    if plot:
        echo(f"Loss plot:  {plot}")
    echo("Next:")
    echo(f'  scratchlm generate {result.final_dir} "{PROMPT}" --max-new-tokens 50')
    echo(f"  scratchlm plot {run_dir} --out {out_dir / 'loss.png'}")
    echo(f"  scratchlm pretrain --data {prepared} --preset small --max-steps 2000 --out runs/longer")
    return DemoResult(out_dir, before, after, result.initial_val_loss, result.val_loss, plot, result.seconds)
