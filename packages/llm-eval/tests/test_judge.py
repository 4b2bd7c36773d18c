"""LLM-as-a-judge against a scripted fake server on 127.0.0.1: good, garbage, slow, down, flaky, resume."""

from __future__ import annotations

import json
import re
import sys

import pytest

from llm_core.errors import ConfigError, DataError, MissingDependencyError
from llm_eval.judge import (
    JudgeServerError,
    OllamaJudge,
    OpenAIJudge,
    evaluate_judge,
    histogram,
    judge_prompt,
    parse_score,
    read_scores,
    run_judge,
)

RECORDS = [
    {"instruction": "Rewrite: rec-one", "input": "", "output": "A", "model_response": "A."},
    {"instruction": "Rewrite: rec-two", "input": "some input", "output": "B", "model_response": "B?"},
    {"instruction": "Rewrite: rec-three", "input": "", "output": "C", "model_response": "C!"},
]
SCORES = {"rec-one": "90", "rec-two": "Score: 45/100", "rec-three": "I would give it 7."}


def by_record(prompt: str, n: int) -> tuple[str, str]:
    name = re.search(r"rec-\w+", prompt).group(0)
    return ("ok", SCORES[name])


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("85", 85),
        ("Score: 92/100", 92),
        ("I'd rate it 100.", 100),
        ("-5, no: 7", 7),
        ("150 or maybe 60", 60),
        ("85.5 hmm, say 70", 70),
        ("0", 0),
        ("no number here", None),
        ("", None),
    ],
)
def test_parse_score(reply: str, score: int | None) -> None:
    assert parse_score(reply) == score


def test_prompt_is_the_books() -> None:
    entry = {"instruction": "Name a color.", "input": "", "output": "Blue.", "model_response": "Red."}
    assert judge_prompt(entry) == (
        "Given the input `Below is an instruction that describes a task. Write a response that "
        "appropriately completes the request.\n\n### Instruction:\nName a color.` and correct output "
        "`Blue.`, score the model response `Red.` on a scale from 0 to 100, where 100 is the best score. "
        "Respond with the integer number only."
    )


def test_histogram_buckets() -> None:
    assert histogram([0, 9, 10, 99, 100]) == {
        "0-9": 2, "10-19": 1, "20-29": 0, "30-39": 0, "40-49": 0,
        "50-59": 0, "60-69": 0, "70-79": 0, "80-89": 0, "90-100": 2,
    }  # fmt: skip


