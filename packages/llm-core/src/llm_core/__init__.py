"""llm-core: plugins, registries, errors, config I/O and the ``scratchlm`` CLI root.

This package never imports torch.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from llm_core.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    MissingDependencyError,
    PluginError,
    ScratchLMError,
)
from llm_core.hookspecs import hookimpl
from llm_core.manager import PluginManager, get_manager, get_registry, load_tokenizer, reset_manager
from llm_core.registry import KINDS, Entry, Registry

try:
    __version__ = version("llm-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "KINDS",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Entry",
    "MissingDependencyError",
    "PluginError",
    "PluginManager",
    "Registry",
    "ScratchLMError",
    "__version__",
    "get_manager",
    "get_registry",
    "hookimpl",
    "load_tokenizer",
    "reset_manager",
]
