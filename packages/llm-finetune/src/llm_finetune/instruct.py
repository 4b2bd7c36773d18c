"""Instruction finetuning (the book's chapter 7): supervised finetuning on Alpaca-style records.

Each record becomes ``template.prompt(entry) + template.response(entry)``; batches are
padded and shifted by the book's ``custom_collate_fn`` (from llm-data), optionally with
the prompt tokens masked out of the loss. Training goes through ``llm_train.Trainer``
with :class:`InstructionTask`. After training, responses are generated for the test
split and saved beside the references, like the book's ``instruction-data-with-response.json``.
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
from llm_finetune.templates import PromptTemplate, get_template
from llm_model import IGNORE_INDEX, accepts_targets, masked_cross_entropy, model_config

__all__ = [
    "IGNORE_INDEX",
    "InstructionRun",
    "InstructionTask",
    "SFTDataset",
    "finetune_instructions",
    "generate_responses",
    "load_instruction_data",
    "masked_next_token_loss",
    "read_responses",
]

#: The command whose output directory a run is (its marker, llm_core.output_dirs).
_COMMAND = "finetune instruct"

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
class InstructionTask:
    """The Trainer's task for instruction finetuning."""

    name = "instruct"

    train: SFTDataset
    val: SFTDataset
    pad_token_id: int
    context_length: int
    mask_prompt: bool
    eval_batches: int
    batch_size: int
    extra_config: dict[str, Any]

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

    def loader(self, batch_size: int, seed: int) -> Any:
        from llm_train import DatasetLoader

        return DatasetLoader(self.train, batch_size=batch_size, seed=seed, collate=self.collate)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        inputs, targets = batch
        return masked_next_token_loss(model, inputs, targets)

    def _loss(self, model: nn.Module, dataset: SFTDataset) -> float | None:
        total, count = 0.0, 0
        for start in range(0, min(len(dataset), self.eval_batches * self.batch_size), self.batch_size):
            items = [dataset[i] for i in range(start, min(start + self.batch_size, len(dataset)))]
            inputs, targets = self.collate(items)
            total += masked_next_token_loss(model, inputs, targets).item()
            count += 1
        return total / count if count else None

    def evaluate(self, model: nn.Module) -> dict[str, float | None]:
        return {"train_loss": self._loss(model, self.train), "val_loss": self._loss(model, self.val)}

    def examples_per_epoch(self) -> int:
        return len(self.train)

    def tokens(self, batch: Batch) -> int:
        return int(batch[0].numel())

    def checkpoint_config(self) -> dict[str, Any]:
        from llm_finetune.checkpoints import FINETUNE_KEY

        return {FINETUNE_KEY: {"task": "instruct", "mask_prompt": self.mask_prompt, **self.extra_config}}


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
class InstructionRun:
    """What :func:`finetune_instructions` made."""

    run_dir: Path
    final_dir: Path
    responses_file: Path | None
    trainable_parameters: int
    truncated: int
    steps: int
    val_loss: float | None
    initial_val_loss: float | None
    seconds: float


