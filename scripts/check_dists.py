"""Check the built distributions in ``dist/`` before they go to an index.

For each of the seven packages: exactly one wheel and one sdist at the family version
(``VERSION``); no ``Requires-Dist`` with a direct reference (``name @ file:...``: an index
rejects it and it ties an install to one checkout); siblings required by name with the
family's range; the metadata an index page shows (its own README as description, license
expression and file, classifiers, project URLs); and the ``py.typed`` marker in the wheel.
``nox -s build`` runs it after ``twine check --strict`` and ``check-wheel-contents``:

    python scripts/check_dists.py dist
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from family_version import FAMILY, ROOT, read_version, sibling_range

REQUIRED_FIELDS = (
    "Summary",
    "License-Expression",
    "License-File",
    "Classifier",
    "Project-URL",
    "Requires-Python",
)


def _import_name(package: str) -> str:
    return package.replace("-", "_")


def _metadata_problems(where: str, metadata: Message, package: str, version: str) -> list[str]:
    problems = []
    if metadata["Name"] != package or metadata["Version"] != version:
        problems.append(f"{where}: is {metadata['Name']} {metadata['Version']}, expected {package} {version}")
    for field in REQUIRED_FIELDS:
        if not metadata.get_all(field):
            problems.append(f"{where}: no {field}")
    if metadata["Description-Content-Type"] != "text/markdown":
        problems.append(f"{where}: Description-Content-Type is {metadata['Description-Content-Type']!r}")
    readme = (ROOT / "packages" / package / "README.md").read_text(encoding="utf-8")
    if metadata.get_payload().strip() != readme.strip():
        problems.append(f"{where}: the long description is not packages/{package}/README.md")
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.url is not None:
            problems.append(f"{where}: Requires-Dist {line!r} is a direct reference")
        elif requirement.name in FAMILY and str(requirement.specifier) != str(
            SpecifierSet(sibling_range(version))
        ):
            problems.append(
                f"{where}: Requires-Dist {line!r} should be {requirement.name}{sibling_range(version)}"
            )
    return problems


def check(dist: Path) -> list[str]:
    """Every problem found in ``dist`` (empty: all good)."""
    version = read_version()
    problems = []
    for package in FAMILY:
        stem = f"{_import_name(package)}-{version}"
        wheels = sorted(dist.glob(f"{_import_name(package)}-*.whl"))
        sdists = sorted(dist.glob(f"{_import_name(package)}-*.tar.gz"))
        if [w.name for w in wheels] != [f"{stem}-py3-none-any.whl"] or [s.name for s in sdists] != [
            f"{stem}.tar.gz"
        ]:
            problems.append(
                f"{package}: expected {stem}-py3-none-any.whl and {stem}.tar.gz in {dist}, found "
                f"{', '.join(p.name for p in wheels + sdists) or 'nothing'}"
            )
            continue
        with zipfile.ZipFile(wheels[0]) as wheel:
            names = wheel.namelist()
            metadata = HeaderParser().parsestr(wheel.read(f"{stem}.dist-info/METADATA").decode("utf-8"))
        problems += _metadata_problems(wheels[0].name, metadata, package, version)
        if f"{_import_name(package)}/py.typed" not in names:
            problems.append(f"{wheels[0].name}: no {_import_name(package)}/py.typed")
        if not any(name.startswith(f"{stem}.dist-info/licenses/") for name in names):
            problems.append(f"{wheels[0].name}: no license file under .dist-info/licenses/")
        with tarfile.open(sdists[0]) as sdist:
            pkg_info = sdist.extractfile(f"{stem}/PKG-INFO")
            assert pkg_info is not None
            metadata = HeaderParser().parsestr(pkg_info.read().decode("utf-8"))
            members = sdist.getnames()
        problems += _metadata_problems(sdists[0].name, metadata, package, version)
        for needed in ("pyproject.toml", "README.md", "LICENSE"):
            if f"{stem}/{needed}" not in members:
                problems.append(f"{sdists[0].name}: no {needed}")
    return problems


def main(argv: list[str]) -> int:
    dist = Path(argv[0] if argv else ROOT / "dist")
    problems = check(dist)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(
            f"{dist}: {len(FAMILY)} wheels and {len(FAMILY)} sdists at {read_version()}: metadata complete, "
            "no direct references"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
