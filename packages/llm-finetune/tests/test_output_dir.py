"""Every finetune command refuses, before loading anything, an --out that holds a user's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_core.cli import main


@pytest.mark.parametrize("command", ["classify", "instruct", "dpo"])
def test_finetune_never_writes_into_a_users_directory(command: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    args = ["finetune", command, str(tmp_path / "no-such-base"), "--data", str(tmp_path / "none")]
    code = main([*args, "--out", str(out), "--max-steps", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith(
            f"--out {out}: not empty (notes.txt) and not written by scratchlm (no .scratchlm-run.json); "
            "pass --overwrite to write into it anyway, or choose another --out"
        )
    )  # checked before the (missing) base and data are even looked at
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_pretraining_run_is_not_a_finetune_output(tmp_path: Path, capsys) -> None:
    from llm_core.output_dirs import claim_output_dir

    claim_output_dir(tmp_path / "run", command="pretrain")
    (tmp_path / "run" / "metrics.jsonl").write_text("{}\n")
    args = ["finetune", "classify", "tiny", "--data", str(tmp_path / "none")]
    assert main([*args, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    refusal = "holds the output of `scratchlm pretrain`, not of `scratchlm finetune classify`"
    assert refusal in capsys.readouterr().err
