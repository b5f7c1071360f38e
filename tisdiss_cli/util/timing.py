"""Wall-clock timing that counts queued GPU work: the one timer behind every real-time factor."""

from __future__ import annotations

import time

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings cover it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Seconds since construction on ``device``; both ends wait for queued GPU work.

    Real-time factor = ``watch.seconds() / audio seconds`` (below 1 is faster than real time).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        synchronize(device)
        self._start = time.perf_counter()

    def seconds(self) -> float:
        synchronize(self.device)
        return time.perf_counter() - self._start
