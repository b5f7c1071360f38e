"""A job's options from its form fields, checked once when the job is posted (422 otherwise)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from ..audio import denoise
from ..audio.files import OUTPUT_FORMATS, OutputFormat
from ..model.depth import PRESET_NAMES
from ..separation.fullband import BANDS
from ..separation.outputs import OUTPUT_RATES, OutputOptionError, OutputOptions, OutputRate
from ..separation.separator import Speakers, check_speakers
from .errors import RequestError

# The fields POST /v1/jobs and POST /v1/separate take, with their meaning (also the OpenAPI schema).
FIELDS: dict[str, str] = {
    "preset": f"speed/quality preset: {' | '.join(PRESET_NAMES)} (default balanced)",
    "n_sep": "separation repetitions N_sep, overriding the preset's",
    "n_re": "reconstruction repetitions N_re, overriding the preset's",
    "format": f"output format: {' | '.join(OUTPUT_FORMATS)} (default wav: 24-bit PCM)",
    "float": "true: 32-bit float WAV (no quantisation, no clipping)",
    "output_rate": f"{' | '.join(OUTPUT_RATES)}: write at the input's rate (default) or the model's",
    "channel": "separate this input channel (1-based) instead of the average",
    "speakers": "auto (default: one file per talker the voices show) or a number of files",
    "band": f"{' | '.join(BANDS)}: above the model's rate, each talker gets the input's band above the model's "
    "(default full), or the model's band only",
    "denoise": "true: RNNoise on the mixture before it is separated (noisy recordings; costs quality on clean "
    "ones); needs the server's denoise extra",
}
TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class JobOptions:
    """What a job was asked for: the depth (a preset, or explicit N_sep / N_re) and the outputs."""

    preset: str = "balanced"
    n_sep: int | None = None
    n_re: int | None = None
    output: OutputOptions = OutputOptions()
    speakers: Speakers = "auto"
    band: str = "full"  # full: the input's band above the model's shared out; model: the model's band only
    denoise: bool = False

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> JobOptions:
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise RequestError(422, f"unknown option {unknown[0]!r}; the options are {', '.join(FIELDS)}")
        preset = fields.get("preset") or "balanced"
        if preset not in PRESET_NAMES:
            raise RequestError(422, f"unknown preset {preset!r}; choose {', '.join(PRESET_NAMES)}")
        band = fields.get("band") or "full"
        if band not in BANDS:
            raise RequestError(422, f"unknown band {band!r}; choose {', '.join(BANDS)}")
        fmt = fields.get("format") or "wav"
        rate = fields.get("output_rate") or "input"
        channel = _whole(fields, "channel", low=1)
        try:
            output = OutputOptions(
                cast(OutputFormat, fmt),
                _flag(fields, "float"),
                cast(OutputRate, rate),
                None if channel is None else channel - 1,
            )
        except OutputOptionError as exc:
            raise RequestError(422, str(exc)) from None
        try:
            speakers = check_speakers((fields.get("speakers") or "auto").strip().lower())
        except ValueError as exc:
            raise RequestError(422, str(exc)) from None
        wants_denoise = _flag(fields, "denoise")
        if wants_denoise and not denoise.available():
            raise RequestError(
                422, f"denoise is not available on this server: RNNoise is not installed ({denoise.INSTALL_HINT})"
            )
        depth = _whole(fields, "n_sep", low=1), _whole(fields, "n_re", low=0)
        return cls(preset, *depth, output, speakers, band, wants_denoise)


def _whole(fields: Mapping[str, str], name: str, *, low: int) -> int | None:
    text = fields.get(name, "")
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise RequestError(422, f"{name} must be a whole number, not {text[:40]!r}") from None
    if value < low:
        raise RequestError(422, f"{name} must be at least {low}, not {value}")
    return value


def _flag(fields: Mapping[str, str], name: str) -> bool:
    text = fields.get(name, "").lower()
    if text not in TRUE + FALSE:
        raise RequestError(422, f"{name} must be true or false, not {text[:40]!r}")
    return text in TRUE
