"""Options whose values a lower layer lists (presets, formats, rates, precisions) or checks (the
chunk length): checked while parsing, by that list or check, so the command line declares no
second copy of it and a bad value is a usage error before any work."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import typer


def one_of(choices: Sequence[str]) -> Callable[[str | None], str | None]:
    """A Typer callback refusing a value outside ``choices`` (a usage error, exit 2), in click's words."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(repr(c) for c in choices)}.")
        return value

    return check


T = TypeVar("T")


def checked_by(check: Callable[[T], object]) -> Callable[[T | None], T | None]:
    """A Typer callback running a lower layer's ``check`` (which raises ``ValueError``) on the value:
    a usage error (exit 2) naming the option, in the check's words."""

    def run(value: T | None) -> T | None:
        if value is not None:
            try:
                check(value)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
        return value

    return run
