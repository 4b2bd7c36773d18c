"""llm-eval: perplexity, accuracy, MMLU, LLM-as-a-judge, an HTML review page and an Ollama/OpenAI server.

Names are imported lazily (PEP 562), so loading the plugin for
``scratchlm --help`` does not import torch.
"""

from __future__ import annotations

from llm_core.exports import distribution_version, export_table, lazy_exports

__version__ = distribution_version("llm-eval")

#: Submodule: the public names it defines, imported on first use (no torch for `scratchlm --help`).
_EXPORTS = export_table(
    """
    accuracy: classification_metrics confusion_matrix evaluate_accuracy predict_classes
    checkpoints: load_model_and_tokenizer
    commands: run_evaluator
    harness: CheckpointScorer harness_lm_class register_harness_model
    judge: JudgeServerError OllamaJudge OpenAIJudge evaluate_judge judge_prompt load_records
           make_backend parse_score read_scores run_judge
    limits: ServerLimits
    mmlu: MMLUQuestion build_prompt evaluate_mmlu load_mmlu score_mmlu
    perplexity: evaluate_perplexity rolling_windows strided_perplexity strided_windows windows_nll
    reports: evaluator write_report
    review: render_review write_review
    server: ModelRunner chat_prompt create_app serve start_server
    server_process: ServerProcess spawn_server
    """
)

__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
