"""``scratchlm compare``: a sweep of tiny variants, its outputs, resuming, and sweep errors."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest

from llm_core.cli import main
from llm_core.errors import ConfigError
from llm_data import BPETokenizer, python_docs_text
from llm_train.compare import compare, load_sweep, parse_sweep
from llm_train.metrics import read_metrics

SWEEP = """
[base]
data = "{data}"
tokenizer = "{tokenizer}"
preset = "tiny"
model = {{ context_length = 16, emb_dim = 32, n_heads = 2, n_layers = 1 }}
max_steps = 6
batch_size = 2
context_length = 16
eval_every = 3
eval_batches = 1
checkpoint_every = 3
log_every = 2
seed = 11
progress = false

[[variant]]
name = "one-layer"

[[variant]]
name = "two-layers-sgd"
optimizer = "sgd"
lr = 0.01
model = {{ n_layers = 2 }}
"""


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    """A two-variant sweep over 20k characters of Python's docs with a 257-id byte tokenizer."""
    text = tmp_path / "docs.txt"
    text.write_text(python_docs_text()[:20_000], encoding="utf-8")
    tokenizer = tmp_path / "bytes.json"
    BPETokenizer().save(tokenizer)
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP.format(data=text, tokenizer=tokenizer), encoding="utf-8")
    return path


def _from_metrics(run_dir: Path) -> dict[str, float]:
    records = read_metrics(run_dir / "metrics.jsonl")
    val = [r["val_loss"] for r in records if r["kind"] == "eval"]
    speeds = [r["tokens_per_s"] for r in records if r["kind"] == "train"]
    return {"final": val[-1], "best": min(val), "speed": statistics.median(speeds)}


