"""Exact match and ROUGE-L (Lin, 2004) over a responses file: no torch, no model needed.

The file is the JSON list the book's chapter 7 writes (``instruction-data-with-response.json``):
records with the reference ``output`` and the ``model_response``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from llm_core.errors import DataError

__all__ = ["exact_match", "rouge", "rouge_l"]

_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def exact_match(reference: str, response: str) -> bool:
    """Equal after lower-casing and collapsing whitespace."""
    return " ".join(reference.lower().split()) == " ".join(response.lower().split())


def rouge_l(reference: str, response: str) -> float:
    """ROUGE-L F1: the longest common word subsequence's precision and recall, harmonic mean."""
    ref, hyp = _words(reference), _words(response)
    if not ref or not hyp:
        return float(ref == hyp)
    previous = [0] * (len(hyp) + 1)
    for r in ref:  # dynamic programming over the LCS table, one row at a time
        current = [0]
        for j, h in enumerate(hyp, start=1):
            current.append(previous[j - 1] + 1 if r == h else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge(
    responses: str | Path, *, reference_key: str = "output", response_key: str = "model_response"
) -> dict[str, Any]:
    """Mean exact match and ROUGE-L F1 of every record's ``response_key`` against its ``reference_key``."""
    path = Path(responses)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"--responses {path}: not found; expected a JSON list of response records") from None
    except ValueError as exc:
        raise DataError(f"--responses {path}: not valid JSON ({exc})") from None
    if not isinstance(records, list) or not records:
        raise DataError(f"--responses {path}: expected a non-empty JSON list of records")
    scores = []
    for number, record in enumerate(records):
        missing = [
            k for k in (reference_key, response_key) if not isinstance(record, dict) or k not in record
        ]
        if missing:
            raise DataError(
                f"--responses {path}: record {number} lacks {', '.join(missing)}; "
                f"expected '{reference_key}' and '{response_key}' (or pass --reference-key/--response-key)"
            )
        reference, response = str(record[reference_key]), str(record[response_key])
        scores.append((exact_match(reference, response), rouge_l(reference, response)))
    return {
        "evaluator": "rouge",
        "responses": str(path),
        "n": len(scores),
        "exact_match": sum(e for e, _ in scores) / len(scores),
        "rouge_l": sum(r for _, r in scores) / len(scores),
    }


rouge.schema = frozenset({"evaluator", "responses", "n", "exact_match", "rouge_l"})  # type: ignore[attr-defined]
