"""Decoding through FFmpeg (PyAV, the ``av`` extra) for what libsndfile cannot read: AAC in m4a/mp4,
audio tracks of videos (mp4, mkv, webm, mov), Opus in WebM, WMA, AMR, ...

:mod:`.audio` calls this module only after libsndfile failed on a file; PyAV is imported on first use,
so tisdiss works without it for the formats libsndfile reads. Samples come out as float32
``[frames, channels]`` at the stream's own rate; resampling and channel mixing stay in :mod:`.audio`.

Length: containers do not all record an exact frame count (Matroska/WebM keep a duration in
milliseconds, or none for live recordings), so :func:`probe` decodes the stream once and counts. A
decoder does not drop an encoder's end padding, so when the stream's header declares a duration a
little shorter than what decodes (MP4/MOV edit lists: AAC decodes up to 1,024 extra samples), the
declared length wins. Counts are cached per file, so probing and then reading decodes twice, not three
times.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .info import AudioError, AudioInfo

EXTRA_HINT = "pip install 'tisdiss[av]'"
_TOLERANCE_SECONDS = 0.1  # declared length beyond what decodes before a file counts as cut short
_INT_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}


def _av(path: Path, fallback: str | None) -> Any:
    """The ``av`` module; without it, the reason a file cannot be read (naming the extra)."""
    try:
        import av
    except ImportError:
        if fallback is not None:
            raise AudioError(f"{path}: {fallback}") from None
        kind = path.suffix.lower().lstrip(".") or "this file"
        raise AudioError(f"{path}: reading {kind} needs PyAV: {EXTRA_HINT}") from None
    return av


def _reason(exc: Exception, logged: list[Any], *, opening: bool) -> str:
    """One line from a PyAV error and the last FFmpeg log message captured with it."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    detail = next((m[2].strip() for m in reversed(logged) if len(m) > 2 and m[2].strip()), "")
    if "Invalid data found" in text:
        text = "not a readable audio or video file" if opening else "damaged audio data"
    text = f"{text} ({detail})" if detail and detail not in text else text
    return " ".join(text.split())


