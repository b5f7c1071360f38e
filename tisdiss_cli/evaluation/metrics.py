"""Separation metrics: SI-SNR (zero-mean, best permutation) and BSS Eval v3 SDR.

Arrays are numpy ``[J, L]`` (J speakers, L samples); results are plain floats in dB.
SDR is the definition of ``mir_eval.separation.bss_eval_sources`` (512-tap distortion filters,
projection on all references, the permutation of best mean SIR), the convention behind
ESPnet's scores and the paper's tables. Two backends compute it: ``"fast"`` (the default,
:mod:`.bss_eval`, no extra dependency, the references' normal equations factorised once per
utterance) and ``"mir_eval"`` (the original, as a cross-check; ``pip install 'tisdiss[eval]'``).
Improvements (SI-SNRi, SDRi) are against the unprocessed mixture used as the estimate of
every speaker.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..audio import files as audio
from ..util.sisnr import pairwise_si_snr
from .bss_eval import BssEval, BssEvalError, bss_eval_sources

SdrBackend = Literal["fast", "mir_eval"]
SDR_BACKENDS: tuple[SdrBackend, ...] = ("fast", "mir_eval")


class MetricError(ValueError):
    """Signals that cannot be scored (wrong shapes, silent reference or estimate)."""


@dataclass(frozen=True)
class Scores:
    """Metrics of one separated utterance, means over the J speakers (dB)."""

    si_snr: float  # SI-SNR of the estimate, best permutation
    si_snri: float  # si_snr minus the SI-SNR of the mixture as estimate
    sdr: float | None  # BSS Eval v3 SDR (None when SDR was not requested)
    sdri: float | None  # sdr minus the SDR of the mixture as estimate
    perm: tuple[int, ...]  # estimate perm[j] matches reference j (SI-SNR permutation)


@dataclass(frozen=True)
class Baseline:
    """Scores of the mixture used as the estimate of every speaker (computed once per utterance)."""

    si_snr: float
    sdr: float | None
    # the references prepared for the fast SDR backend, reused by :func:`score`
    prepared: BssEval | None = field(default=None, repr=False, compare=False)


def _as_sources(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise MetricError(f"{name} must be [J, L], got shape {x.shape}")
    return x


def _check_pair(est: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    est, ref = _as_sources(est, "estimate"), _as_sources(ref, "reference")
    if est.shape != ref.shape:
        raise MetricError(f"estimate shape {est.shape} differs from reference shape {ref.shape}")
    return est, ref


def si_snr_matrix(est: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Pairwise zero-mean SI-SNR in dB: ``est [J, L], ref [K, L] -> [J, K]``."""
    return pairwise_si_snr(_as_sources(est, "estimate"), _as_sources(ref, "reference"))


