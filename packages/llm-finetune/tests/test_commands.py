"""The finetune commands: a TOML config alone, --set, the saved resolved config, --json, --base, --resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_core.cli import main
from llm_core.cli_vocabulary import vocabulary_problems

COMMANDS = ["finetune classify", "finetune instruct", "finetune dpo", "classify", "chat"]


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small synthetic data for each recipe (no book data needed)."""
    root = tmp_path_factory.mktemp("data")
    spam = [f"spam\tWIN a prize number {i} now" for i in range(12)]
    ham = [f"ham\tsee you at {i} tonight" for i in range(12)]
    (root / "spam.tsv").write_text("\n".join(spam + ham) + "\n", encoding="utf-8")
    records = [{"instruction": f"Repeat {i}.", "input": "", "output": f"{i}"} for i in range(24)]
    (root / "instructions.json").write_text(json.dumps(records), encoding="utf-8")
    pairs = [{"instruction": f"Say {i}.", "input": "", "chosen": f"{i}", "rejected": "no"} for i in range(24)]
    (root / "preferences.json").write_text(json.dumps(pairs), encoding="utf-8")
    return {
        "classify": root / "spam.tsv",
        "instruct": root / "instructions.json",
        "dpo": root / "preferences.json",
    }


def _toml(path: Path, **fields: object) -> Path:
    lines = [f"{key} = {json.dumps(str(v) if isinstance(v, Path) else v)}" for key, v in fields.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _settings(kind: str, data: Path, out: Path) -> dict[str, object]:
    own = {"classify": {"max_length": 16}, "instruct": {"test_limit": 0}, "dpo": {}}[kind]
    common = dict(data=data, out=out, max_steps=1, batch_size=2, eval_batches=1, eval_every=0)
    return {**common, "checkpoint_every": 0, "progress": False, **own}


@pytest.mark.parametrize("kind", ["classify", "instruct", "dpo"])
def test_each_finetune_command_runs_from_a_toml_config_alone(
    kind: str, byte_checkpoint: Path, data_files: dict[str, Path], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    config = _toml(tmp_path / f"{kind}.toml", model=byte_checkpoint, **_settings(kind, data_files[kind], out))
    assert main(["finetune", kind, "--config", str(config)]) == 0, capsys.readouterr().err
    saved = json.loads((out / "train_config.json").read_text())  # the resolved config
    assert saved["model"] == str(byte_checkpoint) and saved["out"] == str(out)
    assert saved["max_steps"] == 1 and saved["epochs"] is None  # max_steps replaces the default epochs
    assert saved["tokenizer"] == "bpe"  # resolved from the base checkpoint
    assert json.loads((out / "final" / "config.json").read_text())["tokenizer"] == "bpe"
    if kind != "classify":
        assert saved["template"] == "alpaca"  # resolved: the base has none


def test_set_overrides_reach_the_config_and_json_is_one_document(
    byte_checkpoint: Path, data_files: dict[str, Path], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    config = _toml(tmp_path / "c.toml", **_settings("classify", data_files["classify"], out))
    argv = ["finetune", "classify", str(byte_checkpoint), "--config", str(config), "--json"]
    argv += ["--set", "grad_clip=null", "--set", "trainable=lora", "--set", "lora.rank=2", "--lr", "1e-3"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 1 and report["labels"] == ["ham", "spam"] and 0 <= report["test_accuracy"] <= 1
    saved = json.loads((out / "train_config.json").read_text())
    assert report["config"] == saved
    assert saved["grad_clip"] is None and saved["trainable"] == "lora" and saved["lora"]["rank"] == 2
    assert saved["lr"] == 1e-3 and saved["trainable"] == "lora"
    assert report["adapters"] == str(out / "adapters.safetensors") and (out / "merged").is_dir()


def test_the_deprecated_base_still_works_with_a_warning(
    byte_checkpoint: Path, data_files: dict[str, Path], tmp_path: Path, capsys
) -> None:
    config = _toml(tmp_path / "c.toml", **_settings("dpo", data_files["dpo"], tmp_path / "run"))
    assert main(["finetune", "dpo", "--base", str(byte_checkpoint), "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert (
        "warning: --base is deprecated and will be removed in scratchlm 0.4; use the positional MODEL" in err
    )
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["model"] == str(byte_checkpoint)
    args = ["finetune", "dpo", str(byte_checkpoint), "--base", str(byte_checkpoint), "--config", str(config)]
    assert main(args) == 2
    assert "give the base model once" in capsys.readouterr().err


def test_resume_refuses_a_changed_config_and_continues_an_unchanged_one(
    byte_checkpoint: Path, data_files: dict[str, Path], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    config = _toml(
        tmp_path / "c.toml", model=byte_checkpoint, **_settings("instruct", data_files["instruct"], out)
    )
    assert main(["finetune", "instruct", "--config", str(config)]) == 0
    capsys.readouterr()
    changed = ["finetune", "instruct", "--config", str(config), "--resume", "--max-steps", "2"]
    assert main([*changed, "--set", "lr=1e-3"]) == 2
    err = capsys.readouterr().err
    assert f"cannot resume {out}: the config differs from the run's (lr: 5e-05 -> 0.001)" in err
    after = ["--set", "test_limit=1", "--set", "max_new_tokens=2", "--json"]
    assert main([*changed, *after]) == 0  # after-training settings may change
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 2 and report["responses_file"] is not None


def test_a_command_without_a_base_says_how_to_give_one(data_files: dict[str, Path], tmp_path: Path, capsys):
    argv = ["finetune", "instruct", "--data", str(data_files["instruct"]), "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert "no model: give MODEL (a checkpoint directory or a preset name)" in capsys.readouterr().err


def test_help_shows_each_recipes_defaults_from_its_config(capsys) -> None:
    assert main(["finetune", "dpo", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Learning rate. [default: 5e-06]" in text and "[default: 0.01]" in text
    assert "--base" not in text  # hidden


def test_the_commands_speak_the_shared_vocabulary() -> None:
    assert vocabulary_problems(COMMANDS) == []


@pytest.mark.parametrize(("mode", "code"), [("int8", 0), ("bf16", 0), ("int4", 2)])
def test_chat_quantizes_its_weights(mode: str, code: int, byte_checkpoint: Path, monkeypatch, capsys) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO("Name a colour.\n"))
    assert main(["chat", str(byte_checkpoint), "--quantize", mode, "--max-new-tokens", "2"]) == code
    if code:
        assert "int4" in capsys.readouterr().err
