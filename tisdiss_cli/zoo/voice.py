"""The voice encoder's weights: Resemblyzer's pretrained GE2E encoder, from its installed wheel.

The ``resemblyzer`` package (Apache-2.0, a dependency of tisdiss) ships ``pretrained.pt`` inside
its wheel, so the encoder works offline like the bundled separator. Only that file is read: the
package itself is never imported (its VAD dependency fails to import with current setuptools).
The file is checked against the size and SHA-256 recorded here before it is loaded, with
``weights_only=True``. Card: ``models/cards/voice-ge2e.md``.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import torch

from ..model.voice import VoiceEncoder
from .download import sha256_file
from .registry import ModelError

PACKAGE = "resemblyzer"
FILENAME = "pretrained.pt"
SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"
SIZE = 17090379
UNUSED_KEYS = ("similarity_weight", "similarity_bias")  # GE2E's training loss, not the encoder


def weights_path() -> Path:
    """Where the installed wheel keeps the weights; a ``ModelError`` saying how to install it."""
    spec = importlib.util.find_spec(PACKAGE)  # finds the package without running its __init__
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / FILENAME
        if path.is_file():
            return path
    raise ModelError(f"the voice encoder needs the {PACKAGE} package: pip install {PACKAGE}")


@functools.lru_cache(maxsize=1)
def load_voice_encoder() -> VoiceEncoder:
    """The pretrained encoder in eval mode on the CPU (loaded once per process)."""
    path = weights_path()
    if path.stat().st_size != SIZE or sha256_file(path) != SHA256:
        raise ModelError(f"{path}: not the voice encoder weights tisdiss was tested with; reinstall {PACKAGE}")
    state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
    encoder = VoiceEncoder()
    encoder.load_state_dict({k: v for k, v in state.items() if k not in UNUSED_KEYS})
    return encoder.eval()
