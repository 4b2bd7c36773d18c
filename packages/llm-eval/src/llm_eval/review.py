"""A static HTML page to review judged responses side by side.

One row per record: the instruction (and input), the reference answer, the
model's response and the judge's score (or the failure). Every field is
HTML-escaped, so a response containing markup is shown, never run.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llm_core.config_io import write_bytes_atomic

__all__ = ["REVIEW_SIGNATURE", "render_review", "write_review"]

#: In the head of every review page: how ``judge`` recognises a page it may replace.
REVIEW_SIGNATURE = '<meta name="generator" content="scratchlm judge">'

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #ccc; padding: .5rem; vertical-align: top; text-align: left; }
td pre { white-space: pre-wrap; margin: 0; font-family: inherit; }
td.score { font-weight: bold; text-align: center; }
tr.failed td.score { color: #b00; }
"""


def _cell(text: Any) -> str:
    return f"<td><pre>{html.escape(str(text if text is not None else ''))}</pre></td>"


def render_review(items: Iterable[dict[str, Any]], *, title: str = "scratchlm judge review") -> str:
    """The HTML page for judged items (dicts as written to the judge's JSONL scores file)."""
    rows = []
    scores = []
    for item in sorted(items, key=lambda i: i.get("index", 0)):
        instruction = str(item.get("instruction", ""))
        if item.get("input"):
            instruction += f"\n\nInput: {item['input']}"
        score = item.get("score")
        if score is None:
            last = (item.get("errors") or ["not judged"])[-1]
            score_text = f"failed: {last}"
        else:
            scores.append(score)
            score_text = str(score)
        css = "failed" if score is None else "scored"
        rows.append(
            f'<tr class="{css}"><td>{html.escape(str(item.get("index", "")))}</td>'
            + _cell(instruction)
            + _cell(item.get("output"))
            + _cell(item.get("model_response"))
            + f'<td class="score">{html.escape(score_text)}</td></tr>'
        )
    mean = f"{sum(scores) / len(scores):.2f}" if scores else "n/a"
    summary = f"{len(rows)} records, {len(scores)} scored, mean score {mean}"
    escaped_title = html.escape(title)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">{REVIEW_SIGNATURE}<title>{escaped_title}</title>'
        f"<style>{_STYLE}</style></head><body>\n"
        f"<h1>{escaped_title}</h1>\n<p>{html.escape(summary)}</p>\n"
        "<table><thead><tr><th>#</th><th>instruction</th><th>reference</th>"
        "<th>response</th><th>score</th></tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n"
        "</body></html>\n"
    )


def write_review(
    path: str | os.PathLike[str], scores: str | os.PathLike[str] | Iterable[dict[str, Any]]
) -> Path:
    """Write the review page for a scores JSONL file (or judged items) to ``path``, atomically."""
    if isinstance(scores, (str, os.PathLike)):
        from llm_eval.judge import read_scores

        items: Iterable[dict[str, Any]] = read_scores(scores).values()
    else:
        items = scores
    path = Path(path)
    write_bytes_atomic(path, render_review(items).encode("utf-8"))
    return path
