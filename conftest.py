"""Repository-wide pytest set-up, for every test path under this checkout.

A shell that starts a job in the background (`nox -t ci &`, `nohup`, a CI runner) starts it
with SIGINT ignored, and every process it starts inherits that. scratchlm rightly leaves an
ignored signal ignored (as `nohup` asks), so the tests that press Ctrl-C — on the trainer, on
`scratchlm serve`, in the interrupt/resume reliability runs — would test nothing there. The
tests run as in a terminal: SIGINT gets Python's default handler back, for this process and
(through exec's reset of handled signals) for every child it starts.
"""

from __future__ import annotations

import signal


def pytest_configure(config: object) -> None:
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
