"""Speed benchmarks: real-time factor, throughput and peak memory of one forward pass."""

from __future__ import annotations

import resource
import statistics
import sys
from dataclasses import dataclass

import torch

from ..model.config import ModelConfig, architecture
from ..model.network import TISDiSS, init_weights
from ..util.timing import Stopwatch

# Random-weight models that need no download: speed does not depend on weight values.
RANDOM_MODELS: dict[str, str] = {"random-released": "sep1x2-re1x6", "random-tiny": "tiny"}


@dataclass(frozen=True)
class BenchResult:
    """Timing of ``model(mix [batch, seconds * rate], n_sep, n_re)``."""

    n_sep: int  # separation repetitions
    n_re: int  # reconstruction repetitions
    seconds: float  # audio length of one input
    batch_size: int  # inputs per forward
    times: tuple[float, ...]  # wall seconds of each timed run
    peak_memory_mb: float  # process peak RSS (CPU) or peak allocated (CUDA) after the runs

    @property
    def median_s(self) -> float:
        return statistics.median(self.times)

    @property
    def rtf(self) -> float:
        """Wall time per second of audio (per input): < 1 is faster than real time."""
        return self.median_s / (self.seconds * self.batch_size)

    @property
    def throughput(self) -> float:
        """Seconds of audio separated per wall second."""
        return 1.0 / self.rtf


def random_model(name_or_config: str | ModelConfig, *, seed: int = 0) -> TISDiSS:
    """A model with the reference initialisation, in eval mode; ``name`` from RANDOM_MODELS
    or an architecture name."""
    config = name_or_config
    if isinstance(config, str):
        config = architecture(RANDOM_MODELS.get(config, config))
    torch.manual_seed(seed)
    model = TISDiSS(config)
    init_weights(model)
    return model.eval()


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


def time_forward(
    model: TISDiSS,
    *,
    n_sep: int,
    n_re: int,
    seconds: float = 4.0,
    batch_size: int = 1,
    runs: int = 3,
    warmup: int = 1,
    seed: int = 0,
) -> BenchResult:
    """Time whole-utterance forwards on Gaussian noise (std 0.05) under inference mode."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    generator = torch.Generator().manual_seed(seed)
    length = int(round(seconds * model.config.sample_rate))
    mix = (torch.randn(batch_size, length, generator=generator) * 0.05).to(device=device, dtype=dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            watch = Stopwatch(device)
            model(mix, n_sep=n_sep, n_re=n_re)
            if i >= warmup:
                times.append(watch.seconds())
    return BenchResult(n_sep, n_re, seconds, batch_size, tuple(times), peak_memory_mb(device))


def deepest_realtime(results: list[BenchResult]) -> BenchResult | None:
    """The deepest setting (largest n_re, then n_sep) with RTF below 1, if any."""
    fast = [r for r in results if r.rtf < 1.0]
    return max(fast, key=lambda r: (r.n_re, r.n_sep)) if fast else None
