"""The package contract of ARCHITECTURE.md: dependency arrows, torch-free core, no runtime transformers."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["llm-core", "llm-data", "llm-attention", "llm-model", "llm-train", "llm-finetune", "llm-eval"]
#: The arrows of ARCHITECTURE.md: what each package may depend on (transitively closed).
ALLOWED = {
    "llm-core": set(),
    "llm-data": {"llm-core"},
    "llm-attention": {"llm-core"},
    "llm-model": {"llm-core", "llm-attention"},
    "llm-train": {"llm-core", "llm-data", "llm-attention", "llm-model"},
    "llm-finetune": {"llm-core", "llm-data", "llm-attention", "llm-model", "llm-train"},
    "llm-eval": {"llm-core", "llm-data", "llm-attention", "llm-model"},
}


def runtime_requirements(package: str) -> set[str]:
    """Names of the distribution's runtime requirements (extras excluded)."""
    names = set()
    for req in requires(package) or []:
        if "extra ==" in req:
            continue
        names.add(re.split(r"[ <>=!~;@\[]", req, maxsplit=1)[0].lower())
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_declared_dependencies_follow_the_arrows(package: str) -> None:
    deps = runtime_requirements(package)
    llm = {d for d in deps if d.startswith("llm-")}
    assert llm <= ALLOWED[package], f"{package} depends on {llm - ALLOWED[package]}"
    assert "transformers" not in deps
    assert ("torch" in deps) == (package != "llm-core")


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_arrows(package: str) -> None:
    allowed = {p.replace("-", "_") for p in ALLOWED[package] | {package}}
    for path in (ROOT / "packages" / package / "src").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top != "transformers", f"{path}: imports transformers at run time"
                if top.startswith("llm_"):
                    assert top in allowed, f"{path}: imports {top}, not allowed for {package}"
                if package == "llm-core":
                    assert top != "torch", f"{path}: llm-core must not import torch"


def test_all_builtin_plugins_load_without_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llm_core.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "SCRATCHLM_PLUGINS": ""},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    builtins = {item["distribution"]: item for item in data if item["builtin"]}
    assert set(builtins) == set(PACKAGES)
    assert all(item["errors"] == [] for item in builtins.values())


def test_cli_help_does_not_import_torch() -> None:
    code = "import sys; from llm_core.cli import main; main(['--help']); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_no_unsafe_deserialisation_in_sources() -> None:
    unsafe = re.compile(r"\bpickle\b|\beval\(|torch\.load\((?![^)]*weights_only=True)")
    offenders = []
    for path in (ROOT / "packages").rglob("src/**/*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if unsafe.search(code) and "model.eval()" not in code and ".eval()" not in code:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