@pytest.mark.parametrize("backend", ["ollama", "openai"])
def test_good_replies_are_scored_and_written(fake_judge, tmp_path, backend) -> None:
    fake_judge.script = by_record
    path = tmp_path / "records.json"
    path.write_text(json.dumps(RECORDS))
    report = evaluate_judge(path, backend=backend, host=fake_judge.url, concurrency=2)
    assert report["scores"] == [90, 45, 7]
    assert report["mean_score"] == pytest.approx(142 / 3)
    assert report["scored"] == 3 and report["failed"] == 0
    assert report["histogram"]["90-100"] == 1 and report["histogram"]["40-49"] == 1
    lines = [json.loads(line) for line in (tmp_path / "records.judge.jsonl").read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == [0, 1, 2]
    assert {line["replies"][0] for line in lines} == set(SCORES.values())
    assert judge_prompt(RECORDS[1]) in fake_judge.prompts
    assert report.keys() >= evaluate_judge.schema


def test_reply_without_number_is_asked_again_then_fails(fake_judge, tmp_path) -> None:
    fake_judge.script = lambda prompt, n: (
        ("ok", "Great answer!") if "rec-two" in prompt or n == 1 else by_record(prompt, n)
    )
    judge = OllamaJudge(fake_judge.url, timeout=5)
    report = run_judge(RECORDS, judge, tmp_path / "s.jsonl", max_tries=3, concurrency=1, sleep=lambda s: None)
    assert report["scores"] == [90, None, 7]  # rec-one: "Great answer!" then "90"
    assert report["failed"] == 1 and report["failures"][0]["index"] == 1
    assert "no integer 0-100" in report["failures"][0]["error"]
    saved = {item["index"]: item for item in read_scores(tmp_path / "s.jsonl").values()}
    assert saved[0]["tries"] == 2 and saved[0]["replies"] == ["Great answer!", "90"]
    assert saved[1]["tries"] == 3 and saved[1]["replies"] == ["Great answer!"] * 3 and not saved[1]["ok"]


def test_server_down_is_one_clear_line(free_port, tmp_path) -> None:
    judge = OllamaJudge(f"http://127.0.0.1:{free_port}", timeout=2)
    with pytest.raises(JudgeServerError) as info:
        run_judge(RECORDS, judge, tmp_path / "s.jsonl")
    message = str(info.value)
    assert message.startswith(
        f"no judge server at http://127.0.0.1:{free_port}: start `ollama serve` or pass --host"
    )
    assert "\n" not in message
    with pytest.raises(JudgeServerError, match="no judge server at"):
        run_judge(RECORDS, OpenAIJudge(f"http://127.0.0.1:{free_port}", timeout=2), tmp_path / "s.jsonl")


def test_slow_server_times_out_and_is_retried(fake_judge, tmp_path) -> None:
    fake_judge.script = lambda prompt, n: ("sleep", 1.0, "50")
    judge = OllamaJudge(fake_judge.url, timeout=0.2)
    delays: list[float] = []
    report = run_judge(
        RECORDS[:1], judge, tmp_path / "s.jsonl", max_tries=2, backoff=0.5, sleep=delays.append
    )
    assert report["failed"] == 1 and "timeout" in report["failures"][0]["error"]
    assert len(fake_judge.prompts) == 2 and delays == [0.5]


def test_server_errors_back_off_exponentially_then_succeed(fake_judge, tmp_path) -> None:
    fake_judge.script = lambda prompt, n: ("status", 503) if n <= 2 else ("ok", "77")
    delays: list[float] = []
    judge = OpenAIJudge(fake_judge.url, timeout=5)
    report = run_judge(
        RECORDS[:1], judge, tmp_path / "s.jsonl", max_tries=3, backoff=0.25, sleep=delays.append
    )
    assert report["scores"] == [77] and delays == [0.25, 0.5]


def test_a_failing_record_does_not_lose_the_others(fake_judge, tmp_path) -> None:
    fake_judge.script = lambda prompt, n: ("status", 400) if "rec-two" in prompt else by_record(prompt, n)
    report = run_judge(RECORDS, OllamaJudge(fake_judge.url), tmp_path / "s.jsonl", sleep=lambda s: None)
    assert report["scores"] == [90, None, 7]
    assert "400" in report["failures"][0]["error"]


def test_resume_skips_scored_records(fake_judge, tmp_path) -> None:
    scores = tmp_path / "s.jsonl"
    fake_judge.script = lambda prompt, n: ("ok", "nope") if "rec-three" in prompt else by_record(prompt, n)
    first = run_judge(RECORDS, OllamaJudge(fake_judge.url), scores, max_tries=1)
    assert first["scores"] == [90, 45, None]
    with scores.open("a") as handle:
        handle.write('{"key": "trunc')  # a crash mid-line
    fake_judge.prompts.clear()
    fake_judge.script = by_record
    second = run_judge(RECORDS, OllamaJudge(fake_judge.url), scores, max_tries=1)
    assert second["scores"] == [90, 45, 7] and second["resumed"] == 2
    assert len(fake_judge.prompts) == 1 and "rec-three" in fake_judge.prompts[0]
    fake_judge.prompts.clear()
    third = run_judge(RECORDS, OllamaJudge(fake_judge.url), scores)
    assert third["resumed"] == 3 and fake_judge.prompts == []


def test_missing_judge_model_is_reported(fake_judge, tmp_path) -> None:
    fake_judge.models = ["mistral:latest"]
    with pytest.raises(
        JudgeServerError, match=r"judge model 'llama3' is not on the server.*ollama pull llama3"
    ):
        run_judge(RECORDS, OllamaJudge(fake_judge.url), tmp_path / "s.jsonl")


def test_bad_records_and_options(tmp_path) -> None:
    path = tmp_path / "r.json"
    path.write_text('[{"instruction": "x"}]')
    with pytest.raises(DataError, match="record #0: expected a string 'output'"):
        evaluate_judge(path)
    path.write_text('[{"instruction": "x", "output": "y"}]')
    with pytest.raises(DataError, match="record #0: expected a string 'model_response'"):
        evaluate_judge(path, host="http://127.0.0.1:9")
    path.write_text("[1,")
    with pytest.raises(DataError, match=r"r\.json:1: invalid JSON"):
        evaluate_judge(path)
    with pytest.raises(ConfigError, match="judge backend: expected one of ollama, openai"):
        evaluate_judge([], backend="vllm")


def test_missing_client_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ollama", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'llm-eval\[judge\]'"):
        OllamaJudge()


# -- cheap checks first, generated responses kept, progress shown -----------------------------------

UNANSWERED = [{"instruction": f"Rewrite: rec-{n}", "input": "", "output": "A"} for n in ("one", "two")]


@pytest.fixture
def loads(monkeypatch):
    """Counts how often a checkpoint's model is loaded to generate responses."""
    import llm_eval.checkpoints

    calls: list[str] = []
    real = llm_eval.checkpoints.load_model_and_tokenizer

    def counting(checkpoint, *args, **kwargs):
        calls.append(str(checkpoint))
        return real(checkpoint, *args, **kwargs)

    monkeypatch.setattr(llm_eval.checkpoints, "load_model_and_tokenizer", counting)
    return calls


