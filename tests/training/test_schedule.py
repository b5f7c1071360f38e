"""Learning-rate schedules: the paper's plateau halving and the planned warm-up/stable/decay."""

from __future__ import annotations

import math

import pytest

from tisdiss_cli.training.config import OptimConfig, resolve_config
from tisdiss_cli.training.schedule import Plateau, learning_rate, planned_decay

WSD = OptimConfig(lr=1e-3, warmup_steps=100, schedule="wsd", decay_start_step=1000, decay_steps=500, final_lr_scale=0.1)


def test_wsd_warms_up_holds_then_decays_by_a_half_cosine_to_its_floor() -> None:
    assert learning_rate(0, WSD, 1.0) == pytest.approx(1e-5)
    assert learning_rate(49, WSD, 1.0) == pytest.approx(5e-4)
    assert learning_rate(99, WSD, 1.0) == pytest.approx(1e-3)
    assert learning_rate(999, WSD, 1.0) == pytest.approx(1e-3)  # stable up to the planned start
    assert learning_rate(1250, WSD, 1.0) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # halfway
    assert learning_rate(1500, WSD, 1.0) == pytest.approx(1e-4)
    assert learning_rate(10**6, WSD, 1.0) == pytest.approx(1e-4)
    rates = [learning_rate(s, WSD, 1.0) for s in range(1000, 1501)]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))  # never rises inside the decay
    assert planned_decay(5000, OptimConfig(schedule="wsd")) == 1.0  # no decay planned: constant


def test_validation_noise_cannot_lower_the_wsd_rate() -> None:
    plateau = Plateau()
    for loss in [-1.0] + [0.0] * 50:  # 50 epochs without improvement
        plateau.update(loss, WSD)
    assert plateau.scale == 1.0 and plateau.since_best == 50  # early-stopping bookkeeping still runs
    assert learning_rate(500, WSD, plateau.scale) == pytest.approx(1e-3)


def test_plateau_schedule_halves_after_its_patience() -> None:
    optim = OptimConfig(lr=1e-3, warmup_steps=0, plateau_patience=2)
    plateau = Plateau()
    for loss in (-1.0, 0.0, 0.0):
        plateau.update(loss, optim)
    assert plateau.scale == 1.0
    plateau.update(0.0, optim)
    assert plateau.scale == 0.5 and math.isclose(learning_rate(10, optim, plateau.scale), 5e-4)


def test_schedule_settings_are_checked_by_name() -> None:
    config = resolve_config("tiny", None, None, ['optim.schedule="wsd"', "optim.decay_start_step=10"])
    assert config.optim.schedule == "wsd" and config.optim.decay_start_step == 10
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        resolve_config("tiny", None, None, ['optim.schedule="cosine"'])
    with pytest.raises(ValueError, match="final_lr_scale"):
        OptimConfig(final_lr_scale=2.0)
