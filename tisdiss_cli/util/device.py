"""Which torch device a run uses."""

from __future__ import annotations

import os

import torch


def parse_device(device: str | torch.device) -> torch.device | None:
    """``device`` as a torch device (None for ``auto``) without checking it is there; a
    ``ValueError`` naming it for anything torch does not know (``--device bogus``)."""
    if str(device) == "auto":
        return None
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {str(device)!r}: use auto, cpu, cuda, cuda:N or mps") from None


def pick_device(device: str | torch.device = "auto", *, mps: bool = True) -> torch.device:
    """``auto``: CUDA (the GPU of this torchrun rank), then MPS, then CPU; anything else is
    passed to ``torch.device`` after checking that CUDA or MPS is there when named.

    ``mps=False`` leaves MPS out of ``auto`` (training: MPS has no float64 and no DDP backend).
    """
    dev = parse_device(device)
    if dev is not None:
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r} requested but MPS is not available")
        return dev
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device(f"cuda:{local % torch.cuda.device_count()}")
    if mps and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
