"""llm-eval: perplexity, accuracy, MMLU, LLM-as-a-judge, an HTML review page and an Ollama/OpenAI server.

Names are imported lazily (PEP 562), so loading the plugin for
``scratchlm --help`` does not import torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("llm-eval")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

#: Public name -> module that defines it.
_EXPORTS = {
    "classification_metrics": "accuracy",
    "confusion_matrix": "accuracy",
    "evaluate_accuracy": "accuracy",
    "predict_classes": "accuracy",
    "load_model_and_tokenizer": "checkpoints",
    "run_evaluator": "commands",
    "JudgeServerError": "judge",
    "OllamaJudge": "judge",
    "OpenAIJudge": "judge",
    "evaluate_judge": "judge",
    "judge_prompt": "judge",
    "load_records": "judge",
    "make_backend": "judge",
    "parse_score": "judge",
    "read_scores": "judge",
    "run_judge": "judge",
    "CheckpointScorer": "harness",
    "harness_lm_class": "harness",
    "register_harness_model": "harness",
    "MMLUQuestion": "mmlu",
    "build_prompt": "mmlu",
    "evaluate_mmlu": "mmlu",
    "load_mmlu": "mmlu",
    "score_mmlu": "mmlu",
    "evaluate_perplexity": "perplexity",
    "rolling_windows": "perplexity",
    "strided_perplexity": "perplexity",
    "strided_windows": "perplexity",
    "windows_nll": "perplexity",
    "evaluator": "reports",
    "write_report": "reports",
    "render_review": "review",
    "write_review": "review",
    "ServerLimits": "limits",
    "ModelRunner": "server",
    "chat_prompt": "server",
    "create_app": "server",
    "serve": "server",
    "start_server": "server",
    "ServerProcess": "server_process",
    "spawn_server": "server_process",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llm_eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"llm_eval.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
