"""What a finished job offers beside the engine's outputs: the mixture as a WAV for A/B listening,
its outputs in another format, a picture per track (waveform over spectrogram) and a zip of all.

All of them read and write through :mod:`tisdiss_cli.audio.files` (block by block, atomic).
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..audio import files as audio
from ..audio.files import OutputFormat

PICTURE_WIDTH = 720
WAVE_HEIGHT = 44
SPECTRUM_HEIGHT = 116
DB_RANGE = (-95.0, -15.0)  # dBFS mapped to the colour scale: the same for every track, so they compare
# A dark-to-bright scale (close to matplotlib's "magma"): stops at 0, 0.25, 0.5, 0.75, 1.
COLOURS = np.array(
    [[12, 10, 34], [70, 24, 110], [160, 45, 120], [240, 110, 80], [252, 236, 170]],
    dtype=np.float64,
)
WAVE_BACKGROUND = (246, 247, 251)
WAVE_COLOUR = (79, 70, 229)


def transcode(source: Path, target: Path, fmt: OutputFormat, *, channel: int | None = None) -> Path:
    """``source`` as a mono file of format ``fmt`` (channels averaged, or ``channel``), at its own rate
    unless the codec needs another (:func:`~tisdiss_cli.audio.files.codec_rate`)."""
    info = audio.probe(source)
    rate = audio.codec_rate(fmt, info.sample_rate)
    resampler = audio.resample_stream(info.sample_rate, rate, 1)
    length = audio.resampled_length(info.frames, info.sample_rate, rate)
    with audio.AtomicWriter(target, rate, length=length, fmt=fmt, overwrite=True) as writer:
        for block in audio.read_frames(info):
            mono = np.ascontiguousarray(audio.to_mono(block, channel))
            writer.write(mono if resampler is None else resampler.resample_chunk(mono, last=False))
        if resampler is not None:
            writer.write(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        return writer.commit()


def zip_files(paths: list[Path], names: list[str], target: Path) -> Path:
    """``paths`` stored (audio does not deflate) in one zip under ``names``; written to a part file first."""
    part = target.with_name(target.name + ".part")
    with zipfile.ZipFile(part, "w", zipfile.ZIP_STORED) as archive:
        for path, name in zip(paths, names, strict=True):
            archive.write(path, name)
    part.replace(target)
    return target


def picture(source: Path, target: Path, rate: int) -> Path:
    """A PNG of ``source``: its waveform (peaks per column) above its spectrogram (0 to rate/2,
    on a fixed dBFS scale), read at ``rate`` (the model's: what it hears)."""
    blocks = list(audio.read_blocks(source, rate))
    x = np.concatenate(blocks) if blocks else np.zeros(1, np.float32)
    image = np.concatenate((_waveform(x), _spectrogram(x, rate)), axis=0)
    part = target.with_name(target.name + ".part")
    part.write_bytes(png(image))
    part.replace(target)
    return target


def _waveform(x: np.ndarray) -> np.ndarray:
    edges = np.linspace(0, len(x), PICTURE_WIDTH + 1).astype(int)
    peaks = np.array([np.abs(x[a:b]).max() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=True)])
    peaks = peaks / max(float(peaks.max()), 1e-4)
    half = WAVE_HEIGHT / 2
    rows = np.abs(np.arange(WAVE_HEIGHT) + 0.5 - half)[:, None]  # distance from the centre line
    inside = rows <= np.maximum(peaks * (half - 2), 0.5)[None, :]
    image = np.empty((WAVE_HEIGHT, PICTURE_WIDTH, 3), np.uint8)
    image[:] = WAVE_BACKGROUND
    image[inside] = WAVE_COLOUR
    return image


def _spectrogram(x: np.ndarray, rate: int) -> np.ndarray:
    n_fft = 1 << max(6, int(np.ceil(np.log2(0.032 * rate))))  # about 32 ms
    window = np.hanning(n_fft).astype(np.float32)
    padded = np.pad(x.astype(np.float32), (n_fft // 2, n_fft // 2))
    starts = np.linspace(0, len(padded) - n_fft, PICTURE_WIDTH).astype(int)
    frames = np.stack([padded[s : s + n_fft] for s in starts]) * window
    magnitude = np.abs(np.fft.rfft(frames, axis=1)) / (window.sum() / 2)  # a full-scale sine: 0 dB
    db = 20 * np.log10(np.maximum(magnitude, 1e-12))
    level = np.clip((db - DB_RANGE[0]) / (DB_RANGE[1] - DB_RANGE[0]), 0.0, 1.0)  # [columns, bins]
    bins = np.linspace(level.shape[1] - 1, 0, SPECTRUM_HEIGHT)  # top row: the highest frequency
    rows = np.stack([np.interp(bins, np.arange(level.shape[1]), column) for column in level], axis=1)
    return _colour(rows)


def _colour(level: np.ndarray) -> np.ndarray:
    position = level * (len(COLOURS) - 1)
    low = np.clip(np.floor(position).astype(int), 0, len(COLOURS) - 2)
    frac = (position - low)[..., None]
    return np.round(COLOURS[low] * (1 - frac) + COLOURS[low + 1] * frac).astype(np.uint8)


def png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` ``[height, width, 3]`` (uint8)."""
    height, width, _ = rgb.shape
    rows = np.concatenate((np.zeros((height, 1), np.uint8), rgb.reshape(height, width * 3)), axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
