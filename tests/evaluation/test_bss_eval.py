"""The fast BSS Eval SDR against mir_eval's bss_eval_sources, and its own properties."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from tests.conftest import DEV2MIX, need
from tisdiss_cli.evaluation import metrics
from tisdiss_cli.evaluation.bss_eval import BssEval, bss_eval_sources
from tisdiss_cli.evaluation.testset import load_testset, read_example

TOLERANCE_DB = 0.01


def mir_eval_sources(est: np.ndarray, ref: np.ndarray, compute_permutation: bool = True):
    separation = pytest.importorskip("mir_eval.separation")
    with warnings.catch_warnings(), metrics._single_blas_thread():
        warnings.simplefilter("ignore", FutureWarning)
        sdr, sir, _, perm = separation.bss_eval_sources(ref, est, compute_permutation=compute_permutation)
    return sdr, sir, tuple(int(p) for p in perm)


def imperfect(refs: np.ndarray, mix: np.ndarray, seed: int) -> np.ndarray:
    """Filtered references leaked into each other, a little mixture and noise, in a shuffled order."""
    rng = np.random.default_rng(seed)
    j = refs.shape[0]
    taps = rng.standard_normal((j, 40)) * np.exp(-np.arange(40) / 6)
    filtered = np.stack([np.convolve(r, t)[: r.size] for r, t in zip(refs, taps, strict=True)])
    leak = rng.uniform(0.05, 0.6, (j, j)) * (1 - np.eye(j))
    est = filtered + leak @ refs + 0.1 * mix + 0.02 * rng.standard_normal(refs.shape) * refs.std()
    return est[rng.permutation(j)]


def assert_agrees(est: np.ndarray, ref: np.ndarray, compute_permutation: bool = True) -> np.ndarray:
    """Fast and mir_eval SDR, SIR and permutation agree; returns mir_eval's SDR."""
    sdr, sir, perm = bss_eval_sources(est, ref, compute_permutation=compute_permutation)
    m_sdr, m_sir, m_perm = mir_eval_sources(est, ref, compute_permutation)
    assert perm == m_perm
    assert np.max(np.abs(sdr - m_sdr)) < TOLERANCE_DB, (sdr, m_sdr)
    assert np.max(np.abs(sir - m_sir)) < TOLERANCE_DB, (sir, m_sir)
    return m_sdr


@pytest.fixture(scope="module")
def dev_examples():
    tset = load_testset(need(DEV2MIX))
    # a handful spread over the set (the benchmark covers all 100)
    return [read_example(tset.utterances[i]) for i in (0, 37, 81)]


def test_agrees_with_mir_eval_on_dev2mix(dev_examples):
    for seed, ex in enumerate(dev_examples):
        est = imperfect(ex.refs, ex.mix, seed)
        m_sdr = assert_agrees(est, ex.refs)
        m_mix = assert_agrees(np.stack([ex.mix, ex.mix]), ex.refs, compute_permutation=False)  # the baseline
        # through the metrics API, as evaluate calls it (default backend)
        base = metrics.mixture_baseline(ex.mix, ex.refs)
        s = metrics.score(est, ex.refs, base)
        expected = (m_mix.mean(), m_sdr.mean(), m_sdr.mean() - m_mix.mean())
        assert np.max(np.abs(np.subtract((base.sdr, s.sdr, s.sdri), expected))) < TOLERANCE_DB


def test_agrees_with_mir_eval_on_synthetic_signals():
    rng = np.random.default_rng(3)
    length = 3000
    # coloured noise sources (AR(1)) and a sparse, bursty one: unlike speech, unlike each other
    white = rng.standard_normal((3, length))
    coloured = np.stack([np.convolve(w, 0.9 ** np.arange(30))[:length] for w in white[:2]])
    bursty = white[2] * (rng.uniform(size=length) < 0.1)
    for j, refs in ((2, coloured), (3, np.vstack([coloured, bursty]))):
        mix = refs.sum(axis=0)
        assert_agrees(imperfect(refs, mix, seed=j), refs)
    # a source leaking strongly into the wrong estimate: the SIR permutation has to decide
    refs = coloured
    est = np.stack([refs[1] + 0.8 * refs[0], refs[0] + 0.9 * refs[1]])
    assert_agrees(est, refs)


