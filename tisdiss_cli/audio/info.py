"""What every audio module shares: the header of an input (:class:`AudioInfo`) and the errors
for bad input and refused outputs. Imports nothing of tisdiss, so the readers beside it
(:mod:`.files`, :mod:`.ffmpeg`) import it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class AudioError(ValueError):
    """An input that cannot be separated; the message is ``path: reason`` on one line."""


class OutputExistsError(FileExistsError):
    """An output file exists and overwriting was not asked for; the message is ``path: exists``."""


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an input file says."""

    path: Path
    sample_rate: int  # Hz
    channels: int
    frames: int  # samples per channel (what can be read)
    declared_frames: int | None = None  # what the header says, when it says otherwise than what is read
    codec: str | None = None  # FFmpeg's decoder when PyAV reads the file; None: libsndfile reads it
    stream: int | None = None  # 0-based audio stream of a container (None: the first)
    problem: str | None = None  # why decoding stopped early (a damaged file), if it did
    # Header bytes read in place of the file's (offset, bytes), so that libsndfile reads a data chunk
    # that declares less than the file holds to its end (:mod:`.riff`); the file is never written.
    patches: tuple[tuple[int, bytes], ...] = ()

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def header_warning(self) -> str | None:
        """A one-line note when the file holds less audio than its header declares (cut short, or
        damaged), or more (a header never filled in: all of it is read)."""
        rate = self.sample_rate
        why = f": {self.problem}" if self.problem else ""
        if self.declared_frames is None:
            return None if self.problem is None else f"decoding stopped at {clock(self.frames / rate)}{why}"
        if self.declared_frames < self.frames:
            return (
                f"the header declares {self.declared_frames} frames ({clock(self.declared_frames / rate)}) but the "
                f"file holds {self.frames} ({clock(self.frames / rate)}): read to the end of the file"
            )
        return (
            f"file is truncated: read {self.frames} of the {self.declared_frames} frames its header declares "
            f"({clock(self.frames / rate)} of {clock(self.declared_frames / rate)}){why}"
        )


def clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:05.2f}"
