"""Direct preference optimisation (the book's chapter 7 bonus): prefer ``chosen`` over ``rejected``.

From ``(prompt, chosen, rejected)`` records (``instruction``, ``input``, ``chosen``,
``rejected``, like ``instruction-data-with-preference.json``), the policy is trained
against a frozen copy of the base model (the reference) with the DPO loss
``-log sigmoid(beta * ((pi_c - pi_r) - (ref_c - ref_r)))``, where each term is the
mean log-probability of the response tokens. The rewards ``pi - ref`` of both answers
and their margin are logged with every evaluation (``train_reward_margin``,
``val_reward_margin`` … in ``metrics.jsonl``).
"""

from __future__ import annotations

import copy
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
from llm_model import model_config

__all__ = [
    "DPORun",
    "DPOTask",
    "PreferenceDataset",
    "collate_preferences",
    "dpo_loss",
    "finetune_dpo",
    "load_preference_data",
    "load_preference_file",
    "response_logprobs",
]

#: The command whose output directory a run is (its marker, llm_core.output_dirs).
_COMMAND = "finetune dpo"

Batch = tuple[torch.Tensor, ...]
REQUIRED = ("instruction", "chosen", "rejected")


def load_preference_file(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Records ``{instruction, input, chosen, rejected}`` of a JSON list; problems name ``file:#index``."""
    from llm_data import read_text_file

    path = Path(path)
    try:
        data = json.loads(read_text_file(path))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); expected a list of records"
        ) from None
    if not isinstance(data, list) or not data:
        raise DataError(f"{path}: expected a non-empty JSON list of {{instruction, input, chosen, rejected}}")
    records = []
    for index, record in enumerate(data):
        if not isinstance(record, dict):
            raise DataError(f"{path}:#{index}: expected an object, found {type(record).__name__}")
        missing = [k for k in REQUIRED if not isinstance(record.get(k), str)]
        if missing:
            raise DataError(
                f"{path}:#{index}: record lacks {', '.join(missing)}; "
                "expected string fields instruction, chosen, rejected (input optional)"
            )
        records.append({**record, "input": str(record.get("input") or "")})
    return records


def load_preference_data(data: str) -> dict[str, list[dict[str, str]]]:
    """The book's split of a preference file: 85% ``train``, 10% ``test``, 5% ``val``."""
    from llm_data.instructions import split_instructions

    path = Path(data)
    if not path.is_file():
        raise DataError(f"--data {data}: expected a JSON file of preference records, found no such file")
    return split_instructions(load_preference_file(path))


class PreferenceDataset(torch.utils.data.Dataset):
    """Items ``(prompt_ids, chosen_ids, rejected_ids)``; prompts carry the response header."""

    def __init__(self, records: Sequence[dict[str, Any]], tokenizer: Any, template: PromptTemplate) -> None:
        self.items = []
        for entry in records:
            prompt = template.prompt(entry)
            full_prompt = list(tokenizer.encode(template.generation_prompt(entry)))
            chosen = list(tokenizer.encode(prompt + template.response(entry, "chosen")))
            rejected = list(tokenizer.encode(prompt + template.response(entry, "rejected")))
            self.items.append((full_prompt, chosen, rejected))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[list[int], list[int], list[int]]:
        return self.items[index]


def _fit(row: list[int], prompt_length: int, limit: int) -> tuple[list[int], int]:
    """Cut ``row`` to ``limit`` tokens: first the start of the prompt, then the end of the response."""
    cut = min(max(0, len(row) - limit), max(0, prompt_length - 1))
    return row[cut:][:limit], prompt_length - cut


def _pad(rows: list[list[int]], prompt_lengths: list[int], pad: int, limit: int) -> tuple[torch.Tensor, ...]:
    fitted = [_fit(r, p, limit) for r, p in zip(rows, prompt_lengths, strict=True)]
    rows, prompt_lengths = [r for r, _ in fitted], [p for _, p in fitted]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)  # (b, t)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)  # (b, t): response tokens
    for i, (row, start) in enumerate(zip(rows, prompt_lengths, strict=True)):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, min(start, len(row)) : len(row)] = True
    return ids, mask


