"""``--device``, declared once for every command that runs a model: checked while parsing, so an
unknown device is a usage error (exit 2) before any work."""

from __future__ import annotations

from typing import Any

import typer

from ..util.device import parse_device


def _checked(value: str) -> str:
    try:
        parse_device(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def device_option(default: str, help: str) -> Any:
    """A ``--device DEVICE`` option with ``default``; the value stays a string (``auto`` included)."""
    return typer.Option(default, "--device", metavar="DEVICE", help=help, callback=_checked)
