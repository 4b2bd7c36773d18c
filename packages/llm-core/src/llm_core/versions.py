"""The scratchlm family's installed versions, and plugin requirements checked against them.

The seven llm-* packages are released together under one version (``llm-core>=0.2,<0.3``
names a minor series; a 0.x minor release may change the plugin API). A plugin declares the
llm-core version, that is the plugin API, it was written for where pip reads it too: as a
dependency of its distribution, ``dependencies = ["llm-core>=0.2,<0.3"]`` (and likewise any
other llm-* package it imports). pip can still end up with a plugin beside an llm-core it
does not support (``--no-deps``, an upgrade of llm-core alone, an editable checkout), so the
plugin manager checks those requirements before importing a plugin, and reports a plugin
whose requirements are unmet by name, with both versions, instead of letting it fail later
inside a hook.
"""

from __future__ import annotations

import importlib.metadata as metadata
from collections.abc import Iterable, Mapping

from packaging.requirements import InvalidRequirement, Requirement

__all__ = ["FAMILY", "installed_versions", "unmet_requirements"]

#: The scratchlm distributions, in dependency order.
FAMILY = ("llm-core", "llm-data", "llm-attention", "llm-model", "llm-train", "llm-finetune", "llm-eval")


def installed_versions() -> dict[str, str | None]:
    """``{distribution: version}`` of every family package; ``None`` where it is not installed."""
    found: dict[str, str | None] = {}
    for name in FAMILY:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def unmet_requirements(
    requirements: Iterable[str], installed: Mapping[str, str | None] | None = None
) -> list[str]:
    """Each family requirement in ``requirements`` (``Requires-Dist`` lines) that is not met.

    Requirements of optional extras and on other projects are ignored (pip checks those);
    ``installed`` defaults to :func:`installed_versions`. Each message names the requirement
    and the installed version, e.g. ``"llm-core>=0.3,<0.4, but llm-core 0.2.0 is installed"``.
    """
    versions = installed_versions() if installed is None else installed
    unmet = []
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue  # not ours to judge: pip reports a malformed requirement
        name = requirement.name.lower().replace("_", "-")
        if name not in versions:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # only needed with an extra, or on another platform
        version = versions[name]
        wanted = f"{name}{requirement.specifier}"
        if version is None:
            unmet.append(f"{wanted}, but {name} is not installed")
        elif not requirement.specifier.contains(version, prereleases=True):
            unmet.append(f"{wanted}, but {name} {version} is installed")
    return unmet
