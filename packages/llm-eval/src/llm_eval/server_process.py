"""``scratchlm serve`` in a child process: started, waited for, measured, stopped or killed.

For scripts, benchmarks and tests that need the real server process (its own
memory, its own signals) rather than :func:`llm_eval.server.start_server`'s
thread::

    with spawn_server("runs/gpt") as server:      # port 0: the OS picks a free port
        print(server.url, server.rss_bytes())
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llm_core.errors import ConfigError

__all__ = ["ServerProcess", "spawn_server"]

_READY_PREFIX = "scratchlm serve: listening on "


class ServerProcess:
    """A running ``scratchlm serve`` child: ``url``, ``pid``, :meth:`rss_bytes`, :meth:`stop`, :meth:`kill`.

    Its stderr is drained by a thread (a full pipe would block the server); the
    last lines are kept in ``log`` for error messages.
    """

    def __init__(self, process: subprocess.Popen[str], url: str, log: collections.deque[str]) -> None:
        self.process = process
        self.url = url
        self.log = log

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def rss_bytes(self) -> int | None:
        """The server's resident memory now (from ``/proc``; ``None`` where there is none)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, SIGKILL after ``timeout`` s; the exit status (0 for a clean shutdown).

        On SIGTERM the server stops accepting connections and ends the answers in
        progress, each with its final chunk, within its ``--shutdown-grace``.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def kill(self) -> int:
        """SIGKILL now, as a crash would; the exit status."""
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def spawn_server(
    checkpoint: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> ServerProcess:
    """Start ``scratchlm serve CHECKPOINT [args]`` with this Python; return once it accepts connections.

    ``env`` is added to this process's environment. A server that exits or is not
    ready within ``timeout`` seconds is a :class:`~llm_core.errors.ConfigError`
    quoting its last output lines.
    """
    command = [sys.executable, "-m", "llm_core.cli", "serve", str(checkpoint), "--host", host]
    command += ["--port", str(port), *args]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # uvicorn's access log
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    log: collections.deque[str] = collections.deque(maxlen=50)
    ready = threading.Event()
    found: list[str] = []

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line.rstrip("\n"))
            if line.startswith(_READY_PREFIX) and not found:
                found.append(line[len(_READY_PREFIX) :].strip())
                ready.set()
        ready.set()  # the process ended

    threading.Thread(target=drain, name=f"scratchlm-serve-{process.pid}-stderr", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.05):
        if time.monotonic() > deadline:
            break
    if not found:
        process.kill()
        process.wait()
        tail = " | ".join(list(log)[-5:]) or "no output"
        raise ConfigError(f"`scratchlm serve {checkpoint}` did not start within {timeout:g} s: {tail}")
    return ServerProcess(process, found[0], log)
