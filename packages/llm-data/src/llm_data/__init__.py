"""llm-data: tokenizers, a BPE trainer, token windows, prepared corpora and the book's datasets.

Names are imported on first use (``import llm_data`` stays light: no torch until needed).
"""

from __future__ import annotations

from llm_core.exports import distribution_version, lazy_exports

__version__ = distribution_version("llm-data")

#: Public name -> submodule defining it; imported on first use (no torch for `scratchlm --help`).
_EXPORTS = {
    "BPETokenizer": "bpe",
    "GPT2Tokenizer": "tokenizers",
    "GPTDatasetV1": "loaders",
    "InstructionDataset": "instructions",
    "SequentialWindowLoader": "loaders",
    "SimpleTokenizerV2": "simple",
    "Source": "fetchers",
    "SpamDataset": "sms_spam",
    "TiktokenTokenizer": "tokenizers",
    "TokenArray": "shards",
    "Tokenizer": "tokenizers",
    "WindowLoader": "loaders",
    "cache_dir": "fetchers",
    "create_dataloader": "loaders",
    "custom_collate_fn": "instructions",
    "fetch": "fetchers",
    "format_input": "instructions",
    "get_tokenizer": "tokenizers",
    "gpt2_encoding": "gpt2",
    "load_instruction_file": "instructions",
    "load_prepared": "shards",
    "parse_sms_spam": "sms_spam",
    "prepare_corpus": "prepare",
    "python_docs_text": "corpora",
    "read_json_records": "text_files",
    "read_text_file": "text_files",
    "tokens_from_text_file": "text_files",
}

__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
