"""Every development task of scratchlm. `nox -l` lists sessions; `nox -t ci` is what CI runs.

On the reference machine torch comes from a local CPU wheel: every session that
installs torch pins ``torch==$SCRATCHLM_TORCH`` (default 2.13.0) under Python
``$SCRATCHLM_PYTHON`` (default 3.11), so no session pulls a CUDA build. The
``matrix`` session is for users with a network.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
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
TORCH_OLDEST = "2.7.1"
#: `nox -s matrix`: (Python, torch) cells. The first is every other session's default; the
#: corners are the oldest Python with the oldest torch declared and the newest Python with the
#: newest torch pip installs here (the reference machine caps pip at torch<=2.14.1).
MATRIX_CELLS = [
    (PYTHON, TORCH),
    ("3.10", TORCH_OLDEST),
    ("3.13", "2.14.1"),
    ("3.12", "2.9.1"),
    ("3.11", "2.14.1"),
]
#: Extra things a package's own tests need besides its `[test]` extra.
TEST_FIXTURES = {
    "llm-core": [
        "packages/llm-core/tests/fixtures/example-plugin",
        "packages/llm-core/tests/fixtures/broken-plugin",
    ],
}
#: The distributions of those fixtures (the matrix removes them after llm-core's suite).
FIXTURE_DISTRIBUTIONS = ("scratchlm-example-plugin", "scratchlm-broken-plugin")
#: Extras a package's own tests install besides `test` (lm-eval for the harness adapter's tests).
TEST_EXTRAS = {"llm-eval": "test,harness"}
ALL_PACKAGES = [f"packages/{p}[test]" for p in PACKAGES]
#: Tests use tiny models: one torch thread each is faster than two threads spinning on 2 cores.
TEST_ENV = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


ROOT = Path(__file__).resolve().parent
#: `nox -s build` writes every wheel and sdist here; `nox -s index` serves them.
DIST = ROOT / "dist"
#: Where the matrix records each cell's results; `scripts/gen_compatibility.py` makes the docs table.
COMPATIBILITY = ROOT / "docs" / "compatibility.json"
#: pytest's JUnit XML and a small JSON record (status, seconds, skips) of each session, read
#: back for the closing summary. Files, not memory: under `nox -j N` sessions run in children.
REPORTS = ROOT / ".nox" / "_reports"
#: The nox process that prints the summary: this one, unless a parent nox started it (`-j N`).
_SUMMARY_PID = int(os.environ.setdefault("SCRATCHLM_NOX_PARENT", str(os.getpid())))
_STARTED = time.time()
#: Skips outside pytest (examples without the book's data) of the running session: (what, why).
_SKIPS: list[tuple[str, str]] = []


def _report_path(session_name: str, suffix: str) -> Path:
    return REPORTS / f"{session_name.replace('/', '_')}{suffix}"


def timed(func: Callable[..., None]) -> Callable[..., None]:
    """Record how long a session ran, how it ended and what it skipped, for the closing summary."""

    @functools.wraps(func)
    def wrapper(session: nox.Session, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        status = "failed"
        _SKIPS.clear()
        try:
            func(session, *args, **kwargs)
            status = "passed"
        except BaseException as exc:
            if type(exc).__name__ == "_SessionSkip":
                status = "skipped"
            raise
        finally:
            record = {
                "session": session.name,
                "status": status,
                "seconds": round(time.perf_counter() - start, 1),
                "finished": time.time(),
                "nox": _SUMMARY_PID,  # which `nox` run it belongs to (another may share the checkout)
                "skips": [f"{what}: {why}" for what, why in _SKIPS],
            }
            REPORTS.mkdir(parents=True, exist_ok=True)
            _report_path(session.name, ".json").write_text(json.dumps(record), encoding="utf-8")

    return wrapper


def run_pytest(session: nox.Session, *args: str, env: dict[str, str] | None = None) -> None:
    """pytest with skip reasons shown (-rs) and a JUnit report kept for the closing summary."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    report = _report_path(session.name, ".xml")
    report.unlink(missing_ok=True)
    session.run("pytest", "-rs", f"--junitxml={report}", *args, env=env or TEST_ENV)


