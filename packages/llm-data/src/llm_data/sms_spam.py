"""The UCI SMS Spam Collection (book chapter 6): parse, balance, split, and a padded torch Dataset.

The file is tab-separated ``label<TAB>text`` lines, labels ``ham`` or ``spam``. As in the
book, ham is undersampled to the spam count (seeded), the rows are shuffled (seeded) and
split 70/10/20 into ``train``/``val``/``test``. The book uses pandas' sampler; this uses
:class:`random.Random`, so the split sizes match the book (1045/149/300) but not the rows.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from llm_core.errors import ConfigError, DataError
from llm_data.fetchers import local_or_fetch
from llm_data.text_files import read_text_file

__all__ = ["LABELS", "SpamDataset", "balance", "parse_sms_spam", "random_split", "sms_spam"]

#: Class ids: ham = 0, spam = 1.
LABELS = {"ham": 0, "spam": 1}


def parse_sms_spam(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records ``{"text": str, "label": 0|1}``; a malformed line raises :class:`DataError` (file:line)."""
    path = Path(path)
    records = []
    # Lines end at \n (or \r\n) only: str.splitlines() would also cut a message at \x1e, U+2028 …
    for number, line in enumerate(read_text_file(path).split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        label, sep, text = line.partition("\t")
        if not sep:
            raise DataError(f"{path}:{number}: expected 'label<TAB>text', found no tab: {line[:60]!r}")
        if label not in LABELS:
            raise DataError(f"{path}:{number}: label {label!r} is not one of {', '.join(LABELS)}")
        records.append({"text": text, "label": LABELS[label]})
    if not records:
        raise DataError(f"{path}: no rows; expected 'label<TAB>text' lines")
    return records


def balance(records: list[dict[str, Any]], seed: int = 123) -> list[dict[str, Any]]:
    """Undersample ham (label 0) to the number of spam rows; ham sample first, then spam (as the book)."""
    spam = [r for r in records if r["label"] == 1]
    ham = [r for r in records if r["label"] == 0]
    if not spam or not ham:
        raise DataError(f"cannot balance: found {len(ham)} ham and {len(spam)} spam rows; need both")
    return random.Random(seed).sample(ham, min(len(spam), len(ham))) + spam


def random_split(
    records: list[Any], train_frac: float = 0.7, val_frac: float = 0.1, seed: int = 123
) -> dict[str, list[Any]]:
    """Shuffle (seeded) and cut into ``train``/``val``/``test`` with ``int()`` sizes, like the book."""
    if train_frac <= 0 or val_frac < 0 or train_frac + val_frac > 1:
        raise ConfigError(f"train_frac={train_frac}, val_frac={val_frac}: expected fractions summing to <= 1")
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    train_end = int(len(shuffled) * train_frac)
    val_end = train_end + int(len(shuffled) * val_frac)
    return {"train": shuffled[:train_end], "val": shuffled[train_end:val_end], "test": shuffled[val_end:]}


def sms_spam(
    root: str | os.PathLike[str] | None = None, *, seed: int = 123, balanced: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """Dataset ``sms-spam``: balanced, split 70/10/20 records ``{"text", "label"}``."""
    records = parse_sms_spam(local_or_fetch("sms-spam", root))
    if balanced:
        records = balance(records, seed)
    return random_split(records, 0.7, 0.1, seed)


class SpamDataset(Dataset):
    """Token ids padded/truncated to one length, with labels (book listing 6.4).

    ``max_length=None`` pads to the longest message; a given ``max_length`` truncates longer
    ones. Items are ``(ids: LongTensor (max_length,), label: LongTensor ())``.
    """

    def __init__(
        self,
        records: list[dict[str, Any]],
        tokenizer: Any = "gpt2",
        max_length: int | None = None,
        pad_token_id: int = 50256,
    ) -> None:
        from llm_data.tokenizers import resolve_tokenizer

        if max_length is not None and max_length <= 0:
            raise ConfigError(f"max_length={max_length}: expected a positive integer or None")
        if not records:
            raise DataError("SpamDataset: no records; expected at least one {'text', 'label'} record")
        tok = resolve_tokenizer(tokenizer)
        self.labels = [int(r["label"]) for r in records]
        encoded = [tok.encode(r["text"]) for r in records]
        self.max_length = max(len(e) for e in encoded) if max_length is None else max_length
        self.encoded = [
            e[: self.max_length] + [pad_token_id] * (self.max_length - len(e[: self.max_length]))
            for e in encoded
        ]

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(self.encoded[index], dtype=torch.long), torch.tensor(
            self.labels[index], dtype=torch.long
        )
