"""What :meth:`Separator.separate` accepts as a waveform, checked before any work.

Accepted: a numpy array, a torch tensor or a sequence of numbers, shaped

- ``[L]``: mono;
- ``[C, L]``: channels first, 1 <= C <= :data:`MAX_CHANNELS` and C < L; the channels are averaged.

Anything else is rejected with a ``ValueError`` that names the shape, never reinterpreted. In
particular soundfile's ``[L, C]`` (``sf.read`` of a multi-channel file) is refused with a hint to
pass ``wave.T``: telling ``[L, C]`` from ``[C, L]`` by the sizes alone would be a guess, and a
wrong guess separates a few samples of noise without a word.

Samples: float (16, 32 or 64 bit) at full scale 1.0; integer PCM (int8, int16, int32, and
unsigned 8-bit, centred on 128 as 8-bit WAV stores it) is scaled to full scale as soundfile reads
it (int16 / 32768). Other dtypes (int64, bool, complex, objects) are refused. The caller's array
is never modified. Streams (:meth:`Separator.stream`) take the same samples, block by block.

The sample rate is a positive whole number of Hz (an int, or a float such as ``16e3`` that is
one), as every file, device and stream has: a fractional rate is refused rather than guessed at.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

MAX_CHANNELS = 64  # more rows than this is a batch of recordings or a transposed [L, C] array

PCM_FULL_SCALE = {1: 2.0**7, 2: 2.0**15, 4: 2.0**31}  # signed PCM by bytes per sample


def _to_numpy(wave: Any) -> np.ndarray:
    if isinstance(wave, torch.Tensor):
        t = wave.detach().cpu()
        if t.is_complex():
            raise ValueError("complex samples: pass a real-valued waveform")
        if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
            t = t.float()  # float16 / bfloat16 have no (or no exact) numpy counterpart
        return t.numpy()
    try:
        return np.asarray(wave)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a waveform ({exc})") from None


def _shape_error(shape: tuple[int, ...], what: str) -> ValueError:
    return ValueError(f"waveform of shape {shape}: {what}; expected [samples] (mono) or [channels, samples]")


def samples_to_float32(x: np.ndarray) -> np.ndarray:
    """A new float32 array of ``x``'s samples at full scale 1.0 (see the module docstring), or a
    ``ValueError`` naming a dtype that is not audio."""
    kind = x.dtype.kind
    if kind == "f":
        return x.astype(np.float32)  # always a copy: the caller's array is never touched
    if kind == "i" and x.dtype.itemsize in PCM_FULL_SCALE:
        return (x.astype(np.float64) / PCM_FULL_SCALE[x.dtype.itemsize]).astype(np.float32)
    if kind == "u" and x.dtype.itemsize == 1:  # 8-bit WAV PCM is unsigned, centred on 128
        return ((x.astype(np.float64) - 128.0) / 128.0).astype(np.float32)
    if kind == "c":
        raise ValueError("complex samples: pass a real-valued waveform")
    raise ValueError(
        f"samples of type {x.dtype}: pass float samples (full scale 1.0), int8/int16/int32 PCM or uint8 (8-bit WAV) PCM"
    )


def as_mono_float32(wave: Any) -> np.ndarray:
    """A new float32 ``[L]`` array: ``wave`` checked, scaled and downmixed (see the module docstring)."""
    x = _to_numpy(wave)
    shape = tuple(int(n) for n in x.shape)
    if x.ndim == 2:
        channels, samples = shape
        if channels > 1 and channels >= samples and samples > 0:
            raise _shape_error(
                shape,
                "more channels than samples, which looks like soundfile's [samples, channels] layout "
                "(pass wave.T, or wave[:, 0] for a single channel)",
            )
        if channels > MAX_CHANNELS:
            raise _shape_error(
                shape, f"{channels} channels (at most {MAX_CHANNELS}); separate several recordings one call each"
            )
        if channels == 0:
            raise _shape_error(shape, "no channels")
    elif x.ndim != 1:
        raise _shape_error(shape, f"{x.ndim} dimensions")

    y = samples_to_float32(x)
    if y.ndim == 2:
        y = y.mean(axis=0, dtype=np.float32)
    return np.ascontiguousarray(y)  # NaN and Inf are refused by the engine (audio.check_finite)


def check_sample_rate(sample_rate: Any) -> int:
    """``sample_rate`` as a positive whole number of Hz (see the module docstring), else a ``ValueError``."""
    number = not isinstance(sample_rate, bool) and isinstance(sample_rate, (int, float, np.integer, np.floating))
    if not number or not np.isfinite(sample_rate) or sample_rate <= 0 or sample_rate != int(sample_rate):
        raise ValueError(f"sample_rate must be a positive whole number of Hz, not {sample_rate!r}")
    return int(sample_rate)
