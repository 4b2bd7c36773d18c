"""Which scratchlm package provides each built-in command and tokenizer file format.

With only some packages installed, a command or a saved tokenizer of another one is
unknown to the plugin manager. These tables let the error name the package to install
instead of a bare "No such command".
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution

__all__ = ["COMMAND_PACKAGES", "TOKENIZER_FORMAT_PACKAGES", "install_hint", "is_installed"]

#: Built-in top-level command -> the distribution that registers it.
COMMAND_PACKAGES: dict[str, str] = {
    "tokenize": "llm-data",
    "prepare": "llm-data",
    "download": "llm-data",
    "model-info": "llm-model",
    "generate": "llm-model",
    "import-hf": "llm-model",
    "export-hf": "llm-model",
    "pretrain": "llm-train",
    "compare": "llm-train",
    "plot": "llm-train",
    "demo": "llm-train",
    "finetune": "llm-finetune",
    "classify": "llm-finetune",
    "chat": "llm-finetune",
    "evaluate": "llm-eval",
    "judge": "llm-eval",
    "serve": "llm-eval",
}

#: ``"format"`` of a saved tokenizer file -> the distribution whose tokenizer reads it.
TOKENIZER_FORMAT_PACKAGES: dict[str, str] = {
    "scratchlm-bpe": "llm-data",
}


def is_installed(distribution_name: str) -> bool:
    """True when ``distribution_name`` is installed in this environment."""
    try:
        distribution(distribution_name)
    except PackageNotFoundError:
        return False
    return True


def install_hint(what: str, distribution_name: str) -> str:
    """One sentence: ``what`` comes from ``distribution_name``; install it (or say it is broken)."""
    if is_installed(distribution_name):
        return (
            f"{what} comes from {distribution_name}, which is installed but did not register it; "
            "run `scratchlm plugins` to see why"
        )
    return f"{what} comes from {distribution_name}, which is not installed: pip install {distribution_name}"
