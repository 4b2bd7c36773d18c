"""The output head and its cross-entropy in one pass, a chunk of tokens at a time.

Training a language model the plain way materialises the logits of every token,
``(tokens, vocab_size)`` floats (411 MB for 2,048 tokens of GPT-2), then reads and
writes that tensor again for the softmax, the loss and their backward. For a
small model that memory traffic, not the matmuls, is most of a training step.
:func:`linear_cross_entropy` instead computes the logits of a few hundred tokens
at a time, turns them into the loss and, right away, into the gradients of the
hidden states and of the head's weight, then drops them: the same numbers
(tested against ``cross_entropy(hidden @ weight.T, targets)``) with peak memory
of one chunk of logits.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["IGNORE_INDEX", "linear_cross_entropy", "masked_cross_entropy"]

IGNORE_INDEX = -100
CHUNK_ELEMENTS = 1 << 23  # logits per chunk: 32 MiB of fp32, ~166 tokens of a 50,257 vocabulary


def _chunk_rows(tokens: int, vocab_size: int) -> int:
    """Tokens per chunk: equal chunks of about ``CHUNK_ELEMENTS`` logits each (at least 16 tokens)."""
    rows = max(16, CHUNK_ELEMENTS // max(1, vocab_size))
    chunks = -(-tokens // rows)  # ceil
    return max(1, -(-tokens // max(1, chunks)))


class _LinearCrossEntropy(torch.autograd.Function):
    """Forward computes the summed loss and, when gradients are enabled and wanted, both
    gradients; backward scales them."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        grad_enabled: bool,
    ) -> torch.Tensor:
        # needs_input_grad follows requires_grad, even under torch.no_grad(): the caller's grad
        # mode decides, or an evaluation would compute (and drop) the head's gradients
        want_grads = grad_enabled and any(ctx.needs_input_grad[:3])
        valid = targets != IGNORE_INDEX  # (n,)
        safe_targets = targets.clamp(min=0)[:, None]  # (n, 1)
        count = valid.sum().clamp(min=1)  # every target ignored: loss 0, not nan
        # Per-row weight of each gradient: 1/count, 0 for ignored targets. It scales the
        # small (c, d) operands, never a (c, vocab) or (vocab, d) tensor.
        row_scale = valid.to(hidden.dtype) / count.to(hidden.dtype)  # (n,)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if want_grads else None
        grad_weight: torch.Tensor | None = None
        grad_bias: torch.Tensor | None = None
        step = _chunk_rows(hidden.shape[0], weight.shape[0])
        for start in range(0, hidden.shape[0], step):
            end = start + step
            h = hidden[start:end]  # (c, d)
            logits = h @ weight.t()  # (c, vocab)
            if bias is not None:
                logits = logits + bias
            log_probs = torch.log_softmax(logits.float(), dim=-1)  # (c, vocab), fp32
            keep = valid[start:end].to(log_probs.dtype)  # (c,): 0 for ignored targets
            picked = log_probs.gather(1, safe_targets[start:end]).squeeze(1)  # (c,)
            total -= (picked * keep).sum()
            if grad_hidden is None:  # no gradient wanted: the loss only
                continue
            # d(loss)/d(logits) = softmax - one_hot(target), per row times row_scale.
            grad_logits = log_probs.exp_().scatter_add_(1, safe_targets[start:end], -keep[:, None])
            grad_logits = grad_logits.to(h.dtype)  # (c, vocab)
            scale = row_scale[start:end, None]  # (c, 1)
            grad_hidden[start:end] = (grad_logits @ weight) * scale
            if grad_weight is None:  # the first chunk writes the gradient, later ones add to it
                grad_weight = grad_logits.t() @ (h * scale)  # (vocab, d)
            else:
                grad_weight.addmm_(grad_logits.t(), h * scale)
            if bias is not None:
                chunk_bias = (grad_logits * scale).sum(0).to(bias.dtype)  # (vocab,)
                grad_bias = chunk_bias if grad_bias is None else grad_bias + chunk_bias
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        return total / count.to(torch.float32)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grads = ctx.saved_tensors  # hidden, weight, bias: already d(mean loss)/d(input)
        # loss.backward() sends exactly 1: skip a pass over the (vocab, d) gradient then.
        # (Checked on CPU only; reading a GPU value would wait for the GPU.)
        unit = grad_output.device.type == "cpu" and float(grad_output) == 1.0
        needs = ctx.needs_input_grad
        out = [
            None if (grad is None or not needed) else grad if unit else grad * grad_output.to(grad.dtype)
            for grad, needed in zip(grads, needs[:3], strict=True)
        ]
        return out[0], out[1], out[2], None, None


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T (+ bias)`` against ``targets``, chunk by chunk.

    ``hidden`` is ``(..., d)``, ``weight`` ``(vocab, d)``, ``targets`` ``(...)`` token
    ids, where ``-100`` marks a position to ignore. Equal to
    ``F.cross_entropy(F.linear(hidden, weight, bias).flatten(0, -2), targets.flatten())``
    but without ever holding every token's logits. With gradients enabled, they are
    computed in the forward pass (a chunk's logits are needed for both), so call
    ``backward`` once per call, as after any loss. The loss is accumulated in fp32.
    When every target is ignored the loss is 0 with zero gradients (where
    ``cross_entropy`` gives nan, which would poison the weights).
    """
    if hidden.shape[:-1] != targets.shape:
        raise ValueError(
            f"linear_cross_entropy: hidden {tuple(hidden.shape)} and targets {tuple(targets.shape)} "
            "must agree on every dimension but the last"
        )
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])  # (n, d)
    grad_enabled = torch.is_grad_enabled()
    return _LinearCrossEntropy.apply(flat_hidden, weight, bias, targets.reshape(-1), grad_enabled)


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of full ``logits`` ``(..., vocab)`` over the targets that are not ``-100``.

    In fp32, and 0 when every target is ignored: the reference of
    :func:`linear_cross_entropy`, for heads it cannot read.
    """
    total = torch.nn.functional.cross_entropy(
        logits.float().flatten(0, -2), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return total / (targets != IGNORE_INDEX).sum().clamp(min=1)
