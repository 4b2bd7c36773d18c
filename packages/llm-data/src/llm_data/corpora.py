"""Plain-text corpora: the embedded ``python-docs`` corpus and the book's ``the-verdict``."""

from __future__ import annotations

import os

from llm_core.errors import MissingDependencyError
from llm_data.fetchers import local_or_fetch
from llm_data.text_files import read_text_file

__all__ = ["python_docs_documents", "python_docs_text", "the_verdict"]


def python_docs_documents() -> list[str]:
    """The topics of CPython's embedded documentation (``pydoc_data.topics``), sorted by name."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # pragma: no cover - some distributions strip pydoc_data
        raise MissingDependencyError(
            "the python-docs corpus needs the standard library's pydoc_data module, which this Python "
            "lacks; install the full Python standard library (e.g. the distribution's python3-doc/stdlib "
            "package) or use another corpus"
        ) from None
    return [topics[name].strip() for name in sorted(topics)]


def python_docs_text() -> str:
    """The ``python-docs`` corpus: CPython's documentation topics joined by blank lines (about 450 kB)."""
    return "\n\n".join(python_docs_documents()) + "\n"


def python_docs(root: str | os.PathLike[str] | None = None, **options: object) -> dict[str, list[str]]:
    """Dataset ``python-docs``: ``{"train": [one string per documentation topic]}`` (``root`` unused)."""
    return {"train": python_docs_documents()}


def the_verdict(root: str | os.PathLike[str] | None = None, **options: object) -> dict[str, list[str]]:
    """Dataset ``the-verdict``: ``{"train": [text]}`` from ``root/the-verdict.txt`` or the cached download."""
    return {"train": [read_text_file(local_or_fetch("the-verdict", root))]}
