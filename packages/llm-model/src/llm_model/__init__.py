"""llm-model: GPT-2, Llama, Mistral and Phi models, generation, checkpoints, Hugging Face import/export.

Everything here follows chapters 4-5 of "Build a Large Language Model (From
Scratch)"; attention comes from :mod:`llm_attention`. ``gpt2``, ``llama``,
``mistral`` and ``phi`` are registered as architectures (with their presets)
through the scratchlm plugin hooks.

Names are imported lazily (PEP 562), so loading the plugin for
``scratchlm --help`` does not import torch.
"""

from __future__ import annotations

from llm_core.exports import distribution_version, lazy_exports

__version__ = distribution_version("llm-model")

#: Public name -> submodule defining it; imported on first use (no torch for `scratchlm --help`).
_EXPORTS = {
    "Block": "blocks",
    "BlockInputs": "blocks",
    "DecoderConfig": "config",
    "FeedForward": "blocks",
    "GELU": "blocks",
    "GPTConfig": "config",
    "GPTModel": "gpt",
    "IGNORE_INDEX": "head_loss",
    "LLAMA_PRESETS": "presets",
    "LayerNorm": "blocks",
    "LlamaBlock": "llama",
    "LlamaConfig": "llama",
    "LlamaModel": "llama",
    "MISTRAL_PRESETS": "presets",
    "MistralConfig": "llama",
    "MistralModel": "llama",
    "PHI_PRESETS": "presets",
    "PRESETS": "presets",
    "PhiBlock": "phi",
    "PhiConfig": "phi",
    "PhiMLP": "phi",
    "PhiModel": "phi",
    "QUANTIZE_MODES": "quantize",
    "RMSNorm": "norms",
    "RotaryDecoder": "decoder",
    "RotaryDecoderConfig": "decoder",
    "SwiGLUFeedForward": "llama",
    "TransformerBlock": "blocks",
    "accepts_targets": "gpt",
    "architecture_config": "gpt",
    "build_model": "gpt",
    "causal_self_attention": "blocks",
    "checksum_verification": "checkpoint",
    "count_parameters": "gpt",
    "export_hf": "hf",
    "generate": "generation",
    "generate_text": "generation",
    "get_preset": "presets",
    "import_book": "book_weights",
    "import_hf": "hf",
    "init_weights": "init",
    "linear_cross_entropy": "head_loss",
    "load_pretrained": "checkpoint",
    "load_weights_into": "checkpoint",
    "masked_cross_entropy": "head_loss",
    "model_config": "gpt",
    "model_info": "gpt",
    "quantize_model": "quantize",
    "read_checkpoint_config": "checkpoint",
    "save_pretrained": "checkpoint",
    "stream_tokens": "generation",
    "tied_parameter_aliases": "loading",
    "verify_checksums": "checkpoint",
    "write_model_files": "checkpoint",
}

__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
