"""Prompt templates for instruction finetuning and chat: the book's Alpaca format and a Llama-style one.

A template turns an Alpaca record (``instruction``, ``input``, ``output``) into a prompt
and a response part (training text = prompt + response), recognises where a generated
response ends, and extracts it from generated text. The template's name is stored in
the finetuned checkpoint's config, so ``scratchlm chat`` formats prompts the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_core.errors import ConfigError

__all__ = [
    "TEMPLATES",
    "AlpacaTemplate",
    "CheckpointChatTemplate",
    "LlamaTemplate",
    "PromptTemplate",
    "get_template",
]


@dataclass(frozen=True)
class PromptTemplate:
    """Base class: subclasses define :meth:`prompt`, ``response_prefix`` and ``stop_strings``."""

    name: str = ""
    #: Text between the prompt and the response (the response "header").
    response_prefix: str = ""
    #: Strings that mark the end of a generated response.
    stop_strings: tuple[str, ...] = ()

    def prompt(self, entry: Mapping[str, Any]) -> str:
        """The model input for ``entry`` (without the response header)."""
        raise NotImplementedError

    def response(self, entry: Mapping[str, Any], field: str = "output") -> str:
        """What follows the prompt in a training text: the header and ``entry[field]``."""
        return self.response_prefix + str(entry[field])

    def generation_prompt(self, entry: Mapping[str, Any]) -> str:
        """The prompt plus the response header: generation continues with the answer."""
        return self.prompt(entry) + self.response_prefix

    def chat_prompt(self, message: str) -> str:
        """A user's chat message as a generation prompt (the message is the instruction)."""
        return self.generation_prompt({"instruction": message, "input": ""})

    def extract_response(self, continuation: str) -> str:
        """The answer in generated text that follows :meth:`generation_prompt`.

        Like the book, a leftover response header is removed; the text is cut at the
        first stop string and stripped.
        """
        text = continuation
        header = self.response_prefix.strip()
        if header and text.lstrip().startswith(header):
            text = text.lstrip()[len(header) :]
        cuts = [text.find(s) for s in self.stop_strings if s in text]
        if cuts:
            text = text[: min(cuts)]
        return text.strip()


@dataclass(frozen=True)
class AlpacaTemplate(PromptTemplate):
    """The book's prompt (chapter 7): ``llm_data.format_input`` then ``### Response:``."""

    name: str = "alpaca"
    response_prefix: str = "\n\n### Response:\n"
    stop_strings: tuple[str, ...] = ("\n\n### ", "<|endoftext|>")

    def prompt(self, entry: Mapping[str, Any]) -> str:
        from llm_data import format_input

        return format_input(dict(entry))


@dataclass(frozen=True)
class LlamaTemplate(PromptTemplate):
    """Llama-2 chat style: ``<s>[INST] <<SYS>>…<</SYS>> instruction [/INST] response </s>``.

    Written as plain text, so it works with any tokenizer (GPT-2 BPE has no ``[INST]`` tokens).
    """

    name: str = "llama"
    response_prefix: str = " [/INST] "
    stop_strings: tuple[str, ...] = ("</s>", "[INST]", "<|endoftext|>")
    system: str = "You are a helpful assistant. Write a response that appropriately completes the request."

    def prompt(self, entry: Mapping[str, Any]) -> str:
        text = f"<s>[INST] <<SYS>>\n{self.system}\n<</SYS>>\n\n{entry['instruction']}"
        if entry.get("input"):
            text += f"\n\n{entry['input']}"
        return text

    def response(self, entry: Mapping[str, Any], field: str = "output") -> str:
        return self.response_prefix + str(entry[field]) + " </s>"


@dataclass(frozen=True)
class CheckpointChatTemplate(PromptTemplate):
    """The chat template of a checkpoint's own tokenizer (``tokenizer_config.json``), for ``chat``.

    A message is rendered as one user turn with the generation prompt, exactly as
    ``transformers``' ``apply_chat_template`` does; the answer ends at the
    tokenizer's end-of-sequence ids (``<|eot_id|>``, ``</s>`` …), not at a stop string.
    Instruction finetuning keeps the Alpaca and Llama templates.
    """

    name: str = "checkpoint"
    tokenizer: Any = None

    def chat_prompt(self, message: str) -> str:
        """The rendered conversation text (special tokens as text)."""
        return str(self.tokenizer.apply_chat_template([{"role": "user", "content": message}]))

    def chat_ids(self, message: str) -> list[int]:
        """Token ids of :meth:`chat_prompt` (no BOS added on top of the template's own)."""
        return list(self.tokenizer.encode_chat([{"role": "user", "content": message}]))


#: Template name -> instance (``--template``).
TEMPLATES: dict[str, PromptTemplate] = {"alpaca": AlpacaTemplate(), "llama": LlamaTemplate()}


def get_template(name: str) -> PromptTemplate:
    """The template called ``name``; an unknown name raises :class:`ConfigError` listing them."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ConfigError(
            f"unknown prompt template {name!r}; expected one of {', '.join(TEMPLATES)}"
        ) from None
