"""BSS Eval v3 source metrics (SDR, SIR), vectorised: the definition of mir_eval's
``bss_eval_sources`` without its per-pair loops.

An estimate ``e`` is decomposed with time-invariant FIR filters of ``filter_len`` taps
(512, as mir_eval and the BSS Eval toolbox): ``P_k e`` is its least-squares projection on the
delayed copies of reference ``k``, ``P e`` the projection on the delayed copies of all
references. With signals zero-padded to ``L + filter_len - 1`` samples::

    SDR = ||P_k e||^2 / ||e - P_k e||^2        SIR = ||P_k e||^2 / ||P e - P_k e||^2

The normal equations of either projection depend on the references only: their Gram
matrices (block-Toeplitz, filled from FFT cross-correlations) are factorised once in
:class:`BssEval` and reused for every estimate of the utterance (each depth and the mixture),
where mir_eval rebuilds and solves them for every (estimate, reference) pair. The
projections themselves are filtered back explicitly rather than taken from the quadratic
form, so a near-perfect estimate keeps mir_eval's precision. Float64 throughout.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch

FILTER_LEN = 512  # taps of the distortion filter (bss_eval_sources v3 / v4)

Solver = Callable[[np.ndarray], np.ndarray]  # right-hand sides [N, M] -> solutions [N, M]


class BssEvalError(ValueError):
    """Signals that cannot be scored (shapes, a silent source)."""


def _silent(x: np.ndarray) -> np.ndarray:
    """Which rows are all zeros (mir_eval's test: such a source makes the problem ambiguous)."""
    return np.all(x == 0, axis=-1)


def _factorise(gram: np.ndarray) -> Solver:
    """A solver for ``gram @ c = d``: Cholesky (a Gram matrix is positive semi-definite), LU when
    rounding makes it indefinite, least squares when it is singular (mir_eval's fallback)."""
    g = torch.from_numpy(gram)
    chol, info = torch.linalg.cholesky_ex(g)
    if int(info) == 0:
        upper = chol.mT  # two triangular solves: several times faster than cholesky_solve here

        def solve(d: np.ndarray) -> np.ndarray:
            half = torch.linalg.solve_triangular(chol, torch.from_numpy(d), upper=False)
            return torch.linalg.solve_triangular(upper, half, upper=True).numpy()

        return solve
    lu, pivots, info = torch.linalg.lu_factor_ex(g)
    if int(info) == 0:
        return lambda d: torch.linalg.lu_solve(lu, pivots, torch.from_numpy(d)).numpy()
    return lambda d: np.linalg.lstsq(gram, d, rcond=None)[0]


class BssEval:
    """References ``[K, L]`` prepared for scoring any number of estimates ``[J, L]`` against them."""

    def __init__(self, ref: np.ndarray, *, filter_len: int = FILTER_LEN) -> None:
        ref = np.asarray(ref, dtype=np.float64)
        if ref.ndim == 1:
            ref = ref[None]
        if ref.ndim != 2 or ref.shape[1] == 0:
            raise BssEvalError(f"references must be [K, L] with L > 0, got shape {ref.shape}")
        if np.any(_silent(ref)):
            raise BssEvalError(f"reference {int(np.argmax(_silent(ref))) + 1} is silent (all zeros)")
        self.ref = ref
        self.filter_len = f = filter_len
        k, length = ref.shape
        self.out_len = length + f - 1  # length of the zero-padded signals and projections
        # any FFT size >= out_len makes the circular correlations at lags |t| < f linear ones
        self.n_fft = 1 << (self.out_len - 1).bit_length()
        self.spec = np.fft.rfft(ref, n=self.n_fft)  # [K, F]
        # xcorr[i, j, t] = sum_m ref_i[m] ref_j[m + t] (negative t wrapped around)
        xcorr = np.fft.irfft(self.spec.conj()[:, None] * self.spec[None], n=self.n_fft)
        lag = (np.arange(f)[:, None] - np.arange(f)[None, :]) % self.n_fft
        # gram[(i, a), (j, b)] = <ref_i delayed by a, ref_j delayed by b> = xcorr[i, j, a - b]
        blocks = xcorr[:, :, lag]  # [K, K, f, f]
        gram = np.ascontiguousarray(blocks.transpose(0, 2, 1, 3).reshape(k * f, k * f))
        self._solve_all = _factorise(gram)
        self._solve_one = [_factorise(np.ascontiguousarray(blocks[i, i])) for i in range(k)]

    @property
    def num_refs(self) -> int:
        return self.ref.shape[0]

    def _filtered(self, coef: np.ndarray, refs: slice | int) -> np.ndarray:
        """Sum over references of ``coef [K', f, J]`` convolved with them -> ``[J, out_len]``."""
        coef_spec = np.fft.rfft(coef, n=self.n_fft, axis=1)  # [K', F, J]
        spec = self.spec[refs].reshape(-1, self.spec.shape[-1])  # [K', F]
        total = np.einsum("kfj,kf->jf", coef_spec, spec)
        return np.fft.irfft(total, n=self.n_fft, axis=-1)[:, : self.out_len]

    def sdr_sir(self, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SDR and SIR in dB of every estimate against every reference: ``[J, L] -> ([J, K], [J, K])``."""
        est = np.asarray(est, dtype=np.float64)
        if est.ndim == 1:
            est = est[None]
        if est.ndim != 2 or est.shape[1] != self.ref.shape[1]:
            raise BssEvalError(f"estimate shape {est.shape} does not match reference shape {self.ref.shape}")
        if np.any(_silent(est)):
            raise BssEvalError(f"estimate {int(np.argmax(_silent(est))) + 1} is silent (all zeros)")
        j, f, k = est.shape[0], self.filter_len, self.num_refs
        est_spec = np.fft.rfft(est, n=self.n_fft)  # [J, F]
        # corr[j, i, a] = <ref_i delayed by a, est_j>
        corr = np.fft.irfft(self.spec.conj()[None] * est_spec[:, None], n=self.n_fft)[..., :f]
        coef_all = self._solve_all(np.ascontiguousarray(corr.reshape(j, k * f).T)).reshape(k, f, j)
        proj_all = self._filtered(coef_all, slice(None))  # [J, out_len]
        padded = np.zeros((j, self.out_len))
        padded[:, : est.shape[1]] = est
        sdr = np.empty((j, k))
        sir = np.empty((j, k))
        for i in range(k):
            coef = self._solve_one[i](np.ascontiguousarray(corr[:, i, :].T))  # [f, J]
            target = self._filtered(coef[None], i)  # P_i e_j, [J, out_len]
            energy = np.sum(target**2, axis=-1)
            sdr[:, i] = _db(energy, np.sum((padded - target) ** 2, axis=-1))
            sir[:, i] = _db(energy, np.sum((proj_all - target) ** 2, axis=-1))
        return sdr, sir


def _db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """10 log10(num / den), +inf where den is exactly zero (as mir_eval); num is never zero here."""
    with np.errstate(divide="ignore"):
        return 10 * np.log10(num / den)


def bss_eval_sources(
    est: np.ndarray, ref: np.ndarray, *, compute_permutation: bool = True, prepared: BssEval | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """``est, ref [J, L] -> (sdr [J], sir [J], perm)`` as ``mir_eval.separation.bss_eval_sources``.

    ``perm`` maximises the mean SIR over all J! matchings (the first such one, as mir_eval):
    ``est[perm[j]]`` is matched to ``ref[j]``. Without ``compute_permutation`` estimate j is
    scored against reference j. ``prepared`` reuses the factorised references of ``ref``.
    """
    bss = prepared if prepared is not None else BssEval(ref)
    est = np.asarray(est, dtype=np.float64)
    if est.ndim == 1:
        est = est[None]
    if est.shape[0] != bss.num_refs:
        raise BssEvalError(f"{est.shape[0]} estimate(s) for {bss.num_refs} reference(s)")
    sdr, sir = bss.sdr_sir(est)  # [J_est, K_ref]
    cols = np.arange(bss.num_refs)
    if not compute_permutation:
        return sdr[cols, cols], sir[cols, cols], tuple(int(c) for c in cols)
    perms = list(itertools.permutations(range(bss.num_refs)))
    best = perms[int(np.argmax([sir[list(p), cols].mean() for p in perms]))]
    return sdr[list(best), cols], sir[list(best), cols], best
