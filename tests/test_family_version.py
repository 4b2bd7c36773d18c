"""The family's one version and the packaging checks: scripts/family_version.py, scripts/check_dists.py."""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import check_dists  # noqa: E402
import family_version  # noqa: E402


def test_every_package_agrees_with_version_file() -> None:
    assert family_version.problems(family_version.read_version()) == []


def test_no_direct_references_left() -> None:
    for path in family_version.package_pyprojects() + family_version.plugin_pyprojects():
        text = path.read_text(encoding="utf-8")
        assert "{root:" not in text and "allow-direct-references" not in text, path


def test_each_package_ships_the_license() -> None:
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    for name in family_version.FAMILY:
        assert (ROOT / "packages" / name / "LICENSE").read_text(encoding="utf-8") == license_text, name


@pytest.mark.parametrize(
    ("version", "expected"), [("0.2.0", ">=0.2,<0.3"), ("0.2.7", ">=0.2,<0.3"), ("1.9.0rc1", ">=1.9,<1.10")]
)
def test_sibling_range(version: str, expected: str) -> None:
    assert family_version.sibling_range(version) == expected


def test_set_rewrites_versions_and_sibling_ranges() -> None:
    text = (
        '[project]\nname = "llm-model"\nversion = "0.2.0"\n'
        'dependencies = ["llm-core>=0.2,<0.3", "torch>=2.5",\n'
        "  \"llm-data[gpt2-offline]; python_version >= '3.10'\"]\n"
    )
    new = family_version._rewrite(text, "0.3.1", family=True)
    assert 'name = "llm-model"' in new and 'version = "0.3.1"' in new
    assert '"llm-core>=0.3,<0.4"' in new
    assert "\"llm-data[gpt2-offline]>=0.3,<0.4; python_version >= '3.10'\"" in new
    assert '"torch>=2.5"' in new


def _fake_dist(directory: Path, name: str, version: str, requires: list[str]) -> None:
    """A wheel and sdist of ``name`` with the real README and complete metadata but ``requires``."""
    module = name.replace("-", "_")
    readme = (ROOT / "packages" / name / "README.md").read_text(encoding="utf-8")
    headers = [
        "Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}", "Summary: s",
        "Project-URL: Source, http://127.0.0.1/source", "License-Expression: MIT", "License-File: LICENSE",
        "Classifier: Typing :: Typed", "Requires-Python: >=3.10", "Description-Content-Type: text/markdown",
    ]  # fmt: skip
    metadata = "\n".join(headers + [f"Requires-Dist: {r}" for r in requires]) + "\n\n" + readme
    with zipfile.ZipFile(directory / f"{module}-{version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{module}-{version}.dist-info/METADATA", metadata)
        wheel.writestr(f"{module}-{version}.dist-info/licenses/LICENSE", "MIT")
        wheel.writestr(f"{module}/py.typed", "")
    with tarfile.open(directory / f"{module}-{version}.tar.gz", "w:gz") as sdist:
        for member, text in [
            ("PKG-INFO", metadata),
            ("pyproject.toml", ""),
            ("README.md", readme),
            ("LICENSE", ""),
        ]:
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"{module}-{version}/{member}")
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))


def test_check_dists_rejects_a_direct_reference(tmp_path: Path) -> None:
    version = family_version.read_version()
    spec = family_version.sibling_range(version)
    for name in family_version.FAMILY:
        requires = [] if name == "llm-core" else [f"llm-core{spec}", "torch>=2.5"]
        if name == "llm-model":
            requires = ["llm-core @ file:///home/someone/scratchlm/packages/llm-core", "llm-attention>=0.1"]
        _fake_dist(tmp_path, name, version, requires)
    problems = check_dists.check(tmp_path)
    assert any(p.startswith("llm_model-") and "direct reference" in p for p in problems), problems
    assert any("'llm-attention>=0.1' should be llm-attention" in p for p in problems), problems
    assert all(p.startswith("llm_model-") for p in problems), problems  # the other six are clean


def test_check_dists_wants_every_package(tmp_path: Path) -> None:
    problems = check_dists.check(tmp_path)
    assert len(problems) == len(family_version.FAMILY)
    assert all("found nothing" in p for p in problems)
