"""llm-model: GPT-2, Llama, Mistral and Phi models, generation, checkpoints, Hugging Face import/export.

Everything here follows chapters 4-5 of "Build a Large Language Model (From
Scratch)"; attention comes from :mod:`llm_attention`. ``gpt2``, ``llama``,
``mistral`` and ``phi`` are registered as architectures (with their presets)
through the scratchlm plugin hooks.

Names are imported lazily (PEP 562), so loading the plugin for
``scratchlm --help`` does not import torch.
"""

from __future__ import annotations

from llm_core.exports import distribution_version, export_table, lazy_exports

__version__ = distribution_version("llm-model")

#: Submodule: the public names it defines, imported on first use (no torch for `scratchlm --help`).
_EXPORTS = export_table(
    """
    blocks: Block BlockInputs FeedForward GELU LayerNorm TransformerBlock causal_self_attention
    book_weights: import_book
    checkpoint: checksum_verification load_pretrained load_weights_into read_checkpoint_config
                save_pretrained verify_checksums write_model_files
    config: DecoderConfig GPTConfig
    decoder: RotaryDecoder RotaryDecoderConfig
    generation: generate generate_text stream_tokens
    gpt: GPTModel accepts_targets architecture_config build_model count_parameters model_config
         model_info
    head_loss: IGNORE_INDEX linear_cross_entropy masked_cross_entropy
    hf: export_hf import_hf
    init: init_weights
    llama: LlamaBlock LlamaConfig LlamaModel MistralConfig MistralModel SwiGLUFeedForward
    loading: tied_parameter_aliases
    norms: RMSNorm
    phi: PhiBlock PhiConfig PhiMLP PhiModel
    presets: LLAMA_PRESETS MISTRAL_PRESETS PHI_PRESETS PRESETS get_preset
    quantize: QUANTIZE_MODES quantize_model
    """
)

__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
