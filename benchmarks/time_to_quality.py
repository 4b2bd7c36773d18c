"""Time to quality: wall seconds to stated validation losses, scratchlm's model against
transformers' GPT-2 inside the same ``llm_train.Trainer`` (issue 25, point 6).

Both runs take one config (default ``examples/configs/book-ch5.toml``, the book's
chapter-5 run) and the same data, batches, optimizer and schedule. transformers' model
starts from scratchlm's initial weights (``export_hf``), at its best documented CPU
configuration (``gelu_pytorch_tanh``, ``sdpa`` attention); its query/key/value layers
carry biases (zero at the start; GPT-2's ``Conv1D`` always has one). Dropout draws
differ between the two, so the trajectories part after the first step. Checkpoint
writes are off for both. Repetitions alternate which model goes first.

    python benchmarks/time_to_quality.py --reps 3                    # the chapter-5 run, ~hours
    python benchmarks/time_to_quality.py --demo --reps 3             # `scratchlm demo`'s run, ~minutes
    python benchmarks/time_to_quality.py --quick --out /tmp/ttq      # a small check of the script
    python benchmarks/time_to_quality.py --plot results/A.json results/B.json   # the docs' figure

``--demo`` takes `scratchlm demo`'s run instead (``llm_train.demo.demo_config``: its corpus,
4096-token BPE, 400 steps, seed 123), its samples off.

Writes ``benchmarks/results/<date>-time-to-quality[-demo].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "examples" / "configs" / "book-ch5.toml"


def hf_twin(model: Any) -> Any:
    """transformers' GPT2LMHeadModel with ``model``'s weights, wrapped for the Trainer."""
    import torch
    from transformers import GPT2LMHeadModel

    from llm_model.hf import export_hf

    class Twin(torch.nn.Module):
        def __init__(self, inner: Any, context_length: int) -> None:
            super().__init__()
            self.inner = inner
            self.config = SimpleNamespace(context_length=context_length)

        def forward(self, idx: Any) -> Any:
            return self.inner(idx).logits  # (b, t, vocab)

    with tempfile.TemporaryDirectory() as tmp:
        export_hf(model, tmp)
        inner = GPT2LMHeadModel.from_pretrained(
            tmp, activation_function="gelu_pytorch_tanh", attn_implementation="sdpa"
        )
    return Twin(inner.train(), model.config.context_length)


def worker(
    impl: str, config_path: str, demo: list[str] | None, sets: dict[str, Any], out: str
) -> dict[str, Any]:
    """One run through the Trainer; the eval records of its metrics."""
    import torch

    from llm_data import get_tokenizer
    from llm_model import build_model
    from llm_train import Trainer, read_metrics
    from llm_train.config import load_train_config
    from llm_train.pretrain import load_training_tokens

    if demo is not None:  # (prepared dir, tokenizer file) of `scratchlm demo`'s data
        from dataclasses import replace

        from llm_train.demo import demo_config

        config = demo_config(Path(demo[0]), Path(demo[1]), max_steps=400, seed=123)
        config = replace(config, **sets)  # top-level fields only
    else:
        config = load_train_config(config_path, sets=sets)
    tokenizer = get_tokenizer(config.tokenizer)
    train, val = load_training_tokens(
        config.data, tokenizer=config.tokenizer, val_fraction=config.val_fraction, split=config.split
    )
    torch.manual_seed(config.seed)
    model = build_model(
        config.arch, preset=config.preset, **{"vocab_size": tokenizer.n_vocab, **config.model}
    )
    if impl == "hf":
        model = hf_twin(model)
    trainer = Trainer(model, config, train_tokens=train, val_tokens=val, run_dir=out)
    trainer.save = lambda name=None: None  # type: ignore[method-assign]
    trainer.fit(overwrite=True)
    evals = [r for r in read_metrics(Path(out) / "metrics.jsonl") if r["kind"] == "eval"]
    return {"evals": [{k: r[k] for k in ("step", "val_loss", "train_loss", "elapsed_s")} for r in evals]}


def seconds_to(evals: list[dict[str, Any]], target: float) -> float | None:
    """Wall seconds of training until the validation loss first reaches ``target``."""
    return next(
        (r["elapsed_s"] for r in evals if r["val_loss"] is not None and r["val_loss"] <= target), None
    )


def plot(results: list[Path], out: Path) -> Path:
    """Validation loss against wall seconds, one panel per results file, every repetition drawn."""
    from llm_train.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    colours = {"scratchlm": "tab:blue", "hf": "tab:orange"}
    labels = {"scratchlm": "scratchlm", "hf": "transformers GPT2LMHeadModel"}
    for ax, path in zip(axes[0], results, strict=True):
        result = json.loads(path.read_text())
        for impl, reps in result["runs"].items():
            for i, evals in enumerate(reps):
                xs = [r["elapsed_s"] for r in evals if r["val_loss"] is not None]
                ys = [r["val_loss"] for r in evals if r["val_loss"] is not None]
                ax.plot(xs, ys, color=colours[impl], alpha=0.8, label=labels[impl] if i == 0 else None)
        for row in result["table"]:
            ax.axhline(row["val_loss_at_most"], color="grey", linewidth=0.5, linestyle=":")
        ax.set_title(f"{result.get('name', Path(result['config']).name)}: same Trainer, same batches")
        ax.set_xlabel("wall seconds of training (2 CPU cores)")
        ax.set_ylabel("validation loss")
        ax.legend()
    return save_figure(fig, out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--demo", action="store_true", help="`scratchlm demo`'s run instead of --config")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=JSON, repeatable")
    parser.add_argument("--targets", help="validation losses [7.0,6.6,6.3,6.2; demo 7.0,6.0,5.5,5.2]")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a 2-layer model, 10 steps: checks the script")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--plot", nargs="+", type=Path, metavar="RESULTS_JSON", help="only draw these results to --plot-out"
    )
    figure = HERE.parent / "docs" / "assets" / "time-to-quality.png"
    parser.add_argument("--plot-out", type=Path, default=figure)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.plot:
        print(plot(options.plot, options.plot_out))
        return 0
    if options.worker:
        print(json.dumps(worker(*json.loads(options.worker))))
        return 0
    sets = {k: json.loads(v) for k, v in (item.split("=", 1) for item in options.sets)}
    if options.quick:
        sets |= {"max_steps": 10, "model.n_layers": 2, "model.emb_dim": 64, "model.n_heads": 2}
        sets |= {"model.context_length": 64, "stride": 64}
        options.reps = min(options.reps, 2)
    default_targets = "7.0,6.0,5.5,5.2" if options.demo else "7.0,6.6,6.3,6.2"
    targets = [float(t) for t in (options.targets or default_targets).split(",")]
    runs: dict[str, list[list[dict[str, Any]]]] = {"scratchlm": [], "hf": []}
    with tempfile.TemporaryDirectory() as tmp:
        demo = None
        if options.demo:
            from llm_train.demo import prepare_demo_data

            prepared, tokenizer_path = prepare_demo_data(Path(tmp) / "data", print)
            demo = [str(prepared), str(tokenizer_path)]
            sets = {"sample_every": 0, **sets}
        for rep in range(options.reps):
            for impl in ["scratchlm", "hf"] if rep % 2 == 0 else ["hf", "scratchlm"]:
                payload = json.dumps([impl, str(options.config), demo, sets, f"{tmp}/{impl}-{rep}"])
                done = subprocess.run(
                    [sys.executable, __file__, "--worker", payload],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[impl].append(json.loads(done.stdout.strip().splitlines()[-1])["evals"])
                last = runs[impl][-1][-1]
                print(
                    f"rep {rep + 1} {impl}: val {last['val_loss']:.3f} at {last['elapsed_s']:.0f} s",
                    flush=True,
                )
    table = []
    for target in targets:
        row: dict[str, Any] = {"val_loss_at_most": target}
        for impl, reps in runs.items():
            times = [t for t in (seconds_to(evals, target) for evals in reps) if t is not None]
            row[impl] = (
                {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}
                if times
                else None
            )
            row[f"{impl}_reached"] = f"{len(times)}/{len(reps)}"
        if row["scratchlm"] and row["hf"]:
            row["hf_time_over_scratchlm"] = row["hf"]["median_s"] / row["scratchlm"]["median_s"]
        table.append(row)
    run_name = "scratchlm demo" if options.demo else options.config.name
    result = {"name": run_name, "config": str(options.config), "sets": sets, "reps": options.reps}
    result |= {"table": table, "runs": runs}
    options.out.mkdir(parents=True, exist_ok=True)
    kind = ("-demo" if options.demo else "") + ("-quick" if options.quick else "")
    name = f"{time.strftime('%Y-%m-%d')}-time-to-quality{kind}"
    (options.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Time to quality ({run_name}, {options.reps} reps)",
        "",
        "| val loss <= | scratchlm s [min-max] | reached | transformers s [min-max] | reached "
        "| transformers / scratchlm |",
        "|---|---|---|---|---|---|",
    ]
    for row in table:
        cells = []
        for impl in ("scratchlm", "hf"):
            t = row[impl]
            cells += [
                f"{t['median_s']:.0f} [{t['min_s']:.0f}-{t['max_s']:.0f}]" if t else "n/a",
                row[f"{impl}_reached"],
            ]
        ratio = row.get("hf_time_over_scratchlm")
        lines.append(
            f"| {row['val_loss_at_most']} | {' | '.join(cells)} | {f'{ratio:.2f}x' if ratio else 'n/a'} |"
        )
    (options.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
