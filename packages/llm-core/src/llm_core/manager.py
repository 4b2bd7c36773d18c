"""The one scratchlm plugin manager: entry-point loading, registries, errors.

Built-in plugins are the ``scratchlm`` entry points of the seven scratchlm
distributions; everything else is third-party. ``SCRATCHLM_PLUGINS`` (a
comma-separated list of entry-point or distribution names) limits which
third-party plugins load; an empty value loads built-ins only. A plugin whose
distribution requires llm-* versions that are not installed is reported at the
``version`` stage and not imported (see :mod:`llm_core.versions`).
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from llm_core import hookspecs
from llm_core.errors import DataError, PluginError
from llm_core.providers import TOKENIZER_FORMAT_PACKAGES, install_hint
from llm_core.registry import KINDS, Entry, Registry
from llm_core.versions import installed_versions, unmet_requirements

__all__ = [
    "BUILTIN_DISTRIBUTIONS",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginManager",
    "PluginProblem",
    "get_manager",
    "get_registry",
    "load_tokenizer",
    "reset_manager",
]

ENTRY_POINT_GROUP = "scratchlm"
ENV_VAR = "SCRATCHLM_PLUGINS"
BUILTIN_DISTRIBUTIONS = frozenset(
    {
        "llm-core",
        "llm-data",
        "llm-attention",
        "llm-model",
        "llm-train",
        "llm-finetune",
        "llm-eval",
    }
)


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that failed: at ``stage`` 'version', 'import', 'hook:<name>', 'register' or 'filter'."""

    plugin: str
    stage: str
    message: str

    def __str__(self) -> str:
        return f"plugin '{self.plugin}' failed at {self.stage}: {self.message}"


@dataclass
class PluginInfo:
    """What ``scratchlm plugins`` shows about one plugin."""

    name: str
    distribution: str | None
    version: str | None
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    loaded: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view (the ``scratchlm plugins --json`` schema)."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "loaded": self.loaded,
            "hooks": sorted(self.hooks),
            "registered": {k: sorted(v) for k, v in sorted(self.registered.items())},
            "errors": list(self.errors),
        }


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PluginManager:
    """Loads scratchlm plugins and builds the registries from their hooks."""

    def __init__(self, *, load_entry_points: bool = True, env: str | None = None) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.problems: list[PluginProblem] = []
        self._info: dict[str, PluginInfo] = {}
        self._registries: dict[str, Registry] = {}
        if load_entry_points:
            self.load_entry_points(os.environ.get(ENV_VAR) if env is None else env)

    # -- loading -----------------------------------------------------------
    def load_entry_points(self, selection: str | None) -> None:
        """Load built-in and (filtered) third-party entry points of the ``scratchlm`` group."""
        wanted = None if selection is None else {_normalise(s) for s in selection.split(",") if s.strip()}
        seen: set[str] = set()
        versions = installed_versions()
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist_name = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            builtin = dist_name is not None and _normalise(dist_name) in BUILTIN_DISTRIBUTIONS
            if ep.name in self._info or self.pm.has_plugin(ep.name):
                continue
            if not builtin and wanted is not None:
                names = {_normalise(ep.name)} | ({_normalise(dist_name)} if dist_name else set())
                if not names & wanted:
                    continue
                seen |= names & wanted
            unmet = unmet_requirements(ep.dist.requires or [], versions) if ep.dist is not None else []
            if unmet:  # importing it could fail anywhere: say which versions it needs instead
                who = f"{dist_name} {version}" if dist_name else ep.name
                message = f"{who} requires {'; '.join(unmet)}; install versions that match"
                self._record(ep.name, "version", message)
                self._info[ep.name] = PluginInfo(ep.name, dist_name, version, builtin, loaded=False)
                self._info[ep.name].errors.append(f"version: {message}")
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                self._record(ep.name, "import", _error_text(exc))
                self._info[ep.name] = PluginInfo(ep.name, dist_name, version, builtin, loaded=False)
                self._info[ep.name].errors.append(f"import: {_error_text(exc)}")
                continue
            self.register(plugin, ep.name, distribution=dist_name, version=version, builtin=builtin)
        for missing in sorted((wanted or set()) - seen):
            self._record(missing, "filter", f"{ENV_VAR} names '{missing}' but no such plugin is installed")

    def register(
        self,
        plugin: ModuleType | object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
        builtin: bool = False,
    ) -> str:
        """Register a plugin object (a module or an instance with ``@hookimpl`` methods)."""
        try:
            registered_name = self.pm.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(f"cannot register plugin {name!r}: {exc}") from exc
        if registered_name is None:
            raise PluginError(f"plugin {name!r} is blocked")
        hooks = [impl_caller.name for impl_caller in self.pm.get_hookcallers(plugin) or []]
        self._info[registered_name] = PluginInfo(registered_name, distribution, version, builtin, hooks)
        self._registries.clear()
        return registered_name

    def unregister(self, name: str) -> None:
        """Remove a plugin by name (used by tests); registries are rebuilt on next use."""
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self._info.pop(name, None)
        self.problems = [p for p in self.problems if p.plugin != name]
        self._registries.clear()

    def _record(self, plugin: str, stage: str, message: str) -> None:
        problem = PluginProblem(plugin, stage, message)
        if problem not in self.problems:
            self.problems.append(problem)
        info = self._info.get(plugin)
        if info is not None and f"{stage}: {message}" not in info.errors:
            info.errors.append(f"{stage}: {message}")

    # -- hooks -------------------------------------------------------------
    def _call_each(self, hook_name: str, call: Callable[[str, Callable[..., Any]], None]) -> None:
        """Call every implementation of ``hook_name`` separately, isolating failures."""
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order: the first provider keeps a name
            try:
                call(impl.plugin_name, impl.function)
            except Exception as exc:  # report and go on with the other plugins
                self._record(impl.plugin_name, f"hook:{hook_name}", _error_text(exc))

    def registry(self, kind: str) -> Registry:
        """The registry of ``kind`` (one of :data:`llm_core.registry.KINDS`), built on first use."""
        if kind not in KINDS:
            raise PluginError(f"unknown registry kind '{kind}'; expected one of {', '.join(KINDS)}")
        if kind in self._registries:
            return self._registries[kind]
        registry = Registry(kind)

        def call(plugin_name: str, function: Callable[..., Any]) -> None:
            info = self._info.get(plugin_name)
            version = info.version if info else None

            def register(name: str, obj: Any, **meta: Any) -> None:
                if not isinstance(name, str) or not name.strip():
                    raise PluginError(f"{kind} names must be non-empty strings, got {name!r}")
                if obj is None:
                    raise PluginError(f"{kind[:-1]} '{name}' was registered as None")
                conflict = registry.add(Entry(name, obj, plugin_name, version, dict(meta)))
                if conflict:
                    self._record(plugin_name, "register", conflict)
                elif info is not None:
                    info.registered.setdefault(kind, []).append(name)

            function(register=register)

        self._call_each(f"register_{kind}", call)
        self._registries[kind] = registry
        return registry

    def add_commands(self, cli: Any) -> None:
        """Let every plugin add its commands to the typer app ``cli``."""
        self._call_each("register_commands", lambda _name, function: function(cli=cli))

    def plugins(self) -> list[PluginInfo]:
        """Every known plugin, loaded or not, with what it registered (fills all registries)."""
        for kind in KINDS:
            self.registry(kind)
        return [self._info[name] for name in sorted(self._info)]


