"""Instruction finetuning (the book's chapter 7): supervised finetuning on Alpaca-style records.

Each record becomes ``template.prompt(entry) + template.response(entry)``; batches are
padded and shifted by the book's ``custom_collate_fn`` (from llm-data), optionally with
the prompt tokens masked out of the loss. Training goes through ``llm_train.Trainer``
with :class:`InstructionTask` on the recipe path (:mod:`llm_finetune.recipe`). After
training, responses are generated for the test split and saved beside the references,
like the book's ``instruction-data-with-response.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_core.errors import ConfigError, DataError
from llm_finetune.checkpoints import BaseModel
from llm_finetune.config import InstructConfig
from llm_finetune.recipe import Echo, FinetuneRun, Recipe, run_recipe
from llm_finetune.tasks import FinetuneTask
from llm_finetune.templates import PromptTemplate, get_template
from llm_model import IGNORE_INDEX, accepts_targets, masked_cross_entropy, model_config

__all__ = [
    "IGNORE_INDEX",
    "InstructionRecipe",
    "InstructionRun",
    "InstructionTask",
    "SFTDataset",
    "finetune_instructions",
    "generate_responses",
    "load_instruction_data",
    "masked_next_token_loss",
    "read_responses",
]

RESPONSES_FILE = "instruction-data-with-response.json"
Batch = tuple[torch.Tensor, ...]


def load_instruction_data(
    data: str, *, root: str | os.PathLike[str] | None = None
) -> dict[str, list[dict[str, str]]]:
    """``{"train", "test", "val"}`` records from a JSON file (the book's 85/10/5 split) or a dataset name."""
    from llm_core import get_registry
    from llm_data import load_instruction_file
    from llm_data.instructions import split_instructions

    path = Path(data)
    if path.is_file():
        return split_instructions(load_instruction_file(path))
    registry = get_registry("datasets")
    if data not in registry:
        raise DataError(
            f"--data {data}: expected a JSON file of {{instruction, input, output}} records or a "
            f"registered dataset ({', '.join(registry)}), found neither"
        )
    return registry[data].obj(Path(root) if root else None)


class SFTDataset(torch.utils.data.Dataset):
    """Token ids of prompt + response, and the length of the prompt (with the response header).

    Items are ``(ids, prompt_length)``. Texts longer than ``max_length`` tokens (the
    model's context minus the end-of-text token) are counted in ``truncated`` (the
    collate function cuts them) or refused with ``on_long="error"``.
    """

    def __init__(
        self,
        records: Sequence[dict[str, Any]],
        tokenizer: Any,
        template: PromptTemplate,
        *,
        max_length: int,
        on_long: str = "truncate",
        name: str = "data",
    ) -> None:
        if on_long not in ("truncate", "error"):
            raise ConfigError(f"on_long={on_long!r}: expected 'truncate' or 'error'")
        self.items: list[tuple[list[int], int]] = []
        self.truncated = 0
        for index, entry in enumerate(records):
            prompt = template.generation_prompt(entry)
            ids = list(tokenizer.encode(template.prompt(entry) + template.response(entry)))
            if len(ids) + 1 > max_length:
                if on_long == "error":
                    raise DataError(
                        f"{name}:#{index}: {len(ids) + 1} tokens with the end-of-text token, more than "
                        f"the context ({max_length}); shorten it or allow truncation (--on-long truncate)"
                    )
                self.truncated += 1
            self.items.append((ids, len(tokenizer.encode(prompt))))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.items[index]


def masked_next_token_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the targets that are not ``-100`` (0 when every target is masked)."""
    device = next(model.parameters()).device
    inputs, targets = inputs.to(device), targets.to(device)
    if accepts_targets(model):  # chunked head + loss, the same mean (0 when all are masked)
        return model(inputs, targets=targets)  # scalar
    return masked_cross_entropy(model(inputs), targets)  # logits (b, t, vocab) -> scalar


@dataclass
class InstructionTask(FinetuneTask):
    """The Trainer's task for instruction finetuning: next-token loss on prompt + response."""

    name = "instruct"

    pad_token_id: int
    context_length: int
    mask_prompt: bool

    def collate(self, items: list[tuple[list[int], int]]) -> Batch:
        from llm_data import custom_collate_fn

        batch: list[Any] = items if self.mask_prompt else [ids for ids, _ in items]
        return custom_collate_fn(
            batch,
            pad_token_id=self.pad_token_id,
            ignore_index=IGNORE_INDEX,
            allowed_max_length=self.context_length,
            mask_prompt=self.mask_prompt,
        )  # (inputs (b, t), targets (b, t))

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        inputs, targets = batch
        return masked_next_token_loss(model, inputs, targets)

    def _loss(self, model: nn.Module, dataset: SFTDataset) -> float | None:
        losses = [masked_next_token_loss(model, *batch).item() for batch in self.eval_chunks(dataset)]
        return sum(losses) / len(losses) if losses else None

    def evaluate(self, model: nn.Module) -> dict[str, float | None]:
        return {"train_loss": self._loss(model, self.train), "val_loss": self._loss(model, self.val)}

    def tokens(self, batch: Batch) -> int:
        return int(batch[0].numel())


def generate_responses(
    model: nn.Module,
    tokenizer: Any,
    records: Sequence[dict[str, Any]],
    template: PromptTemplate,
    *,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Each record with ``model_response``: greedy generation after the template's prompt, extracted."""
    from llm_model import generate_text

    out = []
    for start in range(0, len(records), batch_size):
        chunk = list(records[start : start + batch_size])
        prompts = [template.generation_prompt(r) for r in chunk]
        texts = generate_text(
            model, tokenizer, prompts, max_new_tokens, stop_strings=list(template.stop_strings)
        )
        for record, text in zip(chunk, texts, strict=True):
            out.append({**record, "model_response": template.extract_response(text)})
        if progress is not None:
            progress(len(chunk))
    return out


@dataclass
class InstructionRun(FinetuneRun):
    """What :func:`finetune_instructions` made: the run and the test split's responses."""

    responses_file: Path | None
    truncated: int

    def lines(self) -> list[str]:
        """The run's summary, where the test responses are and how to chat with the model."""
        lines = super().lines()
        if self.responses_file:
            lines.append(f"test responses: {self.responses_file}")
        return [*lines, f"try: scratchlm chat {self.final_dir}"]


InstructionSplits = dict[str, list[dict[str, str]]]


class InstructionRecipe(Recipe[InstructConfig, InstructionSplits, InstructionRun]):
    """Chapter 7: supervised finetuning on instruction records, then answers to the test split."""

    command = "finetune instruct"
    task = "instruct"

    def __init__(self, echo: Callable[[str], None] = print) -> None:
        super().__init__(echo)
        self.template: PromptTemplate = get_template("alpaca")
        self.truncated = 0

    def load_data(self, config: InstructConfig) -> InstructionSplits:
        splits = load_instruction_data(config.data, root=config.data_dir)
        empty = [split for split in ("train", "val") if not splits.get(split)]
        if empty:
            raise DataError(
                f"--data {config.data}: the {' and '.join(empty)} split(s) are empty; "
                "expected at least 20 records for the 85/10/5 split"
            )
        return splits

    def prepare(
        self, config: InstructConfig, base: BaseModel, data: InstructionSplits
    ) -> tuple[InstructConfig, InstructionTask]:
        self.template = get_template(str(config.template))
        tok = base.tokenizer
        context = model_config(base.model).context_length
        train, val = (
            SFTDataset(
                data[split],
                tok,
                self.template,
                max_length=context,
                on_long=config.on_long,
                name=f"{config.data} ({split})",
            )
            for split in ("train", "val")
        )
        self.truncated = train.truncated + val.truncated
        if self.truncated:
            self.echo(
                f"note: {self.truncated} example(s) longer than the context ({context} tokens) are truncated"
            )
        self.echo(f"template: {config.template}")
        task = InstructionTask(
            train=train,
            val=val,
            **self.task_fields(config, base, template=config.template, mask_prompt=config.mask_prompt),
            pad_token_id=tok.eot_token if tok.eot_token is not None else 0,
            context_length=context,
            mask_prompt=config.mask_prompt,
        )
        return config, task

    def finish(
        self, run: FinetuneRun, model: nn.Module, base: BaseModel, data: InstructionSplits
    ) -> InstructionRun:
        from llm_core.config_io import write_json_atomic

        config = run.config
        assert isinstance(config, InstructConfig)
        responses_file = None
        test = list(data.get("test") or [])[: config.test_limit]
        if test:
            self.echo(f"generating responses for {len(test)} test instruction(s) ...")
            answers = generate_responses(
                model,
                base.tokenizer,
                test,
                self.template,
                max_new_tokens=config.max_new_tokens,
                batch_size=config.batch_size,
            )
            responses_file = run.run_dir / RESPONSES_FILE
            write_json_atomic(responses_file, answers)
        return InstructionRun(**vars(run), responses_file=responses_file, truncated=self.truncated)


def finetune_instructions(config: InstructConfig, *, echo: Echo = print, **flags: bool) -> InstructionRun:
    """SFT of ``config.model`` on instruction ``config.data`` (:class:`~llm_finetune.config.InstructConfig`).

    The book's defaults: 2 epochs, AdamW 5e-5, weight decay 0.1, batch 8. The template
    defaults to the base checkpoint's (an SFT model finetuned further), else ``alpaca``.
    Then generates responses for the test split (``test_limit`` records; 0 skips) into
    ``RUN_DIR/instruction-data-with-response.json``.
    ``flags``: ``resume`` and ``overwrite`` of :func:`~llm_finetune.recipe.run_recipe`.
    """
    return run_recipe(InstructionRecipe(echo), config, **flags)


def read_responses(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a responses file (for scoring with ``llm-eval``'s judge)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
