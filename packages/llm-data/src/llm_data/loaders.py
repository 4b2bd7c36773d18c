"""Token windows for language modelling: the book's sliding-window dataset and a resumable loader.

* :class:`GPTDatasetV1` / :func:`create_dataloader` — chapter 2: every ``stride``-th window of
  ``max_length`` tokens, targets shifted by one.
* :class:`WindowLoader` — for pretraining: an endless stream of random windows, reproducible
  from a seed and resumable from :meth:`WindowLoader.state_dict`.
* :meth:`WindowLoader.sequential` — one deterministic pass over non-overlapping windows (evaluation).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from llm_core.errors import ConfigError, DataError
from llm_data.tokenizers import resolve_tokenizer

__all__ = ["GPTDatasetV1", "SequentialWindowLoader", "WindowLoader", "create_dataloader"]


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
