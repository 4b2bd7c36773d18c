"""Generation: greedy, sampling options, cache equivalence, batching, streaming, stopping, bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from llm_core.errors import ConfigError
from llm_model import GPTModel, generate, generate_text, stream_tokens
from llm_model.generation import _next_token


def reference_greedy(model: GPTModel, idx: torch.Tensor, n: int) -> torch.Tensor:
    """The book's generate_text_simple: crop to context, argmax, append."""
    for _ in range(n):
        with torch.no_grad():
            logits = model(idx[:, -model.config.context_length :])[:, -1]
        idx = torch.cat([idx, logits.argmax(-1, keepdim=True)], dim=1)
    return idx


def test_greedy_equals_the_books_loop(model: GPTModel) -> None:
    idx = torch.randint(0, 97, (1, 5))
    assert torch.equal(generate(model, idx, 10), reference_greedy(model, idx, 10))


@pytest.mark.parametrize("prompt_len", [5, 30, 40])  # 30 + 10 and 40 run past context_length=32
def test_cache_and_no_cache_give_identical_greedy_tokens(model: GPTModel, prompt_len: int) -> None:
    idx = torch.randint(0, 97, (2, prompt_len))
    cached = generate(model, idx, 10, use_cache=True)
    uncached = generate(model, idx, 10, use_cache=False)
    assert torch.equal(cached, uncached)
    assert torch.equal(uncached, reference_greedy(model, idx, 10))


def test_left_padded_batch_matches_each_prompt_alone(model: GPTModel) -> None:
    a, b = torch.randint(0, 97, (7,)), torch.randint(0, 97, (3,))
    batch = torch.stack([a, torch.cat([torch.zeros(4, dtype=torch.long), b])])
    mask = torch.tensor([[True] * 7, [False] * 4 + [True] * 3])
    for use_cache in (True, False):
        out = generate(model, batch, 8, padding_mask=mask, use_cache=use_cache)
        assert torch.equal(out[0, 7:], generate(model, a, 8)[7:])
        assert torch.equal(out[1, 7:], generate(model, b, 8)[3:])


def test_one_dimensional_prompt_and_lists(model: GPTModel) -> None:
    out = generate(model, [1, 2, 3], 4)
    assert out.shape == (7,) and out[:3].tolist() == [1, 2, 3]
    assert generate(model, [1, 2, 3], 0).tolist() == [1, 2, 3]


def test_seed_makes_sampling_reproducible(model: GPTModel) -> None:
    idx = torch.randint(0, 97, (1, 4))
    one = generate(model, idx, 20, temperature=1.5, seed=123)
    two = generate(model, idx, 20, temperature=1.5, seed=123)
    other = generate(model, idx, 20, temperature=1.5, seed=124)
    assert torch.equal(one, two)
    assert not torch.equal(one, other)


def test_sampling_with_cache_equals_sampling_without(model: GPTModel) -> None:
    idx = torch.randint(0, 97, (2, 4))
    options: dict[str, Any] = {"temperature": 1.0, "top_k": 20, "top_p": 0.9, "seed": 7}
    assert torch.equal(
        generate(model, idx, 12, **options), generate(model, idx, 12, use_cache=False, **options)
    )


