"""Real media files made with PyAV for the decode tests: audio in m4a, mp4, mkv, webm, ... (tests skip without it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass(frozen=True)
class Container:
    """How to make one kind of file: its suffix, audio encoder, rate, and what else goes in."""

    suffix: str
    encoders: tuple[str, ...]  # the first PyAV has is used (FFmpeg builds name some differently)
    rate: int
    video: str | None = None  # a video encoder: a silent black picture track beside the audio
    muxer: str | None = None  # when FFmpeg cannot tell the container from the suffix
    bit_rate: int | None = None
    mono_only: bool = False
    waveform: bool = True  # False: a speech codec (CELP) that keeps the spectrum but not the waveform
    slack: int = 0  # how many samples the decoded length may differ by: codec delay or padding it does not record


CONTAINERS = {
    "m4a-aac": Container(".m4a", ("aac",), 16000),
    "mp4-video-aac": Container(".mp4", ("aac",), 44100, video="mpeg4"),
    "mov-video-aac": Container(".mov", ("aac",), 22050, video="mpeg4"),
    "mkv-aac": Container(".mkv", ("aac",), 16000, slack=1024),
    "webm-opus": Container(".webm", ("libopus", "opus"), 48000),
    "webm-video-opus": Container(".webm", ("libopus", "opus"), 48000, video="libvpx"),
    "ogg-opus": Container(".opus", ("libopus", "opus"), 48000),
    "wma": Container(".wma", ("wmav2",), 16000, muxer="asf", bit_rate=64000, slack=512),
    "amr-nb": Container(".amr", ("libopencore_amrnb", "amr_nb"), 8000, mono_only=True, slack=160, waveform=False),
}


def av_or_skip():  # type: ignore[no-untyped-def]
    return pytest.importorskip("av", reason="PyAV not installed: pip install 'tisdiss[av]'")


def encoder(names: tuple[str, ...]) -> str:
    """The first of ``names`` that this PyAV can encode with; skips the test when none."""
    av = av_or_skip()
    for name in names:
        try:
            av.Codec(name, "w")
        except Exception:  # UnknownCodecError, or a decoder-only build
            continue
        return name
    pytest.skip(f"this PyAV's FFmpeg has no encoder for {'/'.join(names)}")


def voiced(seconds: float, rate: int, channels: int = 1, f0: float = 140.0) -> np.ndarray:
    """A speech-like harmonic signal, ``[n, channels]`` float32 (channels at different pitches)."""
    t = np.arange(int(seconds * rate)) / rate
    cols = []
    for c in range(channels):
        f = f0 * (1 + 0.5 * c)
        env = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t + c)
        cols.append(0.3 * env * sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, 5)))
    return np.stack(cols, axis=1).astype(np.float32)


def write_media(path: Path, streams: list[np.ndarray], spec: Container, *, faststart: bool = False) -> Path:
    """Encode each ``[n, channels]`` array as one audio stream of ``path`` (PyAV), plus the spec's video."""
    av = av_or_skip()
    name = encoder(spec.encoders)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=spec.muxer, options=options) as out:
        video = None
        if spec.video is not None:
            video = out.add_stream(encoder((spec.video,)), rate=10)
            video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = []
        for wave in streams:
            layout = "mono" if wave.shape[1] == 1 else "stereo"
            s = out.add_stream(name, rate=spec.rate, layout=layout)
            if spec.bit_rate:
                s.codec_context.bit_rate = spec.bit_rate
            s.codec_context.format = s.codec_context.codec.audio_formats[0].name
            audio.append((s, wave, layout))
        for s, wave, layout in audio:
            fmt = s.codec_context.format
            size = s.codec_context.frame_size or 1024
            for start in range(0, len(wave), size):
                part = wave[start : start + size]
                data = part.T if fmt.is_planar else part.reshape(1, -1)
                if fmt.name.startswith("s16"):
                    data = (np.clip(data, -1, 1) * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt.name, layout=layout)
                frame.sample_rate, frame.pts = spec.rate, start
                out.mux(s.encode(frame))
            out.mux(s.encode(None))
        if video is not None:
            seconds = max(len(w) for w in streams) / spec.rate
            for k in range(int(seconds * 10) + 1):
                frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
                frame = frame.reformat(format="yuv420p")
                frame.pts = k
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
    return path


def write_video_only(path: Path) -> Path:
    """An mp4 with one silent-picture video stream and no audio."""
    av = av_or_skip()
    with av.open(str(path), "w") as out:
        video = out.add_stream(encoder(("mpeg4",)), rate=10)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        for k in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24").reformat(
                format="yuv420p"
            )
            frame.pts = k
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def best_lag_si_snr(reference: np.ndarray, estimate: np.ndarray, max_lag: int) -> float:
    """SI-SNR (dB) of ``estimate`` against ``reference`` (1-D) at the shift within ``max_lag`` samples
    that correlates them best (a codec's delay that a container does not record)."""
    n = min(len(reference), len(estimate))
    ref, est = reference[:n].astype(np.float64), estimate[:n].astype(np.float64)
    corr = np.fft.irfft(np.fft.rfft(est, 2 * n) * np.conj(np.fft.rfft(ref, 2 * n)), 2 * n)  # [k]: est[t + k] ref[t]
    lag = max(range(-max_lag, max_lag + 1), key=lambda k: corr[k])
    a, b = (ref[: n - lag], est[lag:]) if lag >= 0 else (ref[-lag:], est[: n + lag])
    target = np.dot(b, a) / np.dot(a, a) * a
    return float(10 * np.log10(np.sum(target**2) / max(np.sum((b - target) ** 2), 1e-20)))


def spectrum_match(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Correlation of the magnitude spectra of two 1-D signals over their common length (phase-blind)."""
    n = min(len(reference), len(estimate))
    return float(np.corrcoef(np.abs(np.fft.rfft(reference[:n])), np.abs(np.fft.rfft(estimate[:n])))[0, 1])
