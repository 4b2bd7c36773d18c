"""llm-finetune: classification, instruction finetuning (SFT), LoRA and DPO on top of llm-train's Trainer.

Names are imported on first use (PEP 562), so loading the plugin for
``scratchlm --help`` does not import torch.
"""

from __future__ import annotations

from llm_core.exports import distribution_version, lazy_exports

__version__ = distribution_version("llm-finetune")

#: Public name -> submodule defining it; imported on first use (no torch for `scratchlm --help`).
_EXPORTS = {
    "AlpacaTemplate": "templates",
    "ClassificationDataset": "classifier",
    "ClassificationRecipe": "classifier",
    "ClassificationTask": "classifier",
    "ClassifyConfig": "config",
    "DPOConfig": "config",
    "DPORecipe": "dpo",
    "DPOTask": "dpo",
    "FinetuneConfig": "config",
    "FinetuneRun": "recipe",
    "FinetuneTask": "tasks",
    "FinetunedModel": "checkpoints",
    "InstructConfig": "config",
    "InstructionRecipe": "instruct",
    "InstructionTask": "instruct",
    "LinearWithLoRA": "lora",
    "LlamaTemplate": "templates",
    "LoRAConfig": "config",
    "LoRALayer": "lora",
    "PreferenceDataset": "dpo",
    "PromptTemplate": "templates",
    "Recipe": "recipe",
    "SFTDataset": "instruct",
    "TEMPLATES": "templates",
    "apply_lora": "lora",
    "calc_accuracy_loader": "classifier",
    "calc_loss_loader": "classifier",
    "chat_loop": "chat",
    "classify_texts": "classifier",
    "confusion_matrix": "classifier",
    "dpo_loss": "dpo",
    "evaluate_classifier": "classifier",
    "finetune_classifier": "classifier",
    "finetune_dpo": "dpo",
    "finetune_instructions": "instruct",
    "generate_responses": "instruct",
    "get_template": "templates",
    "last_token_logits": "heads",
    "load_base": "checkpoints",
    "load_classification_data": "classifier",
    "load_finetuned": "checkpoints",
    "load_instruction_data": "instruct",
    "load_lora_adapters": "adapters",
    "load_preference_file": "dpo",
    "lora_state_dict": "lora",
    "merge_lora": "lora",
    "plot_accuracy": "plots",
    "remove_lora": "lora",
    "response_logprobs": "dpo",
    "run_recipe": "recipe",
    "save_lora_adapters": "adapters",
    "save_merged_checkpoint": "adapters",
    "set_trainable": "checkpoints",
    "stream_response": "chat",
    "to_classifier": "heads",
    "unmerge_lora": "lora",
}

__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
