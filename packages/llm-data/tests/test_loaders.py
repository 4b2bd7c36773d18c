"""Sliding windows (book values) and the resumable random-window loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llm_core.errors import ConfigError, DataError
from llm_data import GPTDatasetV1, WindowLoader, create_dataloader


def test_book_first_batch(verdict_text) -> None:
    loader = create_dataloader(verdict_text, batch_size=1, max_length=4, stride=1, shuffle=False)
    inputs, targets = next(iter(loader))
    assert inputs.tolist() == [[40, 367, 2885, 1464]]
    assert targets.tolist() == [[367, 2885, 1464, 1807]]


def test_stride_and_window_count(verdict_text) -> None:
    dataset = GPTDatasetV1(verdict_text, "gpt2", max_length=4, stride=4)
    assert len(dataset) == len(range(0, 5145 - 4, 4))
    assert dataset[1][0].tolist() == dataset[0][1].tolist()[3:] + dataset[1][0].tolist()[1:]


def test_seeded_shuffle_is_reproducible(verdict_text) -> None:
    def first(seed: int) -> torch.Tensor:
        return next(iter(create_dataloader(verdict_text, batch_size=2, max_length=8, stride=8, seed=seed)))[0]

    assert torch.equal(first(1), first(1))
    assert not torch.equal(first(1), first(2))


@pytest.mark.parametrize("stride", [0, -1])
def test_stride_must_be_positive(stride: int) -> None:
    with pytest.raises(ConfigError, match=f"stride={stride}: expected a positive integer"):
        GPTDatasetV1("some text here", "gpt2", max_length=2, stride=stride)


def test_text_shorter_than_one_window_says_how_many_tokens() -> None:
    with pytest.raises(DataError, match="has 3 tokens but one window needs 9"):
        GPTDatasetV1("one two three", "gpt2", max_length=8, stride=1)


TOKENS = np.arange(1000, dtype=np.int64)


def test_window_loader_shapes_and_shift() -> None:
    inputs, targets = next(WindowLoader(TOKENS, batch_size=3, context_length=16, seed=0))
    assert inputs.shape == targets.shape == (3, 16)
    assert inputs.dtype == targets.dtype == torch.long
    assert torch.equal(targets[:, :-1], inputs[:, 1:])
    assert torch.equal(inputs[:, 1:] - inputs[:, :-1], torch.ones(3, 15, dtype=torch.long))


def test_window_loader_is_reproducible_from_its_seed() -> None:
    a = [next(WindowLoader(TOKENS, batch_size=2, context_length=8, seed=7))[0] for _ in range(2)]
    b = WindowLoader(TOKENS, batch_size=2, context_length=8, seed=8)
    assert torch.equal(a[0], a[1])
    assert not torch.equal(a[0], next(b)[0])


def test_restored_loader_continues_exactly() -> None:
    loader = WindowLoader(TOKENS, batch_size=4, context_length=8, seed=3)
    for _ in range(5):
        next(loader)
    state = json.loads(json.dumps(loader.state_dict()))
    expected = [next(loader) for _ in range(3)]
    restored = WindowLoader(TOKENS, batch_size=4, context_length=8, seed=0)
    restored.load_state_dict(state)
    for (x1, y1), (x2, y2) in zip(expected, [next(restored) for _ in range(3)], strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_state_for_other_data_is_refused() -> None:
    state = WindowLoader(TOKENS, batch_size=4, context_length=8).state_dict()
    other = WindowLoader(TOKENS[:500], batch_size=4, context_length=8)
    with pytest.raises(DataError, match="n_tokens: state has 1000, loader has 500"):
        other.load_state_dict(state)
    with pytest.raises(DataError, match="malformed"):
        other.load_state_dict({"kind": "random-windows"})


def test_tokens_shorter_than_context() -> None:
    with pytest.raises(DataError, match="has 8 tokens but one window needs 9"):
        WindowLoader(TOKENS[:8], batch_size=1, context_length=8)


def test_sequential_pass_covers_non_overlapping_windows_once() -> None:
    loader = WindowLoader.sequential(TOKENS[:101], batch_size=3, context_length=10)
    batches = list(loader)
    assert len(batches) == len(loader) == 4  # 10 windows: 3 + 3 + 3 + 1
    starts = torch.cat([x[:, 0] for x, _ in batches]).tolist()
    assert starts == list(range(0, 100, 10))
    assert [x.tolist() for x, _ in batches] == [x.tolist() for x, _ in loader]  # re-iterable, same order
    assert len(WindowLoader.sequential(TOKENS, batch_size=3, context_length=10, max_batches=2)) == 2
