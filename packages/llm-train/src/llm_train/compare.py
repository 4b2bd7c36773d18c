"""``scratchlm compare``: several variants of one run, side by side, from a TOML sweep.

A sweep file holds the shared settings in ``[base]`` (any :class:`TrainConfig`
field) and one ``[[variant]]`` table per variant, with a ``name`` and the
fields it changes (``arch``, ``preset``, ``model`` overrides, ``optimizer``,
``lr`` …)::

    [base]
    data = "prepared/"
    tokenizer = "tokenizer.json"
    max_steps = 300
    seed = 123

    [[variant]]
    name = "gpt2"

    [[variant]]
    name = "gpt2-lion"
    optimizer = "lion"
    lr = 1e-4

Every variant trains on the same data, token budget and seed (variants may
not change ``data``, ``tokenizer``, ``val_fraction``, ``seed``,
``max_steps``, ``epochs``, ``batch_size``, ``context_length`` or
``grad_accum``), one after the other, each in ``OUT/runs/NAME``. The
comparison is resumable: a variant whose run has ``final/`` is not trained
again, an interrupted one continues from its newest checkpoint.

Outputs: ``OUT/compare.json``, ``OUT/compare.md`` (a table: final and best
validation loss, parameters, median training tokens/s, peak memory, wall
time) and ``OUT/compare.png`` (validation curves overlaid, from each run's
``metrics.jsonl``). Peak memory is ``torch.cuda.max_memory_allocated`` on a
GPU; on CPU it is the resident-set peak (``getrusage``) of the process that
trained the variant, which is per variant only with ``processes=True`` (one
process per variant); in-process it is the peak of the whole process so far.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_core.config_io import apply_overrides, config_from_dict, load_config_file, write_json_atomic
from llm_core.errors import ConfigError, DataError, MissingDependencyError
from llm_core.output_dirs import claim_output_dir
from llm_train.config import TrainConfig, read_train_config
from llm_train.metrics import read_metrics

__all__ = [
    "SHARED_ONLY",
    "CompareResult",
    "Sweep",
    "Variant",
    "compare",
    "load_sweep",
    "parse_sweep",
    "plot_validation_curves",
    "run_variant",
    "summarize_run",
]

#: Settings every variant shares: they fix the data, the token budget and the seed.
SHARED_ONLY = (
    "data",
    "tokenizer",
    "val_fraction",
    "seed",
    "max_steps",
    "epochs",
    "batch_size",
    "context_length",
    "grad_accum",
)
VARIANT_FILE = "variant.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MB = 1024**2


@dataclass(frozen=True)
class Variant:
    """One named variant and its resolved training config."""

    name: str
    config: TrainConfig


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file: the shared ``[base]`` settings and the variants."""

    source: str
    base: Mapping[str, Any]
    variants: tuple[Variant, ...]


@dataclass
class CompareResult:
    """What :func:`compare` wrote and measured."""

    out_dir: Path
    rows: list[dict[str, Any]]
    table: Path
    json: Path
    plot: Path | None


def load_sweep(path: str | Path, *, sets: Mapping[str, Any] | None = None) -> Sweep:
    """Read and validate a sweep file (TOML or JSON); see :func:`parse_sweep`.

    ``sets`` (``--set`` overrides, dotted keys allowed) change its ``[base]`` table.
    """
    data = load_config_file(path)
    if sets:
        base = data.setdefault("base", {})
        if isinstance(base, dict):
            apply_overrides(base, sets)
    return parse_sweep(data, source=str(path))


def _fields() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig)}


def _check_keys(table: Mapping[str, Any], where: str, *, extra: frozenset[str] = frozenset()) -> None:
    unknown = sorted(set(table) - _fields() - extra)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"expected TrainConfig fields: {', '.join(sorted(_fields()))}"
        )


