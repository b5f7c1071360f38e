"""``--band full|model``: what goes above the model's Nyquist (one option for every command)."""

from __future__ import annotations

from typing import Any

import typer

from ..separation.fullband import BANDS
from .choices import one_of


def band_option(help: str = "") -> Any:
    """``--band full|model`` (default full), checked while parsing."""
    return typer.Option(
        "full",
        "--band",
        metavar="|".join(BANDS),
        help=help
        or "full: above the model's rate, each talker's file gets the input's band above the model's "
        "Nyquist, shared out from the mixture; model: the model's band only (nothing above 4 kHz for "
        "an 8 kHz model).",
        callback=one_of(BANDS),
    )