def si_snr(est: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """SI-SNR per reference under the best permutation (max mean over J! orders).

    ``est, ref [J, L] -> (values [J], perm)`` with ``est[perm[j]]`` matched to ``ref[j]``.
    """
    est, ref = _check_pair(est, ref)
    pair = si_snr_matrix(est, ref)  # [J_est, J_ref]
    j = ref.shape[0]
    cols = np.arange(j)
    best = max(itertools.permutations(range(j)), key=lambda p: pair[list(p), cols].mean())
    return pair[list(best), cols], tuple(int(i) for i in best)


@contextlib.contextmanager
def _single_blas_thread() -> Iterator[None]:
    """bss_eval is dominated by 1024x1024 solves; threaded BLAS on shared cores runs them
    several times slower than one thread, so pin BLAS to one thread when we can."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _mir_eval_separation() -> Any:
    try:
        import mir_eval.separation
    except ImportError:
        raise ImportError("--sdr-backend mir_eval needs mir_eval: pip install 'tisdiss[eval]'") from None
    if not hasattr(mir_eval.separation, "bss_eval_sources"):  # removed in mir_eval 0.9
        raise ImportError(f"mir_eval {mir_eval.__version__} has no bss_eval_sources: pip install 'tisdiss[eval]'")
    return mir_eval.separation


def require_mir_eval() -> None:
    """ImportError (one line naming the extra) unless the mir_eval backend can run."""
    _mir_eval_separation()


def check_sdr_backend(backend: str) -> SdrBackend:
    """``backend`` if it is a known SDR backend, else a ValueError naming the choices."""
    if backend not in SDR_BACKENDS:
        raise ValueError(f"unknown SDR backend {backend!r}: use one of {', '.join(SDR_BACKENDS)}")
    return backend


def prepare_references(ref: np.ndarray) -> BssEval:
    """References ``[J, L]`` prepared once for the fast SDR of any number of estimates."""
    try:
        return BssEval(_as_sources(ref, "reference"))
    except BssEvalError as exc:
        raise MetricError(str(exc)) from None


def bss_sdr(
    est: np.ndarray,
    ref: np.ndarray,
    *,
    compute_permutation: bool = True,
    backend: SdrBackend = "fast",
    prepared: BssEval | None = None,
) -> tuple[np.ndarray, tuple[int, ...]]:
    """BSS Eval v3 SDR per reference: ``est, ref [J, L] -> (sdr [J], perm)``.

    ``perm`` is mir_eval's (best mean SIR): ``est[perm[j]]`` matched to ``ref[j]``. ``prepared``
    (from :func:`prepare_references` on the same ``ref``) saves the fast backend's set-up.
    """
    est, ref = _check_pair(est, ref)
    if check_sdr_backend(backend) == "fast":
        if prepared is None or not np.array_equal(prepared.ref, ref):
            prepared = prepare_references(ref)
        try:
            sdr, _, perm = bss_eval_sources(est, ref, compute_permutation=compute_permutation, prepared=prepared)
        except BssEvalError as exc:
            raise MetricError(str(exc)) from None
        return sdr, perm
    separation = _mir_eval_separation()
    with warnings.catch_warnings(), _single_blas_thread():
        warnings.simplefilter("ignore", FutureWarning)  # bss_eval_sources is deprecated in 0.8
        try:
            sdr, _, _, mperm = separation.bss_eval_sources(ref, est, compute_permutation=compute_permutation)
        except ValueError as exc:  # silent source, shape
            raise MetricError(str(exc).split(". ")[0]) from None
    return np.asarray(sdr, dtype=np.float64), tuple(int(i) for i in mperm)


def mixture_baseline(
    mix: np.ndarray, ref: np.ndarray, *, with_sdr: bool = True, sdr_backend: SdrBackend = "fast"
) -> Baseline:
    """Scores of the mixture ``[L]`` used as the estimate of each reference ``[J, L]``."""
    ref = _as_sources(ref, "reference")
    mix = np.asarray(mix, dtype=np.float64).reshape(-1)
    if mix.shape[0] != ref.shape[1]:
        raise MetricError(f"mixture has {mix.shape[0]} samples, references {ref.shape[1]}")
    est = np.broadcast_to(mix, ref.shape).copy()
    snr, _ = si_snr(est, ref)
    sdr = None
    prepared = None
    if with_sdr:
        prepared = prepare_references(ref) if check_sdr_backend(sdr_backend) == "fast" else None
        # identical estimates: every permutation scores the same, skip the J x J search
        values, _ = bss_sdr(est, ref, compute_permutation=False, backend=sdr_backend, prepared=prepared)
        sdr = float(values.mean())
    return Baseline(si_snr=float(snr.mean()), sdr=sdr, prepared=prepared)


def score(
    est: np.ndarray, ref: np.ndarray, baseline: Baseline, *, with_sdr: bool = True, sdr_backend: SdrBackend = "fast"
) -> Scores:
    """Score an estimate ``[J, L]`` against references ``[J, L]`` given the mixture's baseline."""
    snr, perm = si_snr(est, ref)
    sdr = sdri = None
    if with_sdr:
        values, _ = bss_sdr(est, ref, backend=sdr_backend, prepared=baseline.prepared)
        sdr = float(values.mean())
        sdri = sdr - baseline.sdr if baseline.sdr is not None else None
    return Scores(si_snr=float(snr.mean()), si_snri=float(snr.mean()) - baseline.si_snr, sdr=sdr, sdri=sdri, perm=perm)


def band_above(x: np.ndarray, rate: int, model_rate: int) -> np.ndarray:
    """``x [C, L]`` at ``rate`` less its part in the model's band (resampled to ``model_rate`` and
    back): the band above the model's Nyquist, as scored on its own."""
    x = np.asarray(x, np.float64)
    down = audio.resample(np.ascontiguousarray(x.T), rate, model_rate)
    back = np.asarray(audio.resample(down, model_rate, rate), np.float64).reshape(-1, x.shape[0]).T[:, : x.shape[1]]
    return x - np.pad(back, ((0, 0), (0, x.shape[1] - back.shape[1])))
