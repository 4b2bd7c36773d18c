"""The served model: its tokenizer, prompt encoding, token scoring and embeddings.

:class:`ModelRunner` holds what every route needs to know about the model;
it never decodes (that is the engine's job, :mod:`llm_eval.serving.engine`).
Its :meth:`~ModelRunner.score` and :meth:`~ModelRunner.embed` are forward
passes the routes run through ``engine.call``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llm_core.errors import DataError
from llm_eval.serving.errors import RequestError

__all__ = ["CHAT_STOP", "ModelRunner", "TokenScore", "chat_prompt"]

#: Where a chat answer ends in the Alpaca template: the model starting a new instruction.
CHAT_STOP = ("### Instruction:",)


def chat_prompt(messages: Sequence[dict[str, Any]]) -> str:
    """The book's Alpaca prompt for a chat: system + user messages become the instruction.

    Earlier user/assistant turns are rendered as previous instruction/response
    blocks; system messages are put before the first user message. The prompt
    ends with ``"### Response:\\n"``, where the model's answer goes.
    """
    from llm_data import format_input

    system = "\n\n".join(str(m["content"]) for m in messages if m["role"] == "system")
    text = ""
    pending: list[str] = [system] if system else []
    for message in messages:
        if message["role"] == "user":
            pending.append(str(message["content"]))
        elif message["role"] == "assistant":
            instruction = "\n\n".join(pending)
            text += format_input({"instruction": instruction, "input": ""})
            text += f"\n\n### Response:\n{message['content']}\n\n"
            pending = []
    return text + format_input({"instruction": "\n\n".join(pending), "input": ""}) + "\n\n### Response:\n"


@dataclass(frozen=True)
class TokenScore:
    """One token of a sequence: its log-probability given the tokens before it, and the likeliest tokens.

    ``logprob`` is ``None`` for the first token (nothing to condition on);
    ``top`` holds ``(token id, log-probability)`` of the most likely tokens at
    that position, likeliest first.
    """

    token_id: int
    logprob: float | None
    top: tuple[tuple[int, float], ...]


class ModelRunner:
    """The served model and tokenizer, under the name clients use."""

    def __init__(self, model: Any, tokenizer: Any, name: str, *, checkpoint: str | None = None) -> None:
        from llm_model.generation import default_eos_ids

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.checkpoint = checkpoint
        self.context_length = int(model.config.context_length)
        self.eos_id = getattr(tokenizer, "eot_token", None)
        #: Every end-of-sequence id (a checkpoint's own tokenizer may have several: end of turn, of text).
        self.eos_ids = default_eos_ids(tokenizer)
        #: The checkpoint's own chat template (its tokenizer_config.json), else None: the Alpaca prompt.
        self.chat_template = getattr(tokenizer, "chat_template", None)
        self.created = int(time.time())

    def accepts(self, model: Any) -> bool:
        """Whether a request's ``model`` names this model (``name`` or ``name:latest``)."""
        return isinstance(model, str) and model in (self.name, f"{self.name}:latest")

    @property
    def chat_stop(self) -> tuple[str, ...]:
        """Stop strings of a chat answer: none with the checkpoint's template (its EOS ids end a turn)."""
        return () if self.chat_template is not None else CHAT_STOP

    @property
    def vocab_size(self) -> int:
        """Number of token ids the model knows."""
        return int(self.model.config.vocab_size)

    def encode_chat(self, messages: list[dict[str, Any]]) -> list[int]:
        """Token ids of a conversation: the checkpoint's chat template when it has one, else Alpaca."""
        if self.chat_template is None:
            return self.encode(chat_prompt(messages))
        try:
            ids = list(self.tokenizer.encode_chat(messages, add_generation_prompt=True))
        except DataError as exc:  # the template refused the conversation (raise_exception …)
            raise RequestError(400, f"messages: {exc}", param="messages") from None
        return self.checked(ids)

    def tokenize(self, text: str, *, param: str = "prompt") -> list[int]:
        """Token ids of ``text`` (no length check); untokenizable text is a :class:`RequestError`."""
        try:
            return list(self.tokenizer.encode(text))
        except (ValueError, UnicodeError) as exc:
            raise RequestError(400, f"{param}: cannot be tokenized ({exc})", param=param) from None

    def encode(self, prompt: str, *, param: str = "prompt") -> list[int]:
        """Token ids of a prompt; an empty or too long prompt is a :class:`RequestError`."""
        return self.checked(self.tokenize(prompt, param=param), param=param)

    def checked(self, ids: list[int], *, param: str = "prompt") -> list[int]:
        """``ids`` when they are a usable prompt: not empty, known ids, within the context."""
        if not ids:
            raise RequestError(400, f"{param}: expected some text, got an empty prompt", param=param)
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.vocab_size for i in ids):
            raise RequestError(400, f"{param}: expected token ids in 0..{self.vocab_size - 1}", param=param)
        if len(ids) > self.context_length:
            raise RequestError(
                400,
                f"{param} is {len(ids)} tokens but the model's context is {self.context_length} tokens; "
                "shorten the prompt",
                param=param,
            )
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids."""
        return str(self.tokenizer.decode(list(ids)))

    def score(self, ids: Sequence[int], start: int = 0, top: int = 0) -> list[TokenScore]:
        """:class:`TokenScore` of ``ids[start:]``, each token conditioned on the tokens before it.

        A sequence longer than the context is scored in windows: each token sees at
        least half a context of the tokens before it. ``top`` alternatives per position.
        """
        import torch

        ids = list(ids)
        scores: list[TokenScore] = []
        if start == 0 and ids:
            scores.append(TokenScore(ids[0], None, ()))
            start = 1
        ctx = self.context_length
        step = max(1, ctx // 2) if len(ids) > ctx else max(1, len(ids))
        device = next(self.model.parameters()).device
        first = start
        while first < len(ids):
            end = min(len(ids), first + step)  # score positions first..end-1
            window = max(0, end - ctx)  # the inputs are ids[window:end-1]
            x = torch.tensor([ids[window : end - 1]], device=device)  # (1, t)
            with torch.no_grad():
                logprobs = torch.log_softmax(self.model(x)[0].float(), dim=-1)  # (t, vocab)
            rows = logprobs[first - 1 - window : end - 1 - window]  # (end - first, vocab)
            picked = rows.gather(1, torch.tensor(ids[first:end], device=device)[:, None])[:, 0].tolist()
            if top:
                values, indices = rows.topk(min(top, rows.shape[-1]), dim=-1)  # (n, top)
                alternatives = [
                    tuple(zip(i, v, strict=True))
                    for i, v in zip(indices.tolist(), values.tolist(), strict=True)
                ]
            else:
                alternatives = [()] * len(picked)
            for token, logprob, best in zip(ids[first:end], picked, alternatives, strict=True):
                scores.append(TokenScore(token, float(logprob), best))
            first = end
        return scores

    def embed(self, ids: Sequence[int], *, normalise: bool = False) -> list[float]:
        """Mean over the tokens of the final hidden states (the output head's input): one vector.

        The hidden states are taken where the model hands them to ``out_head``
        (after the final norm), so any architecture with an ``out_head`` works.
        ``normalise`` scales the vector to length 1 (Ollama's ``/api/embed``, OpenAI).
        """
        import torch

        head = getattr(self.model, "out_head", None)
        if head is None:
            raise RequestError(400, "embeddings: this model has no out_head to take hidden states from")
        seen: list[torch.Tensor] = []
        hook = head.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach()))
        try:
            device = next(self.model.parameters()).device
            with torch.no_grad():
                self.model(torch.tensor([list(ids)], device=device))
        finally:
            hook.remove()
        vector = seen[-1][0].float().mean(dim=0)  # (emb_dim,)
        if normalise:
            vector = vector / vector.norm().clamp_min(torch.finfo(vector.dtype).tiny)
        return [float(v) for v in vector.tolist()]

    def info(self) -> dict[str, Any]:
        """Size, digest and details of the served model (for ``/api/tags``, ``/api/show``)."""
        params = sum(p.numel() for p in self.model.parameters())
        size = sum(p.numel() * p.element_size() for p in self.model.parameters())
        digest = hashlib.sha256(f"{self.name}:{self.checkpoint}:{params}".encode()).hexdigest()
        dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")
        level = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}.get(dtype, dtype.upper())
        if getattr(self.model, "quantization", "none") == "int8":
            level = "INT8"  # int8 linear layers (their packed weights are not parameters)
        return {"parameters": params, "size": size, "digest": digest, "quantization_level": level}