def parse_sweep(data: Mapping[str, Any], *, source: str = "sweep") -> Sweep:
    """Validate a sweep mapping (``base`` table, ``variant`` list) and resolve each variant's config."""
    unknown = sorted(set(data) - {"base", "variant"})
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
            "expected a [base] table and [[variant]] tables"
        )
    base = data.get("base", {})
    if not isinstance(base, Mapping):
        raise ConfigError(
            f"{source}: [base] must be a table of TrainConfig fields, got {type(base).__name__}"
        )
    _check_keys(base, f"{source} [base]")
    raw_variants = data.get("variant", [])
    if not isinstance(raw_variants, list) or not raw_variants:
        raise ConfigError(
            f"{source}: no variants; add at least one [[variant]] table with a name, "
            'for example [[variant]] name = "baseline"'
        )
    variants: list[Variant] = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_variants, start=1):
        where = f"{source} [[variant]] #{number}"
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(raw).__name__}")
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"{where}: name={name!r}; expected a name of letters, digits, '.', '_' or '-' "
                "(it names the run directory)"
            )
        where = f"{source} [[variant]] '{name}'"
        if name in seen:
            raise ConfigError(f"{where}: the name is used twice; give every variant its own name")
        seen.add(name)
        overrides = {k: v for k, v in raw.items() if k != "name"}
        _check_keys(overrides, where)
        shared = sorted(set(overrides) & set(SHARED_ONLY))
        if shared:
            raise ConfigError(
                f"{where}: sets {', '.join(shared)}, which every variant shares "
                "(same data, token budget and seed); move it to [base]"
            )
        values = {**base, **overrides}
        model = {**dict(base.get("model") or {}), **dict(overrides.get("model") or {})}
        if model:
            values["model"] = model
        config = config_from_dict(TrainConfig, values, source=where)
        if config.max_steps is None and config.epochs is None:
            raise ConfigError(
                f"{source} [base]: set max_steps (or epochs): the token budget every variant gets"
            )
        variants.append(Variant(name, config))
    return Sweep(source, dict(base), tuple(variants))


