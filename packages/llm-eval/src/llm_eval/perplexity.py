"""Loss and perplexity of a model on a token stream, with the strided sliding window.

A text longer than the context is evaluated in windows of at most
``context_length`` tokens that start every ``stride`` tokens (the Hugging Face
"strided perplexity" recipe). Every token after the first is predicted exactly
once, in the first window that holds it as a new target, so each prediction
sees at least ``context_length - stride`` tokens of left context (all of them
in the first window). ``stride = context_length`` gives disjoint windows
(fast, least context); ``stride = 1`` gives every token a full context (slow).

:func:`rolling_windows` is lm-evaluation-harness's layout for
``loglikelihood_rolling``: disjoint blocks of ``context_length`` predictions,
the last block right-aligned so it too sees a full context.
:func:`windows_nll` scores any such list of windows.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from llm_core.errors import ConfigError, DataError
from llm_eval.reports import evaluator

__all__ = ["evaluate_perplexity", "rolling_windows", "strided_perplexity", "strided_windows", "windows_nll"]


def strided_windows(n_tokens: int, context_length: int, stride: int) -> list[tuple[int, int, int]]:
    """The windows over ``n_tokens`` tokens: ``(begin, end, n_new)`` triples.

    The window's inputs are ``tokens[begin:end]`` and its targets ``tokens[begin + 1:end + 1]``;
    only the last ``n_new`` targets are counted (the others were counted by an earlier window).
    The ``n_new`` add up to ``n_tokens - 1``.
    """
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= context_length:
        raise ConfigError(
            f"stride: expected an integer in 1..{context_length} (the context length), got {stride!r}; "
            f"use {context_length} for disjoint windows or a smaller value for more left context"
        )
    if n_tokens < 2:
        raise DataError(f"expected at least 2 tokens to measure perplexity, found {n_tokens}; give more text")
    windows = []
    begin, counted = 0, 0  # inputs tokens[:counted] already had their next token scored
    while True:
        end = min(begin + context_length, n_tokens - 1)
        windows.append((begin, end, end - counted))
        counted = end
        if end == n_tokens - 1:
            return windows
        begin += stride


def rolling_windows(n_tokens: int, context_length: int) -> list[tuple[int, int, int]]:
    """lm-evaluation-harness's rolling windows over ``n_tokens`` tokens, as ``(begin, end, n_new)`` triples.

    The same convention as :func:`strided_windows` (inputs ``tokens[begin:end]``, the last
    ``n_new`` targets counted): block ``k`` predicts targets ``k * context_length + 1`` up to
    ``(k + 1) * context_length``, and its window ends at its last target, so every window but
    a short first one holds ``context_length`` inputs (``lm_eval.utils.get_rolling_token_windows``
    with ``context_len=1``). Fewer than 2 tokens give no window.
    """
    if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 1:
        raise ConfigError(f"context_length: expected a positive integer, got {context_length!r}")
    windows = []
    for start in range(0, max(n_tokens - 1, 0), context_length):  # `start` targets were counted before
        end = min(start + context_length, n_tokens - 1)
        windows.append((max(0, end - context_length), end, end - start))
    return windows


def _as_tensor(tokens: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(tokens, torch.Tensor):
        return tokens.detach().to("cpu", torch.long).flatten()
    return torch.from_numpy(np.asarray(tokens[0 : len(tokens)], dtype=np.int64).reshape(-1))


def strided_perplexity(
    model: Any,
    tokens: Sequence[int] | Any,
    *,
    stride: int | None = None,
    batch_size: int = 8,
    context_length: int | None = None,
) -> dict[str, Any]:
    """Mean next-token cross-entropy (nats) and perplexity of ``model`` on ``tokens``.

    ``tokens``: a 1-D sequence of token ids (list, numpy array, tensor or
    :class:`llm_data.TokenArray`). ``stride`` defaults to half the context.
    Returns ``{"loss", "perplexity", "tokens", "predicted_tokens", "windows",
    "context_length", "stride"}``.
    """
    ids = _as_tensor(tokens)  # (n,)
    ctx = int(context_length or model.config.context_length)
    stride = max(ctx // 2, 1) if stride is None else stride
    windows = strided_windows(len(ids), ctx, stride)
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is not None and len(ids) and int(ids.max()) >= vocab:
        raise DataError(
            f"token id {int(ids.max())} is outside the model's vocabulary 0..{vocab - 1}; "
            "was the text tokenized with the model's tokenizer (--tokenizer)?"
        )
    total = windows_nll(model, ids, windows, batch_size=batch_size)
    predicted = len(ids) - 1
    loss = total / predicted
    return {
        "loss": loss,
        "perplexity": math.exp(loss) if loss < 700 else math.inf,
        "tokens": len(ids),
        "predicted_tokens": predicted,
        "windows": len(windows),
        "context_length": ctx,
        "stride": stride,
    }


def windows_nll(
    model: Any, tokens: Sequence[int] | Any, windows: Sequence[tuple[int, int, int]], *, batch_size: int = 8
) -> float:
    """Summed next-token negative log-likelihood (nats) of the targets ``windows`` count.

    ``windows``: ``(begin, end, n_new)`` triples as :func:`strided_windows` and
    :func:`rolling_windows` make them. Consecutive windows of equal length run as one batch.
    """
    import torch
    import torch.nn.functional as F

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive integer, got {batch_size!r}")
    ids = _as_tensor(tokens)  # (n,)
    device = next(model.parameters()).device
    total = 0.0
    was_training = model.training
    model.eval()
    try:
        # Consecutive windows of equal length go through the model as one batch.
        i = 0
        while i < len(windows):
            length = windows[i][1] - windows[i][0]
            batch = [windows[i]]
            while (
                len(batch) < batch_size
                and i + len(batch) < len(windows)
                and windows[i + len(batch)][1] - windows[i + len(batch)][0] == length
            ):
                batch.append(windows[i + len(batch)])
            i += len(batch)
            x = torch.stack([ids[b:e] for b, e, _ in batch]).to(device)  # (b, length)
            y = torch.stack([ids[b + 1 : e + 1] for b, e, _ in batch]).to(device)  # (b, length)
            with torch.no_grad():
                logits = model(x).float()  # (b, length, vocab)
                losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
                losses = losses.view(len(batch), length)  # (b, length)
            for row, (_, _, n_new) in enumerate(batch):
                total += float(losses[row, length - n_new :].sum())
    finally:
        model.train(was_training)
    return total


@evaluator(
    "perplexity",
    keys=[
        "checkpoint",
        "source",
        "loss",
        "perplexity",
        "tokens",
        "predicted_tokens",
        "windows",
        "context_length",
        "stride",
    ],
)
def evaluate_perplexity(
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    text: str | os.PathLike[str] | None = None,
    prepared: str | os.PathLike[str] | None = None,
    split: str = "val",
    stride: int | None = None,
    batch_size: int = 8,
    max_tokens: int | None = None,
    tokenizer: Any = None,
    model: Any = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Perplexity of a checkpoint (or ``model``) on a UTF-8 ``text`` file or a ``prepared`` token directory.

    ``prepared`` is a directory written by ``scratchlm prepare`` (its ``split``
    is read with :func:`llm_data.load_prepared`); ``max_tokens`` evaluates only
    the first tokens. ``tokenizer`` (text files only) defaults to the one the
    checkpoint records, else ``gpt2``.
    """
    if (text is None) == (prepared is None):
        raise ConfigError(
            "perplexity: expected exactly one of text=FILE or prepared=DIR, "
            f"got {'both' if text is not None else 'neither'}; pass --text or --prepared"
        )
    from llm_eval.checkpoints import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(
        checkpoint,
        tokenizer,
        model=model,
        device=device,
        evaluator="perplexity",
        with_tokenizer=text is not None,
    )
    if text is not None:
        from llm_data import tokens_from_text_file

        tokens: Any = tokens_from_text_file(text, tok)
        source = str(text)
    else:
        from llm_data import load_prepared

        tokens = load_prepared(prepared, split)
        source = f"{prepared} ({split})"
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 2:
            raise ConfigError(f"max_tokens: expected an integer >= 2, got {max_tokens!r}")
        tokens = tokens[:max_tokens]
    result = strided_perplexity(model, tokens, stride=stride, batch_size=batch_size)
    return {
        "evaluator": "perplexity",
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "source": source,
        **result,
    }
