"""Lines several commands print alike, naming the command line's own options."""

from __future__ import annotations


def clip_warning(clipped: int) -> list[str]:
    """The warning for samples saturated at full scale (none when nothing clipped)."""
    return [f"{clipped} samples clipped at full scale (use --float to keep them)"] if clipped else []
