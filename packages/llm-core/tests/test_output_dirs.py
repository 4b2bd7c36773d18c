"""Output directories: a command writes only into a directory that is new, empty or its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_core.errors import ConfigError
from llm_core.output_dirs import (
    OUTPUT_MARKER,
    check_output_dir,
    check_output_file,
    claim_output_dir,
    read_output_marker,
    write_output_marker,
)


def test_a_new_directory_is_created_and_marked_first(tmp_path: Path) -> None:
    out = claim_output_dir(tmp_path / "a" / "run", command="pretrain")
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER]
    assert read_output_marker(out) == {"format_version": 1, "command": "pretrain"}


def test_an_empty_directory_is_accepted_and_marked(tmp_path: Path) -> None:
    claim_output_dir(tmp_path, command="prepare")
    assert read_output_marker(tmp_path) == {"format_version": 1, "command": "prepare"}


def test_a_directory_of_the_same_command_is_accepted_again(tmp_path: Path) -> None:
    claim_output_dir(tmp_path, command="pretrain")
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    assert check_output_dir(tmp_path, command="pretrain") is True
    claim_output_dir(tmp_path, command="pretrain")
    assert (tmp_path / "metrics.jsonl").read_text() == "{}\n"


def test_a_users_directory_is_refused_in_one_line_naming_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "keep.txt").write_text("keep")
    (tmp_path / "metrics.jsonl").write_text("mine")
    with pytest.raises(ConfigError) as caught:
        claim_output_dir(tmp_path, command="pretrain")
    message = str(caught.value)
    assert "\n" not in message
    assert f"--out {tmp_path}: not empty (best/, metrics.jsonl)" in message
    assert "pass --overwrite" in message
    assert not (tmp_path / OUTPUT_MARKER).exists()  # nothing written


def test_many_entries_are_counted_not_listed(tmp_path: Path) -> None:
    for name in "abcde":
        (tmp_path / name).write_text(name)
    with pytest.raises(ConfigError, match=r"not empty \(a, b, c and 2 more\)"):
        check_output_dir(tmp_path, command="judge", option="--review")


def test_overwrite_accepts_a_users_directory_and_marks_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    claim_output_dir(tmp_path, command="export-hf", overwrite=True)
    assert read_output_marker(tmp_path) == {"format_version": 1, "command": "export-hf"}
    assert (tmp_path / "notes.txt").read_text() == "mine"  # overwrite allows writing, deletes nothing


def test_another_commands_directory_is_refused_unless_overwrite(tmp_path: Path) -> None:
    claim_output_dir(tmp_path, command="prepare")
    refused = r"holds the output of `scratchlm prepare`, not of `scratchlm pretrain`"
    with pytest.raises(ConfigError, match=refused):
        claim_output_dir(tmp_path, command="pretrain")
    claim_output_dir(tmp_path, command="pretrain", overwrite=True)
    assert read_output_marker(tmp_path) == {"format_version": 1, "command": "pretrain"}


def test_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        claim_output_dir(tmp_path / "file", command="pretrain", overwrite=True)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "unreadable scratchlm output marker"),
        ("[1]", "expected a JSON object"),
        ('{"format_version": 1, "comand": "pretrain"}', r"unknown key 'comand' \(did you mean 'command'\?\)"),
        ('{"format_version": 7, "command": "pretrain"}', "expected format_version 1"),
    ],
)
def test_a_damaged_marker_is_a_config_error_naming_it(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / OUTPUT_MARKER).write_text(content)
    with pytest.raises(ConfigError, match=match) as caught:
        check_output_dir(tmp_path, command="pretrain")
    assert str(tmp_path / OUTPUT_MARKER) in str(caught.value)


def test_write_output_marker_marks_a_temporary_directory(tmp_path: Path) -> None:
    path = write_output_marker(tmp_path / "tmp", "prepare")
    assert json.loads(path.read_text()) == {"command": "prepare", "format_version": 1}


def test_an_output_file_is_replaced_only_when_the_command_wrote_it(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    check_output_file(report, command="judge", signature='"evaluator": "judge"')  # new
    report.write_text("")
    check_output_file(report, command="judge", signature='"evaluator": "judge"')  # empty
    report.write_text('{\n  "evaluator": "judge",\n  "scored": 2\n}\n')
    check_output_file(report, command="judge", signature='"evaluator": "judge"')  # its own
    report.write_text("my notes")
    with pytest.raises(ConfigError) as caught:
        check_output_file(report, command="judge", signature='"evaluator": "judge"', option="--review")
    assert str(caught.value) == (
        f"--review {report}: exists and was not written by `scratchlm judge`; "
        "pass --overwrite to replace it, or choose another --review"
    )
    check_output_file(report, command="judge", signature="x", overwrite=True)
    with pytest.raises(ConfigError, match="is a directory"):
        check_output_file(tmp_path, command="judge", signature="x", overwrite=True)
