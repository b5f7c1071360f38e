"""``--nsep`` / ``--nre`` as overrides of a preset, shared by the commands that take a preset."""

from __future__ import annotations

import typer

from ..model.depth import MAX_REPEATS

NSEP_OVERRIDE = typer.Option(
    None, "--nsep", min=1, max=MAX_REPEATS, metavar="N", help="Separation repetitions N_sep (overrides the preset)."
)
NRE_OVERRIDE = typer.Option(
    None, "--nre", min=0, max=MAX_REPEATS, metavar="N", help="Reconstruction repetitions N_re (overrides the preset)."
)
