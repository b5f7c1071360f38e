"""Learning-rate schedule: linear warm-up, then halving on a plateau of the validation loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import OptimConfig


def learning_rate(step: int, optim: OptimConfig, plateau_scale: float) -> float:
    """Linear warm-up to ``lr``, times the plateau scale (halved on each plateau)."""
    warm = min(1.0, (step + 1) / optim.warmup_steps) if optim.warmup_steps > 0 else 1.0
    return optim.lr * warm * plateau_scale


@dataclass
class Plateau:
    """ReduceLROnPlateau (mode min, relative threshold 1e-4) plus early-stopping bookkeeping."""

    best: float = math.inf
    bad_epochs: int = 0
    since_best: int = 0
    scale: float = 1.0

    def update(self, valid_loss: float, optim: OptimConfig) -> None:
        # Relative threshold 1e-4, measured on |best| so it also holds for negative losses.
        if math.isinf(self.best) or valid_loss < self.best - abs(self.best) * 1e-4:
            self.best, self.bad_epochs, self.since_best = valid_loss, 0, 0
            return
        self.bad_epochs += 1
        self.since_best += 1
        if self.bad_epochs > optim.plateau_patience:
            self.scale *= optim.plateau_factor
            self.bad_epochs = 0
