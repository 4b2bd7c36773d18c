"""Tokenizer objects and :func:`get_tokenizer`, the one way to get a tokenizer by name.

Every tokenizer returned here has ``encode(text) -> list[int]`` (``<|endoftext|>`` allowed,
an ``allowed_special=`` keyword tolerated), ``decode(ids) -> str``, ``n_vocab: int`` and
``eot_token: int | None``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from llm_core.errors import DataError

__all__ = ["GPT2Tokenizer", "TiktokenTokenizer", "Tokenizer", "get_tokenizer", "token_ids_list"]


@runtime_checkable
class Tokenizer(Protocol):
    """What the rest of scratchlm expects from a tokenizer."""

    n_vocab: int
    eot_token: int | None

    def encode(self, text: str, **kwargs: Any) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...


def token_ids_list(ids: Any, *, n_vocab: int | None = None, vocabulary: str = "") -> list[int]:
    """``ids`` (a list, numpy array or torch tensor of integers) as a flat list of Python ints.

    With ``n_vocab``, an id outside ``0..n_vocab-1`` is a :class:`DataError` naming the
    ``vocabulary`` (which tokenizer, and what to check).
    """
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    out = list(ids)
    if out and isinstance(out[0], list):
        raise DataError(f"expected a flat sequence of token ids, got a nested sequence ({len(out)} rows)")
    result = [int(i) for i in out]
    if n_vocab is not None:
        bad = [i for i in result if not 0 <= i < n_vocab]
        if bad:
            raise DataError(f"token id {bad[0]} is outside the vocabulary 0..{n_vocab - 1} {vocabulary}")
    return result


class TiktokenTokenizer:
    """A ``tiktoken.Encoding`` behind the scratchlm tokenizer interface.

    Special tokens are allowed by default (``<|endoftext|>`` in the text becomes its id);
    pass ``allowed_special=set()`` to encode them as plain text.
    """

    def __init__(self, encoding: Any, name: str | None = None) -> None:
        self.encoding = encoding
        self.name = name or encoding.name
        self.n_vocab: int = encoding.n_vocab
        try:
            self.eot_token: int | None = encoding.encode_single_token("<|endoftext|>")
        except KeyError:
            self.eot_token = None
        self._specials: tuple[str, ...] = tuple(encoding.special_tokens_set)

    def _has_special(self, text: str) -> bool:
        """Whether ``text`` holds a special token's string (else encode_ordinary gives the same ids)."""
        return any(special in text for special in self._specials)

    def encode(self, text: str, *, allowed_special: Any = "all", **_: Any) -> list[int]:
        """Token ids of ``text``."""
        if not allowed_special or not self._has_special(text):
            return self.encoding.encode_ordinary(text)  # the same ids, without the special-token pass
        return self.encoding.encode(text, allowed_special=allowed_special, disallowed_special=())

    def encode_array(self, text: str) -> Any:
        """Token ids of ``text`` as a ``uint32`` numpy array (special tokens allowed, as :meth:`encode`).

        Straight from tiktoken's buffer (``encode_to_numpy``, tiktoken >= 0.8) without a
        Python list in between; for ``prepare``.
        """
        import numpy as np

        to_numpy = getattr(self.encoding, "encode_to_numpy", None)
        if to_numpy is None:  # pragma: no cover - tiktoken 0.7
            return np.asarray(self.encode(text), dtype=np.uint32)
        specials = self._specials if self._has_special(text) else ()
        return to_numpy(text, allowed_special=set(specials), disallowed_special=())

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of several texts (threads inside tiktoken)."""
        return self.encoding.encode_batch(texts, allowed_special="all", disallowed_special=())

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids; an id outside ``0..n_vocab-1`` raises :class:`DataError`."""
        where = f"of this tokenizer ({self.name}); check the ids or the --tokenizer"
        return self.encoding.decode(token_ids_list(ids, n_vocab=self.n_vocab, vocabulary=where))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n_vocab={self.n_vocab})"


class GPT2Tokenizer(TiktokenTokenizer):
    """GPT-2 BPE (tiktoken's ``gpt2`` encoding; offline files when installed)."""

    def __init__(self) -> None:
        from llm_data.gpt2 import gpt2_encoding

        super().__init__(gpt2_encoding(), name="gpt2")


class _Adapter:
    """Give a third-party tokenizer the missing parts of the interface (``eot_token``, kwargs)."""

    def __init__(self, inner: Any, name: str) -> None:
        self.inner = inner
        self.name = name
        self.n_vocab = int(inner.n_vocab)
        self.eot_token = getattr(inner, "eot_token", None)

    def encode(self, text: str, **_: Any) -> list[int]:
        return list(self.inner.encode(text))

    def decode(self, ids: Iterable[int]) -> str:
        return self.inner.decode(token_ids_list(ids))


def get_tokenizer(name: str | os.PathLike[str] = "gpt2") -> Tokenizer:
    """The tokenizer registered as ``name`` (``gpt2``, ``bpe``, ``simple`` or a plugin's).

    ``name`` may also be the path of a BPE tokenizer saved with :meth:`BPETokenizer.save`
    (a ``.json`` file). An unknown name raises the registry's :class:`~llm_core.errors.PluginError`
    listing the registered names.
    """
    from llm_core import load_tokenizer

    name = str(name)
    tokenizer = load_tokenizer(name)
    if all(hasattr(tokenizer, a) for a in ("encode", "decode", "n_vocab", "eot_token")):
        return tokenizer
    return _Adapter(tokenizer, name)


def resolve_tokenizer(tokenizer: Any) -> Any:
    """A tokenizer object from a name, a path or an object (returned as is)."""
    if isinstance(tokenizer, (str, os.PathLike)):
        return get_tokenizer(tokenizer)
    if not all(hasattr(tokenizer, a) for a in ("encode", "decode")):
        raise DataError(
            f"expected a tokenizer name or an object with encode/decode, got {type(tokenizer).__name__}"
        )
    return tokenizer
