"""WAV, RF64 and Wave64 files whose header misstates how much audio follows it, made by byte surgery
on what libsndfile writes: a recorder that crashed before it went back to fill in its sizes, or a
writer that never does (issue 42).

- ``under``: the header declares a quarter of the audio the file holds (the data chunk is the last);
- ``over``: the header declares twice the audio the file holds (a file cut short);
- ``zero``: the header's data size is 0, as a stream writer leaves it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf

HEADER_CASES = ("under", "over", "zero")
_W64_DATA = b"data\xf3\xac\xd3\x11\x8c\xd1\x00\xc0\x4f\x8e\xdb\x8a"


def declared_frames(case: str, frames: int) -> int | None:
    """What the header of ``case`` declares for a file holding ``frames`` (None: no length, 0)."""
    return {"under": frames // 4, "over": 2 * frames, "zero": None}[case]


def write_misstated(path: Path, x: np.ndarray, rate: int, case: str, fmt: str = "WAV") -> Path:
    """``x`` (``[frames]`` or ``[frames, channels]``) as 16-bit PCM in ``fmt`` (WAV, RF64 or W64),
    then its header's sizes rewritten as ``case`` says; the audio bytes are all there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, subtype="PCM_16", format=fmt)
    raw = bytearray(path.read_bytes())
    frames = len(x)
    align = 2 * (1 if x.ndim == 1 else x.shape[1])
    declared = declared_frames(case, frames)
    size = 0 if declared is None else declared * align
    if fmt == "W64":
        at = raw.index(_W64_DATA) + 16
        raw[at : at + 8] = struct.pack("<Q", 0 if declared is None else size + 24)
    elif fmt == "RF64":
        assert raw[12:16] == b"ds64"
        raw[28:36] = struct.pack("<Q", size)  # ds64's data size: what libsndfile goes by
    else:
        at = raw.index(b"data") + 4
        raw[at : at + 4] = struct.pack("<I", size)
        raw[4:8] = struct.pack("<I", 0 if declared is None else at + 4 + size - 8)  # what a crashed writer left
    path.write_bytes(bytes(raw))
    return path
