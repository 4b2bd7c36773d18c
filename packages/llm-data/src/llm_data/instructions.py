"""Instruction data (book chapter 7): Alpaca-style records, the prompt template, splits and collation.

Records are ``{"instruction": str, "input": str, "output": str}``. :func:`format_input` is the
book's Alpaca prompt; the full training text is the prompt plus ``"\\n\\n### Response:\\n" + output``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from llm_core.errors import ConfigError, DataError
from llm_data.fetchers import local_or_fetch
from llm_data.text_files import read_json_records, read_text_file

__all__ = [
    "InstructionDataset",
    "custom_collate_fn",
    "format_input",
    "format_response",
    "instructions",
    "load_instruction_file",
    "split_instructions",
]

FIELDS = ("instruction", "input", "output")


def format_input(entry: dict[str, Any]) -> str:
    """The book's Alpaca-style prompt: preamble, ``### Instruction:`` and, if non-empty, ``### Input:``."""
    instruction_text = (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request."
        f"\n\n### Instruction:\n{entry['instruction']}"
    )
    input_text = f"\n\n### Input:\n{entry['input']}" if entry.get("input") else ""
    return instruction_text + input_text


def format_response(entry: dict[str, Any]) -> str:
    """The response part appended to :func:`format_input` for training."""
    return f"\n\n### Response:\n{entry['output']}"


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def load_instruction_file(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Read a JSON list of instruction records; bad JSON or records raise :class:`DataError` (file:line)."""
    path = Path(path)
    text = read_text_file(path)
    data = read_json_records(path, text=text, what="{instruction, input, output} records")
    records = []
    decoder = json.JSONDecoder()
    for number, record in enumerate(data):
        if not isinstance(record, dict) or any(not isinstance(record.get(f, ""), str) for f in FIELDS):
            raise DataError(
                f"{path}:{_record_line(text, decoder, number)}: record #{number} must be an object with "
                "string fields instruction, input, output"
            )
        missing = [f for f in ("instruction", "output") if f not in record]
        if missing:
            raise DataError(
                f"{path}:{_record_line(text, decoder, number)}: record #{number} lacks {', '.join(missing)}"
            )
        records.append(
            {
                "instruction": record["instruction"],
                "input": record.get("input", ""),
                "output": record["output"],
            }
        )
    return records


def _record_line(text: str, decoder: json.JSONDecoder, number: int) -> int:
    """The line where the ``number``-th element of the top-level JSON list starts."""
    pos = text.index("[") + 1
    for _ in range(number + 1):
        while text[pos] in " \t\r\n,":
            pos += 1
        start = pos
        _, pos = decoder.raw_decode(text, pos)
    return _line_of(text, start)


def split_instructions(
    records: list[Any], train_frac: float = 0.85, test_frac: float = 0.10
) -> dict[str, list[Any]]:
    """The book's split, in file order: first 85% ``train``, next 10% ``test``, the rest ``val``."""
    if train_frac <= 0 or test_frac < 0 or train_frac + test_frac > 1:
        raise ConfigError(
            f"train_frac={train_frac}, test_frac={test_frac}: expected fractions summing to <= 1"
        )
    train_end = int(len(records) * train_frac)
    test_end = train_end + int(len(records) * test_frac)
    return {"train": records[:train_end], "test": records[train_end:test_end], "val": records[test_end:]}


def instructions(root: str | os.PathLike[str] | None = None) -> dict[str, list[dict[str, str]]]:
    """Dataset ``instructions``: the book's 1100 records split 935 train / 110 test / 55 val."""
    return split_instructions(load_instruction_file(local_or_fetch("instructions", root)))


class InstructionDataset(Dataset):
    """Token ids of prompt + response for each record (book listing 7.4).

    With ``with_prompt_length=True`` items are ``(ids, prompt_length)`` pairs, for
    :func:`custom_collate_fn` with ``mask_prompt=True``.
    """

    def __init__(
        self, records: list[dict[str, Any]], tokenizer: Any = "gpt2", *, with_prompt_length: bool = False
    ):
        from llm_data.tokenizers import resolve_tokenizer

        tok = resolve_tokenizer(tokenizer)
        self.with_prompt_length = with_prompt_length
        self.encoded: list[list[int]] = []
        self.prompt_lengths: list[int] = []
        for entry in records:
            prompt = format_input(entry)
            self.encoded.append(tok.encode(prompt + format_response(entry)))
            self.prompt_lengths.append(len(tok.encode(prompt)))

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> Any:
        if self.with_prompt_length:
            return self.encoded[index], self.prompt_lengths[index]
        return self.encoded[index]


def custom_collate_fn(
    batch: list[Any],
    pad_token_id: int = 50256,
    ignore_index: int = -100,
    allowed_max_length: int | None = None,
    device: str | torch.device = "cpu",
    mask_prompt: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The book's collate function: pad, shift targets, keep the first end-of-text target, mask the rest.

    Each item is a list of token ids (or ``(ids, prompt_length)`` when ``mask_prompt``). Every
    sequence gets one ``pad_token_id`` appended and is padded to the longest; targets are the
    inputs shifted by one; all padding targets but the first become ``ignore_index``. With
    ``mask_prompt`` the targets that predict prompt tokens become ``ignore_index`` too.
    Returns ``(inputs, targets)``, each ``(batch, length)`` (``length <= allowed_max_length``).
    """
    if not batch:
        raise DataError("custom_collate_fn: empty batch")
    if mask_prompt:
        if not all(
            isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], int) for item in batch
        ):
            raise DataError("custom_collate_fn(mask_prompt=True): expected (token_ids, prompt_length) items")
        items, prompt_lengths = [list(i[0]) for i in batch], [i[1] for i in batch]
    else:
        items, prompt_lengths = [list(i) for i in batch], [0] * len(batch)
    batch_max_length = max(len(item) + 1 for item in items)
    inputs_lst, targets_lst = [], []
    for item, prompt_length in zip(items, prompt_lengths, strict=True):
        new_item = [*item, pad_token_id]
        padded = new_item + [pad_token_id] * (batch_max_length - len(new_item))
        inputs = torch.tensor(padded[:-1])  # (batch_max_length - 1,)
        targets = torch.tensor(padded[1:])  # (batch_max_length - 1,)
        indices = torch.nonzero(targets == pad_token_id).squeeze(-1)
        if indices.numel() > 1:
            targets[indices[1:]] = ignore_index
        if prompt_length > 1:
            targets[: prompt_length - 1] = ignore_index
        if allowed_max_length is not None:
            inputs = inputs[:allowed_max_length]
            targets = targets[:allowed_max_length]
        inputs_lst.append(inputs)
        targets_lst.append(targets)
    return torch.stack(inputs_lst).to(device), torch.stack(targets_lst).to(device)  # 2 x (batch, length)
