"""The package's structure: no import cycle between its modules, no attributes glued onto models."""

from __future__ import annotations

import ast
from pathlib import Path

import llm_finetune

PACKAGE = Path(llm_finetune.__file__).parent
MODULES = {path.stem: path for path in sorted(PACKAGE.glob("*.py")) if path.stem != "__init__"}


def _imports(path: Path) -> set[str]:
    """The llm_finetune modules ``path`` imports anywhere (in functions too), by module name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("llm_finetune.")}
    return found & set(MODULES)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, …, a]``, or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_checker_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_the_modules() -> None:
    graph = {name: _imports(path) - {name} for name, path in MODULES.items()}
    assert graph["lora"] <= {"config"}  # LoRA layers know nothing of classifiers, checkpoints or files
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_no_attributes_are_set_on_models() -> None:
    """What a model is for (labels, template …) travels in FinetunedModel/BaseModel, not on the module."""
    glued = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                owner = target.value if isinstance(target, ast.Attribute) else None
                owner_name = getattr(owner, "id", None) or getattr(owner, "attr", None)
                if owner_name in {"model", "classifier", "network"}:
                    glued.append(f"{name}.py:{node.lineno}: {ast.unparse(target)} = ...")
    assert glued == []
