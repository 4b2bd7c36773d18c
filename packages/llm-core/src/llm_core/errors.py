"""Typed errors shared by every scratchlm package.

Each error message says what was expected, what was found and what to do.
The CLI prints any :class:`ScratchLMError` as one line on stderr and exits
with status 2; other exceptions are bugs.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "MissingDependencyError",
    "PluginError",
    "ScratchLMError",
]


class ScratchLMError(Exception):
    """Base class of every expected scratchlm error (bad input, missing file, bad plugin)."""


class ConfigError(ScratchLMError):
    """A configuration file or value is malformed or out of range."""


class CheckpointError(ScratchLMError):
    """A checkpoint directory or weight file is missing, truncated or does not match."""


class DataError(ScratchLMError):
    """A corpus, dataset or token shard is missing, empty or malformed."""


class PluginError(ScratchLMError):
    """A plugin failed to load, registered a duplicate name, or a name is unknown."""


class MissingDependencyError(ScratchLMError):
    """An optional dependency (an extra) is needed but not installed."""
