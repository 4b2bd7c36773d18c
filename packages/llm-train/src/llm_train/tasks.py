"""What the Trainer trains on: a task gives batches, a loss and an evaluation.

:class:`LanguageModeling` is pretraining's task (random windows, or the book's
strided windows in shuffled epochs; next-token loss). Finetuning packages
provide their own tasks (classification, instructions, preferences) and reuse
the whole Trainer: checkpoints, exact resume, metrics, DDP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from llm_core.config_io import check_keys
from llm_core.errors import CheckpointError, ConfigError, DataError
from llm_data import WindowLoader
from llm_data.loaders import StridedWindowLoader
from llm_model import accepts_targets

__all__ = ["BatchLoader", "DatasetLoader", "LanguageModeling", "Task", "eval_windows", "next_token_loss"]

Batch = tuple[torch.Tensor, ...]


class BatchLoader(Protocol):
    """An endless, seeded, resumable iterator of batches (tuples of tensors, batch dimension first)."""

    def __iter__(self) -> Iterator[Batch]: ...

    def __next__(self) -> Batch: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Task(Protocol):
    """The contract between the Trainer and what it trains on."""

    def loader(self, batch_size: int, seed: int) -> BatchLoader:
        """A loader of ``batch_size`` examples per batch (the global batch under DDP)."""
        ...

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Mean training loss of one (micro-)batch."""
        ...

    def evaluate(self, model: nn.Module) -> dict[str, float | None]:
        """Metrics on fixed held-out data; must contain ``train_loss`` and ``val_loss``."""
        ...

    def examples_per_epoch(self) -> int:
        """How many examples one epoch has (for ``--epochs``)."""
        ...

    def tokens(self, batch: Batch) -> int:
        """Tokens in a batch (for ``tokens_seen``)."""
        ...

    # Optional: ``name`` (a str) labels the progress bar ("pretrain", "classify", ...).
    # Optional: ``checkpoint_config() -> dict`` adds keys to every checkpoint's config.json
    # (a classifier's labels, LoRA settings), so the finetuned model can be rebuilt.


