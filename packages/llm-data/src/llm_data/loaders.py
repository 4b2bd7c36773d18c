"""Token windows for language modelling: the book's sliding-window dataset and a resumable loader.

* :class:`GPTDatasetV1` / :func:`create_dataloader` — chapter 2: every ``stride``-th window of
  ``max_length`` tokens, targets shifted by one.
* :class:`WindowLoader` — for pretraining: an endless stream of random windows, reproducible
  from a seed and resumable from :meth:`WindowLoader.state_dict`.
* :meth:`WindowLoader.sequential` — one deterministic pass over non-overlapping windows (evaluation).
* :class:`StridedWindowLoader` — chapter 5's training loader: epochs over every ``stride``-th window,
  reshuffled each pass exactly as ``DataLoader(shuffle=True)`` does, resumable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from llm_core.errors import ConfigError, DataError
from llm_data.tokenizers import resolve_tokenizer

__all__ = [
    "GPTDatasetV1",
    "SequentialWindowLoader",
    "StridedWindowLoader",
    "WindowLoader",
    "create_dataloader",
    "window_starts",
]


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{name}={value!r}: expected a positive integer")


def _too_short(n_tokens: int, context_length: int, what: str = "context_length") -> DataError:
    return DataError(
        f"the text has {n_tokens} tokens but one window needs {context_length + 1} "
        f"({what}={context_length} inputs + 1 shifted target); use more text or a smaller {what}"
    )


class GPTDatasetV1(Dataset):
    """The book's sliding-window dataset (listing 2.5): ``(input_ids, target_ids)`` pairs.

    Window ``i`` starts at token ``i * stride``; inputs are ``max_length`` tokens, targets the same
    window shifted one token to the right.
    """

    def __init__(self, text: str, tokenizer: Any = "gpt2", max_length: int = 256, stride: int = 128) -> None:
        _positive("max_length", max_length)
        _positive("stride", stride)
        tok = resolve_tokenizer(tokenizer)
        token_ids = tok.encode(text, allowed_special={"<|endoftext|>"})
        if len(token_ids) < max_length + 1:
            raise _too_short(len(token_ids), max_length, "max_length")
        self.input_ids: list[torch.Tensor] = []
        self.target_ids: list[torch.Tensor] = []
        for i in range(0, len(token_ids) - max_length, stride):
            self.input_ids.append(torch.tensor(token_ids[i : i + max_length]))  # (max_length,)
            self.target_ids.append(torch.tensor(token_ids[i + 1 : i + max_length + 1]))  # (max_length,)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_ids[idx], self.target_ids[idx]


def create_dataloader(
    text: str,
    *,
    tokenizer: Any = "gpt2",
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    seed: int | None = None,
) -> DataLoader:
    """The book's ``create_dataloader_v1``: ``(inputs, targets)`` batches, each ``(batch_size, max_length)``.

    ``seed`` makes the shuffling reproducible.
    """
    _positive("batch_size", batch_size)
    dataset = GPTDatasetV1(text, tokenizer, max_length=max_length, stride=stride)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=generator,
    )


def _as_tokens(tokens: Any) -> Any:
    """Something sliceable into numpy arrays: numpy arrays and TokenArrays pass, lists/tensors convert."""
    if isinstance(tokens, torch.Tensor):
        return tokens.detach().cpu().numpy()
    if isinstance(tokens, (list, tuple)):
        return np.asarray(tokens, dtype=np.int64)
    if not hasattr(tokens, "__getitem__") or not hasattr(tokens, "__len__"):
        raise DataError(f"expected a sequence of token ids, got {type(tokens).__name__}")
    return tokens


def _windows(tokens: Any, starts: np.ndarray, context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows = np.stack([np.asarray(tokens[s : s + context_length + 1], dtype=np.int64) for s in starts])
    batch = torch.from_numpy(rows)  # (batch, context_length + 1)
    return batch[:, :-1].contiguous(), batch[:, 1:].contiguous()  # 2 x (batch, context_length)


class WindowLoader:
    """Endless random windows ``(inputs, targets)``, two LongTensors ``(batch_size, context_length)``.

    Batch ``k`` depends only on ``(seed, k)``, so the loader is reproducible, and
    :meth:`state_dict` (JSON-serialisable) / :meth:`load_state_dict` resume it exactly.
    """

    def __init__(self, tokens: Any, *, batch_size: int, context_length: int, seed: int = 0) -> None:
        _positive("batch_size", batch_size)
        _positive("context_length", context_length)
        self.tokens = _as_tokens(tokens)
        self.batch_size = int(batch_size)
        self.context_length = int(context_length)
        self.seed = int(seed)
        self.step = 0
        if len(self.tokens) < context_length + 1:
            raise _too_short(len(self.tokens), context_length)

    @classmethod
    def sequential(
        cls, tokens: Any, *, batch_size: int, context_length: int, max_batches: int | None = None
    ) -> SequentialWindowLoader:
        """One deterministic pass over non-overlapping windows (for validation loss)."""
        return SequentialWindowLoader(
            tokens, batch_size=batch_size, context_length=context_length, max_batches=max_batches
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.step])
        high = len(self.tokens) - self.context_length  # last valid start + 1
        starts = rng.integers(0, high, size=self.batch_size)
        self.step += 1
        return _windows(self.tokens, starts, self.context_length)

    def state_dict(self) -> dict[str, Any]:
        """Where the loader is: restoring it gives exactly the batches that would come next."""
        return {
            "kind": "random-windows",
            "seed": self.seed,
            "step": self.step,
            "batch_size": self.batch_size,
            "context_length": self.context_length,
            "n_tokens": len(self.tokens),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; a state for other data or shapes raises :class:`DataError`."""
        expected = {
            "kind": "random-windows",
            "batch_size": self.batch_size,
            "context_length": self.context_length,
            "n_tokens": len(self.tokens),
        }
        try:
            mismatched = [
                f"{k}: state has {state[k]!r}, loader has {v!r}" for k, v in expected.items() if state[k] != v
            ]
            seed, step = int(state["seed"]), int(state["step"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"WindowLoader state is malformed ({type(exc).__name__}: {exc})") from None
        if mismatched:
            raise DataError(
                "WindowLoader state does not match this loader (" + "; ".join(mismatched) + "); "
                "resume with the same data, batch_size and context_length"
            )
        self.seed, self.step = seed, step


class SequentialWindowLoader:
    """Non-overlapping windows from the start, once per iteration; the last batch may be smaller."""

    def __init__(self, tokens: Any, *, batch_size: int, context_length: int, max_batches: int | None = None):
        _positive("batch_size", batch_size)
        _positive("context_length", context_length)
        if max_batches is not None:
            _positive("max_batches", max_batches)
        self.tokens = _as_tokens(tokens)
        self.batch_size = int(batch_size)
        self.context_length = int(context_length)
        if len(self.tokens) < context_length + 1:
            raise _too_short(len(self.tokens), context_length)
        self.n_windows = (len(self.tokens) - 1) // context_length
        n_batches = -(-self.n_windows // self.batch_size)
        self.n_batches = n_batches if max_batches is None else min(n_batches, max_batches)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        starts = np.arange(self.n_windows, dtype=np.int64) * self.context_length
        for b in range(self.n_batches):
            yield _windows(
                self.tokens, starts[b * self.batch_size : (b + 1) * self.batch_size], self.context_length
            )


def window_starts(n_tokens: int, context_length: int, stride: int) -> np.ndarray:
    """Where :class:`GPTDatasetV1`'s windows start: every ``stride``-th token below ``n - context``."""
    _positive("context_length", context_length)
    _positive("stride", stride)
    return np.arange(0, max(0, n_tokens - context_length), stride, dtype=np.int64)


def _global_seed() -> int:
    """One int64 from torch's global generator, drawn as ``DataLoader`` and ``RandomSampler`` draw theirs."""
    return int(torch.empty((), dtype=torch.int64).random_().item())


class StridedWindowLoader:
    """Endless passes over :class:`GPTDatasetV1`'s windows, batched as the book's chapter-5 ``DataLoader``.

    The windows start every ``stride`` tokens (default: ``context_length``, no
    overlap); batches are ``(inputs, targets)``, two LongTensors ``(batch_size,
    context_length)``. Each pass draws from torch's *global* generator exactly as
    a single-process ``DataLoader(dataset, batch_size, shuffle, drop_last)`` does
    when iterated: one int64 for its workers' base seed, then, with ``shuffle``,
    one for its ``RandomSampler``, whose own generator permutes the windows. So
    the passes interleave with dropout's draws as in the book's training loop.
    ``drop_last`` drops a pass's last incomplete batch (else it is smaller).

    :meth:`state_dict` holds the pass, the position in it and the pass's sampler
    seed; with torch's RNG state (which checkpoints save) a restored loader
    yields exactly the batches the original would have.
    """

    def __init__(
        self,
        tokens: Any,
        *,
        batch_size: int,
        context_length: int,
        stride: int | None = None,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> None:
        _positive("batch_size", batch_size)
        _positive("context_length", context_length)
        self.tokens = _as_tokens(tokens)
        self.batch_size = int(batch_size)
        self.context_length = int(context_length)
        self.stride = int(stride) if stride is not None else self.context_length
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.starts = window_starts(len(self.tokens), self.context_length, self.stride)
        if len(self.starts) == 0:
            raise _too_short(len(self.tokens), context_length)
        if drop_last and len(self.starts) < self.batch_size:
            raise DataError(
                f"the text gives {len(self.starts)} windows of {context_length} tokens (stride "
                f"{self.stride}), fewer than one batch ({batch_size}) with drop_last; use a smaller "
                "batch size, context length or stride, or more text"
            )
        self.passes = 0  # passes started
        self.position = 0  # batches taken from the current pass
        self.sampler_seed: int | None = None  # the current pass's RandomSampler seed (shuffle)
        self._order = np.arange(len(self.starts))

    def batches_per_pass(self) -> int:
        """Batches in one pass over the windows."""
        n = len(self.starts)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _draw_order(self) -> tuple[np.ndarray, int | None]:
        """A fresh pass's window order, drawing from torch's global generator as ``DataLoader`` does."""
        _global_seed()  # the DataLoader iterator's base seed (for workers; drawn even without them)
        if not self.shuffle:
            return np.arange(len(self.starts)), None
        seed = _global_seed()
        return self._permutation(seed), seed

    def _permutation(self, seed: int) -> np.ndarray:
        generator = torch.Generator()
        generator.manual_seed(seed)
        return torch.randperm(len(self.starts), generator=generator).numpy()

    def _batch(self, order: np.ndarray, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = order[index * self.batch_size : (index + 1) * self.batch_size]
        return _windows(self.tokens, self.starts[rows], self.context_length)

    def first_batches(self, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``count`` batches of a fresh pass (the book's ``calc_loss_loader(loader, num_batches)``).

        Draws from the global generator like a new pass, without moving the training position.
        """
        order, _ = self._draw_order()
        return [self._batch(order, i) for i in range(min(count, self.batches_per_pass()))]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.passes == 0 or self.position >= self.batches_per_pass():
            self._order, self.sampler_seed = self._draw_order()
            self.passes, self.position = self.passes + 1, 0
        self.position += 1
        return self._batch(self._order, self.position - 1)

    def state_dict(self) -> dict[str, Any]:
        """Where the loader is (JSON-serialisable); the global RNG state is saved by the caller."""
        return {
            "kind": "strided-windows",
            "passes": self.passes,
            "position": self.position,
            "sampler_seed": self.sampler_seed,
            **self._shape(),
        }

    def _shape(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "context_length": self.context_length,
            "stride": self.stride,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "n_tokens": len(self.tokens),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; a state for other data or settings raises :class:`DataError`."""
        try:
            mismatched = [
                f"{k}: state has {state[k]!r}, loader has {v!r}"
                for k, v in {"kind": "strided-windows", **self._shape()}.items()
                if state[k] != v
            ]
            passes, position = int(state["passes"]), int(state["position"])
            seed = None if state["sampler_seed"] is None else int(state["sampler_seed"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"StridedWindowLoader state is malformed ({type(exc).__name__}: {exc})") from None
        if mismatched:
            raise DataError(
                "StridedWindowLoader state does not match this loader (" + "; ".join(mismatched) + "); "
                "resume with the same data and settings"
            )
        if self.shuffle and passes > 0 and seed is None:
            raise DataError("StridedWindowLoader state: a shuffled pass without its sampler_seed")
        self.passes, self.position, self.sampler_seed = passes, position, seed
        self._order = self._permutation(seed) if seed is not None else np.arange(len(self.starts))