def test_no_judge_server_is_reported_before_any_response_is_generated(
    free_port, gpt2_checkpoint, tmp_path, loads, capsys
) -> None:
    from llm_core.cli import main

    path = tmp_path / "records.json"
    path.write_text(json.dumps(UNANSWERED))
    host = f"http://127.0.0.1:{free_port}"
    code = main(["judge", str(path), str(gpt2_checkpoint), "--host", host, "--timeout", "2"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in err
    assert len(errors) == 1 and errors[0].startswith(f"error: no judge server at {host}")
    assert loads == []  # no model loaded, no response generated
    assert not (tmp_path / "records.judge.jsonl").exists()


def test_a_missing_judge_model_is_reported_before_generating(fake_judge, gpt2_checkpoint, tmp_path, loads):
    fake_judge.models = ["mistral:latest"]
    with pytest.raises(JudgeServerError, match="judge model 'llama3' is not on the server"):
        evaluate_judge(
            UNANSWERED, checkpoint=gpt2_checkpoint, host=fake_judge.url, scores=tmp_path / "s.jsonl"
        )
    assert loads == [] and fake_judge.prompts == []


def test_generated_responses_are_kept_and_a_resume_never_regenerates_them(
    fake_judge, gpt2_checkpoint, tmp_path, loads, capsys
) -> None:
    scores = tmp_path / "s.jsonl"
    options = dict(checkpoint=gpt2_checkpoint, max_new_tokens=3, scores=scores, max_tries=1, backoff=0.01)
    fake_judge.script = lambda prompt, n: ("status", 500)  # the judge fails every record this time
    first = evaluate_judge(UNANSWERED, host=fake_judge.url, **options)
    assert first["failed"] == 2 and len(loads) == 1
    err = capsys.readouterr().err
    assert "generating: 100%" in err and "2/2" in err and "judging" in err  # progress on stderr
    from llm_eval.judge import read_responses

    kept = read_responses(scores)
    assert len(kept) == 2 and all(isinstance(text, str) for text in kept.values())
    fake_judge.script = by_record
    second = evaluate_judge(UNANSWERED, host=fake_judge.url, **options)
    assert second["scores"] == [90, 45] and len(loads) == 1  # judged again, not generated again
    responses = {line["model_response"] for line in read_scores(scores).values() if line["ok"]}
    assert responses == set(kept.values())
    third = evaluate_judge(UNANSWERED, host="http://127.0.0.1:9", **options)  # all done: no server needed
    assert third["resumed"] == 2 and len(loads) == 1


def test_a_changed_token_budget_generates_again(fake_judge, gpt2_checkpoint, tmp_path, loads) -> None:
    fake_judge.script = by_record
    for budget in (2, 2, 3):
        evaluate_judge(
            UNANSWERED, checkpoint=gpt2_checkpoint, host=fake_judge.url, scores=tmp_path / "s.jsonl",
            max_new_tokens=budget, progress=False,
        )  # fmt: skip
    assert len(loads) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"kye": "k"}, "unknown key 'kye' (did you mean 'key'?)"),
        (
            {"key": "k", "index": 0, "instruction": "i", "output": "o", "model_response": "r"},
            "missing key 'score'",
        ),
        (
            {"kind": "response", "key": "k", "checkpoint": "c", "model_respons": "x", "time": 0},
            "model_respons",
        ),
        ([1, 2], "expected a JSON object, found list"),
    ],
)
def test_a_scores_line_with_wrong_keys_is_a_data_error_naming_the_line(tmp_path, line, message) -> None:
    scores = tmp_path / "s.jsonl"
    scores.write_text(json.dumps(line) + "\n")
    with pytest.raises(DataError) as info:
        read_scores(scores)
    assert str(info.value).startswith(f"{scores}:1: ") and message in str(info.value)


def test_judge_cli_takes_model_positionally_prints_json_and_keeps_old_spellings(
    fake_judge, gpt2_checkpoint, tmp_path, capsys
) -> None:
    """`judge RECORDS MODEL --judge-model NAME --json`; --checkpoint/--model still work, with a warning."""
    from llm_core.cli import main

    fake_judge.script = by_record
    fake_judge.models = ["my-judge:latest"]
    path = tmp_path / "records.json"
    path.write_text(json.dumps(UNANSWERED))
    common = ["--host", fake_judge.url, "--max-tries", "1", "--no-progress"]
    code = main(["judge", str(path), str(gpt2_checkpoint), "--judge-model", "my-judge", *common, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["scored"] == 2 and report["scores"] == [90, 45]
    (tmp_path / "records.judge.jsonl").unlink()
    code = main(["judge", str(path), "--checkpoint", str(gpt2_checkpoint), "--model", "my-judge", *common])
    captured = capsys.readouterr()
    assert code == 0 and "scored 2/2" in captured.out
    assert "--checkpoint is deprecated" in captured.err and "--model is deprecated" in captured.err
