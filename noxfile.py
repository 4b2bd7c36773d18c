"""Every development task of scratchlm. `nox -l` lists sessions; `nox -t ci` is what CI runs.

On the reference machine torch comes from a local CPU wheel: every session that
installs torch pins ``torch==$SCRATCHLM_TORCH`` (default 2.13.0) under Python
``$SCRATCHLM_PYTHON`` (default 3.11), so no session pulls a CUDA build. The
``matrix`` session is for users with a network.
"""

from __future__ import annotations

import atexit
import functools
import os
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nox

nox.options.default_venv_backend = "virtualenv"
# pip caches wheels built from local directories under their file:// URL, so an unchanged
# version number would reinstall a stale build of a scratchlm package: never cache here.
os.environ["PIP_NO_CACHE_DIR"] = "1"
nox.options.error_on_missing_interpreters = True

PACKAGES = [
    "llm-core",
    "llm-data",
    "llm-attention",
    "llm-model",
    "llm-train",
    "llm-finetune",
    "llm-eval",
]
PYTHON = os.environ.get("SCRATCHLM_PYTHON", "3.11")
TORCH = os.environ.get("SCRATCHLM_TORCH", "2.13.0")
#: Oldest torch the packages support (their `torch>=` lower bound) and the matrix tests.
TORCH_OLDEST = "2.5.1"
MATRIX_PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
MATRIX_TORCH = [TORCH_OLDEST, "2.13.0", "newest"]
#: Extra things a package's own tests need besides its `[test]` extra.
TEST_FIXTURES = {
    "llm-core": [
        "packages/llm-core/tests/fixtures/example-plugin",
        "packages/llm-core/tests/fixtures/broken-plugin",
    ],
}
#: Extras a package's own tests install besides `test` (lm-eval for the harness adapter's tests).
TEST_EXTRAS = {"llm-eval": "test,harness"}
ALL_PACKAGES = [f"packages/{p}[test]" for p in PACKAGES]
#: Tests use tiny models: one torch thread each is faster than two threads spinning on 2 cores.
TEST_ENV = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


ROOT = Path(__file__).resolve().parent
#: pytest's JUnit XML of each session, read back for the closing summary (passed / skipped, and why).
REPORTS = ROOT / ".nox" / "_reports"
#: (session, status, seconds) of every session this nox process ran, in order.
_RAN: list[tuple[str, str, float]] = []
#: Skips outside pytest (examples without the book's data): (session, what, why).
_SKIPS: list[tuple[str, str, str]] = []


