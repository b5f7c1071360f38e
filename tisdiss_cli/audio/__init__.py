"""Audio in and out, below separation: file headers, reads and atomic writes (:mod:`.files`),
FFmpeg decoding (:mod:`.ffmpeg`), PCM and WAV streams over pipes (:mod:`.pcm`), waveform arrays
(:mod:`.arrays`) and sound devices (:mod:`.devices`). Imports util only."""

from __future__ import annotations

import importlib
import warnings


def __getattr__(name: str) -> object:
    """``tisdiss_cli.audio.X``, the module of that name before the layer folders: now
    :mod:`.files` (and :mod:`.info`), with a warning."""
    if name.startswith("__"):
        raise AttributeError(name)
    files = importlib.import_module(f"{__name__}.files")
    if not hasattr(files, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"{__name__}.{name} is deprecated; import it from {__name__}.files", DeprecationWarning, stacklevel=2)
    return getattr(files, name)
