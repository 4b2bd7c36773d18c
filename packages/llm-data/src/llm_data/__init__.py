"""llm-data: tokenizers, a BPE trainer, token windows, prepared corpora and the book's datasets.

Names are imported on first use (``import llm_data`` stays light: no torch until needed).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("llm-data")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

#: Public name -> module that defines it.
_EXPORTS = {
    "BPETokenizer": "llm_data.bpe",
    "GPT2Tokenizer": "llm_data.tokenizers",
    "GPTDatasetV1": "llm_data.loaders",
    "InstructionDataset": "llm_data.instructions",
    "SequentialWindowLoader": "llm_data.loaders",
    "SimpleTokenizerV2": "llm_data.simple",
    "Source": "llm_data.fetchers",
    "SpamDataset": "llm_data.sms_spam",
    "TiktokenTokenizer": "llm_data.tokenizers",
    "TokenArray": "llm_data.shards",
    "Tokenizer": "llm_data.tokenizers",
    "WindowLoader": "llm_data.loaders",
    "cache_dir": "llm_data.fetchers",
    "create_dataloader": "llm_data.loaders",
    "custom_collate_fn": "llm_data.instructions",
    "fetch": "llm_data.fetchers",
    "format_input": "llm_data.instructions",
    "get_tokenizer": "llm_data.tokenizers",
    "gpt2_encoding": "llm_data.gpt2",
    "load_instruction_file": "llm_data.instructions",
    "load_prepared": "llm_data.shards",
    "parse_sms_spam": "llm_data.sms_spam",
    "prepare_corpus": "llm_data.prepare",
    "python_docs_text": "llm_data.corpora",
    "read_text_file": "llm_data.text_files",
    "tokens_from_text_file": "llm_data.text_files",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llm_data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
