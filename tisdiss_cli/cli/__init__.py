"""The ``tisdiss`` command line: a thin Typer layer over the Python API.

Each sub-command lives in its own module and registers itself on :data:`.root.app`;
:func:`_register_commands` imports them.
"""

from __future__ import annotations

import logging

from .root import app as app


def _register_commands() -> None:
    from . import bench, evaluate, export, live, models, separate, serve, train  # noqa: F401  (each registers on app)


class _OneLine(logging.Formatter):
    """``warning: message``, as the commands print their own warnings."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _show_library_warnings() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLine())
    logger = logging.getLogger("tisdiss_cli")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def main() -> None:
    import sys

    from ..util.runtime import tune_allocator
    from ..util.signals import Terminated, exit_on_signals

    exit_on_signals()  # Ctrl-C, SIGTERM, SIGHUP: clean up part files, then exit 128 + signal
    _show_library_warnings()
    tune_allocator()  # reuse freed heap memory for activations (see runtime.py); whole process
    _register_commands()
    try:
        app()
    except Terminated as stop:
        print(f"tisdiss: stopped by {stop.signal_name}", file=sys.stderr)
        raise
