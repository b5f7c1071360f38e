"""Adaptive depth: stop the reconstruction loop once successive outputs stop changing."""

from __future__ import annotations

from torch import Tensor

from ..model.network import TISDiSS
from ..util.sisnr import neg_si_snr


def separate_adaptive(
    model: TISDiSS,
    mix: Tensor,
    *,
    n_sep: int | None = None,
    max_n_re: int | None = None,
    threshold_db: float = 30.0,
) -> tuple[Tensor, int]:
    """mix: [B, L] -> (wave [B, J, L], n_re used), never deeper than ``max_n_re``.

    After each reconstruction step k >= 1, stop when the SI-SNR of output k against output
    k-1 exceeds ``threshold_db`` for every row and speaker (the step changed almost nothing).
    """
    previous: Tensor | None = None
    deepest: tuple[Tensor, int] = (mix.new_zeros(0), 0)
    for depth, wave in model.iter_depths(mix, n_sep=n_sep, max_n_re=max_n_re):
        if previous is not None and converged(wave, previous, threshold_db):
            return wave, depth
        previous, deepest = wave, (wave, depth)
    return deepest


def converged(wave: Tensor, previous: Tensor, threshold_db: float) -> bool:
    """The stopping rule: output k agrees with output k-1 above the threshold everywhere.
    SI-SNR is bounded at 70 dB (as in the loss), so a threshold of 70 or more never stops."""
    return bool((-neg_si_snr(wave, previous) > threshold_db).all())
