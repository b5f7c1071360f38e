"""Model zoo: registry entries (data in ``models/``), resolution of a model spec to weights.

Contract used by the rest of the package (implementation in progress):

    load_model(spec=None, *, device="cpu") -> LoadedModel

``spec`` is a registry name, a tisdiss checkpoint path, an ESPnet experiment folder, or None
for the best available model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .network import TISDiSS

Preset = tuple[int, int]  # (n_sep, n_re)


@dataclass
class LoadedModel:
    """A ready-to-run model and what the zoo knows about it."""

    model: TISDiSS  # in eval mode, on the requested device
    name: str  # registry name, or the path it was loaded from
    presets: dict[str, Preset]  # "fast" / "balanced" / "best" -> (n_sep, n_re)
    card: dict[str, Any] = field(default_factory=dict)  # registry entry / checkpoint metadata