def test_compare_writes_a_table_json_and_plot_matching_each_run(sweep_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    result = compare(sweep_file, out, echo=lambda _: None)
    data = json.loads((out / "compare.json").read_text())
    assert [v["name"] for v in data["variants"]] == ["one-layer", "two-layers-sgd"]
    table = (out / "compare.md").read_text()
    for row in data["variants"]:
        run_dir = out / "runs" / row["name"]
        expected = _from_metrics(run_dir)
        assert row["final_val_loss"] == expected["final"]
        assert row["best_val_loss"] == expected["best"]
        assert row["tokens_per_s"] == expected["speed"]
        assert row["steps"] == 6 and (run_dir / "final" / "model.safetensors").is_file()
        line = next(line for line in table.splitlines() if line.startswith(f"| {row['name']} |"))
        assert f"| {expected['final']:.4f} | {expected['best']:.4f} | {expected['speed']:.0f} |" in line
        assert f"| {row['parameters']:,} |" in line
    one, two = data["variants"]
    assert one["tokens_seen"] == two["tokens_seen"] == 6 * 2 * 16  # same token budget
    assert two["parameters"] > one["parameters"]  # the extra block is there
    assert one["model"]["n_layers"] == 1 and two["model"] == {**one["model"], "n_layers": 2}
    assert one["memory_kind"] == "rss_peak_variant_process" and one["peak_memory_mb"] > 0
    assert two["memory_kind"] == "rss_peak_whole_process"
    assert result.plot == out / "compare.png" and result.plot.read_bytes()[:4] == b"\x89PNG"


def test_compare_skips_finished_runs_and_resumes_interrupted_ones(sweep_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    compare(sweep_file, out, echo=lambda _: None)
    first = json.loads((out / "compare.json").read_text())["variants"]
    finished = out / "runs" / "one-layer"
    stamp = (finished / "final" / "model.safetensors").stat().st_mtime_ns
    interrupted = out / "runs" / "two-layers-sgd"
    shutil.rmtree(interrupted / "final")
    (interrupted / "variant.json").unlink()
    for late in sorted(interrupted.glob("step-*"))[1:]:  # as if killed after the step-3 checkpoint
        shutil.rmtree(late)
    messages: list[str] = []
    second = compare(sweep_file, out, echo=messages.append).rows
    assert (finished / "final" / "model.safetensors").stat().st_mtime_ns == stamp
    assert [r["status"] for r in second] == ["reused", "resumed"]
    assert any("resuming" in m for m in messages)
    # exact resume: the same losses as the uninterrupted run
    assert second[1]["final_val_loss"] == first[1]["final_val_loss"]


def test_compare_in_processes_measures_each_variant_alone(sweep_file: Path, tmp_path: Path) -> None:
    sweep = load_sweep(sweep_file)
    single = parse_sweep({"base": dict(sweep.base), "variant": [{"name": "alone"}]}, source=str(sweep_file))
    rows = compare(single, tmp_path / "cmp", processes=True, echo=lambda _: None).rows
    assert rows[0]["memory_kind"] == "rss_peak_variant_process" and rows[0]["steps"] == 6


def test_compare_changed_settings_of_a_finished_run_are_an_error(sweep_file: Path, tmp_path: Path) -> None:
    sweep = load_sweep(sweep_file)
    first = parse_sweep({"base": dict(sweep.base), "variant": [{"name": "v"}]})
    compare(first, tmp_path / "cmp", echo=lambda _: None)
    changed = parse_sweep({"base": dict(sweep.base), "variant": [{"name": "v", "lr": 0.01}]})
    with pytest.raises(
        ConfigError, match=r"variant 'v': .* was trained with other settings \(lr: 0.0004 -> 0.01\)"
    ):
        compare(changed, tmp_path / "cmp", echo=lambda _: None)


BASE = {"data": "x.txt", "max_steps": 5}


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"base": BASE}, r"no variants; add at least one \[\[variant\]\]"),
        ({"base": BASE, "variant": []}, "no variants"),
        ({"base": BASE, "variants": [{"name": "a"}]}, r"unknown top-level key\(s\) 'variants'"),
        (
            {"base": {**BASE, "learning_rate": 1}, "variant": [{"name": "a"}]},
            r"\[base\]: unknown key\(s\) 'learning_rate'",
        ),
        (
            {"base": BASE, "variant": [{"name": "a", "layers": 2}]},
            r"'a': unknown key\(s\) 'layers'; expected TrainConfig",
        ),
        (
            {"base": BASE, "variant": [{"name": "a", "seed": 2}]},
            r"'a': sets seed, which every variant shares",
        ),
        ({"base": BASE, "variant": [{"lr": 0.1}]}, r"#1: name=None; expected a name"),
        ({"base": BASE, "variant": [{"name": "a/b"}]}, r"name='a/b'"),
        ({"base": BASE, "variant": [{"name": "a"}, {"name": "a"}]}, "'a': the name is used twice"),
        ({"base": {"data": "x.txt"}, "variant": [{"name": "a"}]}, "set max_steps"),
        ({"base": BASE, "variant": [{"name": "a", "lr": -1}]}, "'a': lr=-1"),
    ],
)
def test_bad_sweeps_are_config_errors(sweep: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_sweep(sweep, source="sweep.toml")


def test_compare_command(sweep_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(sweep_file), "--out", str(tmp_path / "cmp")]) == 0
    assert "| one-layer |" in capsys.readouterr().out and (tmp_path / "cmp" / "compare.json").is_file()


def test_compare_command_bad_sweep_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('[base]\ndata = "x.txt"\nmax_steps = 2\n')
    assert main(["compare", str(sweep), "--out", str(tmp_path / "cmp")]) == 2
    assert "no variants" in capsys.readouterr().err


def test_compare_never_writes_into_a_users_directory(
    sweep_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "compare.md").write_text("my notes")
    assert main(["compare", str(sweep_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not empty (compare.md) and not written by scratchlm" in err
    assert sorted(p.name for p in out.iterdir()) == ["compare.md"]
    assert (out / "compare.md").read_text() == "my notes"


def test_a_damaged_train_config_of_a_variant_names_the_key(sweep_file: Path, tmp_path: Path) -> None:
    sweep = load_sweep(sweep_file)
    first = parse_sweep({"base": dict(sweep.base), "variant": [{"name": "v"}]})
    compare(first, tmp_path / "cmp", echo=lambda _: None)
    saved = tmp_path / "cmp" / "runs" / "v" / "train_config.json"
    saved.write_text(saved.read_text().replace('"lr"', '"lr_rate"'))
    with pytest.raises(ConfigError, match=r"train_config.json: unknown key 'lr_rate'"):
        compare(first, tmp_path / "cmp", echo=lambda _: None)
