"""An optional denoising front end: RNNoise (Xiph's recurrent noise suppressor) on the mixture.

RNNoise runs on 10-ms frames of 48 kHz mono audio at 16-bit scale; its model is compiled into
its library. The library comes from the ``pyrnnoise`` wheel (the ``denoise`` extra); only the
library is used, through ctypes, not that package's Python code (which needs more packages).

:class:`Denoiser` works as a stream: any rate in, the same rate out, sample for sample aligned
with the input (the resampling to 48 kHz and back keeps time, and RNNoise's own delay of
``RNNOISE_DELAY`` samples is dropped at the start and flushed at the end), so a recording fed
in blocks of any size gives the same output. Speech and noise are both in the mixture: the
network then separates the denoised mixture.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
from pathlib import Path

import numpy as np

from . import files as audio

RNNOISE_RATE = 48000
RNNOISE_FRAME = 480  # samples per call (10 ms)
RNNOISE_DELAY = 960  # samples by which RNNoise's output trails its input (measured: tests/audio/test_denoise.py)
PCM_SCALE = 32768.0  # RNNoise takes floats at 16-bit scale
LIBRARY_NAMES = ("librnnoise.so", "librnnoise.dylib", "rnnoise.dll")
INSTALL_HINT = "pip install 'tisdiss[denoise]'"


class DenoiseUnavailable(ImportError):
    """RNNoise's library is not installed (the ``denoise`` extra)."""


def library_path() -> Path:
    """RNNoise's shared library inside the installed ``pyrnnoise`` package (not imported)."""
    spec = importlib.util.find_spec("pyrnnoise")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        for name in LIBRARY_NAMES:
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    raise DenoiseUnavailable(f"--denoise needs RNNoise, which is not installed: {INSTALL_HINT}")


_LIBRARY: ctypes.CDLL | None = None


def rnnoise() -> ctypes.CDLL:
    """The loaded library, with its signatures declared (loaded once)."""
    global _LIBRARY
    if _LIBRARY is None:
        lib = ctypes.CDLL(str(library_path()))
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.restype = None
        floats = ctypes.POINTER(ctypes.c_float)
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, floats, floats]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        if lib.rnnoise_get_frame_size() != RNNOISE_FRAME:
            raise DenoiseUnavailable(
                f"{library_path()}: RNNoise frames of {lib.rnnoise_get_frame_size()} samples, expected {RNNOISE_FRAME}"
            )
        _LIBRARY = lib
    return _LIBRARY


def available() -> bool:
    """Whether :class:`Denoiser` can run here."""
    try:
        rnnoise()
    except (DenoiseUnavailable, OSError):
        return False
    return True


class Denoiser:
    """RNNoise on a mono stream at ``rate``: :meth:`push` blocks, then :meth:`flush`; the outputs
    together are as long as the inputs and aligned with them."""

    def __init__(self, rate: float) -> None:
        self.lib = rnnoise()
        self.rate = rate
        self._state = self.lib.rnnoise_create(None)
        self._up = audio.resample_stream(rate, RNNOISE_RATE, 1)
        self._down = audio.resample_stream(RNNOISE_RATE, rate, 1)
        self._frame_in = np.zeros(RNNOISE_FRAME, np.float32)
        self._frame_out = np.zeros(RNNOISE_FRAME, np.float32)
        self._pending = np.zeros(0, np.float32)  # 48 kHz samples short of a frame
        self._skip = RNNOISE_DELAY  # RNNoise's delay, still to drop
        self._fed = 0  # samples in at `rate`
        self._given = 0  # samples out at `rate`
        self._wide_in = 0  # samples in at 48 kHz
        self._wide_out = 0  # samples out of RNNoise, its delay dropped

    @property
    def latency_seconds(self) -> float:
        """RNNoise's delay and a frame (the resamplers' own come on top in a stream)."""
        return (RNNOISE_DELAY + RNNOISE_FRAME) / RNNOISE_RATE

    def push(self, x: np.ndarray) -> np.ndarray:
        """Mono float32 samples at ``rate`` in -> the denoised samples final so far."""
        if self._state is None:  # RNNoise's state is freed: a call on it would crash the process
            raise ValueError("the denoiser was flushed; make a new one")
        x = np.ascontiguousarray(x, np.float32)
        self._fed += len(x)
        wide = self._up.resample_chunk(x, last=False) if self._up is not None else x
        self._wide_in += len(wide)
        return self._out(self._frames(wide), last=False)

    def flush(self) -> np.ndarray:
        """The rest: the input's tail through the resampler and RNNoise's delay."""
        if self._state is None:
            raise ValueError("the denoiser was flushed already")
        empty = np.zeros(0, np.float32)
        tail = self._up.resample_chunk(empty, last=True) if self._up is not None else empty
        self._wide_in += len(tail)
        before = self._wide_out
        out = self._frames(np.concatenate((tail, np.zeros(RNNOISE_DELAY + RNNOISE_FRAME, np.float32))))
        out = out[: max(0, self._wide_in - before)]  # as many as came in at 48 kHz
        self.close()
        return self._out(out, last=True)

    def close(self) -> None:
        if self._state:
            self.lib.rnnoise_destroy(self._state)
            self._state = None

    def __del__(self) -> None:  # a stream abandoned half way
        with contextlib.suppress(Exception):  # at interpreter shutdown the library may be gone
            self.close()

    # -- internals
    def _frames(self, wide: np.ndarray) -> np.ndarray:
        """48 kHz samples in -> RNNoise's output for every whole frame, its delay dropped."""
        data = np.concatenate((self._pending, wide)) if len(self._pending) else wide
        whole = len(data) - len(data) % RNNOISE_FRAME
        self._pending = data[whole:]
        out = np.empty(whole, np.float32)
        pin = self._frame_in.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        pout = self._frame_out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        for start in range(0, whole, RNNOISE_FRAME):
            self._frame_in[:] = data[start : start + RNNOISE_FRAME] * PCM_SCALE
            self.lib.rnnoise_process_frame(self._state, pout, pin)
            out[start : start + RNNOISE_FRAME] = self._frame_out / PCM_SCALE
        drop = min(self._skip, len(out))
        self._skip -= drop
        self._wide_out += len(out) - drop
        return out[drop:]

    def _out(self, wide: np.ndarray, *, last: bool) -> np.ndarray:
        """Denoised 48 kHz samples -> samples at ``rate``, never more than came in; at the end
        exactly as many (a last sample or two of resampling rounding padded with zeros)."""
        y = self._down.resample_chunk(wide, last=last) if self._down is not None else wide
        y = y[: max(0, self._fed - self._given)]
        if last and self._given + len(y) < self._fed:
            y = np.concatenate((y, np.zeros(self._fed - self._given - len(y), np.float32)))
        self._given += len(y)
        return np.ascontiguousarray(y, np.float32)


def denoised(x: np.ndarray, rate: float) -> np.ndarray:
    """A whole mono signal through RNNoise: the same length, aligned with ``x``."""
    d = Denoiser(rate)
    return np.concatenate((d.push(x), d.flush()))