def _junit_counts(session_name: str) -> tuple[int, int, list[str]]:
    """(passed, skipped, skip reasons) from a session's JUnit report; zeros if it has none."""
    report = _report_path(session_name, ".xml")
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
    if os.getpid() != _SUMMARY_PID or not REPORTS.is_dir():
        return
    records = []
    for path in REPORTS.glob("*.json"):
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("nox") == _SUMMARY_PID and record["finished"] >= _STARTED:
            records.append(record)
    if not records:
        return
    records.sort(key=lambda record: record["finished"])
    lines = ["", "session summary (wall time, tests passed/skipped):"]
    skip_lines = []
    for record in records:
        name = record["session"]
        passed, skipped, reasons = _junit_counts(name)
        counts = f"{passed} passed, {skipped} skipped" if passed or skipped else ""
        lines.append(f"  {name:<28} {record['status']:<8} {record['seconds']:7.0f} s  {counts}")
        skip_lines += [f"  {name}: {reason}" for reason in reasons + record["skips"]]
    lines.append(f"  {'wall time':<28} {'':<8} {time.time() - _STARTED:7.0f} s")
    lines.append(f"skipped: {len(skip_lines)}" + (" (listed below)" if skip_lines else ""))
    print("\n".join(lines + skip_lines), flush=True)


def install_torch(session: nox.Session, version: str = TORCH) -> None:
    """Install torch first, pinned, so no later requirement can pull another build."""
    if version == "newest":
        session.install("--upgrade", "torch")
    else:
        session.install(f"torch=={version}")


def local_constraints(
    session: nox.Session, torch: str | None = TORCH, root: Path = ROOT, extra: tuple[str, ...] = ()
) -> str:
    """Write a pip constraints file that pins every llm-* name to its checkout directory.

    The packages require each other by name (``llm-core>=0.2,<0.3``). A sibling that is not on
    pip's command line would be looked up on an index, and PyPI may hold an unrelated project
    with that name: with these constraints such a requirement resolves to ``packages/<name>``
    of this checkout (or of ``root``) or fails. ``torch`` (when given) is pinned the same way;
    ``extra`` adds constraints.
    """
    lines = [f"{name} @ {(root / 'packages' / name).as_uri()}" for name in PACKAGES]
    if torch is not None:
        lines.append(f"torch=={torch}")
    lines += extra
    path = Path(session.create_tmp()) / "local-constraints.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


#: Run in a session's environment: fails if any installed llm-* distribution is not this checkout's.
_CHECK_LOCAL = """
import json, sys
from importlib.metadata import distributions
root = sys.argv[1]
bad = []
for dist in distributions():
    name = dist.metadata["Name"]
    if not name.lower().startswith("llm-"):
        continue
    url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    if not url.startswith(root):
        bad.append(f"{name} {dist.version} from {url or 'an index'}")
if bad:
    sys.exit("llm-* packages not installed from this checkout: " + "; ".join(bad))
"""


def install_local(
    session: nox.Session,
    *requirements: str,
    torch: str | None = TORCH,
    root: Path = ROOT,
    extra: tuple[str, ...] = (),
) -> None:
    """``pip install`` with every llm-* name resolved to this checkout, then check that it was."""
    session.install(*requirements, "-c", local_constraints(session, torch, root, extra))
    session.run("python", "-c", _CHECK_LOCAL, (root / "packages").as_uri(), silent=True)


def install_all(session: nox.Session, torch: str = TORCH) -> None:
    install_torch(session, torch)
    install_local(session, *ALL_PACKAGES, *TEST_FIXTURES["llm-core"], torch=torch)


@nox.session(python=PYTHON, tags=["ci"])
@nox.parametrize("package", PACKAGES, ids=PACKAGES)
@timed
def tests(session: nox.Session, package: str) -> None:
    """Install ONE package (with its test extra) and run its tests: it works alone."""
    if package != "llm-core":
        install_torch(session)
    extras = TEST_EXTRAS.get(package, "test")
    install_local(session, f"packages/{package}[{extras}]", *TEST_FIXTURES.get(package, []))
    run_pytest(session, f"packages/{package}/tests", *session.posargs)


@nox.session(python=PYTHON, tags=["ci"])
@timed
def integration(session: nox.Session) -> None:
    """All packages together: the cross-package tests in tests/."""
    install_all(session)
    run_pytest(session, "tests", *session.posargs)


def _junit_totals(report: Path) -> dict[str, int]:
    """passed / failed / errors / skipped of one pytest JUnit XML report."""
    totals = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        if case.find("failure") is not None:
            totals["failed"] += 1
        elif case.find("error") is not None:
            totals["errors"] += 1
        elif case.find("skipped") is not None:
            totals["skipped"] += 1
        else:
            totals["passed"] += 1
    return totals


