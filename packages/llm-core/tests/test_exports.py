"""llm_core.exports: the lazy export table of a package ``__init__``."""

from __future__ import annotations

import pytest

from llm_core.exports import export_table


def test_export_table_maps_each_name_to_its_submodule() -> None:
    table = export_table(
        """
        bpe: BPETokenizer
        loaders: GPTDatasetV1 WindowLoader
                 create_dataloader
        """
    )
    assert table == {
        "BPETokenizer": "bpe",
        "GPTDatasetV1": "loaders",
        "WindowLoader": "loaders",
        "create_dataloader": "loaders",
    }


@pytest.mark.parametrize("text", ["a: X\nb: X", "X Y"])
def test_a_name_twice_or_without_a_submodule_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="listed twice or before any"):
        export_table(text)
