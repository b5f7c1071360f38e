"""SIGINT, SIGTERM and SIGHUP as an exception, so that every ``finally`` and cleanup handler runs.

Python turns only SIGINT into an exception; SIGTERM (``timeout``, ``kill``, a job scheduler)
and SIGHUP (a closed terminal) would end the process on the spot and leave part files behind.
The command line installs :func:`exit_on_signals`; the library never touches signal handlers.
"""

from __future__ import annotations

import signal
from types import FrameType

HANDLED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(SystemExit):
    """Raised in the main thread when a termination signal arrives; exits with 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def exit_on_signals(signals: tuple[signal.Signals, ...] = HANDLED) -> None:
    """Raise :class:`Terminated` on each of ``signals`` (call from the main thread)."""
    for sig in signals:
        signal.signal(sig, _raise)
