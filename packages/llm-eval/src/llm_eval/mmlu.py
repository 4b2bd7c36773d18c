"""MMLU (Hendrycks et al., 2021): k-shot multiple-choice accuracy from next-token logits.

Data layout (the original release): a directory with ``dev/`` and ``test/``,
one ``<subject>_dev.csv`` / ``<subject>_test.csv`` per subject, rows
``question, A, B, C, D, answer`` without a header. The prompt is::

    The following are multiple choice questions (with answers) about {subject}.\\n\\n
    {k dev questions, each "question\\nA. …\\nB. …\\nC. …\\nD. …\\nAnswer: X\\n\\n"}
    {test question}\\nA. …\\nB. …\\nC. …\\nD. …\\nAnswer:

and the model's answer is whichever of the tokens ``" A"``, ``" B"``, ``" C"``,
``" D"`` gets the highest logit at the last position. When a prompt does not
fit the context, shots are dropped (as the original evaluation does), then
the prompt is cropped from the left.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_core.errors import ConfigError, DataError, MissingDependencyError
from llm_eval.reports import evaluator

__all__ = [
    "LETTERS",
    "MMLUQuestion",
    "answer_token_ids",
    "build_prompt",
    "evaluate_mmlu",
    "format_question",
    "load_mmlu",
    "load_mmlu_hub",
    "read_mmlu_csv",
    "score_mmlu",
]

LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class MMLUQuestion:
    """One multiple-choice question: its text, four choices, the answer letter and where it came from."""

    question: str
    choices: tuple[str, str, str, str]
    answer: str
    source: str = ""


def read_mmlu_csv(path: str | os.PathLike[str]) -> list[MMLUQuestion]:
    """Read one MMLU CSV file; a malformed row raises :class:`DataError` naming ``file:line``."""
    path = Path(path)
    questions = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            previous = 0
            while True:
                line = previous + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise DataError(f"{path}:{line}: unreadable CSV ({exc}); expected 6 columns") from None
                previous = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank line
                if len(row) != 6:
                    raise DataError(
                        f"{path}:{line}: expected 6 columns (question, A, B, C, D, answer), "
                        f"found {len(row)}; "
                        "quote fields that contain commas"
                    )
                answer = row[5].strip()
                if answer not in LETTERS:
                    raise DataError(f"{path}:{line}: expected an answer A, B, C or D, found {row[5]!r}")
                if not row[0].strip():
                    raise DataError(f"{path}:{line}: expected a question, found an empty first column")
                questions.append(
                    MMLUQuestion(row[0], (row[1], row[2], row[3], row[4]), answer, f"{path}:{line}")
                )
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return questions


def _subjects_in(directory: Path, split: str) -> dict[str, Path]:
    folder = directory / split
    if not folder.is_dir():
        raise DataError(
            f"{directory}: expected an MMLU directory with dev/ and test/ folders, found no {split}/; "
            "download data.tar from the MMLU release and pass the extracted data/ directory"
        )
    suffix = f"_{split}.csv"
    return {p.name[: -len(suffix)]: p for p in sorted(folder.glob(f"*{suffix}"))}


def load_mmlu(
    directory: str | os.PathLike[str], split: str = "test", subjects: Sequence[str] | None = None
) -> dict[str, list[MMLUQuestion]]:
    """The questions of ``split`` (``test``, ``dev`` or ``val``) per subject, sorted by subject name."""
    directory = Path(directory)
    found = _subjects_in(directory, split)
    if not found:
        raise DataError(f"{directory / split}: expected <subject>_{split}.csv files, found none")
    if subjects:
        unknown = [s for s in subjects if s not in found]
        if unknown:
            raise DataError(
                f"{directory / split}: no subject(s) {', '.join(unknown)}; available: {', '.join(found)}"
            )
        found = {s: found[s] for s in subjects}
    return {subject: read_mmlu_csv(path) for subject, path in found.items()}


def load_mmlu_hub(
    split: str = "test", subjects: Sequence[str] | None = None
) -> dict[str, list[MMLUQuestion]]:
    """The ``cais/mmlu`` dataset from the Hugging Face hub (needs ``llm-eval[hub]`` and a network)."""
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError(
            "loading cais/mmlu needs the `datasets` package: pip install 'llm-eval[hub]' "
            "(or pass a local MMLU directory with --data-dir)"
        ) from None
    data = datasets.load_dataset("cais/mmlu", "all", split=split)
    out: dict[str, list[MMLUQuestion]] = {}
    for number, row in enumerate(data):
        if subjects and row["subject"] not in subjects:
            continue
        choices = tuple(row["choices"])
        if len(choices) != 4 or not 0 <= int(row["answer"]) < 4:
            raise DataError(f"cais/mmlu {split} row {number}: expected 4 choices and an answer 0-3")
        out.setdefault(row["subject"], []).append(
            MMLUQuestion(row["question"], choices, LETTERS[int(row["answer"])], f"cais/mmlu:{split}:{number}")
        )
    return dict(sorted(out.items()))


def format_question(question: MMLUQuestion, *, include_answer: bool) -> str:
    """``question\\nA. …\\nB. …\\nC. …\\nD. …\\nAnswer:`` plus `` X\\n\\n`` when ``include_answer``."""
    text = question.question + "".join(
        f"\n{letter}. {c}" for letter, c in zip(LETTERS, question.choices, strict=True)
    )
    text += "\nAnswer:"
    return text + (f" {question.answer}\n\n" if include_answer else "")


def build_prompt(subject: str, shots: Sequence[MMLUQuestion], question: MMLUQuestion) -> str:
    """The k-shot prompt for ``question`` (see the module docstring)."""
    header = (
        f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    )
    return (
        header
        + "".join(format_question(s, include_answer=True) for s in shots)
        + format_question(question, include_answer=False)
    )


def answer_token_ids(tokenizer: Any) -> list[int]:
    """The token ids of ``" A"``, ``" B"``, ``" C"``, ``" D"``; each must be a single token."""
    ids = []
    for letter in LETTERS:
        encoded = list(tokenizer.encode(f" {letter}"))
        if len(encoded) != 1:
            raise ConfigError(
                f"tokenizer: expected ' {letter}' to be one token, found {len(encoded)} ({encoded}); "
                "MMLU scoring needs a tokenizer such as gpt2 where ' A'..' D' are single tokens"
            )
        ids.append(encoded[0])
    return ids


def _fit_prompt(
    tokenizer: Any, subject: str, shots: Sequence[MMLUQuestion], question: MMLUQuestion, context: int
) -> tuple[list[int], int, bool]:
    """Token ids of the prompt with as many shots as fit; ``(ids, shots_used, cropped)``."""
    k = len(shots)
    while True:
        ids = list(tokenizer.encode(build_prompt(subject, shots[:k], question)))
        if len(ids) <= context:
            return ids, k, False
        if k == 0:
            return ids[-context:], 0, True
        k -= 1


def score_mmlu(
    model: Any,
    tokenizer: Any,
    test: dict[str, list[MMLUQuestion]],
    dev: dict[str, list[MMLUQuestion]] | None = None,
    *,
    k_shot: int = 5,
    batch_size: int = 8,
    max_questions: int | None = None,
) -> dict[str, Any]:
    """Score ``model`` on ``test`` questions with ``k_shot`` shots per subject from ``dev``.

    ``model`` maps token ids ``(b, t)`` to logits ``(b, t, vocab)``. Returns
    per-subject ``{"correct", "total", "accuracy"}``, ``macro_accuracy`` (mean
    of subject accuracies), ``micro_accuracy`` (over all questions), and
    ``predictions`` (one letter per question, per subject).
    """
    import torch

    if isinstance(k_shot, bool) or not isinstance(k_shot, int) or k_shot < 0:
        raise ConfigError(f"k_shot: expected an integer >= 0, got {k_shot!r}")
    letter_ids = answer_token_ids(tokenizer)
    context = int(model.config.context_length)
    device = next(model.parameters()).device
    subjects: dict[str, dict[str, Any]] = {}
    predictions: dict[str, list[str]] = {}
    cropped = 0
    shots_used = 0
    n_questions = 0
    was_training = model.training
    model.eval()
    try:
        for subject, questions in test.items():
            if max_questions is not None:
                questions = questions[:max_questions]
            if not questions:
                continue
            shots = (dev or {}).get(subject, [])[:k_shot]
            if k_shot and len(shots) < k_shot:
                raise DataError(
                    f"subject {subject}: expected {k_shot} dev questions for {k_shot}-shot prompts, "
                    f"found {len(shots)}; add <subject>_dev.csv rows or lower --k-shot"
                )
            prompts = []
            for question in questions:
                ids, k, was_cropped = _fit_prompt(tokenizer, subject, shots, question, context)
                prompts.append(ids)
                cropped += was_cropped
                shots_used += k
            letters: list[str] = []
            for start in range(0, len(prompts), batch_size):
                chunk = prompts[start : start + batch_size]
                width = max(len(p) for p in chunk)
                # Right padding is harmless for a causal model: we read each row's last real position.
                x = torch.tensor([p + [0] * (width - len(p)) for p in chunk], device=device)  # (b, width)
                last = torch.tensor([len(p) - 1 for p in chunk], device=device)  # (b,)
                with torch.no_grad():
                    logits = model(x)  # (b, width, vocab)
                final = logits[torch.arange(len(chunk), device=device), last]  # (b, vocab)
                choice = final[:, letter_ids].argmax(dim=-1)  # (b,)
                letters.extend(LETTERS[i] for i in choice.tolist())
            correct = sum(letter == q.answer for letter, q in zip(letters, questions, strict=True))
            subjects[subject] = {
                "correct": correct,
                "total": len(questions),
                "accuracy": correct / len(questions),
            }
            predictions[subject] = letters
            n_questions += len(questions)
    finally:
        model.train(was_training)
    if not subjects:
        raise DataError("MMLU: expected at least one test question, found none")
    return {
        "subjects": subjects,
        "macro_accuracy": sum(s["accuracy"] for s in subjects.values()) / len(subjects),
        "micro_accuracy": sum(s["correct"] for s in subjects.values()) / n_questions,
        "questions": n_questions,
        "k_shot": k_shot,
        "mean_shots_used": shots_used / n_questions,
        "cropped_prompts": cropped,
        "predictions": predictions,
    }


@evaluator(
    "mmlu",
    keys=[
        "checkpoint",
        "source",
        "subjects",
        "macro_accuracy",
        "micro_accuracy",
        "questions",
        "k_shot",
        "mean_shots_used",
        "cropped_prompts",
        "predictions",
    ],
)
def evaluate_mmlu(
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    hub: bool = False,
    k_shot: int = 5,
    subjects: Sequence[str] | str | None = None,
    max_questions: int | None = None,
    batch_size: int = 8,
    tokenizer: Any = None,
    model: Any = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """MMLU accuracy of a checkpoint (or ``model``) on a local MMLU directory (or ``cais/mmlu``: ``hub``)."""
    if isinstance(subjects, str):
        subjects = [s for s in subjects.split(",") if s]
    if data_dir is None and not hub:
        raise ConfigError("mmlu: expected --data-dir DIR (with dev/ and test/) or --hub for cais/mmlu")
    from llm_eval.checkpoints import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(checkpoint, tokenizer, model=model, device=device, evaluator="mmlu")
    if data_dir is not None:
        test = load_mmlu(data_dir, "test", subjects)
        dev = load_mmlu(data_dir, "dev", list(test)) if k_shot else {}
        source = str(data_dir)
    else:
        test = load_mmlu_hub("test", subjects)
        dev = load_mmlu_hub("dev", subjects) if k_shot else {}
        source = "cais/mmlu"
    result = score_mmlu(
        model, tok, test, dev, k_shot=k_shot, batch_size=batch_size, max_questions=max_questions
    )
    return {
        "evaluator": "mmlu",
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "source": source,
        **result,
    }