def finetune_instructions(
    base: str | os.PathLike[str],
    data: str,
    out: str | os.PathLike[str],
    *,
    template: str | None = None,
    trainable: str = "all",
    mask_prompt: bool = False,
    epochs: float | None = 2,
    max_steps: int | None = None,
    batch_size: int = 8,
    lr: float = 5e-5,
    weight_decay: float = 0.1,
    tokenizer: str | None = None,
    data_root: str | os.PathLike[str] | None = None,
    on_long: str = "truncate",
    lora: Any = None,
    max_new_tokens: int = 256,
    test_limit: int | None = None,
    seed: int = 123,
    eval_every: int = 50,
    eval_batches: int = 5,
    checkpoint_every: int = 100,
    progress: bool = True,
    device: str = "cpu",
    resume: bool = False,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> InstructionRun:
    """SFT of ``base`` on instruction ``data`` (book defaults: 2 epochs, AdamW 5e-5, wd 0.1, batch 8).

    ``template`` defaults to the base checkpoint's (an SFT model finetuned further), else ``alpaca``.
    Then generates responses for the test split (``test_limit`` records; 0 skips) into
    ``RUN_DIR/instruction-data-with-response.json``.
    """
    from llm_core.config_io import write_json_atomic
    from llm_finetune.checkpoints import load_base, set_trainable
    from llm_finetune.lora import (
        ADAPTERS_FILE,
        MERGED_DIR,
        LoRAConfig,
        save_lora_adapters,
        save_merged_checkpoint,
    )
    from llm_finetune.plots import plot_finetune_run
    from llm_train import TrainConfig, Trainer
    from llm_train.trainer import check_run_dir

    check_run_dir(out, command=_COMMAND, resume=resume, overwrite=overwrite)  # before any loading

    if trainable == "head":
        raise ConfigError(
            "--trainable head: a language model's head alone is not a useful choice here; "
            "expected all, last-block or lora"
        )
    splits = load_instruction_data(data, root=data_root)
    loaded = load_base(base, tokenizer=tokenizer, seed=seed)
    template = template or loaded.finetune.get("template") or "alpaca"
    prompt_template = get_template(template)
    model, tok = loaded.model, loaded.tokenizer
    context = model_config(model).context_length
    empty = [split for split in ("train", "val") if not splits.get(split)]
    if empty:
        raise DataError(
            f"--data {data}: the {' and '.join(empty)} split(s) are empty; "
            "expected at least 20 records for the 85/10/5 split"
        )
    pad = tok.eot_token if tok.eot_token is not None else 0
    datasets = {
        split: SFTDataset(
            splits[split], tok, prompt_template, max_length=context, on_long=on_long, name=f"{data} ({split})"
        )
        for split in ("train", "val")
    }
    truncated = sum(d.truncated for d in datasets.values())
    if truncated:
        echo(f"note: {truncated} example(s) longer than the context ({context} tokens) are truncated")
    lora_config = (lora or LoRAConfig()) if trainable == "lora" else None
    torch.manual_seed(seed)  # LoRA's A matrices start from the seed
    set_trainable(model, trainable, lora=lora_config)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    echo(f"base: {loaded.source}; template: {template}; trainable ({trainable}): {n_trainable:,} parameters")
    config = TrainConfig(
        data=str(data),
        preset=None,
        tokenizer=loaded.tokenizer_name,
        epochs=None if max_steps is not None else epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        eval_every=eval_every,
        eval_batches=eval_batches,
        checkpoint_every=checkpoint_every,
        sample_every=0,
        seed=seed,
        progress=progress,
        device=device,
    )
    extra = {
        "template": template,
        "trainable": trainable,
        "lora": lora_config.to_dict() if lora_config else None,
        "base": loaded.source,
    }
    task = InstructionTask(
        datasets["train"], datasets["val"], pad, context, mask_prompt, eval_batches, batch_size, extra
    )
    trainer = Trainer(model, config, run_dir=out, task=task, tokenizer=tok, command=_COMMAND)
    result = trainer.fit(resume=resume, overwrite=overwrite)
    run_dir = Path(out)
    if lora_config is not None:
        save_lora_adapters(trainer.model, run_dir / ADAPTERS_FILE, lora_config, extra=extra)
        merged = save_merged_checkpoint(result.final_dir, run_dir / MERGED_DIR)
        echo(f"adapters merged into a plain checkpoint (for serve/generate/evaluate): {merged}")
    plot_finetune_run(run_dir, echo=echo)
    responses_file = None
    test = list(splits.get("test") or [])[: test_limit if test_limit is not None else None]
    if test:
        echo(f"generating responses for {len(test)} test instruction(s) ...")
        answers = generate_responses(
            trainer.model, tok, test, prompt_template, max_new_tokens=max_new_tokens, batch_size=batch_size
        )
        responses_file = run_dir / RESPONSES_FILE
        write_json_atomic(responses_file, answers)
    return InstructionRun(
        run_dir=run_dir,
        final_dir=result.final_dir,
        responses_file=responses_file,
        trainable_parameters=n_trainable,
        truncated=truncated,
        steps=result.steps,
        val_loss=result.val_loss,
        initial_val_loss=result.initial_val_loss,
        seconds=result.seconds,
    )


def read_responses(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a responses file (for scoring with ``llm-eval``'s judge)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
