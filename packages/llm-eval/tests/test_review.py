"""The review page shows every field side by side, escaped."""

from __future__ import annotations

from llm_eval.review import render_review, write_review


def test_fields_are_escaped_and_shown() -> None:
    items = [
        {"index": 1, "instruction": "b", "output": "ref", "model_response": "<script>alert(1)</script>",
         "score": None, "errors": ["reply has no integer"]},
        {"index": 0, "instruction": "Say <b>hi</b> & bye", "input": "x", "output": "hi",
         "model_response": "hi", "score": 80},
    ]  # fmt: skip
    page = render_review(items)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Say &lt;b&gt;hi&lt;/b&gt; &amp; bye" in page
    assert page.index("Say &lt;b&gt;") < page.index("&lt;script&gt;")  # sorted by index
    assert '<td class="score">80</td>' in page and "failed: reply has no integer" in page
    assert "2 records, 1 scored, mean score 80.00" in page


def test_write_review_from_scores_file(tmp_path) -> None:
    scores = tmp_path / "s.jsonl"
    scores.write_text(
        '{"key": "k", "index": 0, "instruction": "i", "output": "o", "model_response": "r", "score": 10}\n'
        '{"key": "k", "index": 0, "instruction": "i", "output": "o", "model_response": "r", "score": 55}\n'
    )
    page = write_review(tmp_path / "review.html", scores).read_text()
    assert '<td class="score">55</td>' in page and "1 records" in page
