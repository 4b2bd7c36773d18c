"""Perplexity: the strided evaluation equals a direct per-token computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llm_core.errors import ConfigError, DataError
from llm_eval.perplexity import evaluate_perplexity, strided_perplexity, strided_windows


def direct_losses(model, ids: list[int], left_context: int) -> list[float]:
    """Loss of each token i >= 1 given up to ``left_context`` previous tokens, one forward per token."""
    out = []
    for i in range(1, len(ids)):
        x = torch.tensor([ids[max(0, i - left_context) : i]])
        with torch.no_grad():
            logits = model(x)[0, -1]
        out.append(float(F.cross_entropy(logits[None], torch.tensor([ids[i]]))))
    return out


@pytest.mark.parametrize(("n", "ctx", "stride"), [(10, 4, 4), (10, 4, 1), (11, 4, 3), (5, 8, 2), (2, 4, 4)])
def test_windows_count_every_token_once_with_enough_context(n: int, ctx: int, stride: int) -> None:
    windows = strided_windows(n, ctx, stride)
    counted: list[int] = []
    for begin, end, n_new in windows:
        assert 0 < end - begin <= ctx and n_new <= end - begin
        targets = list(range(end - n_new + 1, end + 1))  # token indices predicted here
        for t in targets:
            assert t - begin >= min(t, ctx - stride)  # left context of the prediction
        counted += targets
    assert counted == list(range(1, n))


def test_short_text_matches_one_forward_pass(tiny_model) -> None:
    ids = torch.randint(0, 97, (20,), generator=torch.Generator().manual_seed(1)).tolist()
    with torch.no_grad():
        logits = tiny_model(torch.tensor([ids[:-1]]))[0]
    expected = float(F.cross_entropy(logits, torch.tensor(ids[1:])))
    result = strided_perplexity(tiny_model, ids)
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
    assert result["predicted_tokens"] == 19 and result["windows"] == 1


@pytest.mark.parametrize("stride", [1, 8, 16, 32])
def test_long_text_strided_equals_direct(tiny_model, stride: int) -> None:
    ids = torch.randint(0, 97, (90,), generator=torch.Generator().manual_seed(2)).tolist()
    windows = strided_windows(len(ids), 32, stride)
    # Reference: token i is scored in the first window that counts it, with its context from that window.
    expected = []
    for begin, end, n_new in windows:
        for t in range(end - n_new + 1, end + 1):
            x = torch.tensor([ids[begin:t]])
            with torch.no_grad():
                logits = tiny_model(x)[0, -1]
            expected.append(float(F.cross_entropy(logits[None], torch.tensor([ids[t]]))))
    result = strided_perplexity(tiny_model, ids, stride=stride, batch_size=3)
    assert len(expected) == 89
    assert result["loss"] == pytest.approx(sum(expected) / 89, rel=1e-5)
    if stride == 1:  # every token sees a full window of left context
        assert result["loss"] == pytest.approx(sum(direct_losses(tiny_model, ids, 32)) / 89, rel=1e-5)


def test_more_overlap_changes_the_result(tiny_model) -> None:
    ids = torch.randint(0, 97, (90,), generator=torch.Generator().manual_seed(3)).tolist()
    disjoint = strided_perplexity(tiny_model, ids, stride=32)["loss"]
    overlapping = strided_perplexity(tiny_model, ids, stride=4)["loss"]
    assert disjoint != pytest.approx(overlapping, rel=1e-7)


def test_evaluator_on_text_file_and_prepared_shards(gpt2_checkpoint, gpt2_tokenizer, tmp_path) -> None:
    from llm_data import prepare_corpus
    from llm_model import load_pretrained

    text = "The quick brown fox jumps over the lazy dog. " * 12
    path = tmp_path / "a.txt"
    path.write_text(text, encoding="utf-8")
    report = evaluate_perplexity(gpt2_checkpoint, text=path, stride=16)
    model = load_pretrained(gpt2_checkpoint)
    direct = strided_perplexity(model, gpt2_tokenizer.encode(text), stride=16)
    assert report["loss"] == pytest.approx(direct["loss"], rel=1e-6)
    assert report["evaluator"] == "perplexity" and report.keys() >= evaluate_perplexity.schema
    assert report["tokens"] == len(gpt2_tokenizer.encode(text))

    from llm_data import load_prepared

    prepared = tmp_path / "prepared"
    prepare_corpus([path], prepared, val_fraction=0.1)

    tokens = load_prepared(prepared, "train")
    shard_report = evaluate_perplexity(gpt2_checkpoint, prepared=prepared, split="train", stride=16)
    assert shard_report["tokens"] == len(tokens)
    assert shard_report["loss"] == pytest.approx(
        strided_perplexity(model, tokens, stride=16)["loss"], rel=1e-6
    )


def test_bad_inputs(tiny_model, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"stride: expected an integer in 1\.\.32"):
        strided_perplexity(tiny_model, list(range(10)), stride=33)
    with pytest.raises(DataError, match="at least 2 tokens"):
        strided_perplexity(tiny_model, [5])
    with pytest.raises(DataError, match="outside the model's vocabulary"):
        strided_perplexity(tiny_model, [1, 2, 500])
    with pytest.raises(ConfigError, match="exactly one of text=FILE or prepared=DIR, got neither"):
        evaluate_perplexity(model=tiny_model)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        evaluate_perplexity(model=tiny_model, text=empty, tokenizer="gpt2")