_manager: PluginManager | None = None


def get_manager() -> PluginManager:
    """The process-wide plugin manager, created (and entry points loaded) on first use."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager


def reset_manager(manager: PluginManager | None = None) -> None:
    """Replace the process-wide manager (``None``: reload from entry points on next use)."""
    global _manager
    _manager = manager


def get_registry(kind: str) -> Registry:
    """Shortcut for ``get_manager().registry(kind)``."""
    return get_manager().registry(kind)


def load_tokenizer(reference: str) -> Any:
    """The tokenizer a checkpoint or option refers to: a registered name, or a saved ``.json`` file.

    A file names its ``"format"``; the tokenizer registered with the meta
    ``file_format=<that format>`` loads it (its factory is called with the path).
    A file without a ``"format"`` key whose name a tokenizer claims with the meta
    ``file_name=`` (``tokenizer.json``: Hugging Face's format has no such key) is
    loaded by that tokenizer.
    """
    registry = get_registry("tokenizers")
    if not reference.endswith(".json"):
        return registry.get_obj(reference)()
    claimed = registry.find("file_name", os.path.basename(reference))
    try:
        with open(reference, encoding="utf-8") as handle:
            file_format = json.load(handle).get("format")
    except FileNotFoundError:
        raise DataError(
            f"{reference}: tokenizer file not found; pass a registered name or a saved .json"
        ) from None
    except (OSError, ValueError, AttributeError) as exc:
        if claimed:  # the tokenizer that reads files of this name says what is wrong with it
            return claimed[0].obj(reference)
        raise DataError(
            f"{reference}: expected a saved tokenizer (JSON with a 'format' key): {exc}"
        ) from None
    if file_format is None and claimed:
        return claimed[0].obj(reference)
    for entry in registry.find("file_format", file_format):
        return entry.obj(reference)
    if file_format in TOKENIZER_FORMAT_PACKAGES:
        hint = install_hint("its tokenizer", TOKENIZER_FORMAT_PACKAGES[file_format])
        raise PluginError(f"{reference}: no registered tokenizer reads format {file_format!r}; {hint}")
    raise PluginError(f"{reference}: no registered tokenizer reads format {file_format!r}")
