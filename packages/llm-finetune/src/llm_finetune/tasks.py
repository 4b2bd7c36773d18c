"""What every finetuning task shares: its two splits, its evaluation budget and its checkpoint entry.

A finetuned checkpoint is an ordinary model checkpoint whose ``config.json`` holds
the tokenizer's name and one more key, ``"finetune"`` (:data:`FINETUNE_KEY`): what
the recipe did (task, labels, template, trainable, LoRA settings …), so
:func:`llm_finetune.checkpoints.load_finetuned` can rebuild the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["FINETUNE_KEY", "FinetuneTask"]

#: The key of a checkpoint's ``config.json`` that holds what finetuning did.
FINETUNE_KEY = "finetune"

Batch = tuple[torch.Tensor, ...]


@dataclass
class FinetuneTask(ABC):
    """Base of the finetuning tasks given to ``llm_train.Trainer`` (see ``llm_train.tasks.Task``).

    Subclasses add their data fields and define ``collate``, ``loss``, ``evaluate`` and ``tokens``.

    Attributes:
        train: the training split (a map-style dataset).
        val: the validation split.
        eval_batches: batches per evaluation and split.
        batch_size: examples per batch.
        tokenizer_name: recorded in every checkpoint's ``config.json``.
        info: the checkpoint's ``"finetune"`` entry.
    """

    name = "finetune"

    train: Any
    val: Any
    eval_batches: int
    batch_size: int
    tokenizer_name: str
    info: dict[str, Any]

    @abstractmethod
    def collate(self, items: list[Any]) -> Batch:
        """A batch of tensors from a list of dataset items."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Mean training loss of one (micro-)batch."""

    @abstractmethod
    def evaluate(self, model: nn.Module) -> dict[str, float | None]:
        """Metrics on the first ``eval_batches`` batches of each split (``train_loss``, ``val_loss`` …)."""

    @abstractmethod
    def tokens(self, batch: Batch) -> int:
        """Tokens in a batch (for ``tokens_seen``)."""

    def loader(self, batch_size: int, seed: int) -> Any:
        """Seeded, resumable batches of the training split."""
        from llm_train import DatasetLoader

        return DatasetLoader(self.train, batch_size=batch_size, seed=seed, collate=self.collate)

    def eval_chunks(self, dataset: Any) -> list[Batch]:
        """The first ``eval_batches`` batches of ``dataset``, in order (the fixed evaluation data)."""
        stop = min(len(dataset), self.eval_batches * self.batch_size)
        return [
            self.collate([dataset[i] for i in range(start, min(start + self.batch_size, len(dataset)))])
            for start in range(0, stop, self.batch_size)
        ]

    def examples_per_epoch(self) -> int:
        """Examples in the training split."""
        return len(self.train)

    def checkpoint_config(self) -> dict[str, Any]:
        """The keys every checkpoint's ``config.json`` gets: the tokenizer and the finetune entry."""
        return {"tokenizer": self.tokenizer_name, FINETUNE_KEY: dict(self.info)}