def timed(func: Callable[..., None]) -> Callable[..., None]:
    """Record how long a session ran and how it ended, for the summary printed at exit."""

    @functools.wraps(func)
    def wrapper(session: nox.Session, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        status = "failed"
        try:
            func(session, *args, **kwargs)
            status = "passed"
        except BaseException as exc:
            if type(exc).__name__ == "_SessionSkip":
                status = "skipped"
            raise
        finally:
            _RAN.append((session.name, status, time.perf_counter() - start))

    return wrapper


def run_pytest(session: nox.Session, *args: str, env: dict[str, str] | None = None) -> None:
    """pytest with skip reasons shown (-rs) and a JUnit report kept for the closing summary."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    report = REPORTS / f"{session.name.replace('/', '_')}.xml"
    report.unlink(missing_ok=True)
    session.run("pytest", "-rs", f"--junitxml={report}", *args, env=env or TEST_ENV)


def _junit_counts(session_name: str) -> tuple[int, int, list[str]]:
    """(passed, skipped, skip reasons) from a session's JUnit report; zeros if it has none."""
    report = REPORTS / f"{session_name.replace('/', '_')}.xml"
    if not report.is_file():
        return 0, 0, []
    passed = skipped = 0
    reasons = []
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        skip = case.find("skipped")
        if skip is not None:
            skipped += 1
            reasons.append(f"{case.get('classname')}::{case.get('name')}: {skip.get('message', '')}")
        elif case.find("failure") is None and case.find("error") is None:
            passed += 1
    return passed, skipped, reasons


@atexit.register
def _print_summary() -> None:
    """After the last session: each session's time and test counts, then every skip and its reason."""
    if not _RAN:
        return
    lines = ["", "session summary (wall time, tests passed/skipped):"]
    skip_lines = []
    for name, status, seconds in _RAN:
        passed, skipped, reasons = _junit_counts(name)
        counts = f"{passed} passed, {skipped} skipped" if passed or skipped else ""
        lines.append(f"  {name:<28} {status:<8} {seconds:7.0f} s  {counts}")
        skip_lines += [f"  {name}: {reason}" for reason in reasons]
    skip_lines += [f"  {name}: {what}: {why}" for name, what, why in _SKIPS]
    lines.append(f"  {'total':<28} {'':<8} {sum(s for _, _, s in _RAN):7.0f} s")
    lines.append(f"skipped: {len(skip_lines)}" + (" (listed below)" if skip_lines else ""))
    print("\n".join(lines + skip_lines), flush=True)


def install_torch(session: nox.Session, version: str = TORCH) -> None:
    """Install torch first, pinned, so no later requirement can pull another build."""
    if version == "newest":
        session.install("--upgrade", "torch")
    else:
        session.install(f"torch=={version}")


def install_all(session: nox.Session, torch: str = TORCH) -> None:
    install_torch(session, torch)
    session.install(*ALL_PACKAGES, *TEST_FIXTURES["llm-core"])


@nox.session(python=PYTHON, tags=["ci"])
@nox.parametrize("package", PACKAGES, ids=PACKAGES)
@timed
def tests(session: nox.Session, package: str) -> None:
    """Install ONE package (with its test extra) and run its tests: it works alone."""
    if package != "llm-core":
        install_torch(session)
    extras = TEST_EXTRAS.get(package, "test")
    session.install(f"packages/{package}[{extras}]", *TEST_FIXTURES.get(package, []))
    run_pytest(session, f"packages/{package}/tests", *session.posargs)


@nox.session(python=PYTHON, tags=["ci"])
@timed
def integration(session: nox.Session) -> None:
    """All packages together: the cross-package tests in tests/."""
    install_all(session)
    run_pytest(session, "tests", *session.posargs)


@nox.session(python=MATRIX_PYTHONS)
@nox.parametrize("torch", MATRIX_TORCH, ids=MATRIX_TORCH)
@timed
def matrix(session: nox.Session, torch: str) -> None:
    """Every package's tests on Python 3.10-3.13 x torch (oldest, 2.13.0, newest). Needs a network."""
    if session.python == "3.13" and torch == TORCH_OLDEST:
        session.skip("torch 2.5 has no Python 3.13 wheels")
    install_all(session, torch)
    session.run("pytest", *[f"packages/{p}/tests" for p in PACKAGES], "tests", *session.posargs, env=TEST_ENV)


@nox.session(python=PYTHON, tags=["ci"])
@timed
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON, tags=["ci"])
@timed
def typecheck(session: nox.Session) -> None:
    """mypy: strict for llm-core, the project defaults for the others."""
    install_all(session)
    session.install("mypy>=1.10")
    session.run("mypy", "--strict", "packages/llm-core/src/llm_core")
    others = [f"packages/{p}/src" for p in PACKAGES if p != "llm-core"]
    session.run("mypy", *others)


@nox.session(python=PYTHON)
@timed
def demo(session: nox.Session) -> None:
    """Install everything and run `scratchlm demo` (pass options after --)."""
    install_torch(session)
    session.install(*[f"packages/{p}" for p in PACKAGES], "packages/llm-train[plots]")
    session.run("scratchlm", "demo", *session.posargs)


@nox.session(python=PYTHON, tags=["ci"])
@timed
def plugins(session: nox.Session) -> None:
    """The example plugin packages: install each, run its tests and the conformance suite."""
    install_torch(session)
    session.run("bash", "examples/plugins/test_all.sh", f"{session.bin}/python", external=True, env=TEST_ENV)


