"""README.md says what the commands really do: the demo's defaults and what `nox -t ci` runs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def ci_sessions() -> list[str]:
    """Names of the noxfile's sessions tagged ``ci`` (read from its source: nox is not installed here)."""
    source = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    pattern = r"@nox\.session\([^)]*tags=\[[^\]]*\"ci\"[^\]]*\]\)\n(?:@[^\n]*\n)*def (\w+)\("
    return re.findall(pattern, source)


def test_the_readme_lists_every_session_that_nox_t_ci_runs() -> None:
    row = next(line for line in README.splitlines() if line.startswith("| `nox -t ci`"))
    sessions = ci_sessions()
    assert {"tests", "integration", "reliability", "lint"} <= set(sessions)
    missing = [name for name in sessions if f"`{name}`" not in row and name != "tests"]
    assert not missing, f"README's `nox -t ci` row does not name {missing}"


def test_the_readme_quotes_the_demos_real_step_count() -> None:
    from llm_train.demo import run_demo

    steps = inspect.signature(run_demo).parameters["max_steps"].default
    claims = re.findall(r"in (\d+) steps", README[: README.index("## Packages")])
    assert claims and all(int(claim) == steps for claim in claims), (claims, steps)
