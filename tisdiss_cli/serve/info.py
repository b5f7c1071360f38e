"""What the page shows before any upload: the model, its presets with the card's measured quality
and this machine's measured speed, the formats and the limits (``GET /v1/info``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..audio import denoise
from ..audio.files import FFMPEG_SUFFIXES, OUTPUT_FORMATS, SNDFILE_SUFFIXES
from ..model.depth import Depth, iter_presets
from ..separation.separator import Separator
from ..util.version import __version__
from .config import Limits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PresetInfo:
    name: str
    depth: Depth
    quality: float | None  # the card's figure at this depth (see ServerInfo.quality_metric)
    rtf: float | None  # measured here: wall seconds per second of audio (None until measured)


def measure_speed(separator: Separator) -> dict[tuple[int, int], float]:
    """This machine's RTF at every preset's depth (cached per model and device by the calibration)."""
    measured: dict[tuple[int, int], float] = {}
    for n_sep in sorted({depth.n_sep for depth in separator.presets.values()}):
        calibration = separator.calibration(n_sep)
        measured.update({(n_sep, n_re): rtf for n_re, rtf in calibration.rtf.items()})
    return measured


def presets(separator: Separator, rtf: dict[tuple[int, int], float]) -> list[PresetInfo]:
    quality = separator.loaded.card.quality
    result = []
    for name, depth in iter_presets(separator.presets):
        score = None
        if quality is not None and quality.n_sep in (None, depth.n_sep):
            score = quality.by_n_re.get(depth.n_re)
        result.append(PresetInfo(name, depth, score, rtf.get((depth.n_sep, depth.n_re))))
    return result


def describe(separator: Separator, limits: Limits, rtf: dict[tuple[int, int], float], *, av: bool) -> dict[str, object]:
    """The JSON of ``GET /v1/info``."""
    quality = separator.loaded.card.quality
    suffixes = sorted(SNDFILE_SUFFIXES + (FFMPEG_SUFFIXES if av else ()))
    return {
        "version": __version__,
        "model": {
            "name": separator.loaded.name,
            "sample_rate": separator.sample_rate,
            "speakers": separator.num_spk,
            "device": str(separator.device),
            "precision": separator.precision.name,
            "summary": separator.loaded.card.summary,
        },
        "quality_metric": quality.metric if quality is not None else None,
        "presets": [
            {"name": p.name, "n_sep": p.depth.n_sep, "n_re": p.depth.n_re, "quality": p.quality, "rtf": p.rtf}
            for p in presets(separator, rtf)
        ],
        "speed_measured": bool(rtf),
        "formats": list(OUTPUT_FORMATS),
        "denoise": denoise.available(),
        "input_suffixes": suffixes,
        "limits": {
            "max_upload_bytes": limits.max_upload_bytes,
            "max_duration_seconds": limits.max_duration,
            "sync_max_duration_seconds": limits.sync_max_duration,
            "workers": limits.workers,
            "queue": limits.queue,
            "keep_seconds": limits.keep_seconds,
        },
    }
