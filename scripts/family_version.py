"""The scratchlm family version: one number for the seven llm-* packages, kept in ``VERSION``.

``VERSION`` (at the repository's root) is the single source. Each package's ``pyproject.toml``
carries a copy, because a built sdist must hold its own version; this script writes the
copies and checks them:

    python scripts/family_version.py check        # exit 1 and list every disagreement
    python scripts/family_version.py set 0.3.0    # write VERSION, every package version and
                                                  # every sibling range (llm-core>=0.3,<0.4)

Siblings are required by name with the range of the family's minor series, ``>=X.Y,<X.Y+1``
(0.x minor releases may break the plugin API). The example plugins in ``examples/plugins/``
require the same range, as a third-party plugin would. ``tests/test_family_version.py`` and
``nox -s build`` run the check.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION_FILE = ROOT / "VERSION"
FAMILY = ("llm-core", "llm-data", "llm-attention", "llm-model", "llm-train", "llm-finetune", "llm-eval")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:(a|b|rc)\d+)?$")
#: A quoted requirement on a family package: name, optional extras, anything up to a marker.
_SIBLING_RE = re.compile(
    r'(?<!name = )"(?P<name>'
    + "|".join(FAMILY)
    + r')(?P<extras>\[[^\]]*\])?(?P<spec>[^";]*)(?P<marker>;[^"]*)?"'
)
_PROJECT_VERSION_RE = re.compile(r'^version = "[^"]*"$', re.MULTILINE)


def package_pyprojects() -> list[Path]:
    """The seven family packages' ``pyproject.toml`` files."""
    return [ROOT / "packages" / name / "pyproject.toml" for name in FAMILY]


def plugin_pyprojects() -> list[Path]:
    """The example plugins' ``pyproject.toml`` files (they require siblings, they are not family)."""
    return sorted((ROOT / "examples" / "plugins").glob("*/pyproject.toml"))


def read_version() -> str:
    """The family version from ``VERSION``, validated."""
    version = VERSION_FILE.read_text(encoding="utf-8").strip()
    if not _VERSION_RE.match(version):
        raise SystemExit(f"{VERSION_FILE}: {version!r} is not a release version like 0.2.0")
    return version


def sibling_range(version: str) -> str:
    """``0.2.0`` -> ``>=0.2,<0.3``: the minor series every sibling requirement names."""
    match = _VERSION_RE.match(version)
    if match is None:
        raise SystemExit(f"{version!r} is not a release version like 0.2.0")
    major, minor = int(match.group(1)), int(match.group(2))
    return f">={major}.{minor},<{major}.{minor + 1}"


def _rewrite(text: str, version: str, *, family: bool) -> str:
    spec = sibling_range(version)

    def requirement(match: re.Match[str]) -> str:
        return f'"{match["name"]}{match["extras"] or ""}{spec}{match["marker"] or ""}"'

    text = _SIBLING_RE.sub(requirement, text)
    if family:
        text = _PROJECT_VERSION_RE.sub(f'version = "{version}"', text, count=1)
    return text


def problems(version: str) -> list[str]:
    """Every file that disagrees with ``version``, one line each (empty: all agree)."""
    found = []
    for path, family in [(p, True) for p in package_pyprojects()] + [(p, False) for p in plugin_pyprojects()]:
        text = path.read_text(encoding="utf-8")
        relative = path.relative_to(ROOT)
        if family:
            declared = _PROJECT_VERSION_RE.search(text)
            if declared is None or declared.group(0) != f'version = "{version}"':
                shown = declared.group(0) if declared else "no static version"
                found.append(f"{relative}: {shown}, expected version = {version!r} (VERSION)")
        for match in _SIBLING_RE.finditer(text):
            if match["spec"].strip() != sibling_range(version):
                found.append(
                    f"{relative}: {match.group(0)} should require {match['name']}{sibling_range(version)}"
                )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="fail if any pyproject disagrees with VERSION")
    setter = commands.add_parser("set", help="write a new family version everywhere")
    setter.add_argument("version", help="the new version, e.g. 0.3.0")
    args = parser.parse_args(argv)
    if args.command == "set":
        sibling_range(args.version)  # validates
        VERSION_FILE.write_text(args.version + "\n", encoding="utf-8")
        for path in package_pyprojects():
            path.write_text(_rewrite(path.read_text(encoding="utf-8"), args.version, family=True), "utf-8")
        for path in plugin_pyprojects():
            path.write_text(_rewrite(path.read_text(encoding="utf-8"), args.version, family=False), "utf-8")
        print(f"family version {args.version}; siblings required as {sibling_range(args.version)}")
        print("now add a CHANGELOG.md section for it")
    version = read_version()
    found = problems(version)
    for line in found:
        print(line, file=sys.stderr)
    if not found and args.command == "check":
        print(f"all {len(FAMILY)} packages at {version}; siblings required as {sibling_range(version)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
