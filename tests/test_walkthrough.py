"""docs/walkthrough.md runs as written: every shell block in order, offline, in a fresh folder.

The install block is left out (this environment is the install), the book's files come from
``scratchlm download`` with ``$SCRATCHLM_DATA_MIRROR`` pointed at the test data, and the
server's port is replaced by a free one. Each command's printed output is kept in the
failure message.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

WALKTHROUGH = Path(__file__).resolve().parents[1] / "docs" / "walkthrough.md"
#: Lines of the install block that this environment already did.
INSTALL_LINES = ("python3 -m venv", "export PIP_NO_CACHE_DIR", "pip install")


def walkthrough_script(port: int) -> str:
    """The page's ```bash blocks as one script (stop at the first failing command)."""
    blocks = re.findall(r"```bash\n(.*?)```", WALKTHROUGH.read_text(encoding="utf-8"), flags=re.DOTALL)
    lines = [
        line for block in blocks for line in block.splitlines() if not line.lstrip().startswith(INSTALL_LINES)
    ]
    return "set -euo pipefail\n" + "\n".join(lines).replace("8123", str(port)) + "\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_walkthrough_runs_as_written(scratchlm_test_data: Path, tmp_path: Path) -> None:
    script = walkthrough_script(free_port())
    assert "scratchlm download --out data" in script and "scratchlm serve" in script
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SCRATCHLM_DATA_MIRROR": str(scratchlm_test_data),
        "SCRATCHLM_CACHE": str(tmp_path / "cache"),
    }
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the background server goes with the group on a timeout
    )
    try:
        output, _ = process.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"the walkthrough did not finish in 15 minutes:\n{output[-4000:]}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # nothing of it outlives the test
    assert process.returncode == 0, output[-6000:]
    for made in ("data/the-verdict.txt", "runs/verdict/final", "runs/spam/final", "runs/judge.json"):
        assert (tmp_path / made).exists(), f"{made} missing after the walkthrough:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-6000:]
