"""An EleutherAI lm-evaluation-harness model for scratchlm checkpoints (``pip install 'llm-eval[harness]'``).

:class:`CheckpointScorer` answers the three request types the harness asks of a
model, on plain arguments (no lm-eval needed), with the same tokenization rules
as the harness's Hugging Face model (``HFLM``). :func:`harness_lm_class` builds
the ``lm_eval.api.model.LM`` subclass around it and :func:`register_harness_model`
registers it with the harness as ``scratchlm``::

    from llm_eval.harness import register_harness_model
    import lm_eval

    register_harness_model()
    lm_eval.simple_evaluate(model="scratchlm", model_args="checkpoint=runs/gpt", tasks=["lambada_openai"])

lm-eval finds models only in its own registry, so its command line needs the
registration first; ``python -m llm_eval.harness`` is lm-eval's command line
with ``scratchlm`` registered::

    python -m llm_eval.harness run --model scratchlm --model_args checkpoint=runs/gpt --tasks hellaswag
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from llm_core.errors import ConfigError, MissingDependencyError

__all__ = ["HARNESS_NAME", "CheckpointScorer", "harness_lm_class", "main", "register_harness_model"]

HARNESS_NAME = "scratchlm"
DEFAULT_BATCH_SIZE = 8


def _positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1 or (isinstance(value, float) and value != number):
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
    return number


class CheckpointScorer:
    """Log-likelihoods and generations of a scratchlm model, the way lm-evaluation-harness asks for them.

    ``batch_size`` rows go through the model at once in :meth:`loglikelihoods`
    (right-padded: a causal model's scores of the real tokens do not see the padding).
    """

    def __init__(
        self, model: Any, tokenizer: Any, *, max_gen_toks: int = 256, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_gen_toks = _positive_int("max_gen_toks", max_gen_toks)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.context_length = int(model.config.context_length)
        eot = getattr(tokenizer, "eot_token", None)
        #: The token an empty context and a rolling text are conditioned on (end-of-text, else 0).
        self.prefix_token = eot if isinstance(eot, int) else 0

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | os.PathLike[str], tokenizer: Any = None, *, device: str = "cpu", **options: Any
    ) -> CheckpointScorer:
        """Load a checkpoint directory and its tokenizer (the recorded one unless ``tokenizer`` is given)."""
        from llm_eval.checkpoints import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer(checkpoint, tokenizer, device=device)
        return cls(model, tok, **options)

    @property
    def device(self) -> Any:
        """The device the model's parameters are on."""
        return next(self.model.parameters()).device

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of ``(context, continuation)`` as the harness's causal models split them.

        Trailing whitespace of the context moves to the continuation; the whole text is
        encoded once and split after the context's tokens. An empty context becomes the
        end-of-text token.
        """
        encode = self.tokenizer.encode
        if context == "":
            cont_ids = list(encode(continuation))
            if cont_ids and cont_ids[0] == self.prefix_token:
                return cont_ids[:1], cont_ids[1:]
            return [self.prefix_token], cont_ids
        stripped = context.rstrip()
        continuation = context[len(stripped) :] + continuation
        whole = list(encode(stripped + continuation))
        ctx_ids = list(encode(stripped))
        return ctx_ids, whole[len(ctx_ids) :]

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        """``(log p(continuation | context), whether greedy decoding would produce the continuation)``."""
        return self.loglikelihoods([(context, continuation)])[0]

    def loglikelihoods(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[float, bool]]:
        """:meth:`loglikelihood` of many ``(context, continuation)`` pairs, ``batch_size`` at a time.

        Sequences longer than the context keep their last ``context_length + 1`` tokens.
        """
        import torch

        rows = []  # (input ids, target ids of the continuation)
        for context, continuation in pairs:
            ctx_ids, cont_ids = self.encode_pair(context, continuation)
            whole = (ctx_ids + cont_ids)[-(self.context_length + 1) :]
            n = min(len(cont_ids), len(whole) - 1)
            rows.append((whole[:-1], whole[len(whole) - n :] if n else []))
        results: list[tuple[float, bool]] = [(0.0, True)] * len(rows)
        order = sorted((i for i in range(len(rows)) if rows[i][1]), key=lambda i: -len(rows[i][0]))
        device = self.device
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = len(rows[batch[0]][0])
            x = torch.zeros(len(batch), width, dtype=torch.long)  # (b, t) right-padded with id 0
            for row, i in enumerate(batch):
                x[row, : len(rows[i][0])] = torch.tensor(rows[i][0])
            with torch.no_grad():
                logprobs = torch.log_softmax(self.model(x.to(device)).float(), dim=-1)  # (b, t, vocab)
            for row, i in enumerate(batch):
                inputs, targets = rows[i]
                scored = logprobs[row, len(inputs) - len(targets) : len(inputs)]  # (n, vocab)
                target = torch.tensor(targets, device=device)  # (n,)
                total = float(scored.gather(1, target[:, None]).sum())
                results[i] = (total, bool((scored.argmax(dim=-1) == target).all()))
        return results

    def loglikelihood_rolling(self, text: str) -> float:
        """log p(text), every token scored once, the first conditioned on end-of-text.

        Windows are lm-eval's (:func:`llm_eval.perplexity.rolling_windows`): blocks of
        ``context_length`` predictions, each with as much left context as fits.
        """
        from llm_eval.perplexity import rolling_windows, windows_nll

        ids = [self.prefix_token, *self.tokenizer.encode(text)]
        windows = rolling_windows(len(ids), self.context_length)
        return -windows_nll(self.model, ids, windows, batch_size=self.batch_size) if windows else 0.0

    def generate_until(self, context: str, gen_kwargs: dict[str, Any] | None = None) -> str:
        """Greedy (or sampled, with ``do_sample``) continuation of ``context``, cut at the ``until`` strings.

        ``gen_kwargs``: ``until`` (a string or list), ``max_gen_toks``, ``do_sample``,
        ``temperature``, ``top_k``, ``top_p``. As in the harness's HF model, the context
        keeps its last ``context_length - max_gen_toks`` tokens (at least one) and
        generation stops at end-of-text.
        """
        from llm_model import generate

        kwargs = dict(gen_kwargs or {})
        until = kwargs.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        max_tokens = _positive_int("max_gen_toks", kwargs.pop("max_gen_toks", self.max_gen_toks))
        temperature = float(kwargs.pop("temperature", 0.0) or 0.0)
        do_sample = bool(kwargs.pop("do_sample", temperature > 0))
        top_k, top_p = kwargs.pop("top_k", None), kwargs.pop("top_p", None)
        if not do_sample:
            temperature, top_k, top_p = 0.0, None, None
        elif temperature == 0.0:
            temperature = 1.0  # do_sample without a temperature: Hugging Face's default
        ids = list(self.tokenizer.encode(context)) or [self.prefix_token]
        ids = ids[-max(self.context_length - max_tokens, 1) :]
        eos = getattr(self.tokenizer, "eot_token", None)
        out = generate(
            self.model,
            [ids],
            max_tokens,
            temperature=temperature,
            top_k=None if top_k is None else int(top_k),
            top_p=None if top_p is None else float(top_p),
            eos_id=eos if isinstance(eos, int) else None,
            stop_strings=until or None,
            tokenizer=self.tokenizer if until else None,
        )
        new = out[0, len(ids) :].tolist()
        if isinstance(eos, int) and eos in new:
            new = new[: new.index(eos)]
        text = str(self.tokenizer.decode(new))
        cuts = [text.find(s) for s in until if s and s in text]
        return text[: min(cuts)] if cuts else text


def _request_args(request: Any) -> Sequence[Any]:
    return request.args if hasattr(request, "args") else request


def _device(value: str | None) -> str:
    """lm-eval's CLI asks for ``cuda`` by default: like its HF model, fall back to the CPU without a GPU."""
    import torch

    if value is None or (value.startswith("cuda") and not torch.cuda.is_available()):
        if value is not None:
            logging.getLogger(__name__).warning("device %s is not available; using the CPU", value)
        return "cuda" if torch.cuda.is_available() else "cpu"
    return value


def _batch_size(value: Any) -> int:
    if value is None or (isinstance(value, str) and value.startswith("auto")):
        return DEFAULT_BATCH_SIZE  # lm-eval's "auto" probes GPU memory; a fixed size is used instead
    return _positive_int("batch_size", value)


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
    from tqdm import tqdm

    class HarnessLM(LM):
        """lm-eval model ``scratchlm``: ``--model_args checkpoint=DIR[,tokenizer=gpt2,max_gen_toks=256]``.

        lm-eval's ``--device`` and ``--batch_size`` are honoured (``auto`` means 8; an unavailable
        ``cuda`` device, lm-eval's command-line default, means the CPU).
        ``HarnessLM.from_scorer(CheckpointScorer(model, tokenizer))`` wraps a model in memory.
        """

        def __init__(
            self,
            checkpoint: str | None = None,
            tokenizer: str | None = None,
            device: str | None = None,
            max_gen_toks: int = 256,
            batch_size: Any = None,
            max_batch_size: Any = None,  # lm-eval passes it; unused with a fixed batch size
            **unknown: Any,
        ) -> None:
            super().__init__()
            if unknown:
                raise ConfigError(
                    f"scratchlm model_args: unknown argument(s) {', '.join(sorted(unknown))}; "
                    "it takes checkpoint, tokenizer, device, max_gen_toks, batch_size"
                )
            if checkpoint is None:
                raise ConfigError(
                    "scratchlm model_args: expected checkpoint=DIR (a scratchlm checkpoint directory)"
                )
            self.scorer = CheckpointScorer.from_checkpoint(
                checkpoint,
                tokenizer,
                device=_device(device),
                max_gen_toks=max_gen_toks,
                batch_size=_batch_size(batch_size),
            )

        @classmethod
        def from_scorer(cls, scorer: CheckpointScorer) -> Any:
            """An instance around an existing :class:`CheckpointScorer` (a model already in memory)."""
            lm = cls.__new__(cls)
            LM.__init__(lm)
            lm.scorer = scorer
            return lm

        @property
        def tokenizer_name(self) -> str:
            return str(getattr(self.scorer.tokenizer, "name", type(self.scorer.tokenizer).__name__))

        def loglikelihood(self, requests: Any, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            pairs = [tuple(_request_args(r)[:2]) for r in requests]
            out = []
            step = self.scorer.batch_size * 8
            with tqdm(total=len(pairs), disable=disable_tqdm, desc="scratchlm loglikelihood") as bar:
                for start in range(0, len(pairs), step):
                    chunk = pairs[start : start + step]
                    for pair, result in zip(chunk, self.scorer.loglikelihoods(chunk), strict=True):
                        self.cache_hook.add_partial("loglikelihood", pair, result)
                        out.append(result)
                    bar.update(len(chunk))
            return out

        def loglikelihood_rolling(self, requests: Any, disable_tqdm: bool = False) -> list[float]:
            out = []
            for r in tqdm(requests, disable=disable_tqdm, desc="scratchlm loglikelihood_rolling"):
                args = _request_args(r)
                result = self.scorer.loglikelihood_rolling(args[0])
                self.cache_hook.add_partial("loglikelihood_rolling", tuple(args), result)
                out.append(result)
            return out

        def generate_until(self, requests: Any, disable_tqdm: bool = False) -> list[str]:
            out = []
            for r in tqdm(requests, disable=disable_tqdm, desc="scratchlm generate_until"):
                args = _request_args(r)
                result = self.scorer.generate_until(args[0], args[1] if len(args) > 1 else None)
                self.cache_hook.add_partial("generate_until", tuple(args), result)
                out.append(result)
            return out

    _LM_CLASS = HarnessLM
    return HarnessLM


def register_harness_model(name: str = HARNESS_NAME) -> Any:
    """Register the adapter in lm-eval's model registry as ``name`` (once); return the class."""
    cls = harness_lm_class()
    import lm_eval.models  # noqa: F401  # lm-eval's own models first: it loads them only into an empty registry
    from lm_eval.api.registry import MODEL_REGISTRY, register_model

    if name not in MODEL_REGISTRY:
        register_model(name)(cls)
    return cls


def main(argv: Sequence[str] | None = None) -> None:
    """lm-eval's command line with ``scratchlm`` registered (``python -m llm_eval.harness run ...``)."""
    register_harness_model()
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm-eval", *(sys.argv[1:] if argv is None else argv)]
    cli_evaluate()


if __name__ == "__main__":
    main()
