"""Adaptive depth and the RTF calibration behind --max-rtf, at tiny size."""

from __future__ import annotations

import json

import pytest
import torch

from tisdiss_cli.evaluation.bench import random_model
from tisdiss_cli.separation import calibration
from tisdiss_cli.separation.adaptive import converged, separate_adaptive
from tisdiss_cli.separation.calibration import Calibration, calibrate


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return random_model("random-tiny")


def test_stopping_rule() -> None:
    x = torch.randn(2, 800)
    assert converged(x, x, 60.0)  # identical outputs agree to the 70 dB bound
    assert not converged(x, x, 70.0)  # ... and never beyond it
    assert not converged(x, torch.randn(2, 800), 0.0)  # unrelated outputs: below 0 dB
    assert not converged(torch.stack([x[0], torch.randn(800)]), x, 30.0)  # every row must agree


def test_adaptive_never_exceeds_max_depth_and_matches_fixed_depth(tiny: torch.nn.Module) -> None:
    mix = torch.randn(1, 1200) * 0.05
    with torch.inference_mode():
        wave, depth = separate_adaptive(tiny, mix, n_sep=2, max_n_re=3, threshold_db=1e9)
        assert depth == 3  # nothing is ever "converged": runs to the preset's depth, no further
        torch.testing.assert_close(wave, tiny(mix, n_sep=2, n_re=3))
        wave, depth = separate_adaptive(tiny, mix, n_sep=2, max_n_re=3, threshold_db=-1e9)
        assert depth == 1  # the first comparison (step 1 vs 0) already passes
        torch.testing.assert_close(wave, tiny(mix, n_sep=2, n_re=1))
        _, depth = separate_adaptive(tiny, mix, n_sep=2, max_n_re=0, threshold_db=-1e9)
        assert depth == 0


def test_choose_depth_takes_deepest_within_budget() -> None:
    cal = Calibration("m", "cpu-1t", 2, {0: 0.1, 1: 0.3, 2: 0.5, 3: 0.7}, 1.0)
    assert cal.choose_depth(0.55) == (2, 2)
    assert cal.choose_depth(10.0) == (2, 3)
    assert cal.choose_depth(0.01) == (2, 0)  # nothing fits: the shallowest


def test_calibration_is_measured_once_and_cached(tiny: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    first = calibrate(tiny, "tiny-test", n_sep=2, max_n_re=3, seconds=0.25)
    assert sorted(first.rtf) == [0, 1, 2, 3]
    assert all(b >= a for a, b in zip(list(first.rtf.values()), list(first.rtf.values())[1:], strict=False))
    path = calibration.cache_path("tiny-test", first.device, 2, 3)
    assert json.loads(path.read_text())["model_id"] == "tiny-test"

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(calibration, "measure", fail)
    assert calibrate(tiny, "tiny-test", n_sep=2, max_n_re=3) == first
    n_sep, n_re = first.choose_depth(first.rtf[2])
    assert n_sep == 2 and n_re >= 2
