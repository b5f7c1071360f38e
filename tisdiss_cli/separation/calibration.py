"""Measured real-time factor per reconstruction depth, cached per model and device.

One pass of :meth:`TISDiSS.iter_depths` on a short input gives the time to reach every
depth; ``choose_depth(max_rtf)`` then picks the deepest N_re this machine runs within budget.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..model.depth import Depth
from ..model.network import TISDiSS
from ..util.fileio import atomic_write_text
from ..util.timing import Stopwatch
from ..util.version import __version__  # a new release may run at another speed: measure again
from ..zoo.download import cache_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    """RTF (wall seconds per audio second) to reach each n_re at a fixed n_sep."""

    model_id: str  # what was measured (registry name, path...)
    device: str  # where ("cpu", "cuda:0"), with the thread count on CPU
    n_sep: int  # separation repetitions used for every depth
    rtf: dict[int, float]  # n_re -> measured RTF
    seconds: float  # input length used

    def choose_depth(self, max_rtf: float) -> Depth:
        """(n_sep, n_re) of the deepest N_re with RTF <= max_rtf; n_re 0 when none fits (see :meth:`meets`)."""
        fitting = [k for k, v in self.rtf.items() if v <= max_rtf]
        return Depth(self.n_sep, max(fitting, default=0))

    def meets(self, max_rtf: float) -> bool:
        """Whether any measured depth runs within ``max_rtf``."""
        return any(v <= max_rtf for v in self.rtf.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "model_id": self.model_id,
            "device": self.device,
            "n_sep": self.n_sep,
            "seconds": self.seconds,
            "rtf": {str(k): v for k, v in self.rtf.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        rtf = {int(k): float(v) for k, v in dict(d["rtf"]).items()}
        return cls(str(d["model_id"]), str(d["device"]), int(d["n_sep"]), rtf, float(d["seconds"]))


def device_label(device: torch.device) -> str:
    if device.type == "cpu":
        return f"cpu-{torch.get_num_threads()}t"
    return str(device)


def cache_path(model_id: str, device: str, n_sep: int, max_n_re: int) -> Path:
    key = hashlib.sha256(f"{model_id}|{device}|{n_sep}|{max_n_re}|{__version__}".encode()).hexdigest()[:16]
    return cache_dir() / "calibration" / f"{key}.json"


def measure(
    model: TISDiSS, *, n_sep: int, max_n_re: int, seconds: float = 2.0, warmup: bool = True
) -> dict[int, float]:
    """RTF to reach each n_re = 0..max_n_re, from one pass (after an optional warm-up pass)."""
    p = next(model.parameters())
    mix = torch.randn(1, int(seconds * model.config.sample_rate), generator=torch.Generator().manual_seed(0)) * 0.05
    mix = mix.to(device=p.device, dtype=p.dtype)
    rtf: dict[int, float] = {}
    with torch.inference_mode():
        if warmup:
            model(mix[:, : mix.shape[-1] // 4], n_sep=n_sep, n_re=min(max_n_re, 1))
        watch = Stopwatch(p.device)
        for k, _ in model.iter_depths(mix, n_sep=n_sep, max_n_re=max_n_re):
            rtf[k] = watch.seconds() / seconds
    return rtf


def calibrate(
    model: TISDiSS,
    model_id: str,
    *,
    n_sep: int,
    max_n_re: int,
    seconds: float = 2.0,
    refresh: bool = False,
) -> Calibration:
    """Cached measurement for (model_id, device, n_sep, max_n_re); measured on a miss."""
    device = device_label(next(model.parameters()).device)
    path = cache_path(model_id, device, n_sep, max_n_re)
    if not refresh and path.is_file():
        try:
            return Calibration.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            pass  # damaged cache file: measure again
    result = Calibration(
        model_id, device, n_sep, measure(model, n_sep=n_sep, max_n_re=max_n_re, seconds=seconds), seconds
    )
    try:
        atomic_write_text(path, json.dumps(result.to_dict(), indent=1))
    except OSError as exc:  # the cache only saves the next run a measurement
        log.warning("cannot cache the speed measurement (%s): measured again next time", exc)
    return result
