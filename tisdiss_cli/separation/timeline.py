"""Who spoke when, as the voice tracker decided it: RTTM (what diarisation tools and their scorers
read) or JSON, one file for a whole batch.

RTTM is one line per speech segment, ten space-separated fields:
``SPEAKER <recording> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>``, times in seconds. The
recording is the input's stem (spaces replaced by ``_``, as fields are space-separated) and the
speaker is ``spk<k>``, the suffix of that talker's file. Segments have the tracker's resolution (its
``block_seconds``, 0.5 s by default).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..util.fileio import atomic_write_text
from .tracking import TalkerSummary

TIMELINE_FORMATS = {".rttm": "rttm", ".json": "json"}


@dataclass(frozen=True)
class Timeline:
    """One recording's segments: its input, its files (one per talker) and what the tracker found."""

    input: Path
    outputs: Sequence[Path]
    talkers: TalkerSummary


def timeline_format(path: str | os.PathLike) -> str:
    """``rttm`` or ``json`` from the file's suffix; a ``ValueError`` naming it otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in TIMELINE_FORMATS:
        raise ValueError(f"{path}: a timeline is written as .rttm or .json, not {suffix or 'a file without a suffix'}")
    return TIMELINE_FORMATS[suffix]


def recording_id(path: Path) -> str:
    return re.sub(r"\s+", "_", path.stem) or "recording"


def to_rttm(timelines: Sequence[Timeline]) -> str:
    lines = []
    for t in timelines:
        for k, start, end in t.talkers.segments:
            name = recording_id(t.input)
            lines.append(f"SPEAKER {name} 1 {start:.3f} {end - start:.3f} <NA> <NA> spk{k + 1} <NA> <NA>")
    return "".join(line + "\n" for line in lines)


def to_json(timelines: Sequence[Timeline]) -> str:
    recordings = []
    for t in timelines:
        recordings.append(
            {
                "input": str(t.input),
                "talkers": t.talkers.talkers,
                "files": [str(p) for p in t.outputs],
                "segments": [
                    {"speaker": f"spk{k + 1}", "start": start, "end": end} for k, start, end in t.talkers.segments
                ],
            }
        )
    return json.dumps({"recordings": recordings}, indent=2) + "\n"


def write_timeline(path: str | os.PathLike, timelines: Sequence[Timeline]) -> Path:
    """Write ``timelines`` to ``path`` in the format its suffix names, atomically."""
    text = to_rttm(timelines) if timeline_format(path) == "rttm" else to_json(timelines)
    return atomic_write_text(path, text)