class _Opened:
    """An open container and its chosen audio stream, FFmpeg errors captured for messages."""

    def __init__(self, av: Any, path: Path, stream: int | None) -> None:
        self.av, self.path = av, path
        self._level = av.logging.get_level()
        av.logging.set_level(av.logging.ERROR)  # only while open, and captured: never printed
        self._capture = av.logging.Capture()
        self.logged = self._capture.__enter__()
        try:
            self.container = av.open(str(path))
        except Exception as exc:
            self.close()
            raise AudioError(f"{path}: {_reason(exc, self.logged, opening=True)}") from None
        streams = self.container.streams.audio
        if not streams:
            others = ", ".join(sorted({s.type for s in self.container.streams})) or "no streams"
            self.close()
            raise AudioError(f"{path}: has no audio stream ({others})")
        index = stream or 0
        if not 0 <= index < len(streams):
            self.close()
            plural = "s" if len(streams) != 1 else ""
            raise AudioError(f"{path}: has {len(streams)} audio stream{plural}, no stream {index + 1}")
        self.stream = streams[index]

    def frames(self) -> Iterator[Any]:
        """Decoded frames; an FFmpeg error raises it as :class:`AudioError` via ``error``."""
        for packet in self.container.demux(self.stream):
            yield from packet.decode()

    def error(self, exc: Exception) -> str:
        return _reason(exc, self.logged, opening=False)

    def close(self) -> None:
        container = getattr(self, "container", None)
        if container is not None:
            container.close()
        self._capture.__exit__(None, None, None)
        self.av.logging.set_level(self._level)

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _samples(frame: Any) -> np.ndarray:
    """A decoded frame as float32 ``[n, channels]`` at full scale 1.0."""
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    data = data.T if frame.format.is_planar else data.reshape(-1, channels)
    if data.dtype == np.uint8:
        return ((data.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    scale = _INT_SCALE.get(data.dtype)
    if scale is not None:
        return (data / scale).astype(np.float32)
    return np.ascontiguousarray(data, dtype=np.float32)


def _declared(opened: _Opened, rate: int) -> int | None:
    """Frames the stream's header declares (the container's, for audio-only files); None if neither says."""
    s = opened.stream
    if s.duration and s.time_base:
        return round(float(s.duration * s.time_base) * rate)
    container = opened.container
    if container.duration and len(container.streams) == len(container.streams.audio):
        return round(container.duration / 1e6 * rate)
    return None


def probe(path: Path, stream: int | None = None, *, fallback: str | None = None) -> AudioInfo:
    """Rate, channels and exact length of audio stream ``stream`` (0-based; None: the first).

    fallback: the reason to give when PyAV is missing or cannot read the file either (libsndfile's,
    for the suffixes it owns). Raises :class:`AudioError`.
    """
    _av(path, fallback)
    stat = path.stat()
    return _probe(path, stream, stat.st_size, stat.st_mtime_ns, fallback)


@functools.lru_cache(maxsize=256)
def _probe(path: Path, stream: int | None, size: int, mtime: int, fallback: str | None) -> AudioInfo:
    del size, mtime  # cache key only: a rewritten file is probed again
    av = _av(path, fallback)
    try:
        opened = _Opened(av, path, stream)
    except AudioError:
        if fallback is not None:
            raise AudioError(f"{path}: {fallback}") from None
        raise
    with opened:
        rate = channels = 0
        decoded = largest = 0
        problem = None
        try:
            for frame in opened.frames():
                if not rate:
                    rate, channels = int(frame.sample_rate), int(frame.layout.nb_channels)
                _check_format(path, frame, rate, channels, decoded)
                decoded += frame.samples
                largest = max(largest, frame.samples)
        except AudioError:
            raise
        except Exception as exc:  # PyAV raises FFmpegError subclasses; a damaged file may raise others
            problem = opened.error(exc)
        codec = opened.stream.codec_context.name
        if decoded == 0:
            reason = problem or "no audio samples"
            raise AudioError(f"{path}: {fallback or reason}") from None
        declared = _declared(opened, rate)
    frames = decoded
    if declared is not None and decoded - 2 * largest <= declared < decoded:
        frames = declared  # the encoder's end padding, which the header leaves out
    short = declared is not None and declared - frames > _TOLERANCE_SECONDS * rate
    return AudioInfo(
        path, rate, channels, frames, declared if short else None, codec=codec, stream=stream, problem=problem
    )


def _check_format(path: Path, frame: Any, rate: int, channels: int, at: int) -> None:
    if frame.sample_rate != rate or frame.layout.nb_channels != channels:
        raise AudioError(
            f"{path}: audio format changes near {at / rate:.2f} s ({rate} Hz, {channels} ch -> "
            f"{frame.sample_rate} Hz, {frame.layout.nb_channels} ch); convert the file first"
        )


def read_blocks(info: AudioInfo, block: int) -> Iterator[np.ndarray]:
    """The stream of a probed file as float32 ``[n, channels]`` blocks of ``block`` frames (the last
    may be shorter), ``info.frames`` in all."""
    av = _av(info.path, None)
    pending: list[np.ndarray] = []
    held = done = 0
    with _Opened(av, info.path, info.stream) as opened:
        try:
            for frame in opened.frames():
                _check_format(info.path, frame, info.sample_rate, info.channels, done + held)
                data = _samples(frame)[: info.frames - done - held]
                pending.append(data)
                held += len(data)
                while held >= block:
                    joined = np.concatenate(pending)
                    yield joined[:block]
                    pending, held, done = [joined[block:]], held - block, done + block
                if done + held >= info.frames:
                    break
        except AudioError:
            raise
        except Exception as exc:
            raise AudioError(f"{info.path}: {opened.error(exc)}") from None
    if held:
        yield np.concatenate(pending)


def read(info: AudioInfo, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Frames ``[start, stop)`` of a probed file (slice semantics) as float32 ``[frames, channels]``.

    FFmpeg cannot seek sample-exactly in every codec, so the stream is decoded from its start, but
    only up to ``stop``: a training crop near the start of a long file costs what it reads.
    """
    start, stop, _ = slice(start, stop).indices(info.frames)
    parts: list[np.ndarray] = []
    if stop > start:
        head = dataclasses.replace(info, frames=stop)  # read_blocks stops (and closes the file) there
        parts = list(read_blocks(head, max(1, min(stop, info.sample_rate * 60))))
    return np.concatenate(parts)[start:] if parts else np.zeros((0, info.channels), np.float32)
