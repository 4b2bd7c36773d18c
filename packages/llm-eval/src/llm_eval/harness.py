"""An EleutherAI lm-evaluation-harness model for scratchlm checkpoints (``pip install 'llm-eval[harness]'``).

:class:`CheckpointScorer` holds the three request types the harness asks of a
model, on plain arguments (no lm-eval needed); :func:`harness_lm_class`
builds the ``lm_eval.api.model.LM`` subclass around it and registers it with
the harness as ``scratchlm``::

    from llm_eval.harness import register_harness_model
    register_harness_model()
    # lm_eval --model scratchlm --model_args checkpoint=runs/gpt,tokenizer=gpt2 --tasks hellaswag
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from llm_core.errors import MissingDependencyError

__all__ = ["CheckpointScorer", "harness_lm_class", "register_harness_model"]

HARNESS_NAME = "scratchlm"


class CheckpointScorer:
    """Log-likelihoods and generations of a scratchlm model, the way lm-evaluation-harness asks for them."""

    def __init__(self, model: Any, tokenizer: Any, *, max_gen_toks: int = 256) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_gen_toks = max_gen_toks
        self.context_length = int(model.config.context_length)
        eot = getattr(tokenizer, "eot_token", None)
        self.prefix_token = eot if isinstance(eot, int) else 0

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | os.PathLike[str], tokenizer: Any = None, *, device: str = "cpu", **options: Any
    ) -> CheckpointScorer:
        """Load a checkpoint directory and its tokenizer."""
        from llm_eval.checkpoints import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer(checkpoint, tokenizer, device=device)
        return cls(model, tok, **options)

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        """``(log p(continuation | context), whether greedy decoding would produce the continuation)``.

        Trailing spaces of ``context`` move to the continuation (as the harness's
        Hugging Face model does); an empty context is conditioned on end-of-text.
        """
        import torch

        stripped = context.rstrip(" ")
        continuation = context[len(stripped) :] + continuation
        ctx_ids = list(self.tokenizer.encode(stripped)) if stripped else [self.prefix_token]
        cont_ids = list(self.tokenizer.encode(continuation))
        whole = (ctx_ids + cont_ids)[-(self.context_length + 1) :]
        n = min(len(cont_ids), len(whole) - 1)
        device = next(self.model.parameters()).device
        x = torch.tensor([whole[:-1]], device=device)  # (1, t)
        with torch.no_grad():
            logprobs = torch.log_softmax(self.model(x)[0, -n:].float(), dim=-1)  # (n, vocab)
        target = torch.tensor(whole[-n:], device=device)  # (n,)
        total = float(logprobs.gather(1, target[:, None]).sum())
        greedy = bool((logprobs.argmax(dim=-1) == target).all())
        return total, greedy

    def loglikelihood_rolling(self, text: str) -> float:
        """log p(text), every token scored once, the first conditioned on end-of-text (disjoint windows)."""
        from llm_eval.perplexity import strided_perplexity

        ids = [self.prefix_token, *self.tokenizer.encode(text)]
        if len(ids) < 2:
            return 0.0
        result = strided_perplexity(self.model, ids, stride=self.context_length)
        return -result["loss"] * result["predicted_tokens"]

    def generate_until(self, context: str, gen_kwargs: dict[str, Any] | None = None) -> str:
        """Greedy (or sampled) continuation of ``context``, cut at the ``until`` strings."""
        from llm_model import generate_text

        kwargs = dict(gen_kwargs or {})
        until = kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        max_tokens = int(kwargs.get("max_gen_toks", self.max_gen_toks))
        temperature = float(kwargs.get("temperature", 0.0) or 0.0)
        if not kwargs.get("do_sample", temperature > 0):
            temperature = 0.0
        ids = list(self.tokenizer.encode(context)) or [self.prefix_token]
        if len(ids) > self.context_length:
            context = self.tokenizer.decode(ids[-self.context_length :])
        return str(
            generate_text(
                self.model, self.tokenizer, context, max_tokens, temperature=temperature, stop_strings=until
            )
        )


def _request_args(request: Any) -> Sequence[Any]:
    return request.args if hasattr(request, "args") else request


_LM_CLASS: Any = None


def harness_lm_class() -> Any:
    """The ``lm_eval.api.model.LM`` subclass serving a scratchlm checkpoint (lm-eval imported here)."""
    global _LM_CLASS
    if _LM_CLASS is not None:
        return _LM_CLASS
    try:
        from lm_eval.api.model import LM
    except ImportError:
        raise MissingDependencyError(
            "the lm-evaluation-harness adapter needs lm-eval: pip install 'llm-eval[harness]'"
        ) from None

    class HarnessLM(LM):
        """lm-eval model ``scratchlm``: ``--model_args checkpoint=DIR[,tokenizer=gpt2,device=cpu]``."""

        def __init__(
            self,
            checkpoint: str,
            tokenizer: str | None = None,
            device: str = "cpu",
            max_gen_toks: int = 256,
            **_: Any,
        ) -> None:
            super().__init__()
            self.scorer = CheckpointScorer.from_checkpoint(
                checkpoint, tokenizer, device=device, max_gen_toks=int(max_gen_toks)
            )

        def loglikelihood(self, requests: Any, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            return [self.scorer.loglikelihood(*_request_args(r)[:2]) for r in requests]

        def loglikelihood_rolling(self, requests: Any, disable_tqdm: bool = False) -> list[float]:
            return [self.scorer.loglikelihood_rolling(_request_args(r)[0]) for r in requests]

        def generate_until(self, requests: Any, disable_tqdm: bool = False) -> list[str]:
            out = []
            for r in requests:
                args = _request_args(r)
                out.append(self.scorer.generate_until(args[0], args[1] if len(args) > 1 else None))
            return out

    _LM_CLASS = HarnessLM
    return HarnessLM


def register_harness_model(name: str = HARNESS_NAME) -> Any:
    """Register the adapter with lm-eval's model registry as ``name``; return the class."""
    cls = harness_lm_class()
    from lm_eval.api.registry import MODEL_REGISTRY, register_model

    if name not in MODEL_REGISTRY:
        register_model(name)(cls)
    return cls
