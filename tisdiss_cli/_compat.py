"""The module paths of tisdiss before the layer folders (``tisdiss_cli.registry``, ...) and before
the audio and export layers (``tisdiss_cli.separation.audio``, ...).

Importing one still works and warns: it gives a stand-in module that looks names up in the
modules that now own them. New code imports from the layer packages.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence

# old module -> the modules (relative to tisdiss_cli) that hold its names now, searched in order
MOVED: dict[str, tuple[str, ...]] = {
    "adaptive": ("separation.adaptive",),
    "api": ("separation.separator", "util.device", "cli.inputs"),
    "bandsplit": ("model.bandsplit",),
    "bench": ("evaluation.bench", "util.timing"),
    "calibration": ("separation.calibration",),
    "checkpoint": ("model.checkpoint", "model.espnet"),
    "chunking": ("separation.chunking",),
    "config": ("model.config", "model.depth"),
    "data": ("training.data",),
    "download": ("zoo.download",),
    "evaluate": ("evaluation.evaluate",),
    "fileio": ("util.fileio",),
    "layers": ("model.layers",),
    "losses": ("training.losses", "util.sisnr"),
    "metrics": ("evaluation.metrics",),
    "network": ("model.network",),
    "registry": ("zoo.registry", "zoo.load", "model.depth"),
    "runtime": ("util.runtime",),
    "testset": ("evaluation.testset",),
    "train": ("training.loop", "training.config", "training.schedule", "training.state", "util.device"),
    "separation.audio": ("audio.files",),
    "separation.decode": ("audio.ffmpeg",),
    "separation.wavstream": ("audio.pcm",),
    "separation.waveform": ("audio.arrays",),
    "separation.export": ("export.onnx",),
}
_PACKAGE = __name__.rpartition(".")[0]


class _MovedModule(types.ModuleType):
    """Looks attributes up in the modules that own them now."""

    def __init__(self, name: str, owners: Sequence[types.ModuleType]) -> None:
        super().__init__(name, f"Moved: use {', '.join(m.__name__ for m in owners)}.")
        self._owners = tuple(owners)

    def __getattr__(self, attr: str) -> object:
        for owner in self._owners:
            try:
                return getattr(owner, attr)
            except AttributeError:
                continue
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")

    def __dir__(self) -> list[str]:
        return sorted({name for owner in self._owners for name in dir(owner)})


class _MovedLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        old = spec.name.removeprefix(f"{_PACKAGE}.")
        owners = [importlib.import_module(f"{_PACKAGE}.{target}") for target in MOVED[old]]
        warnings.warn(
            f"{spec.name} is deprecated; import from {', '.join(m.__name__ for m in owners)}",
            DeprecationWarning,
            stacklevel=2,
        )
        return _MovedModule(spec.name, owners)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.removeprefix(f"{_PACKAGE}.") not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader())


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
