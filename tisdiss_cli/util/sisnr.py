"""SI-SNR, the one definition behind the training loss, adaptive depth and the metrics.

Scale-invariant SNR of zero-mean signals: ``10 log10(rho / (1 - rho))`` with ``rho`` the
squared cosine between estimate and reference. It comes in two forms, because the two users
need different things from the same quantity:

- :func:`neg_si_snr` (torch, differentiable) bounds the value at +-70 dB as the reference
  recipe's loss does, so a perfect estimate gives a finite gradient; the training loss and
  adaptive depth's stopping rule use it;
- :func:`pairwise_si_snr` (numpy, float64, unbounded) gives the exact values behind the
  paper's tables; the metrics use it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_TINY = np.finfo(np.float64).tiny  # keeps log10 finite for a perfect estimate, nothing more


def neg_si_snr(est: Tensor, ref: Tensor, clamp_db: float = 70.0) -> Tensor:
    """Negative SI-SNR in dB, bounded to [-clamp_db, clamp_db]; est, ref: [..., L] -> [...].

    Zero-mean, unit-normalised signals; the squared correlation is clamped so a perfect
    estimate gives -clamp_db rather than -inf (as the reference recipe does).
    """
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    est = est / est.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    ref = ref / ref.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    rho = (est * ref).sum(-1).pow(2)
    bound = 10 ** (-clamp_db / 10)
    bound = bound / (1 + bound)
    rho = rho.clamp(bound, 1 - bound)
    return 10 * torch.log10((1 - rho) / rho)


def pairwise_si_snr(est: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """SI-SNR in dB of every estimate against every reference: ``[J, L], [K, L] -> [J, K]``
    (float64 arrays of equal length)."""
    est = est - est.mean(axis=-1, keepdims=True)
    ref = ref - ref.mean(axis=-1, keepdims=True)
    dot = est @ ref.T  # [J, K]
    ref_energy = np.sum(ref**2, axis=-1)  # [K]
    est_energy = np.sum(est**2, axis=-1)  # [J]
    alpha = dot / np.maximum(ref_energy, _TINY)[None, :]
    target = alpha**2 * ref_energy[None, :]
    # ||est - alpha ref||^2 = ||est||^2 - alpha^2 ||ref||^2; clip the rounding below zero
    noise = np.maximum(est_energy[:, None] - target, 0.0)
    return 10.0 * (np.log10(np.maximum(target, _TINY)) - np.log10(np.maximum(noise, _TINY)))
