"""tisdiss: split a recording of overlapping talkers into one track per speaker.

Implements TISDiSS (arXiv 2509.15666), whose shared Separator and Reconstructor blocks run
shallower or deeper at inference with the same weights.
"""

from ._compat import install as _install_moved_modules
from .model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .model.config import ARCHITECTURES, ModelConfig
from .model.espnet import load_espnet
from .model.network import TISDiSS
from .separation.separator import Separator
from .util.version import __version__

_install_moved_modules()

__all__ = [
    "ARCHITECTURES",
    "CheckpointError",
    "ModelConfig",
    "Separator",
    "TISDiSS",
    "__version__",
    "load_checkpoint",
    "load_espnet",
    "save_checkpoint",
]


def __getattr__(name: str) -> object:
    """``tisdiss_cli.PRESETS``, the old name of :data:`ARCHITECTURES`, with a warning."""
    if name == "PRESETS":
        from .model import config

        return config.PRESETS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
