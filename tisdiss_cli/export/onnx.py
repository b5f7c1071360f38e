"""ONNX export: a model at one depth as a waveform-to-waveform graph, checked with onnxruntime.

>>> result = export_onnx("tisdiss-small-8k", "small.onnx", preset="fast")   # doctest: +SKIP
>>> result.card["parity"]["relative_error"]                                  # doctest: +SKIP

The graph is :class:`~tisdiss_cli.model.realvalued.RealValuedTISDiSS` (no complex tensors; the
STFT and its inverse inside), traced by ``torch.onnx.export(dynamo=True)`` with a free time
axis: ``mixture [1, samples]`` float32 at the model's rate -> ``sources [1, J, samples]``, at
the network's own level (``tisdiss separate`` also rescales the sources to the mixture's energy
and chunks long inputs; see examples/onnx_separate.py).

Before anything is written, onnxruntime runs the written graph on a check input and its output
is compared with the PyTorch model's; an export whose error exceeds :data:`PARITY_TOLERANCE`
fails. The ``.onnx`` file and its JSON card (``<file>.json``) are each written atomically.
Needs the ``onnx`` extra: ``pip install 'tisdiss[onnx]'``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..model.realvalued import RealValuedTISDiSS
from ..separation.depth import choose_depth
from ..separation.separator import resolve_model
from ..util.fileio import atomic_write, atomic_write_text
from ..util.version import __version__

ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
ONNX_EXTRA = "pip install 'tisdiss[onnx]'"
OPSET = 18  # the dynamo exporter's own opset (>= 17); earlier ones would go through a converter
INPUT_NAME = "mixture"
OUTPUT_NAME = "sources"
# Largest accepted |onnxruntime - PyTorch| on the check input, relative to the PyTorch output's
# peak. Both run float32; errors measured on random-weight tiny models were 4e-6 .. 1.6e-5 of
# the peak (summation order, the DFT as a matrix product instead of an FFT): a margin of 6 or more.
PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """An export that cannot be made or failed its check; ``str()`` is one line."""


def missing_onnx_packages() -> list[str]:
    """The packages of the ``onnx`` extra that are not installed."""
    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]


def require_onnx() -> None:
    """Raise :class:`ExportError` naming the extra when one of its packages is missing."""
    missing = missing_onnx_packages()
    if missing:
        raise ExportError(f"ONNX export needs {' and '.join(missing)}: {ONNX_EXTRA}")


def card_path(path: str | os.PathLike[str]) -> Path:
    """Where the JSON card of an exported file goes: ``model.onnx`` -> ``model.onnx.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def check_signal(sample_rate: int, seconds: float = 2.5) -> np.ndarray:
    """A deterministic two-talker-like mixture ``[1, L]`` (harmonic voices with syllable-rate
    envelopes, a little noise); L is no multiple of any hop, so the check also covers a ragged end."""
    t = np.arange(int(seconds * sample_rate) + 37) / sample_rate
    mix = np.zeros_like(t)
    for f0, syllables, phase in ((118.0, 3.1, 0.0), (207.0, 4.3, 1.7)):
        voice = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
        mix += voice * (0.5 + 0.5 * np.sin(2 * np.pi * syllables * t + phase))
    mix += 0.05 * np.random.default_rng(0).standard_normal(len(t))
    return (0.03 * mix)[None].astype(np.float32)


@dataclass(frozen=True)
class Parity:
    """onnxruntime against PyTorch on one input."""

    max_abs_error: float
    reference_peak: float  # max |PyTorch output|
    samples: int

    @property
    def relative_error(self) -> float:
        return self.max_abs_error / self.reference_peak if self.reference_peak > 0 else self.max_abs_error


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote."""

    path: Path  # the .onnx file
    card_path: Path  # its JSON card
    card: dict[str, Any]
    parity: Parity | None  # None when the check was skipped


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter prints progress and warns about optional packages it does not need here."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _trace(graph: RealValuedTISDiSS) -> Any:
    """The ``torch.onnx.ONNXProgram`` of ``graph``: batch 1, time axis free."""
    config = graph.model.config
    example = torch.randn(1, 8 * config.n_fft + 3, generator=torch.Generator().manual_seed(0))
    # Batch 1: a free batch axis multiplied the exporter's time by ten or more (its symbolic
    # shape reasoning), for a graph that separates one recording at a time anyway.
    with _quiet_exporter(), torch.no_grad():
        try:
            return torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({1: torch.export.Dim.DYNAMIC},),
                verbose=False,
            )
        except Exception as exc:  # the exporter raises many kinds; report one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"the ONNX exporter failed: {first}") from exc


def run_onnx(path: str | os.PathLike[str], mixture: np.ndarray, *, threads: int = 1) -> np.ndarray:
    """Run an exported file with onnxruntime on the CPU: ``[1, L]`` float32 -> ``[1, J, L]``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(mixture, np.float32)})[0])


