"""llm-data's built-in plugin: the tokenizers, datasets and commands it registers.

Nothing heavy is imported here: each registered object imports its module when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_core import hookimpl

__all__ = ["register_commands", "register_datasets", "register_tokenizers"]


def gpt2_tokenizer() -> Any:
    """GPT-2 BPE (tiktoken's ``gpt2``; offline files from ``llm-data[gpt2-offline]``)."""
    from llm_data.tokenizers import GPT2Tokenizer

    return GPT2Tokenizer()


def bpe_tokenizer(path: str | None = None) -> Any:
    """A BPE tokenizer saved at ``path``, else an untrained byte-level one (256 bytes + ``<|endoftext|>``)."""
    from llm_data.bpe import BPETokenizer

    return BPETokenizer() if path is None else BPETokenizer.load(path)


def huggingface_tokenizer(path: str | None = None) -> Any:
    """A checkpoint's own ``tokenizer.json`` (with its tokenizer_config.json and generation_config.json)."""
    from llm_core.errors import DataError
    from llm_data.hf_tokenizers import HFTokenizer

    if path is None:
        raise DataError(
            "the huggingface tokenizer is a checkpoint's own: pass the path of its tokenizer.json, "
            "e.g. --tokenizer CHECKPOINT/tokenizer.json"
        )
    return HFTokenizer(path)


def simple_tokenizer() -> Any:
    """The book's word-level ``SimpleTokenizerV2``, vocabulary built from the python-docs corpus."""
    from llm_data.corpora import python_docs_text
    from llm_data.simple import SimpleTokenizerV2

    return SimpleTokenizerV2.from_text(python_docs_text())


def python_docs_dataset(root: Path | None = None, **options: Any) -> dict[str, list[Any]]:
    """``{"train": [documentation topics]}`` from CPython's embedded docs (offline)."""
    from llm_data.corpora import python_docs

    return python_docs(root, **options)


def the_verdict_dataset(root: Path | None = None, **options: Any) -> dict[str, list[Any]]:
    """``{"train": [text]}``: Edith Wharton's "The Verdict" (book chapter 2)."""
    from llm_data.corpora import the_verdict

    return the_verdict(root, **options)


def sms_spam_dataset(root: Path | None = None, **options: Any) -> dict[str, list[Any]]:
    """Balanced SMS spam records ``{"text", "label"}`` split 70/10/20 (book chapter 6)."""
    from llm_data.sms_spam import sms_spam

    return sms_spam(root, **options)


def instructions_dataset(root: Path | None = None, **options: Any) -> dict[str, list[Any]]:
    """The book's instruction records split 85/10/5 (chapter 7)."""
    from llm_data.instructions import instructions

    return instructions(root, **options)


@hookimpl
def register_tokenizers(register: Any) -> None:
    """``gpt2``, ``bpe``, ``simple`` and ``huggingface``."""
    register(
        "gpt2", gpt2_tokenizer, description="GPT-2 BPE via tiktoken (offline with llm-data[gpt2-offline])"
    )
    register(
        "bpe",
        bpe_tokenizer,
        description="byte-level BPE trained from scratch; a saved .json loads by path",
        file_format="scratchlm-bpe",
    )
    register("simple", simple_tokenizer, description="the book's word-level SimpleTokenizerV2 (teaching)")
    register(
        "huggingface",
        huggingface_tokenizer,
        description="a checkpoint's own Hugging Face tokenizer.json (tokenizers library), loaded by path",
        file_name="tokenizer.json",
    )


@hookimpl
def register_datasets(register: Any) -> None:
    """``python-docs``, ``the-verdict``, ``sms-spam`` and ``instructions``."""
    register("python-docs", python_docs_dataset, description="CPython's documentation text (offline)")
    register("the-verdict", the_verdict_dataset, description="the book's short story (chapter 2)")
    register("sms-spam", sms_spam_dataset, description="UCI SMS Spam Collection, balanced (chapter 6)")
    register("instructions", instructions_dataset, description="the book's 1100 instructions (chapter 7)")


@hookimpl
def register_commands(cli: Any) -> None:
    """``scratchlm tokenize`` and ``scratchlm prepare``."""
    from llm_data import commands

    cli.command("download")(commands.download_command)
    cli.command("tokenize")(commands.tokenize_command)
    cli.command("prepare")(commands.prepare_command)
