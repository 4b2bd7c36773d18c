"""ROUGE-L and exact match: known values, the report, and the `scratchlm evaluate rouge` command."""

from __future__ import annotations

import json

import pytest
from scratchlm_rouge import exact_match, rouge, rouge_l

from llm_core import DataError


def test_rouge_l_known_values() -> None:
    # LCS("the cat sat on the mat", "the cat lay on the mat") = 5 words of 6 each: F1 = 5/6
    assert rouge_l("The cat sat on the mat.", "the cat lay on the mat") == pytest.approx(5 / 6)
    assert rouge_l("a b c d", "d c b a") == pytest.approx(0.25)  # LCS 1: P = R = 1/4
    assert rouge_l("identical words", "Identical  words") == 1.0
    assert rouge_l("something", "") == 0.0


def test_exact_match_ignores_case_and_spacing_only() -> None:
    assert exact_match("The  answer is 4", "the answer is 4")
    assert not exact_match("The answer is 4.", "the answer is 4")


def test_report_over_a_responses_file(tmp_path) -> None:
    path = tmp_path / "responses.json"
    records = [
        {"instruction": "x", "output": "Paris", "model_response": "paris"},
        {"instruction": "y", "output": "the cat sat", "model_response": "a cat sat"},
    ]
    path.write_text(json.dumps(records))
    report = rouge(path)
    assert set(report) == rouge.schema
    assert report["n"] == 2 and report["exact_match"] == 0.5
    assert report["rouge_l"] == pytest.approx((1.0 + 2 / 3) / 2)


def test_a_record_without_a_response_is_a_data_error(tmp_path) -> None:
    path = tmp_path / "responses.json"
    path.write_text(json.dumps([{"output": "x"}]))
    with pytest.raises(DataError, match="record 0 lacks model_response"):
        rouge(path)


def test_scratchlm_evaluate_rouge(tmp_path, capsys) -> None:
    pytest.importorskip("llm_eval", reason="the evaluate command comes with llm-eval")
    from llm_core.cli import main

    path = tmp_path / "responses.json"
    path.write_text(json.dumps([{"output": "yes", "model_response": "Yes"}]))
    assert main(["evaluate", "rouge", "--responses", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exact_match"] == 1.0 and report["evaluator"] == "rouge"
