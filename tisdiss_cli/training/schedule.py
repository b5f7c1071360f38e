"""Learning-rate schedules: linear warm-up, then either halving on plateaus or a planned decay.

- ``plateau`` (the paper's): the rate halves whenever the validation loss has not improved for
  ``plateau_patience`` epochs.
- ``wsd`` (warm-up, stable, decay): the rate stays at ``lr`` until ``decay_start_step``, then
  follows a half cosine down to ``final_lr_scale * lr`` over ``decay_steps`` and stays there.
  Validation noise cannot lower it: the decay is planned from the compute budget, not measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import OptimConfig


def learning_rate(step: int, optim: OptimConfig, plateau_scale: float) -> float:
    """The rate of optimiser step ``step``: the warm-up ramp times the schedule's scale."""
    warm = min(1.0, (step + 1) / optim.warmup_steps) if optim.warmup_steps > 0 else 1.0
    scale = planned_decay(step, optim) if optim.schedule == "wsd" else plateau_scale
    return optim.lr * warm * scale


def planned_decay(step: int, optim: OptimConfig) -> float:
    """The ``wsd`` scale at ``step``: 1 before the decay, a half cosine to ``final_lr_scale`` over it."""
    if optim.decay_start_step <= 0 or step < optim.decay_start_step:
        return 1.0
    if optim.decay_steps <= 0:
        return optim.final_lr_scale
    done = min(1.0, (step - optim.decay_start_step) / optim.decay_steps)
    return optim.final_lr_scale + (1.0 - optim.final_lr_scale) * 0.5 * (1.0 + math.cos(math.pi * done))


@dataclass
class Plateau:
    """ReduceLROnPlateau (mode min, relative threshold 1e-4) plus early-stopping bookkeeping.

    Under the ``wsd`` schedule it only keeps the bookkeeping: the scale stays 1.
    """

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
        if optim.schedule == "plateau" and self.bad_epochs > optim.plateau_patience:
            self.scale *= optim.plateau_factor
            self.bad_epochs = 0