def export_onnx(
    model: object,
    path: str | os.PathLike[str],
    *,
    preset: str = "balanced",
    n_sep: int | None = None,
    n_re: int | None = None,
    check_input: np.ndarray | None = None,
    check: bool = True,
    overwrite: bool = False,
) -> ExportResult:
    """Export ``model`` (anything :class:`~.separator.Separator` accepts) at the preset's depth, or
    at ``n_sep`` / ``n_re`` where given, to ``path`` and its card (see the module docstring).

    check_input: the mixture ``[L]`` or ``[1, L]`` at the model's rate for the parity check
    (default: :func:`check_signal`); check=False skips it. Raises :class:`ExportError` (missing
    extra, exporter failure, failed check), ``FileExistsError`` (outputs exist, no overwrite),
    ``ValueError`` (unknown preset, bad depth, a check input too short or not finite), a zoo
    error for a model it cannot load, or ``WriteError``. The model passed in is not modified.
    """
    require_onnx()
    path = Path(path)
    card_file = card_path(path)
    existing = [p for p in (path, card_file) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]}: exists (pass overwrite=True to replace it)")
    loaded = resolve_model(model, torch.device("cpu"))
    depth = choose_depth(loaded, preset, n_sep, n_re).depth
    net = copy.deepcopy(loaded.model).float().eval()  # float32 on the CPU, the caller's model untouched
    config = net.config
    program = _trace(RealValuedTISDiSS(net, depth).eval())

    mixture = check_signal(config.sample_rate) if check_input is None else np.asarray(check_input, np.float32)
    mixture = mixture.reshape(1, -1)
    if check and not np.isfinite(mixture).all():
        raise ValueError("check input has NaN or Inf samples")
    if check and mixture.shape[1] <= config.n_fft // 2:
        raise ValueError(f"check input of {mixture.shape[1]} samples: need more than {config.n_fft // 2}")
    parity: list[Parity] = []

    def write(tmp: Path) -> None:
        program.save(tmp, external_data=False)
        if not check:
            return
        with torch.inference_mode():
            expected = net(torch.from_numpy(mixture), n_sep=depth.n_sep, n_re=depth.n_re).numpy()
        got = run_onnx(tmp, mixture, threads=torch.get_num_threads())
        if got.shape != expected.shape:
            raise ExportError(f"onnxruntime output shape {got.shape}, PyTorch {expected.shape}")
        result = Parity(float(np.abs(got - expected).max()), float(np.abs(expected).max()), mixture.shape[1])
        if not result.relative_error <= PARITY_TOLERANCE:
            raise ExportError(
                f"onnxruntime differs from PyTorch by {result.relative_error:.2e} of the output peak "
                f"(tolerance {PARITY_TOLERANCE:.0e}); nothing written"
            )
        parity.append(result)

    atomic_write(path, write)
    card = _card(loaded.name, loaded.card.sha256, config, depth, preset if (n_sep, n_re) == (None, None) else None)
    card["parity"] = None if not parity else _parity_card(parity[0])
    atomic_write_text(card_file, json.dumps(card, indent=2) + "\n")
    return ExportResult(path, card_file, card, parity[0] if parity else None)


def _parity_card(p: Parity) -> dict[str, Any]:
    import onnxruntime as ort

    return {
        "engine": f"onnxruntime {ort.__version__}, CPU, float32",
        "reference": f"PyTorch {torch.__version__}, float32",
        "samples": p.samples,
        "max_abs_error": p.max_abs_error,
        "reference_peak": p.reference_peak,
        "relative_error": p.relative_error,
        "tolerance": PARITY_TOLERANCE,
    }


def _card(name: str, sha256: str | None, config: Any, depth: Any, preset: str | None) -> dict[str, Any]:
    j = config.num_spk
    return {
        "format": "tisdiss-onnx/1",
        "model": name,
        "model_sha256": sha256,
        "tisdiss_version": __version__,
        "torch_version": torch.__version__,
        "opset": OPSET,
        "sample_rate": config.sample_rate,
        "num_spk": j,
        "depth": {"n_sep": depth.n_sep, "n_re": depth.n_re, "preset": preset},
        "stft": {
            "n_fft": config.n_fft,
            "hop_length": config.hop_length,
            "window": "hann, periodic",
            "center": True,
            "pad_mode": "reflect",
            "in_graph": True,
        },
        "inputs": [{"name": INPUT_NAME, "dtype": "float32", "shape": [1, "samples"]}],
        "outputs": [{"name": OUTPUT_NAME, "dtype": "float32", "shape": [1, j, "samples"]}],
        "min_samples": config.n_fft // 2 + 1,
        "level": "the network's own output level (tisdiss separate rescales the sources to the mixture's energy)",
    }
