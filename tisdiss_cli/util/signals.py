"""SIGINT, SIGTERM and SIGHUP as an exception, so that every ``finally`` and cleanup handler runs.

Python turns only SIGINT into an exception; SIGTERM (``timeout``, ``kill``, a job scheduler)
and SIGHUP (a closed terminal) would end the process on the spot and leave part files behind.
The command line installs :func:`exit_on_signals`; the library never touches signal handlers.
Commands whose work has a natural place to stop (``live``, ``train``) use
:class:`StopOnFirstSignal` instead: the first signal asks the work to finish, a second aborts.

A signal can arrive between any two bytecodes, also between creating a part file and handing it
to the object that removes it again. Code that acquires such a resource does it inside
:func:`signals_deferred`, which holds the exception back until the block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
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


_deferring = 0  # signals_deferred() blocks open in the main thread (the one signal handlers run in)
_pending: list[int] = []  # signals that arrived inside them


def _raise(signum: int, frame: FrameType | None) -> None:
    if _deferring:
        _pending.append(signum)
        return
    raise Terminated(signum)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Within the block, a termination signal does not raise :class:`Terminated` at once: the
    first one that arrived is raised when the outermost such block ends, normally or not.

    For the few lines that create something (a part file) and register it with its owner, so
    that the exception never falls between the two. Only the main thread defers: signals are
    raised nowhere else."""
    global _deferring
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending:
            signum = _pending[0]
            _pending.clear()
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
