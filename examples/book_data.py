"""Where the examples find the book's data: --data-dir, $SCRATCHLM_TEST_DATA, or ../shared/data.

Imported by the example scripts (they run as ``python examples/NAME.py``, so this folder is
on ``sys.path``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BOOK_DATA", "data_dir"]

#: ``shared/data`` beside the repository, where the book's files live on the reference machine.
BOOK_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def data_dir(given: Path | None) -> Path | None:
    """The folder of the book's data: ``given``, $SCRATCHLM_TEST_DATA, ../shared/data, or None (download)."""
    if given is not None:
        return given
    if os.environ.get("SCRATCHLM_TEST_DATA"):
        return Path(os.environ["SCRATCHLM_TEST_DATA"])
    return BOOK_DATA if BOOK_DATA.is_dir() else None
