"""Optional perceptual metrics, as ESPnet's enhancement scoring reports them: STOI (pystoi,
classic) and PESQ (ITU-T P.862 through the ``pesq`` package).

PESQ is defined at 8 kHz (narrow-band) and 16 kHz (narrow- or wide-band). Scores at 8 kHz are
narrow-band and at 16 kHz wide-band; any other rate is resampled (soxr) to 16 kHz wide-band
when above 16 kHz and to 8 kHz narrow-band below it. STOI takes any rate (pystoi resamples
to its 10 kHz internally). Both are per speaker, on float arrays ``[J, L]`` already matched
to the references; neither needs a permutation search of its own.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

from ..audio import files as audio

PERCEPTUAL_METRICS = ("stoi", "pesq")
EXTRA = "pip install 'tisdiss[metrics]'"
_PACKAGES = {"stoi": "pystoi", "pesq": "pesq"}


class PerceptualError(ValueError):
    """A signal the metric cannot score (e.g. PESQ finds no speech in it)."""


def parse_metrics(text: str) -> tuple[str, ...]:
    """``"stoi,pesq"`` -> ("stoi", "pesq") in the given order, without duplicates; ValueError otherwise."""
    names: list[str] = []
    for part in text.replace(" ", "").lower().split(","):
        if not part:
            continue
        if part not in PERCEPTUAL_METRICS:
            raise ValueError(f"unknown metric {part!r}: choose from {', '.join(PERCEPTUAL_METRICS)}")
        if part not in names:
            names.append(part)
    return tuple(names)


def missing_package(names: tuple[str, ...]) -> str | None:
    """The one-line message for the first metric whose package is not installed, or None."""
    for name in names:
        try:
            importlib.import_module(_PACKAGES[name])
        except ImportError:
            return f"{name.upper()} needs {_PACKAGES[name]}: {EXTRA}"
    return None


def _load(name: str) -> ModuleType:
    try:
        return importlib.import_module(_PACKAGES[name])
    except ImportError:
        raise ImportError(f"{name.upper()} needs {_PACKAGES[name]}: {EXTRA}") from None


def pesq_rate(rate: int) -> tuple[int, str]:
    """(rate PESQ is computed at, "nb" or "wb") for signals at ``rate`` Hz."""
    return (16000, "wb") if rate >= 16000 else (8000, "nb")


def stoi(est: np.ndarray, ref: np.ndarray, rate: int) -> np.ndarray:
    """STOI of each estimate against its reference: ``[J, L], [J, L] -> [J]`` (0..1)."""
    pystoi = _load("stoi")
    return np.array([float(pystoi.stoi(r, e, rate, extended=False)) for e, r in zip(est, ref, strict=True)])


def pesq(est: np.ndarray, ref: np.ndarray, rate: int) -> np.ndarray:
    """PESQ (MOS-LQO) of each estimate against its reference: ``[J, L], [J, L] -> [J]``."""
    module = _load("pesq")
    target, mode = pesq_rate(rate)
    if target != rate:
        est = audio.resample(np.ascontiguousarray(est.T), rate, target).T
        ref = audio.resample(np.ascontiguousarray(ref.T), rate, target).T
    values = []
    for j, (e, r) in enumerate(zip(est, ref, strict=True)):
        try:
            values.append(float(module.pesq(target, np.ascontiguousarray(r), np.ascontiguousarray(e), mode)))
        except module.PesqError as exc:
            raise PerceptualError(f"PESQ of speaker {j + 1}: {exc}") from None
    return np.array(values)


def compute(names: tuple[str, ...], est: np.ndarray, ref: np.ndarray, rate: int) -> dict[str, float]:
    """Mean over speakers of each named metric: ``{"stoi": ..., "pesq": ...}``."""
    functions = {"stoi": stoi, "pesq": pesq}
    return {name: float(functions[name](est, ref, rate).mean()) for name in names}