# -- one variant --------------------------------------------------------------------------
def _peak_memory(device: str, *, whole_process: bool) -> tuple[float | None, str]:
    """Peak memory in MB and what it measures."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / _MB, "cuda_max_memory_allocated"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_bytes = peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB
    kind = "rss_peak_whole_process" if whole_process else "rss_peak_variant_process"
    return peak_bytes / _MB, kind


def run_variant(
    name: str, config: TrainConfig, run_dir: str | Path, *, whole_process: bool = True
) -> dict[str, Any]:
    """Train (or resume) one variant in ``run_dir``; write and return its measurements (``variant.json``).

    ``whole_process`` says whether the process trained anything before (so its
    resident-set peak is not this variant's alone).
    """
    import torch

    from llm_model import count_parameters
    from llm_train.pretrain import build_trainer

    run_dir = Path(run_dir)
    resume = any(run_dir.glob("step-*"))
    if config.device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer = build_trainer(config, run_dir)
    parameters = count_parameters(trainer.model)
    result = trainer.fit(resume=resume)
    wall = time.perf_counter() - start
    memory, memory_kind = _peak_memory(config.device, whole_process=whole_process)
    record = {
        "name": name,
        "parameters": parameters,
        "steps": result.steps,
        "tokens_seen": result.tokens_seen,
        "wall_s": wall,
        "peak_memory_mb": memory,
        "memory_kind": memory_kind,
        "resumed": resume,
    }
    write_json_atomic(run_dir / VARIANT_FILE, record)
    return record


def summarize_run(run_dir: str | Path) -> dict[str, Any]:
    """Validation losses and median training throughput read from a run's ``metrics.jsonl``."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: not found; expected a run directory made by `scratchlm pretrain`")
    records = read_metrics(path)
    evals = [r["val_loss"] for r in records if r.get("kind") == "eval" and r.get("val_loss") is not None]
    speeds = [r["tokens_per_s"] for r in records if r.get("kind") == "train" and "tokens_per_s" in r]
    return {
        "final_val_loss": evals[-1] if evals else None,
        "best_val_loss": min(evals) if evals else None,
        "tokens_per_s": statistics.median(speeds) if speeds else None,
    }


def _check_unchanged(variant: Variant, run_dir: Path) -> None:
    """A finished run is reused only if it was trained with this variant's settings."""
    saved_path = run_dir / "train_config.json"
    if not saved_path.is_file():
        return
    changed = variant.config.changes_from(read_train_config(run_dir))
    if changed:
        raise ConfigError(
            f"variant '{variant.name}': {run_dir} was trained with other settings ({'; '.join(changed)}); "
            f"delete {run_dir} to retrain it or use a new --out"
        )


def _run_in_subprocess(variant: Variant, run_dir: Path) -> None:
    command = [sys.executable, "-m", "llm_train.compare", variant.name, str(run_dir)]
    completed = subprocess.run(command, input=json.dumps(variant.config.to_dict()), text=True, check=False)
    if completed.returncode != 0:
        from llm_train.trainer import TrainingError

        raise TrainingError(
            f"variant '{variant.name}' failed in its process (exit status {completed.returncode}; "
            "its error is printed above); fix it and run the same compare command again to resume"
        )


# -- outputs -----------------------------------------------------------------------------
def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def _table(rows: list[dict[str, Any]], sweep: Sweep, plot: Path | None) -> str:
    lines = [
        "# scratchlm compare",
        "",
        f"Sweep: `{sweep.source}`. Shared settings: "
        + ", ".join(f"{k}={v!r}" for k, v in sorted(sweep.base.items()) if k != "model"),
        "",
        "| variant | arch | preset | optimizer | lr | parameters | final val loss | best val loss "
        "| tokens/s (median) | peak memory (MB) | wall time (s) |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['arch']} | {r['preset']} | {r['optimizer']} | {r['lr']:g} "
            f"| {_fmt(r['parameters'], ',')} | {_fmt(r['final_val_loss'], '.4f')} "
            f"| {_fmt(r['best_val_loss'], '.4f')} | {_fmt(r['tokens_per_s'], '.0f')} "
            f"| {_fmt(r['peak_memory_mb'], '.1f')} | {_fmt(r['wall_s'], '.1f')} |"
        )
    kinds = sorted({str(r["memory_kind"]) for r in rows if r["memory_kind"]})
    lines += ["", f"Peak memory: {', '.join(kinds) or 'not measured'} (see `compare.json`)."]
    if plot is not None:
        lines += ["", f"![validation loss]({plot.name})"]
    return "\n".join(lines) + "\n"


def plot_validation_curves(runs: Mapping[str, str | Path], out: str | Path) -> Path:
    """Validation loss against tokens seen, one line per run (from each ``metrics.jsonl``)."""
    from llm_train.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, run_dir in runs.items():
        evals = [
            r
            for r in read_metrics(Path(run_dir) / "metrics.jsonl")
            if r.get("kind") == "eval" and r.get("val_loss") is not None
        ]
        ax.plot([r["tokens_seen"] for r in evals], [r["val_loss"] for r in evals], marker=".", label=label)
    ax.set_xlabel("Tokens seen")
    ax.set_ylabel("Validation loss")
    ax.legend(loc="upper right")
    return save_figure(fig, out)


def compare(
    sweep: str | Path | Sweep,
    out_dir: str | Path,
    *,
    processes: bool = False,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> CompareResult:
    """Train every variant of ``sweep`` (skipping finished ones) and write the comparison to ``out_dir``.

    ``out_dir`` must be new, empty or an earlier ``compare``'s (which resumes it);
    ``overwrite`` writes into any directory.
    """
    sweep = sweep if isinstance(sweep, Sweep) else load_sweep(sweep)
    out_dir = claim_output_dir(out_dir, command="compare", overwrite=overwrite)
    trained_here = False
    rows: list[dict[str, Any]] = []
    runs: dict[str, Path] = {}
    for variant in sweep.variants:
        run_dir = out_dir / "runs" / variant.name
        runs[variant.name] = run_dir
        _check_unchanged(variant, run_dir)
        measured_path = run_dir / VARIANT_FILE
        if (run_dir / "final").is_dir() and measured_path.is_file():
            echo(f"[{variant.name}] finished earlier: {run_dir}")
            status = "reused"
        else:
            resumed = any(run_dir.glob("step-*"))
            echo(f"[{variant.name}] {'resuming' if resumed else 'training'} in {run_dir}")
            if processes:
                _run_in_subprocess(variant, run_dir)
            else:
                run_variant(variant.name, variant.config, run_dir, whole_process=trained_here)
                trained_here = True
            status = "resumed" if resumed else "trained"
        measured = json.loads(measured_path.read_text(encoding="utf-8"))
        config = variant.config
        rows.append(
            {
                "name": variant.name,
                "arch": config.arch,
                "preset": config.preset,
                "model": dict(config.model),
                "optimizer": config.optimizer,
                "lr": config.lr,
                **summarize_run(run_dir),
                "parameters": measured["parameters"],
                "peak_memory_mb": measured["peak_memory_mb"],
                "memory_kind": measured["memory_kind"],
                "wall_s": measured["wall_s"],
                "steps": measured["steps"],
                "tokens_seen": measured["tokens_seen"],
                "status": status,
                "run_dir": str(run_dir),
            }
        )
    plot: Path | None
    try:
        plot = plot_validation_curves(runs, out_dir / "compare.png")
    except MissingDependencyError as exc:  # the plot is a bonus; the table and JSON still come
        echo(f"(no plot: {exc})")
        plot = None
    table = out_dir / "compare.md"
    table.write_text(_table(rows, sweep, plot), encoding="utf-8")
    summary = out_dir / "compare.json"
    write_json_atomic(
        summary,
        {
            "sweep": sweep.source,
            "base": dict(sweep.base),
            "plot": plot.name if plot else None,
            "variants": rows,
        },
    )
    return CompareResult(out_dir, rows, table, summary, plot)


def _main(argv: list[str]) -> int:
    """``python -m llm_train.compare NAME RUN_DIR`` with the variant's config JSON on stdin."""
    from llm_core.errors import ScratchLMError

    name, run_dir = argv
    try:
        config = config_from_dict(TrainConfig, json.loads(sys.stdin.read()), source=f"variant '{name}'")
        run_variant(name, config, run_dir, whole_process=False)
    except ScratchLMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
