"""llm-finetune: classification, instruction finetuning (SFT), LoRA and DPO on top of llm-train's Trainer.

Names are imported on first use (PEP 562), so loading the plugin for
``scratchlm --help`` does not import torch.
"""

from __future__ import annotations

from llm_core.exports import distribution_version, export_table, lazy_exports

__version__ = distribution_version("llm-finetune")

#: Submodule: the public names it defines, imported on first use (no torch for `scratchlm --help`).
_EXPORTS = export_table(
    """
    adapters: load_lora_adapters save_lora_adapters save_merged_checkpoint
    chat: chat_loop stream_response
    checkpoints: FinetunedModel load_base load_finetuned set_trainable
    classifier: ClassificationDataset ClassificationRecipe ClassificationTask calc_accuracy_loader
                calc_loss_loader classify_texts confusion_matrix evaluate_classifier
                finetune_classifier load_classification_data
    config: ClassifyConfig DPOConfig FinetuneConfig InstructConfig LoRAConfig
    dpo: DPORecipe DPOTask PreferenceDataset dpo_loss finetune_dpo load_preference_file
         response_logprobs
    heads: last_token_logits to_classifier
    instruct: InstructionRecipe InstructionTask SFTDataset finetune_instructions generate_responses
              load_instruction_data
    lora: LinearWithLoRA LoRALayer apply_lora lora_state_dict merge_lora remove_lora unmerge_lora
    plots: plot_accuracy
    recipe: FinetuneRun Recipe run_recipe
    tasks: FinetuneTask
    templates: AlpacaTemplate LlamaTemplate PromptTemplate TEMPLATES get_template
    """
)

__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
