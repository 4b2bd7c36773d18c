"""Text generation: greedy, temperature, top-k and top-p sampling, with or without a KV cache.

The loop is the book's ``generate`` (chapter 5) made production-ready:

* **KV cache by default.** The prompt is run once (prefill), then each step
  feeds only the newest token. ``use_cache=False`` recomputes the whole window
  every step; greedy outputs are identical either way.
* **Context cropping.** The model sees at most ``config.context_length``
  tokens: a longer prompt is cropped to its last ``context_length`` tokens.
  Once prompt + generated tokens no longer fit, the window slides; because
  positions are absolute, the cached keys/values are no longer valid then, so
  the cache is reset and the window re-prefilled at each such step (the same
  computation as ``use_cache=False``, hence the same tokens).
* **Batches with left padding.** ``padding_mask`` ``(b, t)`` is true for real
  tokens; padded rows get the tokens they would get alone.
* **Stopping.** At ``eos_id`` (one id, or several: a Llama 3 turn ends at
  ``<|eot_id|>`` or ``<|end_of_text|>``; the finished row is then filled with
  the first), or when a row's decoded text contains one of ``stop_strings``
  (needs ``tokenizer``; a row finished that way is filled with ``eos_id``,
  or 0 without one). Generation ends when every row has finished.
* **Reproducible sampling** with ``seed`` (a private ``torch.Generator``).

The model is put in eval mode while generating and restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from llm_core.errors import ConfigError
from llm_model.gpt import cache_length

__all__ = ["default_eos_ids", "eos_ids", "generate", "generate_text", "stream_tokens"]


def _check_options(
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    stop_strings: Sequence[str] | None,
    tokenizer: Any,
) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ConfigError(f"max_new_tokens: expected an integer >= 0, got {max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ConfigError(
            f"temperature: expected a number >= 0 (0 = greedy), got {temperature!r}; "
            "use 0 for greedy decoding or e.g. 0.7-1.5 for sampling"
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ConfigError(f"top_k: expected an integer >= 1 or None, got {top_k!r}")
    if top_p is not None and (
        isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0
    ):
        raise ConfigError(f"top_p: expected a number in (0, 1], got {top_p!r}; e.g. 0.9, or None to disable")
    if stop_strings and tokenizer is None:
        raise ConfigError("stop_strings: a tokenizer is needed to decode the text; pass tokenizer=...")


def _as_batch(
    model: nn.Module, idx: Any, padding_mask: Any
) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """Return ``idx`` as a ``(b, t)`` long tensor on the model's device, its mask, and whether it was 1-D."""
    device = next(model.parameters()).device
    try:
        idx = torch.as_tensor(idx, dtype=torch.long, device=device)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise ConfigError(f"prompt: expected integer token ids of shape (t,) or (batch, t) ({exc})") from None
    squeeze = idx.dim() == 1
    if squeeze:
        idx = idx.unsqueeze(0)  # (1, t)
    if idx.dim() != 2:
        raise ConfigError(f"prompt: expected token ids of shape (t,) or (batch, t), got {tuple(idx.shape)}")
    if idx.shape[1] == 0 or idx.shape[0] == 0:
        raise ConfigError("prompt: expected at least one token, got an empty prompt; give a non-empty prompt")
    vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(vocab_size, int):
        bad = idx[(idx < 0) | (idx >= vocab_size)]
        if bad.numel():
            raise ConfigError(
                f"prompt: token id {int(bad[0])} is outside the model's vocabulary 0..{vocab_size - 1}; "
                "check the tokenizer matches the model"
            )
    mask = None
    if padding_mask is not None:
        mask = torch.as_tensor(padding_mask, device=device).bool()
        if squeeze and mask.dim() == 1:
            mask = mask.unsqueeze(0)
        if mask.shape != idx.shape:
            raise ConfigError(
                f"padding_mask: expected the prompt's shape {tuple(idx.shape)}, got {tuple(mask.shape)}"
            )
        empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
        if empty:
            raise ConfigError(f"prompt: row(s) {empty} have no real tokens (empty prompt); remove them")
    return idx, mask, squeeze


