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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_core.errors import DataError
from llm_finetune.checkpoints import BaseModel
from llm_finetune.config import DPOConfig
from llm_finetune.recipe import Echo, FinetuneRun, Recipe, run_recipe
from llm_finetune.tasks import FinetuneTask
from llm_finetune.templates import PromptTemplate, get_template
from llm_model import model_config

__all__ = [
    "DPORecipe",
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


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class DPOTask(FinetuneTask):
    """The Trainer's task for DPO; ``reference`` is frozen and never trained."""

    name = "dpo"

    reference: nn.Module
    beta: float
    pad_token_id: int
    max_length: int

    def collate(self, items: list[Any]) -> Batch:
        return collate_preferences(items, self.pad_token_id, self.max_length)

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
            terms = [self._terms(model, batch) for batch in self.eval_chunks(dataset)]
            loss, chosen, rejected = ([t[i].item() for t in terms] for i in range(3))
            result[f"{split}_loss"] = _mean(loss)
            result[f"{split}_chosen_reward"] = _mean(chosen)
            result[f"{split}_rejected_reward"] = _mean(rejected)
            result[f"{split}_reward_margin"] = _mean([c - r for c, r in zip(chosen, rejected, strict=True)])
        return result

    def tokens(self, batch: Batch) -> int:
        return int(batch[0].numel() + batch[2].numel())


@dataclass
class DPORun(FinetuneRun):
    """What :func:`finetune_dpo` made and measured (reward margins on the val split)."""

    initial_margin: float | None
    final_margin: float | None

    def lines(self) -> list[str]:
        """The reward margin before and after, and the run's summary."""
        lines = super().lines()
        if self.initial_margin is not None and self.final_margin is not None:
            lines.insert(0, f"val reward margin: {self.initial_margin:.4f} -> {self.final_margin:.4f}")
        return lines


PreferenceSplits = dict[str, list[dict[str, str]]]


class DPORecipe(Recipe[DPOConfig, PreferenceSplits, DPORun]):
    """Chapter 7's bonus: prefer ``chosen`` over ``rejected`` against a frozen copy of the base."""

    command = "finetune dpo"
    task = "dpo"

    def load_data(self, config: DPOConfig) -> PreferenceSplits:
        splits = load_preference_data(config.data)
        if not (splits["val"] or splits["test"]):
            raise DataError(f"{config.data}: too few records for a validation split; expected at least 10")
        return splits

    def prepare(
        self, config: DPOConfig, base: BaseModel, data: PreferenceSplits
    ) -> tuple[DPOConfig, DPOTask]:
        template = get_template(str(config.template))
        reference = copy.deepcopy(base.model).eval()  # before any LoRA layer or freezing
        for param in reference.parameters():
            param.requires_grad_(False)
        tok = base.tokenizer
        self.echo(f"reference: a frozen copy of the base; beta {config.beta}; template: {config.template}")
        task = DPOTask(
            train=PreferenceDataset(data["train"], tok, template),
            val=PreferenceDataset(data["val"] or data["test"], tok, template),
            **self.task_fields(config, base, template=config.template, beta=config.beta),
            reference=reference,
            beta=config.beta,
            pad_token_id=tok.eot_token if tok.eot_token is not None else 0,
            max_length=model_config(base.model).context_length,
        )
        return config, task

    def finish(self, run: FinetuneRun, model: nn.Module, base: BaseModel, data: PreferenceSplits) -> DPORun:
        from llm_train import read_metrics

        margins = [
            r["val_reward_margin"]
            for r in read_metrics(run.run_dir / "metrics.jsonl")
            if r.get("kind") == "eval" and r.get("val_reward_margin") is not None
        ]
        return DPORun(
            **vars(run),
            initial_margin=margins[0] if margins else None,
            final_margin=margins[-1] if margins else None,
        )


def finetune_dpo(config: DPOConfig, *, echo: Echo = print, **flags: bool) -> DPORun:
    """DPO of ``config.model`` on preference ``config.data`` (:class:`~llm_finetune.config.DPOConfig`).

    The book's defaults: beta 0.1, 1 epoch, AdamW 5e-6, weight decay 0.01. The template
    defaults to the base checkpoint's (the SFT model's), else ``alpaca``.
    ``flags``: ``resume`` and ``overwrite`` of :func:`~llm_finetune.recipe.run_recipe`.
    """
    return run_recipe(DPORecipe(echo), config, **flags)
