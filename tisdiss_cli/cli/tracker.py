"""``--tracker voice|overlap`` and ``--speakers N|auto``: how talkers are followed across chunks and
how many files they get (one option each for every command)."""

from __future__ import annotations

from typing import Any

import typer

from ..separation.separator import TRACKERS, check_speakers
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


def _speakers(value: str) -> str:
    try:
        check_speakers(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("speakers ")) from None
    return value


def speakers_option(help: str = "") -> Any:
    """``--speakers N|auto`` (default auto), checked while parsing."""
    return typer.Option(
        "auto",
        "--speakers",
        metavar="N|auto",
        help=help
        or "auto: one file per talker the voices show (STEM_spk1 ... STEM_spkK, in order of first appearance; "
        "a meeting of four gets four files from the two-output model); N: exactly N files (warns when the "
        "voices suggest another number). Streams write the model's number unless N is given.",
        callback=_speakers,
    )
