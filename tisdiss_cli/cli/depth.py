"""``--preset``, ``--nsep`` / ``--nre``, declared once for every command that takes them.

separate, live and export take a preset (one of the names every model offers, checked while
parsing) and the two as overrides of it; eval sweeps a list of N_re from one pass; bench times
a list of N_re at one N_sep.
"""

from __future__ import annotations

from typing import Any

import typer

from ..model.depth import MAX_REPEATS, PRESET_NAMES
from .choices import one_of


def preset_option(help: str) -> Any:
    """``-p / --preset fast|balanced|best`` (default balanced); another name is a usage error."""
    return typer.Option(
        "balanced", "-p", "--preset", metavar="|".join(PRESET_NAMES), help=help, callback=one_of(PRESET_NAMES)
    )


NSEP_OVERRIDE = typer.Option(
    None, "--nsep", min=1, max=MAX_REPEATS, metavar="N", help="Separation repetitions N_sep (overrides the preset)."
)
NRE_OVERRIDE = typer.Option(
    None,
    "--nre",
    min=0,
    max=MAX_REPEATS,
    metavar="N",
    help="Reconstruction repetitions N_re (overrides the preset; with live, skips the --max-rtf measurement).",
)
NRE_SWEEP = typer.Option(
    None,
    "--nre",
    metavar="N|A-B|A,B,...",
    help="Reconstruction depths to score from one pass: 3, 1-8 or 1,3,6 (default: the model's best preset).",
)
NSEP_BENCH = typer.Option(2, "--nsep", min=1, max=MAX_REPEATS, metavar="N", help="Separation repetitions N_sep.")
NRE_BENCH = typer.Option("1,3,6,8", "--nre", metavar="N,N,...", help="Comma-separated N_re values to time.")
