"""The conversation benchmark's scoring: silent references, windows in the wrong file, swaps."""

from __future__ import annotations

import numpy as np

from tisdiss_cli.evaluation.conversations import SILENT_DB, score_recording, window_counts

RATE = 8000


def turns(seconds: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(round(seconds * RATE))
    a = rng.normal(size=len(t)) * (t < 3 * RATE)
    b = rng.normal(size=len(t)) * (t >= 3 * RATE)
    return a, b


def test_a_silent_reference_is_scored_by_how_quiet_its_output_is_never_nan() -> None:
    a, _ = turns()
    refs = np.stack([a, np.zeros_like(a)])
    for quiet, expected in ((0.0, SILENT_DB), (0.01, -40.0)):
        est = np.stack([a, quiet * np.random.default_rng(1).normal(size=len(a))])
        scores = score_recording(est, refs, a, RATE, RATE, with_sdr=False)
        assert scores["si_snri"] is None  # no improvement over a mixture that is the talker
        if quiet == 0.0:
            assert scores["absent_db"] <= SILENT_DB
        else:
            assert abs(scores["absent_db"] - (expected - 10 * np.log10(np.mean(a**2)))) < 1.0
        assert scores["present_si_snr"] > 100
        assert not any(isinstance(v, float) and np.isnan(v) for v in scores.values())


def test_a_turn_in_the_wrong_file_is_counted_per_second() -> None:
    a, b = turns()
    refs = np.stack([a, b])
    right = window_counts(refs, refs, (0, 1), RATE)
    assert right["single_windows"] == 6 and right["wrong_windows"] == 0 and right["leakage_db"] == SILENT_DB
    swapped_second_turn = np.stack([a + b * (np.arange(len(a)) >= 5 * RATE), b * (np.arange(len(a)) < 5 * RATE)])
    wrong = window_counts(swapped_second_turn, refs, (0, 1), RATE)
    assert wrong["wrong_windows"] == 1


def test_whole_file_scores_use_the_best_assignment() -> None:
    a, b = turns()
    refs = np.stack([a, b])
    mix = a + b
    scores = score_recording(np.stack([b, a]), refs, mix, RATE, RATE, with_sdr=False)
    assert scores["si_snri"] > 100 and scores["wrong_windows"] == 0


def test_overlapped_windows_count_swaps() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 4 * RATE))
    est = np.stack([a, b])
    est[:, 2 * RATE :] = est[::-1, 2 * RATE :]
    counts = window_counts(est, np.stack([a, b]), (0, 1), RATE)
    assert counts["overlap_windows"] == 4 and counts["swapped_windows"] == 2
