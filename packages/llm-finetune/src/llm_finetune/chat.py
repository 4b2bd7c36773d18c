"""``scratchlm chat``: a prompt loop over an instruction-finetuned model, streaming its answers.

Every line read is one instruction (no history: the book's models are single-turn),
formatted with the checkpoint's template (its own chat template when its tokenizer has
one, see :class:`~llm_finetune.templates.CheckpointChatTemplate`); tokens are streamed with
``llm_model.stream_tokens`` and printed as soon as they cannot be the start of a stop
string. End of input (Ctrl-D) or Ctrl-C ends the loop cleanly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from torch import nn

from llm_finetune.templates import PromptTemplate

__all__ = ["chat_loop", "stream_response"]


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters of ``text`` could be the beginning of a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if stop.startswith(text[-size:]):
                longest = max(longest, size)
                break
    return longest


def stream_response(
    model: nn.Module,
    tokenizer: Any,
    template: PromptTemplate,
    message: str,
    write: Callable[[str], None],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> str:
    """Generate the answer to ``message``, calling ``write`` with each new piece; return the answer."""
    from llm_model import model_config, stream_tokens
    from llm_model.generation import default_eos_ids

    chat_ids = getattr(template, "chat_ids", None)  # a checkpoint's own chat template
    prompt_ids = list(chat_ids(message) if chat_ids else tokenizer.encode(template.chat_prompt(message)))
    context = model_config(model).context_length
    prompt_ids = prompt_ids[-context:]
    eos = default_eos_ids(tokenizer)  # every end-of-turn / end-of-text id
    stops = tuple(template.stop_strings)
    ids: list[int] = []
    shown = ""
    stopped = False
    for token in stream_tokens(
        model,
        prompt_ids,
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        seed=seed,
        eos_id=eos or None,
        stop_strings=list(stops),
        tokenizer=tokenizer,
    ):
        value = int(token[0])
        if value in eos:
            break
        ids.append(value)
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):
            continue  # an incomplete UTF-8 character: wait for the next token
        cuts = [text.find(s) for s in stops if s in text]
        if cuts:
            text, stopped = text[: min(cuts)], True
        ready = text if stopped else text[: len(text) - _held_back(text, stops)]
        if len(ready) > len(shown):
            write(ready[len(shown) :])
            shown = ready
        if stopped:
            break
    final = template.extract_response(tokenizer.decode(ids)) if ids else ""
    if not stopped:
        rest = tokenizer.decode(ids)
        if len(rest) > len(shown):
            write(rest[len(shown) :])
    return final


def chat_loop(
    model: nn.Module,
    tokenizer: Any,
    template: PromptTemplate,
    stdin: IO[str],
    write: Callable[[str], None],
    *,
    prompt: str = "> ",
    **options: Any,
) -> int:
    """Read instructions from ``stdin`` until EOF; stream each answer; return how many were answered."""
    answered = 0
    while True:
        write(prompt)
        try:
            line = stdin.readline()
        except KeyboardInterrupt:
            write("\n")
            return answered
        if not line:  # EOF (Ctrl-D)
            write("\n")
            return answered
        message = line.strip()
        if not message:
            continue
        if message in {"/quit", "/exit"}:
            return answered
        try:
            stream_response(model, tokenizer, template, message, write, **options)
        except KeyboardInterrupt:
            write("\n")
            return answered
        write("\n")
        answered += 1