def test_top_k_keeps_only_the_k_most_likely() -> None:
    logits = torch.tensor([[0.0, 5.0, 4.0, 3.0, -1.0]]).repeat(500, 1)
    picks = _next_token(logits, 1.0, 2, None, torch.Generator().manual_seed(0))
    assert set(picks.tolist()) == {1, 2}


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log().repeat(2000, 1)
    picks = _next_token(logits, 1.0, None, 0.8, torch.Generator().manual_seed(0))
    assert set(picks.tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.8
    only_top = _next_token(logits, 1.0, None, 0.4, torch.Generator().manual_seed(0))
    assert set(only_top.tolist()) == {0}


def test_temperature_zero_is_greedy_whatever_top_k(model: GPTModel) -> None:
    idx = torch.randint(0, 97, (1, 4))
    assert torch.equal(generate(model, idx, 6, top_k=3, top_p=0.5), generate(model, idx, 6))


def test_stops_at_eos(model: GPTModel) -> None:
    idx = torch.randint(0, 97, (1, 4))
    first = int(generate(model, idx, 1)[0, -1])
    out = generate(model, idx, 10, eos_id=first)
    assert out.shape == (1, 5) and int(out[0, -1]) == first


def test_stops_at_any_of_several_eos_ids(model: GPTModel) -> None:
    idx = torch.randint(0, 97, (1, 4))
    free = generate(model, idx, 8)[0, 4:].tolist()
    third = free[2]
    others = [i for i in range(97) if i not in free]
    out = generate(model, idx, 8, eos_id=[others[0], third])  # the second id ends it
    assert out[0, 4:].tolist() == free[: free.index(third) + 1]


def test_generate_text_cuts_at_any_eos_of_the_tokenizer(model: GPTModel, tokenizer: Any) -> None:
    free = generate(model, tokenizer.encode("abc"), 8)[3:].tolist()
    tokenizer.eos_ids = (96, free[1])  # a checkpoint's own tokenizer: several end-of-sequence ids
    end = min(free.index(i) for i in tokenizer.eos_ids if i in free)
    assert generate_text(model, tokenizer, "abc", 8) == tokenizer.decode(free[:end])


def test_finished_rows_are_filled_with_eos(model: GPTModel) -> None:
    idx = torch.randint(0, 97, (2, 4))
    firsts = generate(model, idx, 1)[:, -1]
    out = generate(model, idx, 6, eos_id=int(firsts[0]))
    assert (out[0, 4:] == firsts[0]).all()


def test_stream_tokens_yields_what_generate_returns(model: GPTModel) -> None:
    idx = torch.randint(0, 97, (2, 4))
    streamed = list(stream_tokens(model, idx, 7))
    assert len(streamed) == 7 and streamed[0].shape == (2,)
    assert torch.equal(torch.stack(streamed, dim=1), generate(model, idx, 7)[:, 4:])


def test_generation_restores_training_mode_and_grad_mode(model: GPTModel) -> None:
    model.train()
    for _ in stream_tokens(model, [1, 2], 2):
        assert torch.is_grad_enabled()
    assert model.training


def test_generate_text_with_any_tokenizer(model: GPTModel, tokenizer: Any) -> None:
    text = generate_text(model, tokenizer, "Hello", 8, eos_id=None)
    ids = generate(model, tokenizer.encode("Hello"), 8)[5:].tolist()
    assert text == tokenizer.decode(ids)
    batch = generate_text(model, tokenizer, ["Hello", "Hi"], 8, eos_id=None)
    assert batch == [text, generate_text(model, tokenizer, "Hi", 8, eos_id=None)]


def test_stop_strings_cut_the_text(model: GPTModel, tokenizer: Any) -> None:
    full = generate_text(model, tokenizer, "abc", 12, eos_id=None)
    stop = full[3:5]
    text = generate_text(model, tokenizer, "abc", 12, eos_id=None, stop_strings=[stop])
    assert text == full[: full.index(stop)]
    ids = generate(model, tokenizer.encode("abc"), 12, stop_strings=[stop], tokenizer=tokenizer)
    assert len(ids) < 3 + 12  # stopped early


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": -1}, "max_new_tokens: expected an integer >= 0"),
        ({"top_p": 0.0}, r"top_p: expected a number in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p: expected a number in \(0, 1\]"),
        ({"temperature": -0.5}, "temperature: expected a number >= 0"),
        ({"top_k": 0}, "top_k: expected an integer >= 1"),
        ({"stop_strings": ["x"]}, "stop_strings: a tokenizer is needed"),
    ],
)
def test_bad_options_raise_config_error(model: GPTModel, kwargs: dict[str, Any], message: str) -> None:
    options = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(ConfigError, match=message):
        generate(model, [1, 2], **options)


def test_empty_prompt_is_an_error(model: GPTModel, tokenizer: Any) -> None:
    with pytest.raises(ConfigError, match="empty prompt"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ConfigError, match="empty prompt"):
        generate_text(model, tokenizer, "", 3)
    with pytest.raises(ConfigError, match=r"row\(s\) \[1\] have no real tokens"):
        generate(model, [[1, 2], [0, 0]], 3, padding_mask=[[True, True], [False, False]])


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ([1, 97], "token id 97 is outside the model's vocabulary 0..96"),
        ([-1], "token id -1 is outside"),
        ([[1, 2], [3]], "expected integer token ids"),
        ([2**70], "expected integer token ids"),
    ],
)
def test_bad_prompt_ids_raise_config_error_even_without_new_tokens(
    model: GPTModel, prompt: Any, message: str
) -> None:
    for max_new_tokens in (0, 2):
        with pytest.raises(ConfigError, match=message):
            generate(model, prompt, max_new_tokens)


@pytest.mark.parametrize("temperature", [1e-300, 5e-324, 1e-45])
def test_a_temperature_below_float32_range_is_greedy_not_nan(model: GPTModel, temperature: float) -> None:
    idx = torch.randint(0, 97, (1, 5))
    assert torch.equal(generate(model, idx, 5, temperature=temperature, seed=0), generate(model, idx, 5))


@pytest.mark.parametrize("top_p", [1e-300, 5e-324])
def test_a_top_p_below_float32_range_keeps_the_most_likely_token(model: GPTModel, top_p: float) -> None:
    idx = torch.randint(0, 97, (1, 5))
    sampled = generate(model, idx, 5, temperature=1.0, top_p=top_p, seed=0)
    assert torch.equal(sampled, generate(model, idx, 5))
    uniform = generate(model, idx, 5, temperature=1e300, top_p=top_p, seed=0)  # all logits equal
    assert int(uniform.min()) >= 0 and int(uniform.max()) < 97


def test_stream_checks_options_before_the_first_token(model: GPTModel) -> None:
    with pytest.raises(ConfigError, match="top_p"):
        stream_tokens(model, [1], 3, top_p=2.0)


def test_generation_works_for_a_model_in_training_mode(make_model: Callable[..., GPTModel]) -> None:
    model = make_model(drop_rate=0.3).train()
    idx = torch.randint(0, 97, (1, 4))
    assert torch.equal(generate(model, idx, 5), generate(model, idx, 5))
