"""llm-data: tokenizers, a BPE trainer, token windows, prepared corpora and the book's datasets.

Names are imported on first use (``import llm_data`` stays light: no torch until needed).
"""

from __future__ import annotations

from llm_core.exports import distribution_version, export_table, lazy_exports

__version__ = distribution_version("llm-data")

#: Submodule: the public names it defines, imported on first use (no torch for `scratchlm --help`).
_EXPORTS = export_table(
    """
    bpe: BPETokenizer
    corpora: python_docs_text
    fetchers: Source cache_dir fetch
    gpt2: gpt2_encoding
    labels: confusion_matrix
    instructions: InstructionDataset custom_collate_fn format_input load_instruction_file
    loaders: GPTDatasetV1 SequentialWindowLoader WindowLoader create_dataloader
    prepare: prepare_corpus
    shards: TokenArray load_prepared
    simple: SimpleTokenizerV2
    sms_spam: SpamDataset parse_sms_spam
    text_files: read_json_records read_text_file tokens_from_text_file
    tokenizers: GPT2Tokenizer TiktokenTokenizer Tokenizer get_tokenizer
    """
)

__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