#: The book-path examples with tiny settings: (script, arguments, the book's data files it reads).
EXAMPLES = [
    ("examples/ch02_tokenize.py", ["--vocab-size", "400"], []),
    ("examples/ch02_windows_embeddings.py", [], []),
    ("examples/ch03_attention.py", [], []),
    ("examples/ch04_gpt_model.py", [], []),
    ("examples/ch05_pretrain.py", ["--steps", "20"], []),
    ("examples/ch05_load_gpt2.py", [], []),
    ("examples/ch06_classify_spam.py", ["--base", "tiny", "--max-steps", "20"], ["SMSSpamCollection"]),
    (
        "examples/ch07_instruct.py",
        ["--max-steps", "5", "--test-limit", "2", "--max-new-tokens", "16"],
        ["instruction-data.json"],
    ),
    ("examples/ch07_evaluate.py", [], ["the-verdict.txt"]),
    ("examples/ch07_serve.py", [], []),
]


def book_data() -> Path | None:
    """The book's data folder: $SCRATCHLM_TEST_DATA, else ../shared/data beside the repository."""
    given = os.environ.get("SCRATCHLM_TEST_DATA")
    found = Path(given) if given else ROOT.parent / "shared" / "data"
    return found if found.is_dir() else None


@nox.session(python=PYTHON, tags=["ci"])
@timed
def examples(session: nox.Session) -> None:
    """Smoke-run every example script of the guided path with tiny settings.

    The chapter 6-7 scripts read the book's data from $SCRATCHLM_TEST_DATA, else ../shared/data.
    Without it (tests never download) they are skipped with a line saying what they need;
    with SCRATCHLM_REQUIRE_TEST_DATA=1 (as .ci/run sets) a missing file fails the session.
    """
    install_all(session)
    data = book_data()
    for script, arguments, needs in EXAMPLES:
        missing = [name for name in needs if data is None or not (data / name).is_file()]
        if missing:
            why = (
                f"needs the book's {', '.join(missing)}; set SCRATCHLM_TEST_DATA to a folder holding it "
                "(`python -m llm_data.fetchers` downloads the book's files: see docs/walkthrough.md)"
            )
            if os.environ.get("SCRATCHLM_REQUIRE_TEST_DATA") == "1":
                session.error(f"{script} {why}")
            session.log(f"skipped {script}: {why}")
            _SKIPS.append((session.name, script, why))
            continue
        env = {**TEST_ENV, **({"SCRATCHLM_TEST_DATA": str(data)} if data else {})}
        session.run("python", script, *arguments, *session.posargs, env=env)


@nox.session(python=PYTHON)
@timed
def docs(session: nox.Session) -> None:
    """Build the documentation site with mkdocs --strict (CLI and config references generated first)."""
    install_all(session)
    session.install("mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26")
    session.run("python", "docs/gen_reference.py")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session(python=PYTHON)
@timed
def bench(session: nox.Session) -> None:
    """Side-by-side benchmarks against Hugging Face transformers (`-- --quick` for 5 minutes)."""
    install_all(session)
    session.install("transformers>=4.40")
    session.run("python", "benchmarks/run.py", *session.posargs)


#: What tests/reliability needs besides the packages' test extras (the server tests' schemathesis …).
RELIABILITY_REQUIREMENTS = "tests/reliability/requirements.txt"


def install_reliability(session: nox.Session, *extra: str) -> None:
    """Every package with its test extra (not llm-core's plugin fixtures: their warnings are noise here)."""
    install_torch(session)
    session.install(*ALL_PACKAGES)
    session.install("-r", RELIABILITY_REQUIREMENTS, *extra)


@nox.session(python=PYTHON, tags=["ci"])
@timed
def reliability(session: nox.Session) -> None:
    """tests/reliability: SIGKILLs, full disks, corrupt files, hypothesis, fuzz replay, server faults."""
    install_reliability(session)
    env = {**TEST_ENV, "SCRATCHLM_RELIABILITY": "1"}
    run_pytest(session, "tests/reliability", *session.posargs, env=env)


@nox.session(python=PYTHON)
@timed
def reliability_nightly(session: nox.Session) -> None:
    """tests/reliability, long: 20 SIGKILLs, 1000 examples per property, 60 s of atheris per fuzz target."""
    install_reliability(session, "atheris>=2.3")
    env = {**TEST_ENV, "SCRATCHLM_RELIABILITY": "1", "SCRATCHLM_NIGHTLY": "1"}
    run_pytest(session, "tests/reliability", *session.posargs, env=env)
