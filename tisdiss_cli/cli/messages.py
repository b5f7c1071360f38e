"""Lines several commands print alike, naming the command line's own options."""

from __future__ import annotations


def clip_warning(clipped: int) -> list[str]:
    """The warning for samples saturated at full scale (none when nothing clipped)."""
    return [f"{clipped} samples clipped at full scale (use --float to keep them)"] if clipped else []


def exists_message(exc: BaseException) -> str:
    """An :class:`~tisdiss_cli.audio.files.OutputExistsError`'s line, naming ``--overwrite`` when
    the outputs simply exist (not when another run is writing them)."""
    message = str(exc)
    return f"{message} (use --overwrite to replace it)" if message.endswith(": exists") else message
