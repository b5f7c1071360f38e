"""Options whose values a lower layer lists (presets, formats, rates, precisions): checked while
parsing against that list, so the command line declares no second copy of it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import typer


def one_of(choices: Sequence[str]) -> Callable[[str | None], str | None]:
    """A Typer callback refusing a value outside ``choices`` (a usage error, exit 2), in click's words."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(repr(c) for c in choices)}.")
        return value

    return check