def test_filters_within_512_taps_are_not_distortion():
    rng = np.random.default_rng(4)
    refs = rng.standard_normal((2, 4000))
    refs[:, -400:] = 0  # silent ends, so the filtered estimate below keeps its whole tail
    taps = rng.standard_normal(300)  # any filter shorter than the 512-tap distortion filter is "allowed"
    est = np.stack([np.convolve(refs[1], taps)[:4000], 2.5 * refs[0]])
    sdr, sir, perm = bss_eval_sources(est, refs)
    assert perm == (1, 0)
    assert np.all(sdr > 80) and np.all(sir > 80)
    # independent white noise at 10 dB SNR: the 512 filter taps absorb about 512 / (L + 511) of
    # the noise energy, so the SDR is 10 dB plus that share, up to the noise's own fluctuation
    length = 16000
    refs = rng.standard_normal((2, length))
    noisy = refs + np.sqrt(0.1) * rng.standard_normal(refs.shape)
    sdr, _, perm = bss_eval_sources(noisy, refs)
    expected = 10 - 10 * np.log10(1 - 512 / (length + 511))
    assert perm == (0, 1) and np.all(np.abs(sdr - expected) < 0.2), (sdr, expected)


def test_prepared_references_are_reused_and_checked():
    rng = np.random.default_rng(5)
    refs = rng.standard_normal((2, 2000))
    est = refs[::-1] + 0.3 * rng.standard_normal(refs.shape)
    prepared = BssEval(refs)
    fresh = bss_eval_sources(est, refs)
    again = bss_eval_sources(est, refs, prepared=prepared)
    assert np.array_equal(fresh[0], again[0]) and fresh[2] == again[2]
    # a baseline prepared for other references is not used for these
    other = metrics.mixture_baseline(refs.sum(0) + 1, refs + 1)
    sdr, perm = metrics.bss_sdr(est, refs, prepared=other.prepared)
    assert np.allclose(sdr, fresh[0], atol=1e-9) and perm == fresh[2]


def test_bad_inputs_and_backends():
    rng = np.random.default_rng(6)
    refs = rng.standard_normal((2, 1000))
    with pytest.raises(metrics.MetricError, match="reference 2 is silent"):
        metrics.bss_sdr(refs, np.stack([refs[0], np.zeros(1000)]))
    with pytest.raises(metrics.MetricError, match="estimate 1 is silent"):
        metrics.bss_sdr(np.stack([np.zeros(1000), refs[0]]), refs)
    with pytest.raises(metrics.MetricError, match="shape"):
        metrics.bss_sdr(refs[:, :999], refs)
    with pytest.raises(ValueError, match="unknown SDR backend 'museval'"):
        metrics.bss_sdr(refs, refs, backend="museval")  # type: ignore[arg-type]


def test_default_path_needs_no_mir_eval(monkeypatch):
    rng = np.random.default_rng(7)
    refs = rng.standard_normal((2, 1500))
    for name in [m for m in sys.modules if m == "mir_eval" or m.startswith("mir_eval.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mir_eval", None)  # import mir_eval now raises ImportError
    base = metrics.mixture_baseline(refs.sum(0), refs)
    s = metrics.score(refs[::-1] + 0.1 * rng.standard_normal(refs.shape), refs, base)
    assert s.perm == (1, 0) and s.sdr > 15 and base.sdr is not None
    with pytest.raises(ImportError, match=r"pip install 'tisdiss\[eval\]'"):
        metrics.score(refs, refs, base, sdr_backend="mir_eval")
