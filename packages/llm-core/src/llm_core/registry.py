"""Registries: name -> object, with the plugin (and version) that provided it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from llm_core.errors import PluginError

__all__ = ["KINDS", "KIND_PACKAGES", "Entry", "Registry"]

#: Every registry kind, as in the hook names ``register_<kind>``.
KINDS: tuple[str, ...] = (
    "architectures",
    "attention",
    "optimizers",
    "schedulers",
    "evaluators",
    "tokenizers",
    "datasets",
    "callbacks",
)

#: The package whose built-ins fill each kind: the hint in "unknown name" errors.
KIND_PACKAGES: dict[str, str] = {
    "architectures": "llm-model",
    "attention": "llm-attention",
    "optimizers": "llm-train",
    "schedulers": "llm-train",
    "evaluators": "llm-eval",
    "tokenizers": "llm-data",
    "datasets": "llm-data",
    "callbacks": "llm-train",
}


@dataclass(frozen=True)
class Entry:
    """One registered object and where it came from."""

    name: str
    obj: Any
    plugin: str
    version: str | None
    meta: Mapping[str, Any] = field(default_factory=dict)


class Registry(Mapping[str, Entry]):
    """A read-only mapping of name -> :class:`Entry` for one kind.

    Names claimed by two plugins stay listed but raise :class:`PluginError`
    naming both providers when looked up.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._conflicts: dict[str, list[Entry]] = {}

    def add(self, entry: Entry) -> str | None:
        """Add ``entry``; return an error message if its name is already taken."""
        previous = self._entries.get(entry.name)
        if previous is None:
            self._entries[entry.name] = entry
            return None
        self._conflicts.setdefault(entry.name, [previous]).append(entry)
        return self._conflict_message(entry.name)

    def _conflict_message(self, name: str) -> str:
        providers = " and ".join(f"'{e.plugin}'" for e in self._conflicts[name])
        return (
            f"{self._singular()} '{name}' is registered by both {providers}; "
            "uninstall one of them or limit plugins with SCRATCHLM_PLUGINS"
        )

    def _singular(self) -> str:
        return self.kind[:-1] if self.kind.endswith("s") else self.kind

    def __getitem__(self, name: str) -> Entry:
        if name in self._conflicts:
            raise PluginError(self._conflict_message(name))
        try:
            return self._entries[name]
        except KeyError:
            raise PluginError(self._unknown_message(name)) from None

    def _unknown_message(self, name: str) -> str:
        available = ", ".join(sorted(self._entries)) or "none"
        package = KIND_PACKAGES.get(self.kind)
        hint = (
            f"built-in {self.kind} come from {package} (pip install {package}); "
            "others need their plugin package installed"
            if package
            else "install the plugin package that provides it"
        )
        return f"unknown {self._singular()} '{name}'; available: {available}. Hint: {hint}"

    def get(self, name: str, default: Any = None) -> Any:
        """Return the entry for ``name``, or ``default`` when it is not registered."""
        return self._entries.get(name, default) if name not in self._conflicts else self[name]

    def get_obj(self, name: str) -> Any:
        """Return the object registered as ``name`` (raises :class:`PluginError`)."""
        return self[name].obj

    def find(self, key: str, value: Any) -> list[Entry]:
        """Entries whose metadata has ``key == value`` (ambiguous names excluded)."""
        return [
            e
            for n, e in sorted(self._entries.items())
            if n not in self._conflicts and e.meta.get(key) == value
        ]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)!r})"
