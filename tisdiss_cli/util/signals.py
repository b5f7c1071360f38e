"""SIGINT, SIGTERM and SIGHUP as an exception, so that every ``finally`` and cleanup handler runs.

Python turns only SIGINT into an exception; SIGTERM (``timeout``, ``kill``, a job scheduler)
and SIGHUP (a closed terminal) would end the process on the spot and leave part files behind.
The command line installs :func:`exit_on_signals`; the library never touches signal handlers.
Commands whose work has a natural place to stop (``live``, ``train``) use
:class:`StopOnFirstSignal` instead: the first signal asks the work to finish, a second aborts.
"""

from __future__ import annotations

import signal
import threading
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


class StopOnFirstSignal:
    """Within the block, the first of :data:`HANDLED` sets ``stop`` and is remembered in ``signum``;
    a second raises :class:`Terminated` as usual. The previous handlers come back on exit."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.signum: int | None = None
        self._before: dict[int, object] = {}

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self.stop.set()
        exit_on_signals()  # a second signal aborts

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def __enter__(self) -> StopOnFirstSignal:
        for sig in HANDLED:
            self._before[sig] = signal.signal(sig, self)
        return self

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._before.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def ignore_signals() -> None:
    """Leave :data:`HANDLED` to the parent: for worker processes (a terminal's Ctrl-C reaches the
    whole process group, and a worker that dies of it would break the parent's orderly stop)."""
    for sig in HANDLED:
        signal.signal(sig, signal.SIG_IGN)
