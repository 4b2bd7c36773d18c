"""llm-eval installs alone, registers its evaluators and commands, and passes the conformance checks."""

from __future__ import annotations

import json

import pytest

from llm_core import PluginError, PluginManager, get_registry
from llm_core.cli import main
from llm_eval.commands import parse_evaluator_args, run_evaluator
from llm_eval.conformance import evaluator_declares_schema


def test_builtin_plugin_is_registered() -> None:
    info = {i.name: i for i in PluginManager(env="").plugins()}
    assert info["llm_eval"].builtin
    assert info["llm_eval"].distribution == "llm-eval"
    assert info["llm_eval"].errors == []


@pytest.mark.parametrize("name", ["perplexity", "accuracy", "mmlu", "judge"])
def test_evaluators_are_registered_and_conform(name: str) -> None:
    obj = get_registry("evaluators")[name].obj
    evaluator_declares_schema(name, obj)
    assert "evaluator" in obj.schema


def test_conformance_check_rejects_an_evaluator_without_schema() -> None:
    with pytest.raises(AssertionError, match="has no `schema`"):
        evaluator_declares_schema("bad", lambda: {})


def test_unknown_evaluator_is_the_registry_error() -> None:
    with pytest.raises(PluginError, match="perplexity"):
        run_evaluator("no-such-evaluator")


def test_parse_evaluator_args() -> None:
    assert parse_evaluator_args(["ck", "--text", "a.txt", "--stride=16", "--hub", "--k-shot", "0"]) == (
        ["ck"],
        {"text": "a.txt", "stride": 16, "hub": True, "k_shot": 0},
    )


def test_cli_evaluate_writes_the_report(tmp_path, capsys) -> None:
    out = tmp_path / "report.json"
    args = ["evaluate", "accuracy", "--predictions", "[0, 1, 1]", "--labels", "[0, 1, 0]", "--out", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["accuracy"] == pytest.approx(2 / 3) and report["confusion_matrix"] == [[1, 1], [0, 1]]
    assert "accuracy: 0.666" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


def test_cli_errors_are_one_line(tmp_path, capsys, free_port) -> None:
    assert main(["evaluate", "accuracy", "--bogus", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown option(s) --bogus" in err and "--predictions" in err
    assert main(["evaluate", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    records = tmp_path / "r.json"
    records.write_text('[{"instruction": "x", "input": "", "output": "y", "model_response": "z"}]')
    assert main(["judge", str(records), "--host", f"http://127.0.0.1:{free_port}", "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert f"no judge server at http://127.0.0.1:{free_port}: start `ollama serve` or pass --host" in err
    assert len(err.strip().splitlines()) == 1