class DatasetLoader:
    """Endless batches from a map-style dataset, reshuffled each epoch from ``(seed, epoch)``.

    ``collate`` turns a list of examples into a tuple of tensors (batch first).
    The state is ``{"epoch", "position"}``, so a restored loader yields exactly
    the batches the original would have. The last incomplete batch of an
    epoch is dropped.
    """

    def __init__(
        self,
        dataset: Sequence[Any],
        *,
        batch_size: int,
        seed: int,
        collate: Callable[[list[Any]], Batch],
    ) -> None:
        if len(dataset) < batch_size:
            raise DataError(
                f"the dataset has {len(dataset)} examples, fewer than one batch ({batch_size}); "
                "use a smaller --batch-size"
            )
        self.dataset, self.batch_size, self.seed, self.collate = dataset, batch_size, seed, collate
        self.epoch, self.position = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.dataset))

    def __iter__(self) -> DatasetLoader:
        return self

    def __next__(self) -> Batch:
        if self.position + self.batch_size > len(self.dataset):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._permutation()
        indices = self._order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.collate([self.dataset[int(i)] for i in indices])

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_keys(state, required=("epoch", "position"), source="data loader state", error=CheckpointError)
        try:
            self.epoch, self.position = int(state["epoch"]), int(state["position"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"data loader state: malformed position ({exc})") from None
        self._order = self._permutation()


def eval_windows(n_tokens: int, context_length: int, count: int) -> list[int]:
    """Start offsets of ``count`` fixed windows spread evenly over ``n_tokens`` tokens."""
    last = n_tokens - context_length - 1
    if last < 0:
        return []
    return sorted({round(i * last / max(1, count - 1)) for i in range(count)})


def next_token_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of next-token logits; -100 targets are ignored.

    scratchlm's decoders compute it inside ``forward`` a chunk of tokens at a time
    (:func:`llm_model.accepts_targets`); other models through their full logits.
    """
    device = next(model.parameters()).device
    inputs, targets = inputs.to(device), targets.to(device)
    if accepts_targets(model):
        return model(inputs, targets=targets)  # scalar
    logits = model(inputs)  # (b, t, vocab)
    return nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


class LanguageModeling:
    """Pretraining: windows of ``context_length + 1`` tokens, next-token cross-entropy.

    ``sampling="random"`` draws window starts with replacement from ``(seed, batch)``
    (:class:`~llm_data.WindowLoader`); ``"windows"`` cuts every ``stride``-th window
    and goes through them in epochs, reshuffled from torch's global generator as the
    book's ``DataLoader`` does (:class:`~llm_data.loaders.StridedWindowLoader`).
    ``eval_data="fixed"`` scores ``eval_batches x batch_size`` windows spread evenly
    over each split (no randomness); ``"loader"`` scores, as the book's
    ``evaluate_model``, the first ``eval_batches`` batches of a fresh pass of the
    training loader (reshuffled: it draws from the global generator) and of the
    validation windows in order (their last batch kept): the mean of the batch losses.
    """

    name = "pretrain"

    def __init__(
        self,
        train_tokens: Sequence[int] | np.ndarray,
        val_tokens: Sequence[int] | np.ndarray | None,
        *,
        context_length: int,
        eval_batches: int,
        batch_size: int,
        sampling: str = "random",
        stride: int | None = None,
        shuffle: bool = True,
        drop_last: bool = True,
        eval_data: str = "fixed",
    ) -> None:
        needed = context_length + 1
        if len(train_tokens) < needed:
            raise DataError(
                f"the training data has {len(train_tokens)} tokens, fewer than one window needs "
                f"({needed} = context_length + 1); use more text or a smaller --context-length"
            )
        if sampling not in ("random", "windows"):
            raise ConfigError(f"sampling={sampling!r}: expected 'random' or 'windows'")
        if eval_data not in ("fixed", "loader"):
            raise ConfigError(f"eval_data={eval_data!r}: expected 'fixed' or 'loader'")
        if eval_data == "loader" and sampling != "windows":
            raise ConfigError(
                "eval_data='loader' scores the training loader's batches: it needs sampling='windows'"
            )
        self.train_tokens = train_tokens
        self.val_tokens = val_tokens if val_tokens is not None and len(val_tokens) > context_length else None
        self.context_length = context_length
        self.eval_batches = eval_batches
        self.eval_rows = eval_batches * batch_size
        self.batch_size = batch_size
        self.sampling, self.eval_data = sampling, eval_data
        self.windows: dict[str, Any] = {"stride": stride, "shuffle": shuffle, "drop_last": drop_last}
        self._loader_batch = batch_size  # the global batch of loader(): sizes an epoch

    def loader(self, batch_size: int, seed: int) -> WindowLoader | StridedWindowLoader:
        self._loader_batch = batch_size
        if self.sampling == "windows":  # shuffled from the global generator, which the caller seeded
            return self._strided(self.train_tokens, batch_size, **self.windows)
        return WindowLoader(
            self.train_tokens, batch_size=batch_size, context_length=self.context_length, seed=seed
        )

    def _strided(self, tokens: Any, batch_size: int, **options: Any) -> StridedWindowLoader:
        return StridedWindowLoader(
            tokens, batch_size=batch_size, context_length=self.context_length, **options
        )

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        inputs, targets = batch
        return next_token_loss(model, inputs, targets)

    def _fixed_loss(self, model: nn.Module, tokens: Any) -> float | None:
        if tokens is None:
            return None
        starts = eval_windows(len(tokens), self.context_length, self.eval_rows)
        if not starts:
            return None
        rows = torch.stack(
            [
                torch.as_tensor(np.asarray(tokens[s : s + self.context_length + 1], dtype=np.int64))
                for s in starts
            ]
        )  # (n, t + 1)
        total = 0.0
        for chunk in rows.split(self.batch_size):
            total += next_token_loss(model, chunk[:, :-1], chunk[:, 1:]).item() * len(chunk)
        return total / len(rows)

    def _loader_loss(self, model: nn.Module, loader: StridedWindowLoader) -> float:
        batches = loader.first_batches(self.eval_batches)
        return sum(next_token_loss(model, *batch).item() for batch in batches) / len(batches)

    def evaluate(self, model: nn.Module) -> dict[str, float | None]:
        if self.eval_data == "fixed":
            return {
                "train_loss": self._fixed_loss(model, self.train_tokens),
                "val_loss": self._fixed_loss(model, self.val_tokens),
            }
        train = self._strided(self.train_tokens, self.batch_size, **self.windows)
        val = None
        if self.val_tokens is not None:  # in order, the last batch kept: the book's val_loader
            stride = self.windows["stride"]
            val = self._strided(
                self.val_tokens, self.batch_size, stride=stride, shuffle=False, drop_last=False
            )
        return {
            "train_loss": self._loader_loss(model, train),
            "val_loss": None if val is None else self._loader_loss(model, val),
        }

    def examples_per_epoch(self) -> int:
        if self.sampling == "windows":  # one pass's batches, in rows
            loader = self._strided(self.train_tokens, self._loader_batch, **self.windows)
            return loader.batches_per_pass() * self._loader_batch
        return max(1, len(self.train_tokens) // self.context_length)

    def tokens(self, batch: Batch) -> int:
        return int(batch[0].numel())
