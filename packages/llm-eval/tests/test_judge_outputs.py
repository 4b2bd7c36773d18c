"""`scratchlm judge` never replaces or extends a file it did not write (--out, --review, --scores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_core.cli import main

RECORDS = [
    {"instruction": "Say hi", "input": "", "output": "hi", "model_response": "hi"},
    {"instruction": "Say bye", "input": "", "output": "bye", "model_response": "bye"},
]


@pytest.mark.parametrize("option", ["--out", "--review", "--scores"])
def test_judge_refuses_a_users_file_before_any_work(
    option: str, tmp_path: Path, free_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records.json"
    records.write_text(json.dumps(RECORDS))
    mine = tmp_path / "mine.txt"
    mine.write_text("my notes\n")
    host = f"http://127.0.0.1:{free_port}"  # nothing listens: the file is refused before that is found
    code = main(["judge", str(records), "--host", host, "--timeout", "1", option, str(mine)])
    err = capsys.readouterr().err
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: {option} {mine}: exists and was not written by `scratchlm judge`; "
        f"pass --overwrite to replace it, or choose another {option}"
    ]
    assert mine.read_text() == "my notes\n"


def test_judge_replaces_its_own_files_and_overwrite_allows_others(
    tmp_path: Path, fake_judge, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_judge.script = lambda prompt, n: "Score: 80"
    records = tmp_path / "records.json"
    records.write_text(json.dumps(RECORDS))
    out, review = tmp_path / "report.json", tmp_path / "review.html"
    argv = ["judge", str(records), "--host", fake_judge.url, "--out", str(out), "--review", str(review)]
    assert main([*argv, "--no-progress"]) == 0
    assert json.loads(out.read_text())["evaluator"] == "judge"
    assert main([*argv, "--no-progress"]) == 0  # its own report, page and scores: replaced / resumed
    review.write_text("<html>mine</html>")
    assert main([*argv, "--no-progress"]) == 2
    assert main([*argv, "--no-progress", "--overwrite"]) == 0
    assert "scratchlm judge" in review.read_text()
    capsys.readouterr()
