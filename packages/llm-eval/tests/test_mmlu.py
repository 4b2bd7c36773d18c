"""MMLU: CSV parsing (file:line errors), the exact prompt, and scoring proven with stub models."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from llm_core.errors import ConfigError, DataError, MissingDependencyError
from llm_eval.mmlu import (
    MMLUQuestion,
    answer_token_ids,
    build_prompt,
    evaluate_mmlu,
    load_mmlu,
    read_mmlu_csv,
    score_mmlu,
)

TEST = {
    "high_school_physics": [
        ("What is the unit of force?", "Joule", "Watt", "Newton", "Pascal one", "C"),
        ("Speed of light, roughly?", "3e8 m/s", "3e5 m/s", "3e2 m/s", "Pascal two", "A"),
        ("Which is a vector?", "mass", "time", "energy", "velocity, of course", "D"),
    ],
    "world_religions": [
        ("Which city is holy in Islam?", "Rome", "Mecca", "Kyoto", "Pascal three", "B"),
        ("The Tao Te Ching is attributed to?", "Confucius", "Laozi", "Mencius", "Pascal four", "B"),
    ],
}
DEV = {
    "high_school_physics": [
        ("Unit of energy?", "Joule", "Newton", "Volt", "Ohm", "A"),
        ("Unit of power?", "Joule", "Watt", "Volt", "Ohm", "B"),
    ],
    "world_religions": [
        ("Language of the Quran?", "Latin", "Arabic", "Greek", "Hebrew", "B"),
        ("Where was the Buddha born?", "Lumbini", "Rome", "Mecca", "Paris", "A"),
    ],
}


def write_csv(path: Path, rows: list[tuple[str, ...]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


@pytest.fixture
def mmlu_dir(tmp_path: Path) -> Path:
    for subject, rows in TEST.items():
        write_csv(tmp_path / "test" / f"{subject}_test.csv", rows)
        write_csv(tmp_path / "dev" / f"{subject}_dev.csv", DEV[subject])
    return tmp_path


class StubLM(nn.Module):
    """A causal stub: at a position whose last KEY tokens end a known question, favour that answer's letter.

    Everywhere else it favours " A", and at the answer position it gives a non-letter token an
    even larger logit, so only scoring the last real position restricted to " A".." D" is right.
    """

    KEY = 12

    def __init__(
        self, answers: dict[tuple[int, ...], int], vocab: int, letter_ids: list[int], context: int = 1024
    ):
        super().__init__()
        self.answers = answers
        self.vocab = vocab
        self.letter_ids = letter_ids
        self.config = type("Config", (), {"context_length": context})()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape
        logits = torch.zeros(b, t, self.vocab)
        logits[:, :, self.letter_ids[0]] = 5.0  # " A" by default
        for row in range(b):
            ids = x[row].tolist()
            for pos in range(self.KEY - 1, t):
                letter = self.answers.get(tuple(ids[pos - self.KEY + 1 : pos + 1]))
                if letter is not None:
                    logits[row, pos, :] = 0.0
                    logits[row, pos, 262] = 50.0  # " the": not an answer token
                    logits[row, pos, self.letter_ids[letter]] = 10.0
        return logits


class ConstantLM(nn.Module):
    """Always favours one answer letter."""

    def __init__(self, token: int, vocab: int) -> None:
        super().__init__()
        self.token = token
        self.vocab = vocab
        self.config = type("Config", (), {"context_length": 1024})()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*x.shape, self.vocab)
        logits[..., self.token] = 1.0
        return logits


def oracle(tokenizer, test, flip: bool = False, context: int = 1024) -> StubLM:
    letters = answer_token_ids(tokenizer)
    answers = {}
    for subject, questions in test.items():
        for q in questions:
            key = tuple(tokenizer.encode(build_prompt(subject, [], q))[-StubLM.KEY :])
            index = "ABCD".index(q.answer)
            answers[key] = (index + 1) % 4 if flip else index
    return StubLM(answers, tokenizer.n_vocab, letters, context)


def test_prompt_format_is_exact() -> None:
    shot = MMLUQuestion("1+1?", ("1", "2", "3", "4"), "B")
    question = MMLUQuestion("2+2?", ("4", "5", "6", "7"), "A")
    assert build_prompt("high_school_math", [shot], question) == (
        "The following are multiple choice questions (with answers) about high school math.\n\n"
        "1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
        "2+2?\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer:"
    )


def test_answer_tokens_are_gpt2_ids(gpt2_tokenizer) -> None:
    assert answer_token_ids(gpt2_tokenizer) == [317, 347, 327, 360]


def test_oracle_scores_perfectly_and_anti_oracle_scores_zero(mmlu_dir, gpt2_tokenizer) -> None:
    test = load_mmlu(mmlu_dir, "test")
    dev = load_mmlu(mmlu_dir, "dev")
    perfect = score_mmlu(oracle(gpt2_tokenizer, test), gpt2_tokenizer, test, dev, k_shot=2, batch_size=2)
    assert perfect["micro_accuracy"] == 1.0 and perfect["macro_accuracy"] == 1.0
    assert perfect["predictions"] == {"high_school_physics": ["C", "A", "D"], "world_religions": ["B", "B"]}
    assert perfect["mean_shots_used"] == 2 and perfect["cropped_prompts"] == 0
    wrong = score_mmlu(oracle(gpt2_tokenizer, test, flip=True), gpt2_tokenizer, test, dev, k_shot=2)
    assert wrong["micro_accuracy"] == 0.0


def test_constant_answer_gives_hand_computed_accuracies(mmlu_dir, gpt2_tokenizer) -> None:
    model = ConstantLM(answer_token_ids(gpt2_tokenizer)[2], gpt2_tokenizer.n_vocab)  # always " C"
    report = evaluate_mmlu(model=model, tokenizer=gpt2_tokenizer, data_dir=mmlu_dir, k_shot=1)
    assert report["subjects"]["high_school_physics"] == {"correct": 1, "total": 3, "accuracy": 1 / 3}
    assert report["subjects"]["world_religions"] == {"correct": 0, "total": 2, "accuracy": 0.0}
    assert report["macro_accuracy"] == pytest.approx(1 / 6)
    assert report["micro_accuracy"] == pytest.approx(1 / 5)
    assert report.keys() >= evaluate_mmlu.schema


def test_shots_are_dropped_then_prompt_cropped_to_fit_the_context(mmlu_dir, gpt2_tokenizer) -> None:
    test = load_mmlu(mmlu_dir, "test")
    dev = load_mmlu(mmlu_dir, "dev")
    model = oracle(gpt2_tokenizer, test, context=20)
    report = score_mmlu(model, gpt2_tokenizer, test, dev, k_shot=2)
    assert report["mean_shots_used"] == 0 and report["cropped_prompts"] == 5
    assert report["micro_accuracy"] == 1.0  # the end of the prompt (where the answer goes) is kept


def test_malformed_rows_name_file_and_line(tmp_path) -> None:
    path = tmp_path / "x_test.csv"
    path.write_text('"multi\nline question?",a,b,c,d,A\nq2,a,b,c,d,B\nq3,a,b,c,D\n', encoding="utf-8")
    with pytest.raises(
        DataError, match=r"x_test.csv:4: expected 6 columns \(question, A, B, C, D, answer\), found 5"
    ):
        read_mmlu_csv(path)
    path.write_text("q1,a,b,c,d,A\nq2,a,b,c,d,E\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x_test.csv:2: expected an answer A, B, C or D, found 'E'"):
        read_mmlu_csv(path)


def test_layout_errors(mmlu_dir, tmp_path, gpt2_tokenizer, monkeypatch) -> None:
    with pytest.raises(DataError, match="found no dev/"):
        load_mmlu(tmp_path / "nowhere", "dev")
    with pytest.raises(
        DataError, match=r"no subject.*astronomy.*available: high_school_physics, world_religions"
    ):
        load_mmlu(mmlu_dir, "test", ["astronomy"])
    test = load_mmlu(mmlu_dir, "test")
    model = ConstantLM(317, gpt2_tokenizer.n_vocab)
    with pytest.raises(DataError, match="expected 5 dev questions"):
        score_mmlu(model, gpt2_tokenizer, test, load_mmlu(mmlu_dir, "dev"), k_shot=5)
    with pytest.raises(ConfigError, match="--data-dir"):
        evaluate_mmlu(model=model, tokenizer=gpt2_tokenizer)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(MissingDependencyError, match=r"llm-eval\[hub\]"):
        evaluate_mmlu(model=model, tokenizer=gpt2_tokenizer, hub=True)


def test_tokenizer_without_single_letter_tokens_is_rejected() -> None:
    class CharTokenizer:
        def encode(self, text: str) -> list[int]:
            return [ord(c) for c in text]

    with pytest.raises(ConfigError, match="' A' to be one token, found 2"):
        answer_token_ids(CharTokenizer())