def _next_token(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Pick the next token of each row from its last-position logits ``(b, vocab)`` -> ``(b,)``."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    # Shift the largest logit to 0 and keep the temperature above 0 in the logits' dtype: a tiny
    # temperature then gives -inf for the others (greedy), never inf - inf or 0 / 0 = nan.
    tiny = torch.finfo(logits.dtype).tiny
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / max(float(temperature), tiny)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (b, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (b, vocab)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the tokens before it already reach top_p (the first one always stays).
        drop = probs.cumsum(dim=-1) - probs >= top_p
        drop[:, 0] = False  # even when top_p rounds to 0 in the logits' dtype
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (b,)


def stream_tokens(
    model: nn.Module,
    idx: Any,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | Sequence[int] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    padding_mask: Any = None,
    stop_strings: Sequence[str] | None = None,
    tokenizer: Any = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, ``(b,)`` long tensor, one step at a time.

    ``idx``: prompt token ids ``(b, t)`` or ``(t,)`` (a tensor or nested lists).
    Options and stopping rules: see the module docstring. Options are checked
    when this is called, before the first token.
    """
    _check_options(max_new_tokens, temperature, top_k, top_p, stop_strings, tokenizer)
    tokens, mask, _ = _as_batch(model, idx, padding_mask)
    if seed is not None and generator is None:
        generator = torch.Generator(device=tokens.device).manual_seed(seed)
    return _stream(
        model,
        tokens,
        mask,
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos_ids=eos_ids(eos_id),
        generator=generator,
        use_cache=use_cache and hasattr(model, "new_cache"),
        stop_strings=list(stop_strings or []),
        tokenizer=tokenizer,
    )


def _stream(
    model: Any,
    tokens: torch.Tensor,
    mask: torch.Tensor | None,
    max_new_tokens: int,
    *,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    eos_ids: tuple[int, ...],
    generator: torch.Generator | None,
    use_cache: bool,
    stop_strings: list[str],
    tokenizer: Any,
) -> Iterator[torch.Tensor]:
    context: int = model.config.context_length
    b, prompt_len = tokens.shape
    fill = eos_ids[0] if eos_ids else 0
    stop_ids = torch.tensor(eos_ids, dtype=torch.long, device=tokens.device)  # (n_eos,)
    finished = torch.zeros(b, dtype=torch.bool, device=tokens.device)
    cache: Any = None
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            with torch.no_grad():
                if use_cache and cache is not None and cache_length(cache) < context:
                    past = cache_length(cache)
                    step_mask = None if mask is None else mask[:, -(past + 1) :]  # (b, past + 1)
                    logits = model(tokens[:, -1:], cache=cache, padding_mask=step_mask)
                else:  # prefill, no cache, or a full cache: run the last `context` tokens
                    window_mask = None if mask is None else mask[:, -context:]
                    if use_cache:
                        cache = model.new_cache(b) if cache is None else _reset(cache)
                    logits = model(tokens[:, -context:], cache=cache, padding_mask=window_mask)
            next_token = _next_token(logits[:, -1, :].float(), temperature, top_k, top_p, generator)
            next_token = torch.where(finished, torch.full_like(next_token, fill), next_token)  # (b,)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)  # (b, t + 1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            yield next_token
            if eos_ids:
                finished |= torch.isin(next_token, stop_ids)
            if stop_strings:
                for row in (~finished).nonzero().flatten().tolist():
                    text = tokenizer.decode(tokens[row, prompt_len:].tolist())
                    if any(s in text for s in stop_strings):
                        finished[row] = True
            if bool(finished.all()):
                break
    finally:
        model.train(was_training)


def _reset(cache: Any) -> Any:
    cache.reset()
    return cache


def generate(
    model: nn.Module,
    idx: Any,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | Sequence[int] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    padding_mask: Any = None,
    stop_strings: Sequence[str] | None = None,
    tokenizer: Any = None,
) -> torch.Tensor:
    """Generate up to ``max_new_tokens`` tokens after the prompt ``idx``; return prompt + new tokens.

    Greedy when ``temperature`` is 0; otherwise samples from
    ``softmax(logits / temperature)`` restricted to the ``top_k`` most likely
    tokens and/or the smallest set reaching probability ``top_p``. Returns a
    ``(b, t + n)`` tensor (``(t + n,)`` for a 1-D prompt), ``n <= max_new_tokens``
    (fewer when every row stopped); the ``eos_id`` token is included.
    """
    tokens, mask, squeeze = _as_batch(model, idx, padding_mask)
    new = list(
        stream_tokens(
            model,
            tokens,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_id=eos_id,
            seed=seed,
            generator=generator,
            use_cache=use_cache,
            padding_mask=mask,
            stop_strings=stop_strings,
            tokenizer=tokenizer,
        )
    )
    out = torch.cat([tokens, torch.stack(new, dim=1)], dim=1) if new else tokens  # (b, t + n)
    return out[0] if squeeze else out


def eos_ids(eos_id: int | Sequence[int] | None) -> tuple[int, ...]:
    """``eos_id`` (one id, several, or ``None``) as a tuple of ints."""
    if eos_id is None:
        return ()
    if isinstance(eos_id, int) and not isinstance(eos_id, bool):
        return (eos_id,)
    try:
        ids = tuple(int(i) for i in eos_id)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"eos_id: expected a token id, a list of them or None, got {eos_id!r}") from None
    return ids


def default_eos_ids(tokenizer: Any) -> tuple[int, ...]:
    """Every end-of-sequence id of ``tokenizer``: its ``eos_ids`` (a checkpoint's own), else its EOS id."""
    several = getattr(tokenizer, "eos_ids", None)
    if isinstance(several, (tuple, list)) and several:
        return eos_ids(several)
    return eos_ids(_default_eos(tokenizer))


def _default_eos(tokenizer: Any) -> int | None:
    for name in ("eos_id", "eot_token", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    return None


def _cut(text: str, stop_strings: Sequence[str]) -> str:
    cuts = [text.find(s) for s in stop_strings if s in text]
    return text[: min(cuts)] if cuts else text


def generate_text(
    model: nn.Module,
    tokenizer: Any,
    prompt: str | Sequence[str],
    max_new_tokens: int = 50,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | Sequence[int] | str | None = "auto",
    seed: int | None = None,
    use_cache: bool = True,
    stop_strings: Sequence[str] | None = None,
) -> str | list[str]:
    """Encode ``prompt``, generate, and return the decoded continuation (without the prompt).

    ``tokenizer``: any object with ``encode(str) -> list[int]`` and
    ``decode(list[int]) -> str``. ``eos_id="auto"`` takes the tokenizer's
    ``eos_ids`` (all of them), else its ``eos_id``/``eot_token``, when it has
    one. A list of prompts is generated as one left-padded batch and returns a
    list. The text stops before the end-of-text token and before the first stop string.
    """
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if not prompts:
        raise ConfigError("prompt: expected a string or a non-empty list of strings, got an empty list")
    encoded = [list(tokenizer.encode(p)) for p in prompts]
    empty = [i for i, ids in enumerate(encoded) if not ids]
    if empty:
        raise ConfigError(f"prompt: prompt(s) {empty} encode to no tokens (empty prompt); give some text")
    eos = default_eos_ids(tokenizer) if eos_id == "auto" else eos_ids(eos_id)  # type: ignore[arg-type]
    width = max(len(ids) for ids in encoded)
    idx = [[0] * (width - len(ids)) + ids for ids in encoded]  # left padding
    mask = [[False] * (width - len(ids)) + [True] * len(ids) for ids in encoded]
    out = generate(
        model,
        idx,
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos_id=eos,
        seed=seed,
        use_cache=use_cache,
        padding_mask=mask if len(prompts) > 1 else None,
        stop_strings=stop_strings,
        tokenizer=tokenizer if stop_strings else None,
    )
    texts = []
    for row in out[:, width:].tolist():
        ends = [row.index(i) for i in eos if i in row]
        if ends:
            row = row[: min(ends)]
        texts.append(_cut(tokenizer.decode(row), stop_strings or []))
    return texts[0] if isinstance(prompt, str) else texts
