"""Crash-safe training state: ``checkpoints/last.pt``, everything a run needs to resume exactly.

The file is a torch pickle of plain containers and tensors only, read with
``weights_only=True``: no tisdiss class is pickled, so moving or renaming modules never
breaks a run folder. Its keys::

    model, optimizer     state dicts
    plateau              the Plateau fields, as a dict
    step, epoch          optimiser steps taken; the current epoch
    batch_in_epoch       batches of that epoch already consumed
    skipped              steps skipped for a non-finite loss or gradient
    best                 [(valid loss, epoch)] of the kept epoch checkpoints
    train_seconds        wall time of the run over all invocations (absent in early runs)
    cpu_seconds          CPU time of the training process over all invocations (absent in runs saved before it was kept)
    rng                  {"python": random.getstate(), "torch": torch.get_rng_state()}
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..util.fileio import atomic_write
from .schedule import Plateau


@dataclass
class TrainState:
    """Where a run is: what ``last.pt`` holds besides the weights, optimiser and RNG."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    skipped: int = 0
    best: list[tuple[float, int]] = field(default_factory=list)
    plateau: Plateau = field(default_factory=Plateau)
    train_seconds: float = 0.0  # at the last save (or resume)
    cpu_seconds: float = 0.0  # the same, in CPU time of the training process


def save_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainState) -> None:
    """Write ``last.pt`` atomically: a crash leaves the previous one intact."""
    data = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "plateau": dataclasses.asdict(state.plateau),
        "step": state.step,
        "epoch": state.epoch,
        "batch_in_epoch": state.batch_in_epoch,
        "skipped": state.skipped,
        "best": state.best,
        "train_seconds": state.train_seconds,
        "cpu_seconds": state.cpu_seconds,
        # Data are a pure function of (seed, epoch, index); these cover anything else random.
        "rng": {"python": random.getstate(), "torch": torch.get_rng_state()},
    }
    atomic_write(path, lambda tmp: torch.save(data, tmp))


def load_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> TrainState:
    """Restore the weights, optimiser and RNG from ``last.pt``; returns the run's position."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: nothing to resume")
    data: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(data["model"])
    optimizer.load_state_dict(data["optimizer"])
    random.setstate(data["rng"]["python"])
    torch.set_rng_state(data["rng"]["torch"])
    return TrainState(
        step=data["step"],
        epoch=data["epoch"],
        batch_in_epoch=data["batch_in_epoch"],
        skipped=data["skipped"],
        best=[(float(loss), int(epoch)) for loss, epoch in data["best"]],
        plateau=Plateau(**data["plateau"]),
        train_seconds=float(data.get("train_seconds", 0.0)),
        cpu_seconds=float(data.get("cpu_seconds", 0.0)),
    )