def _record_cell(cell: dict[str, Any]) -> None:
    """Put one cell's results into docs/compatibility.json (replacing that cell's old row)."""
    rows = json.loads(COMPATIBILITY.read_text(encoding="utf-8")) if COMPATIBILITY.is_file() else []
    rows = [row for row in rows if row["cell"] != cell["cell"]] + [cell]
    order = [f"py{p}-torch{t}" for p, t in MATRIX_CELLS]
    rows.sort(key=lambda row: (order.index(row["cell"]) if row["cell"] in order else len(order), row["cell"]))
    COMPATIBILITY.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


@nox.session
@nox.parametrize(
    "python,torch", MATRIX_CELLS, ids=[f"py{python}-torch{torch}" for python, torch in MATRIX_CELLS]
)
@timed
def matrix(session: nox.Session, torch: str) -> None:
    """The seven package test suites on one (Python, torch) cell; results into docs/compatibility.json.

    Not in CI: each cell but the default downloads torch (GB), so the cell's virtualenv is
    removed when it ends (SCRATCHLM_MATRIX_KEEP=1 keeps it). Run one cell with
    `nox -s "matrix(py3.10-torch2.7.1)"`, then `python scripts/gen_compatibility.py`.
    """
    cell_id = f"py{session.python}-torch{torch}"
    start = time.perf_counter()
    # install and test one snapshot of packages/, however the checkout changes meanwhile
    snapshot = Path(session.create_tmp()).resolve() / "checkout"
    shutil.rmtree(snapshot, ignore_errors=True)
    skip = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.egg-info", "build", "dist")
    shutil.copytree(ROOT / "packages", snapshot / "packages", ignore=skip)
    shutil.copy2(ROOT / "pyproject.toml", snapshot / "pyproject.toml")  # pytest's options
    fixtures = [str(snapshot / path) for path in TEST_FIXTURES["llm-core"]]
    try:
        install_torch(session, torch)
        requirements = [str(snapshot / path) for path in ALL_PACKAGES]
        install_local(session, *requirements, torch=torch, root=snapshot)
        versions = session.run(
            "python", "-c", "import sys, torch; print(sys.version.split()[0], torch.__version__)", silent=True
        )
        python_version, torch_version = str(versions).split()[-2:]
        data = book_data()
        env = {**TEST_ENV, **({"SCRATCHLM_TEST_DATA": str(data)} if data else {})}
        reports = Path(session.create_tmp()).resolve()
        packages = {}
        for package in PACKAGES:
            if package == "llm-core":  # its plugin fixtures only while its own suite runs, as in `tests`
                install_local(session, *fixtures, torch=torch, root=snapshot)
            report = reports / f"{package}.xml"
            report.unlink(missing_ok=True)
            with session.chdir(snapshot):
                session.run(
                    "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                    f"packages/{package}/tests", *session.posargs, env=env, success_codes=[0, 1, 2, 5],
                )  # fmt: skip
            if package == "llm-core":
                session.run("python", "-m", "pip", "uninstall", "-y", "-q", *FIXTURE_DISTRIBUTIONS)
            packages[package] = _junit_totals(report)
        totals = {key: sum(counts[key] for counts in packages.values()) for key in packages["llm-core"]}
        cell = {
            "cell": cell_id,
            "python": python_version,
            "torch": torch_version,
            **totals,
            "seconds": round(time.perf_counter() - start),
            "date": time.strftime("%Y-%m-%d"),
            "packages": packages,
        }
        _record_cell(cell)
        session.run("python", "scripts/gen_compatibility.py")
        if totals["failed"] or totals["errors"]:
            failing = [name for name, counts in packages.items() if counts["failed"] or counts["errors"]]
            session.error(f"{cell_id}: failures in {', '.join(failing)}")
    finally:
        if os.environ.get("SCRATCHLM_MATRIX_KEEP") != "1" and session.virtualenv.location:
            shutil.rmtree(session.virtualenv.location, ignore_errors=True)


