"""``--tracker voice|overlap``: how talkers are followed across chunks (one option for every command)."""

from __future__ import annotations

from typing import Any

import typer

from ..separation.separator import TRACKERS
from .choices import one_of


def tracker_option(help: str = "") -> Any:
    """``--tracker voice|overlap`` (default voice), checked while parsing."""
    return typer.Option(
        "voice",
        "--tracker",
        metavar="|".join(TRACKERS),
        help=help
        or "voice: each talker in one file from start to end, a lone talker in one file; "
        "overlap: chunks aligned on their overlap only (the outputs before the tracker).",
        callback=one_of(TRACKERS),
    )
