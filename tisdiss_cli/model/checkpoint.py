"""Checkpoints in the tisdiss format: safetensors with a JSON header (ESPnet import: :mod:`.espnet`).

A tisdiss checkpoint is one ``.safetensors`` file whose header metadata holds the model
config and free-form metadata as JSON; no pickled classes, so loading never runs code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from ..util.fileio import atomic_write
from .config import ModelConfig
from .network import TISDiSS

FORMAT = "tisdiss/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: the message names the file or key at fault."""


# --------------------------------------------------------------------------- tisdiss format


def save_checkpoint(model: TISDiSS, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``{config, state_dict, metadata}`` atomically as safetensors."""
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    header = {
        "format": FORMAT,
        "config": json.dumps(model.config.to_dict()),
        "metadata": json.dumps(dict(metadata or {})),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def read_checkpoint(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Tensor], dict[str, Any]]:
    """Read a tisdiss checkpoint: (config, state_dict, metadata)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            names = f.keys()  # a safetensors handle, not a dict
            state = {k: f.get_tensor(k) for k in names}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a tisdiss checkpoint (format {header.get('format')!r})")
    try:
        config = ModelConfig.from_dict(json.loads(header["config"]))
        metadata = json.loads(header.get("metadata", "{}"))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: bad config in header ({exc})") from None
    return config, state, metadata


def read_model(path: str | os.PathLike[str]) -> tuple[TISDiSS, dict[str, Any]]:
    """The model of a tisdiss checkpoint (CPU, eval mode) and its metadata, reading the file once."""
    config, state, metadata = read_checkpoint(path)
    model = TISDiSS(config)
    load_state_strict(model, state, source=str(path))
    return model.eval(), metadata


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> TISDiSS:
    """Build the model from a tisdiss checkpoint, in eval mode."""
    model, _ = read_model(path)
    return model.to(map_location).eval()


def load_state_strict(model: TISDiSS, state: Mapping[str, Tensor], source: str = "state dict") -> None:
    """load_state_dict that reports the first missing/unexpected key or shape mismatch by name."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing:
        raise CheckpointError(
            f"{source}: missing key {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    if unexpected:
        raise CheckpointError(
            f"{source}: unexpected key {unexpected[0]!r}"
            + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"{source}: shape mismatch for {k!r}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}"
            )
    model.load_state_dict(state, strict=True)