@nox.session(python=PYTHON, tags=["ci"])
@timed
def build(session: nox.Session) -> None:
    """A wheel and an sdist of each package into dist/ (`python -m build`), then check them.

    `twine check --strict` (what an index renders), `check-wheel-contents`, and
    `scripts/check_dists.py`: one wheel and sdist per package at VERSION, no direct reference in
    any Requires-Dist, siblings by name with the family's range, description, license,
    classifiers, project URLs and py.typed present.
    """
    session.install("build>=1.2", "twine>=6.1", "check-wheel-contents>=0.6", "packaging>=24")
    session.run("python", "scripts/family_version.py", "check")
    shutil.rmtree(DIST, ignore_errors=True)
    for package in PACKAGES:
        session.run("python", "-m", "build", "--outdir", str(DIST), f"packages/{package}", silent=True)
    built = sorted(str(path) for path in DIST.iterdir())
    session.run("twine", "check", "--strict", *built)
    session.run("check-wheel-contents", *[path for path in built if path.endswith(".whl")])
    session.run("python", "scripts/check_dists.py", str(DIST))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def pypiserver(session: nox.Session, packages: Path) -> Iterator[str]:
    """Serve ``packages`` with pypiserver on 127.0.0.1 (a free port); yield the simple index URL.

    A name the directory does not hold is redirected to PyPI (pypiserver's fallback), so pip
    finds third-party dependencies with this one index URL, and an llm-* name can only come
    from ``packages``. The server is stopped when the block ends, whatever happens.
    """
    port = _free_port()
    log_path = Path(session.create_tmp()) / "pypiserver.log"
    command = [
        str(Path(session.bin) / "pypi-server"), "run", "--host", "127.0.0.1", "--port", str(port),
        "--authenticate", ".", "--passwords", ".", "--fallback-url", "https://pypi.org/simple/",
        str(packages),
    ]  # fmt: skip
    with open(log_path, "w", encoding="utf-8") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/simple/"
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=2):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        session.error(f"pypiserver did not start on port {port}: see {log_path}")
                    time.sleep(0.3)
            session.log(f"pypiserver (pid {server.pid}) serves {packages} at {url}")
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


#: Run in the fresh virtualenv: JSON {name: direct_url or null} of every installed distribution.
_INSTALLED = """
import json
from importlib.metadata import distributions
found = {}
for dist in distributions():
    direct = json.loads(dist.read_text("direct_url.json") or "null")
    found[dist.metadata["Name"].lower().replace("_", "-")] = direct and direct.get("url")
print(json.dumps(found))
"""


