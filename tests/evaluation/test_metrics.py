"""Metrics: SI-SNR / SDR against independent computations on real dev2mix utterances."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from tests.conftest import DEV2MIX, need
from tisdiss_cli.evaluation import metrics
from tisdiss_cli.evaluation.testset import load_testset, read_example

mir_sep = pytest.importorskip("mir_eval.separation")


@pytest.fixture(scope="module")
def examples():
    tset = load_testset(need(DEV2MIX)).head(2)
    return [read_example(u) for u in tset.utterances]


def reference_si_snr(est: np.ndarray, ref: np.ndarray) -> float:
    """Textbook SI-SNR via a least-squares projection, written independently of the module."""
    est, ref = est - est.mean(), ref - ref.mean()
    scale = np.linalg.lstsq(ref[:, None], est, rcond=None)[0][0]
    target = scale * ref
    return 10 * np.log10(np.sum(target**2) / np.sum((est - target) ** 2))


def degraded(refs: np.ndarray, seed: int) -> np.ndarray:
    """A plausible imperfect, swapped estimate: leakage, filtering, noise, order reversed."""
    rng = np.random.default_rng(seed)
    leak = refs + 0.3 * refs[::-1]
    smeared = np.stack([np.convolve(x, [0.6, 0.3, 0.1], mode="same") for x in leak])
    return (smeared + 0.01 * rng.standard_normal(refs.shape))[::-1].copy()


def test_mixture_as_estimate_scores_zero_improvement(examples):
    for ex in examples:
        base = metrics.mixture_baseline(ex.mix, ex.refs)
        s = metrics.score(np.stack([ex.mix, ex.mix]), ex.refs, base)
        assert round(s.si_snri, 2) == 0.0 and abs(s.si_snri) < 1e-9
        assert abs(s.sdri) < 1e-6
        # the mixture of two comparable talkers sits near 0 dB for either speaker
        assert -6 < base.si_snr < 6


def test_true_sources_score_above_100_db_in_either_order(examples):
    for ex in examples:
        base = metrics.mixture_baseline(ex.mix, ex.refs)
        for order in ((0, 1), (1, 0)):
            s = metrics.score(ex.refs[list(order)], ex.refs, base, with_sdr=order == (1, 0))
            assert 100 < s.si_snr < np.inf
            assert s.perm == order
        assert s.sdr > 100


def test_si_snr_and_sdr_match_independent_computation(examples):
    for seed, ex in enumerate(examples):
        est = degraded(ex.refs, seed)
        base = metrics.mixture_baseline(ex.mix, ex.refs)
        s = metrics.score(est, ex.refs, base)
        assert s.perm == (1, 0)

        expected = np.mean([reference_si_snr(est[1 - j], ex.refs[j]) for j in range(2)])
        assert abs(s.si_snr - expected) < 0.01
        # mir_eval's decomposition with a 1-tap filter on zero-mean signals is SI-SNR too
        zm = lambda x: x - x.mean(axis=-1, keepdims=True)  # noqa: E731
        with warnings.catch_warnings(), metrics._single_blas_thread():  # only for speed
            warnings.simplefilter("ignore", FutureWarning)
            one_tap = [
                mir_sep._bss_source_crit(*mir_sep._bss_decomp_mtifilt(zm(ex.refs), zm(est)[1 - j], j, 1))[0]
                for j in range(2)
            ]
            sdr, _, _, perm = mir_sep.bss_eval_sources(ex.refs, est, compute_permutation=True)
            mix_sdr, _, _, _ = mir_sep.bss_eval_sources(ex.refs, np.stack([ex.mix, ex.mix]))
        assert abs(s.si_snr - np.mean(one_tap)) < 0.01
        assert list(perm) == [1, 0]
        assert abs(s.sdr - sdr.mean()) < 0.01
        assert abs(s.sdri - (sdr.mean() - mix_sdr.mean())) < 0.01
        expected_mix = np.mean([reference_si_snr(ex.mix, r) for r in ex.refs])
        assert abs(s.si_snri - (expected - expected_mix)) < 0.01


def test_si_snr_is_scale_and_offset_invariant():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 4000))
    est = ref + 0.5 * rng.standard_normal((2, 4000))
    a, _ = metrics.si_snr(est, ref)
    b, _ = metrics.si_snr(3.7 * est + 0.2, ref)
    assert np.allclose(a, b, atol=1e-9)
    assert np.all(np.abs(a - 10 * np.log10(1 / 0.25)) < 0.5)  # about 6 dB: noise at half amplitude


def test_best_permutation_over_all_orders_for_three_speakers():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((3, 2000))
    for order in itertools.permutations(range(3)):
        est = np.empty_like(ref)
        est[list(order)] = ref + 0.1 * rng.standard_normal(ref.shape)  # est[order[j]] ~ ref[j]
        values, perm = metrics.si_snr(est, ref)
        assert perm == order
        assert np.all(values > 15)


def test_bad_inputs_raise_metric_errors():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((2, 1000))
    with pytest.raises(metrics.MetricError, match="shape"):
        metrics.si_snr(ref[:, :900], ref)
    silent = ref.copy()
    silent[1] = 0
    with pytest.raises(metrics.MetricError, match="silent|all-zeros"):
        metrics.bss_sdr(ref, silent)
    with pytest.raises(metrics.MetricError, match="samples"):
        metrics.mixture_baseline(ref[0, :10], ref)


def test_band_above_keeps_what_the_model_band_leaves_out() -> None:
    rate = 16000
    t = np.arange(2 * rate) / rate
    low, high = np.sin(2 * np.pi * 1000 * t), 0.5 * np.sin(2 * np.pi * 6000 * t)
    above = metrics.band_above(np.stack([low + high, low]), rate, 8000)
    middle = slice(rate // 4, -rate // 4)  # away from the resampler's edges
    np.testing.assert_allclose(above[0, middle], high[middle], atol=1e-3)
    assert np.abs(above[1, middle]).max() < 1e-3