def collate_preferences(
    items: list[tuple[list[int], list[int], list[int]]], pad_token_id: int, max_length: int
) -> Batch:
    """``(chosen (b, t), chosen_mask (b, t), rejected (b, t'), rejected_mask (b, t'))``.

    Masks are true on response tokens (not prompt, not padding). A row longer than
    ``max_length`` loses the start of its prompt first (one prompt token always stays),
    then the end of its response.
    """
    prompts = [len(p) for p, _, _ in items]
    chosen, chosen_mask = _pad([c for _, c, _ in items], prompts, pad_token_id, max_length)
    rejected, rejected_mask = _pad([r for _, _, r in items], prompts, pad_token_id, max_length)
    return chosen, chosen_mask, rejected, rejected_mask


def response_logprobs(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean log-probability of the masked (response) tokens of each row: ``(b, t)`` -> ``(b,)``."""
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    logits = model(ids)[:, :-1].float()  # (b, t - 1, vocab): position i predicts token i + 1
    logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (b, t - 1)
    selected = mask[:, 1:].to(logp.dtype)
    return (logp * selected).sum(-1) / selected.sum(-1).clamp(min=1)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, chosen reward, rejected reward)``, means over the batch (the book's ``compute_dpo_loss``)."""
    logits = (policy_chosen - policy_rejected) - (reference_chosen - reference_rejected)  # (b,)
    loss = -nn.functional.logsigmoid(beta * logits)
    chosen_rewards = (policy_chosen - reference_chosen).detach()
    rejected_rewards = (policy_rejected - reference_rejected).detach()
    return loss.mean(), chosen_rewards.mean(), rejected_rewards.mean()


@dataclass
class DPOTask:
    """The Trainer's task for DPO; ``reference`` is frozen and never trained."""

    name = "dpo"

    train: PreferenceDataset
    val: PreferenceDataset
    reference: nn.Module
    beta: float
    pad_token_id: int
    max_length: int
    eval_batches: int
    batch_size: int
    extra_config: dict[str, Any]

    def collate(self, items: list[Any]) -> Batch:
        return collate_preferences(items, self.pad_token_id, self.max_length)

    def loader(self, batch_size: int, seed: int) -> Any:
        from llm_train import DatasetLoader

        return DatasetLoader(self.train, batch_size=batch_size, seed=seed, collate=self.collate)

    def _terms(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        chosen, chosen_mask, rejected, rejected_mask = batch
        device = next(model.parameters()).device
        self.reference.to(device).eval()
        with torch.no_grad():
            ref_c = response_logprobs(self.reference, chosen, chosen_mask)
            ref_r = response_logprobs(self.reference, rejected, rejected_mask)
        pol_c = response_logprobs(model, chosen, chosen_mask)
        pol_r = response_logprobs(model, rejected, rejected_mask)
        return dpo_loss(pol_c, pol_r, ref_c, ref_r, self.beta)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self._terms(model, batch)[0]

    def evaluate(self, model: nn.Module) -> dict[str, float | None]:
        result: dict[str, float | None] = {}
        for split, dataset in (("train", self.train), ("val", self.val)):
            sums, count = [0.0, 0.0, 0.0], 0
            for start in range(0, min(len(dataset), self.eval_batches * self.batch_size), self.batch_size):
                items = [dataset[i] for i in range(start, min(start + self.batch_size, len(dataset)))]
                terms = self._terms(model, self.collate(items))
                sums = [s + t.item() for s, t in zip(sums, terms, strict=True)]
                count += 1
            values = [s / count for s in sums] if count else [None, None, None]
            result[f"{split}_loss"] = values[0]
            result[f"{split}_chosen_reward"] = values[1]
            result[f"{split}_rejected_reward"] = values[2]
            result[f"{split}_reward_margin"] = None if not count else values[1] - values[2]  # type: ignore[operator]
        return result

    def examples_per_epoch(self) -> int:
        return len(self.train)

    def tokens(self, batch: Batch) -> int:
        return int(batch[0].numel() + batch[2].numel())

    def checkpoint_config(self) -> dict[str, Any]:
        from llm_finetune.checkpoints import FINETUNE_KEY

        return {FINETUNE_KEY: {"task": "dpo", "beta": self.beta, **self.extra_config}}


@dataclass
class DPORun:
    """What :func:`finetune_dpo` made and measured (reward margins on the val split)."""

    run_dir: Path
    final_dir: Path
    initial_margin: float | None
    final_margin: float | None
    steps: int
    seconds: float


def finetune_dpo(
    base: str | os.PathLike[str],
    data: str,
    out: str | os.PathLike[str],
    *,
    template: str | None = None,
    beta: float = 0.1,
    trainable: str = "all",
    epochs: float | None = 1,
    max_steps: int | None = None,
    batch_size: int = 8,
    lr: float = 5e-6,
    weight_decay: float = 0.01,
    tokenizer: str | None = None,
    lora: Any = None,
    seed: int = 123,
    eval_every: int = 5,
    eval_batches: int = 5,
    checkpoint_every: int = 100,
    progress: bool = True,
    device: str = "cpu",
    resume: bool = False,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> DPORun:
    """DPO of ``base`` on preference ``data`` (book defaults: beta 0.1, 1 epoch, AdamW 5e-6, wd 0.01).

    ``template`` defaults to the base checkpoint's (the SFT model's), else ``alpaca``.
    """
    from llm_finetune.checkpoints import load_base, set_trainable
    from llm_finetune.lora import (
        ADAPTERS_FILE,
        MERGED_DIR,
        LoRAConfig,
        save_lora_adapters,
        save_merged_checkpoint,
    )
    from llm_finetune.plots import plot_finetune_run
    from llm_train import TrainConfig, Trainer, read_metrics
    from llm_train.trainer import check_run_dir

    check_run_dir(out, command=_COMMAND, resume=resume, overwrite=overwrite)  # before any loading

    if beta <= 0:
        raise ConfigError(f"--beta {beta}: expected a number > 0, for example 0.1")
    if trainable == "head":
        raise ConfigError("--trainable head: expected all, last-block or lora for DPO")
    splits = load_preference_data(data)
    loaded = load_base(base, tokenizer=tokenizer, seed=seed)
    template = template or loaded.finetune.get("template") or "alpaca"
    prompt_template = get_template(template)
    model, tok = loaded.model, loaded.tokenizer
    reference = copy.deepcopy(model).eval()
    for param in reference.parameters():
        param.requires_grad_(False)
    lora_config = (lora or LoRAConfig()) if trainable == "lora" else None
    torch.manual_seed(seed)  # LoRA's A matrices start from the seed
    set_trainable(model, trainable, lora=lora_config)
    pad = tok.eot_token if tok.eot_token is not None else 0
    val_records = splits["val"] or splits["test"]
    if not val_records:
        raise DataError(f"{data}: too few records for a validation split; expected at least 10")
    extra = {
        "template": template,
        "trainable": trainable,
        "lora": lora_config.to_dict() if lora_config else None,
        "base": loaded.source,
    }
    task = DPOTask(
        PreferenceDataset(splits["train"], tok, prompt_template),
        PreferenceDataset(val_records, tok, prompt_template),
        reference,
        beta,
        pad,
        model_config(model).context_length,
        eval_batches,
        batch_size,
        extra,
    )
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
    echo(f"base: {loaded.source}; reference: a frozen copy; beta {beta}; trainable: {trainable}")
    result = Trainer(model, config, run_dir=out, task=task, tokenizer=tok, command=_COMMAND).fit(
        resume=resume, overwrite=overwrite
    )
    run_dir = Path(out)
    if lora_config is not None:
        save_lora_adapters(model, run_dir / ADAPTERS_FILE, lora_config, extra=extra)
        merged = save_merged_checkpoint(result.final_dir, run_dir / MERGED_DIR)
        echo(f"adapters merged into a plain checkpoint (for serve/generate/evaluate): {merged}")
    plot_finetune_run(run_dir, echo=echo)
    margins = [
        r["val_reward_margin"]
        for r in read_metrics(run_dir / "metrics.jsonl")
        if r.get("kind") == "eval" and r.get("val_reward_margin") is not None
    ]
    return DPORun(
        run_dir=run_dir,
        final_dir=result.final_dir,
        initial_margin=margins[0] if margins else None,
        final_margin=margins[-1] if margins else None,
        steps=result.steps,
        seconds=result.seconds,
    )
