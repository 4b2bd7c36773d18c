"""The book's word-level tokenizer (``SimpleTokenizerV2``, chapter 2) — for teaching only.

It splits on whitespace and punctuation with a regular expression, maps each piece
to an id from a vocabulary built from a corpus, and maps unknown pieces to
``<|unk|>``. Decoding joins pieces with spaces, so it does not give the exact text
back; use ``gpt2`` or ``bpe`` for real work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from llm_core.errors import DataError
from llm_data.tokenizers import token_ids_list

__all__ = ["SimpleTokenizerV2"]

SPLIT = re.compile(r'([,.:;?_!"()\']|--|\s)')
UNK = "<|unk|>"
ENDOFTEXT = "<|endoftext|>"


def _pieces(text: str) -> list[str]:
    return [piece.strip() for piece in SPLIT.split(text) if piece.strip()]


class SimpleTokenizerV2:
    """Word-level tokenizer with ``<|unk|>`` and ``<|endoftext|>`` (book listing 2.4)."""

    def __init__(self, vocab: dict[str, int]) -> None:
        for special in (ENDOFTEXT, UNK):
            if special not in vocab:
                raise DataError(f"SimpleTokenizerV2 vocabulary must contain {special!r}")
        self.str_to_int = dict(vocab)
        self.int_to_str = {i: s for s, i in vocab.items()}
        self.n_vocab = len(vocab)
        self.eot_token: int | None = vocab[ENDOFTEXT]

    @classmethod
    def from_text(cls, text: str) -> SimpleTokenizerV2:
        """The book's vocabulary: sorted unique pieces, then ``<|endoftext|>`` and ``<|unk|>``."""
        words = sorted(set(_pieces(text)) - {ENDOFTEXT, UNK})
        words += [ENDOFTEXT, UNK]
        return cls({word: i for i, word in enumerate(words)})

    def encode(self, text: str, **_: Any) -> list[int]:
        """Ids of the text's pieces; unknown pieces become ``<|unk|>``."""
        unk = self.str_to_int[UNK]
        return [self.str_to_int.get(piece, unk) for piece in _pieces(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Pieces joined by spaces, with the space before punctuation removed."""
        try:
            text = " ".join(self.int_to_str[i] for i in token_ids_list(ids))
        except KeyError as exc:
            raise DataError(
                f"token id {exc.args[0]} is outside this vocabulary 0..{self.n_vocab - 1}"
            ) from None
        return re.sub(r'\s+([,.:;?!"()\'])', r"\1", text)