@nox.session(python=PYTHON, tags=["ci"])
@timed
def index(session: nox.Session) -> None:
    """Install by name from a real index: pypiserver over dist/, a fresh virtualenv, no checkout.

    `pip install llm-model` must bring exactly its declared siblings (not llm-train, not
    transformers); then `llm-eval[serve]`; `scratchlm model-info` and a tiny `generate` run;
    then each example plugin installs from its own directory, resolving llm-* from the index,
    and passes its tests and the conformance suite. Every llm-* file must come from the server.
    Builds the wheels first when dist/ lacks them or is older than the sources (in CI,
    `nox -s build` has just made them).
    """
    version = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
    wheels = {p: DIST / f"{p.replace('-', '_')}-{version}-py3-none-any.whl" for p in PACKAGES}

    def stale(package: str) -> bool:
        """No wheel, or a source file newer than it (the wheel would not be what is tested)."""
        if not wheels[package].is_file():
            return True
        built = wheels[package].stat().st_mtime
        ignored = {"tests", "__pycache__", "build", "dist"}
        top = ROOT / "packages" / package
        sources = [path for path in top.rglob("*") if not ignored & set(path.relative_to(top).parts)]
        return any(path.stat().st_mtime > built for path in sources if path.is_file())

    if any(stale(package) for package in PACKAGES):
        session.log(f"dist/ lacks the {version} wheels or is older than the sources: building them")
        shutil.rmtree(DIST, ignore_errors=True)
        session.install("build>=1.2")
        for package in PACKAGES:
            session.run("python", "-m", "build", "--wheel", "--outdir", str(DIST), f"packages/{package}")
    session.install("pypiserver>=2.1")
    tmp = Path(session.create_tmp()).resolve()  # absolute: the plugins are installed from their folders
    venv = tmp / "by-name"
    shutil.rmtree(venv, ignore_errors=True)
    session.run("python", "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    # --no-compile: byte-compiling all of torch at install costs more than compiling what is imported
    session.run(python, "-m", "pip", "install", "-q", "--no-compile", f"torch=={TORCH}", external=True)

    def installed() -> dict[str, str | None]:
        output = session.run(python, "-c", _INSTALLED, external=True, silent=True)
        return dict(json.loads(str(output).strip().splitlines()[-1]))

    with pypiserver(session, DIST) as url:
        server = url.removesuffix("simple/")

        def install(*requirements: str) -> None:
            """pip install from the index; fail unless every llm-* file came from the server."""
            report = tmp / "report.json"
            session.run(
                python, "-m", "pip", "install", "-q", "--no-compile", "--index-url", url,
                "--report", str(report), *requirements, external=True,
            )  # fmt: skip
            for item in json.loads(report.read_text(encoding="utf-8"))["install"]:
                name, source = item["metadata"]["name"], item["download_info"]["url"]
                if name.startswith("llm-") and not source.startswith(server):
                    session.error(f"{name} came from {source}, not from the local index {server}")

        def expect(wanted: set[str], absent: set[str]) -> None:
            found = installed()
            family = {name for name in found if name.startswith("llm-")}
            if family != wanted or absent & set(found):
                session.error(
                    f"installed llm-*: {sorted(family)}, expected {sorted(wanted)}; "
                    f"must be absent: {sorted(absent & set(found)) or 'none are'}"
                )
            session.log(f"installed llm-*: {', '.join(sorted(family))}; none of {', '.join(sorted(absent))}")

        install("llm-model")
        expect({"llm-core", "llm-attention", "llm-model"}, {"llm-train", "llm-data", "transformers"})
        scratchlm = str(venv / "bin" / "scratchlm")
        session.run(scratchlm, "--version", external=True)
        session.run(scratchlm, "model-info", "--preset", "gpt2-124m", external=True, env=TEST_ENV)
        # With llm-core + llm-model alone, a command prints no warning (torch's "Failed to initialize
        # NumPy" was one, before llm-attention declared numpy).
        command = [scratchlm, "model-info", "--preset", "tiny"]
        quiet = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **TEST_ENV})
        if quiet.returncode != 0 or quiet.stderr.strip():
            session.error(f"model-info with llm-model alone wrote to stderr: {quiet.stderr.strip()}")
        install("llm-eval[serve]")
        wanted = {"llm-core", "llm-attention", "llm-model", "llm-data", "llm-eval"}
        expect(wanted, {"llm-train", "llm-finetune", "transformers"})
        if "fastapi" not in installed():
            session.error("llm-eval[serve] did not install fastapi")
        checkpoint = tmp / "tiny-checkpoint"
        shutil.rmtree(checkpoint, ignore_errors=True)
        session.run(python, "scripts/tiny_checkpoint.py", str(checkpoint), external=True, env=TEST_ENV)
        session.run(
            scratchlm, "generate", str(checkpoint), "The Python", "--max-new-tokens", "8",
            external=True, env=TEST_ENV,
        )  # fmt: skip
        plugins = sorted(path for path in (ROOT / "examples" / "plugins").iterdir() if path.is_dir())
        install(*[f"{plugin}[test]" for plugin in plugins])  # each from its own folder, one resolution
        for name, source in installed().items():
            if name.startswith("llm-") and source is not None:
                session.error(f"{name} was installed from {source}, not by name from the index")
    session.run(scratchlm, "plugins", external=True)
    for plugin in plugins:
        with session.chdir(plugin):
            session.run(
                python, "-m", "pytest", "-p", "llm_core.testing", "-q", "-p", "no:cacheprovider",
                external=True, env=TEST_ENV,
            )  # fmt: skip


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
    install_local(session, *[f"packages/{p}" for p in PACKAGES], "packages/llm-train[plots]")
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
                "(`scratchlm download --out DIR` fetches the book's files once: see docs/walkthrough.md)"
            )
            if os.environ.get("SCRATCHLM_REQUIRE_TEST_DATA") == "1":
                session.error(f"{script} {why}")
            session.log(f"skipped {script}: {why}")
            _SKIPS.append((script, why))
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
    install_local(session, *ALL_PACKAGES)
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


@nox.session(python=PYTHON, tags=["ci"])
@timed
def browser(session: nox.Session) -> None:
    """The chat page of `scratchlm serve` in headless Chromium (Debian's `chromium`, installed if missing)."""
    if not Path("/usr/bin/chromium").exists():
        session.run(
            "sh",
            "-c",
            "apt-get install -y chromium || (apt-get update && apt-get install -y chromium)",
            external=True,
        )
    install_torch(session)
    install_local(session, "packages/llm-eval[test]")
    session.install("playwright")  # drives the system chromium: no `playwright install`
    artefacts = os.environ.get("SCRATCHLM_ARTEFACTS", str(ROOT / ".nox" / "_artefacts"))
    env = {**TEST_ENV, "SCRATCHLM_REQUIRE_BROWSER": "1", "SCRATCHLM_ARTEFACTS": artefacts}
    run_pytest(session, "packages/llm-eval/tests/test_server_chat_page.py", *session.posargs, env=env)
