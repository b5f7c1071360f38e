"""Audio I/O for every layer: headers, reads, resampling and atomic writes, on top of
libsndfile (soundfile) and soxr; what libsndfile cannot read goes to FFmpeg through
:mod:`.ffmpeg` (PyAV, the ``av`` extra). No other module opens an audio file.

Separation works on bounded blocks (:func:`read_blocks`, :class:`AtomicWriter`) so that memory
does not grow with the file length; training and evaluation read short files whole
(:func:`read`, :func:`read_mono`). Sample layout: numpy, ``[frames]`` for mono and
``[frames, channels]`` otherwise (soundfile's and soxr's convention).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

from ..util.fileio import WriteError, commit, new_part_file, remove_part_file
from . import ffmpeg, riff
from .info import AudioError as AudioError
from .info import AudioInfo as AudioInfo
from .info import OutputExistsError as OutputExistsError

OutputFormat = Literal["wav", "flac", "mp3", "opus"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("wav", "flac", "mp3", "opus")
# libsndfile's container and subtype per output format (None: 24-bit PCM or float, as asked).
_CODECS: dict[str, tuple[str, str | None]] = {
    "wav": ("WAV", None),
    "flac": ("FLAC", None),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "opus": ("OGG", "OPUS"),
}
# Rates the lossy encoders accept; other rates are written at the next one up (see codec_rate).
_CODEC_RATES: dict[str, tuple[int, ...]] = {
    "mp3": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
    "opus": (8000, 12000, 16000, 24000, 48000),
}

# Suffixes libsndfile reads; its reason wins when FFmpeg cannot read such a file either.
SNDFILE_SUFFIXES: tuple[str, ...] = (
    ".aif",
    ".aifc",
    ".aiff",
    ".au",
    ".caf",
    ".flac",
    ".mp3",
    ".oga",
    ".ogg",
    ".opus",
    ".rf64",
    ".snd",
    ".sph",
    ".w64",
    ".wav",
    ".wv",
)
# Suffixes decoded through FFmpeg (PyAV): audio-only containers and the sound of videos.
FFMPEG_SUFFIXES: tuple[str, ...] = (
    ".3gp",
    ".aac",
    ".ac3",
    ".amr",
    ".avi",
    ".m4a",
    ".m4b",
    ".m4v",
    ".mka",
    ".mkv",
    ".mov",
    ".mp4",
    ".webm",
    ".wma",
    ".wmv",
)
# File names treated as audio when a folder is scanned (inputs, test sets, training corpora).
AUDIO_SUFFIXES: tuple[str, ...] = tuple(sorted(SNDFILE_SUFFIXES + FFMPEG_SUFFIXES))

BLOCK_SECONDS = 10.0  # read granularity; memory per block is this times the channel count
_PCM24_MAX = 1.0 - 2.0**-23  # largest 24-bit PCM value, as a float


@contextlib.contextmanager
def _source(path: Path, patches: tuple[tuple[int, bytes], ...]) -> Iterator[str | riff.PatchedFile]:
    """What libsndfile opens: the file's name, or the file with its header corrected (:mod:`.riff`)."""
    if not patches:
        yield str(path)
        return
    with riff.PatchedFile(path, patches) as f:
        yield f


def is_audio_file(path: Path) -> bool:
    """A file whose suffix is one of :data:`AUDIO_SUFFIXES` (case-insensitive)."""
    return path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES


def _reason(exc: Exception) -> str:
    """libsndfile's reason, without its "Error opening 'PATH': " (the caller names the file). Its
    "does not exist or is not a regular file" is said of any file it cannot make sense of, and
    is only called here once the file is known to exist: not a readable audio file either."""
    text = " ".join(str(getattr(exc, "error_string", None) or exc).split())
    if any(s in text.lower() for s in ("format not recognised", "unknown format", "not a regular file")):
        return "not a readable audio file"
    return text or type(exc).__name__


def probe(path: str | os.PathLike, *, stream: int | None = None) -> AudioInfo:
    """Header information; raises :class:`AudioError` for missing, unreadable or empty files.

    stream: 0-based audio stream of a container (None: the first). Files libsndfile cannot read go
    to FFmpeg (:func:`.ffmpeg.probe`, which decodes once to count the frames).
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise AudioError(f"{path}: a folder, not an audio file")
        raise AudioError(f"{path}: not a regular file" if path.exists() else f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    chunk = riff.data_chunk(path)
    patches = chunk.patches if chunk is not None else ()
    try:
        with _source(path, patches) as source, sf.SoundFile(source) as f:
            rate, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
    except Exception as exc:  # libsndfile's error types vary between versions
        own = path.suffix.lower() in SNDFILE_SUFFIXES
        return ffmpeg.probe(path, stream, fallback=_reason(exc) if own else None)
    if stream not in (None, 0):
        raise AudioError(f"{path}: has 1 audio stream, no stream {stream + 1}")
    if frames <= 0:
        raise AudioError(f"{path}: no audio samples")
    if rate <= 0 or channels <= 0:
        raise AudioError(f"{path}: bad header (rate {rate}, {channels} channels)")
    declared = chunk.declared_frames if chunk is not None else None
    return AudioInfo(path, rate, channels, frames, declared if declared != frames else None, patches=patches)


def to_mono(block: np.ndarray, channel: int | None = None) -> np.ndarray:
    """``[frames, C] -> [frames]``: the mean of the channels, or channel ``channel`` (0-based)."""
    if channel is None:
        return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
    return block[:, channel]


def check_finite(frames: np.ndarray, start: int, sample_rate: float, name: str | None = None) -> None:
    """Raise :class:`AudioError` naming the time of the first NaN or Inf in ``frames``
    (``[n]`` or ``[n, channels]``, the first frame being number ``start`` of the input)."""
    finite = np.isfinite(frames) if frames.ndim == 1 else np.isfinite(frames).all(axis=1)
    if finite.all():
        return
    at = start + int(np.argmin(finite))
    prefix = f"{name}: " if name else ""
    raise AudioError(f"{prefix}NaN or Inf samples near {at / sample_rate:.2f} s")


def read_blocks(
    path: str | os.PathLike,
    target_rate: int,
    *,
    channel: int | None = None,
    stream: int | None = None,
    block_seconds: float = BLOCK_SECONDS,
) -> Iterator[np.ndarray]:
    """Yield the file as mono float32 blocks ``[n]`` at ``target_rate``.

    channel: 0-based channel to keep (None: average all); stream: 0-based audio stream of a
    container (None: the first). Raises :class:`AudioError` on unreadable data and on NaN/Inf
    samples (checked block by block, before resampling).
    """
    info = probe(path, stream=stream)
    if channel is not None and not 0 <= channel < info.channels:
        raise AudioError(f"{info.path}: has {info.channels} channel(s), no channel {channel + 1}")
    block = max(1, int(block_seconds * info.sample_rate))
    resampler = resample_stream(info.sample_rate, target_rate, 1)
    done = 0
    for data in _raw_blocks(info, block):
        last = done + len(data) >= info.frames
        check_finite(data, done, info.sample_rate, str(info.path))
        done += len(data)
        mono = np.ascontiguousarray(to_mono(data, channel))
        if resampler is not None:
            mono = resampler.resample_chunk(mono, last=last)
            if not np.isfinite(mono).all():  # a float file at the very top of the float32 range
                raise AudioError(
                    f"{info.path}: samples of up to {float(np.abs(data).max()):.3g} overflow float32 when resampled "
                    f"to {target_rate} Hz; scale the input down"
                )
        if len(mono):
            yield mono
        if last:
            return
    if resampler is not None:  # the file held less than probed: flush what the resampler holds
        tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        if len(tail):
            yield tail


def read_frames(info: AudioInfo, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """The file of ``info`` as float32 ``[n, channels]`` blocks at its own rate (what the engine is fed)."""
    yield from _raw_blocks(info, max(1, int(block_seconds * info.sample_rate)))


def _raw_blocks(info: AudioInfo, block: int) -> Iterator[np.ndarray]:
    """float32 ``[n, channels]`` blocks of ``block`` frames at the file's rate, ``info.frames`` at most."""
    if info.codec is not None:
        yield from ffmpeg.read_blocks(info, block)
        return
    try:
        with _source(info.path, info.patches) as source, sf.SoundFile(source) as f:
            done = 0
            while done < info.frames:
                data = f.read(min(block, info.frames - done), dtype="float32", always_2d=True)
                if not len(data):
                    return
                done += len(data)
                yield data
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"{info.path}: {_reason(exc)}") from None


def resampled_length(frames: int, in_rate: float, out_rate: float) -> int:
    """Length of ``frames`` samples after resampling (what soxr produces for a whole signal)."""
    return frames if in_rate == out_rate else int(math.ceil(frames * out_rate / in_rate - 1e-9))


def read(
    path: str | os.PathLike[str],
    *,
    start: int = 0,
    stop: int | None = None,
    dtype: Literal["float32", "float64"] = "float32",
) -> tuple[np.ndarray, int]:
    """Frames ``[start, stop)`` of a file, ``[frames, channels]`` at the file's rate, and that rate.
    A WAV, RF64 or Wave64 file that holds more audio than its header declares is read to its end."""
    chunk = riff.data_chunk(Path(path))
    try:
        with _source(Path(path), chunk.patches if chunk is not None else ()) as source:
            data, rate = sf.read(source, start=start, stop=stop, dtype=dtype, always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        info = probe(path)  # raises FFmpeg's reason, or libsndfile's for its own suffixes
        if info.codec is None:
            raise AudioError(f"{path}: {_reason(exc)}") from None
        return ffmpeg.read(info, start, stop).astype(dtype, copy=False), info.sample_rate
    return data, int(rate)


def read_mono(path: str | os.PathLike[str], *, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Frames ``[start, stop)`` as mono float32 ``[frames]`` (the mean of the channels)."""
    data, _ = read(path, start=start, stop=stop)
    return to_mono(data)


def resample(x: np.ndarray, in_rate: float, out_rate: float) -> np.ndarray:
    """A whole signal ``[frames]`` or ``[frames, channels]`` at another rate (soxr, high quality);
    ``x`` itself when the rates are equal."""
    if in_rate == out_rate:
        return x
    return soxr.resample(np.ascontiguousarray(x), in_rate, out_rate)


def resample_stream(in_rate: float, out_rate: float, channels: int) -> soxr.ResampleStream | None:
    """A block-by-block float32 resampler (``resample_chunk(block, last=...)``); None when the
    rates are equal."""
    if in_rate == out_rate:
        return None
    return soxr.ResampleStream(in_rate, out_rate, channels, dtype="float32")


def codec_rate(fmt: OutputFormat, rate: int) -> int:
    """The rate an output of ``fmt`` is written at: ``rate`` itself, except for MP3 and Opus at a rate
    their encoders refuse, which are written at the next rate up that they accept (the highest, 48 kHz,
    above it)."""
    allowed = _CODEC_RATES.get(fmt)
    if allowed is None or rate in allowed:
        return rate
    return next((r for r in allowed if r > rate), allowed[-1])


def check_output_format(fmt: str, float_output: bool = False) -> None:
    """Raise ``ValueError`` for an unknown format, or float samples in a format that cannot hold them."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r} ({', '.join(OUTPUT_FORMATS)})")
    if fmt != "wav" and float_output:
        raise ValueError(f"{fmt.upper()} cannot hold float samples; use --format wav with float output")


def _os_reason(exc: BaseException) -> BaseException:
    """The OS error behind libsndfile's "System error." (a failed write(): a full disk, a file size
    limit, ...), which soundfile reports without its reason; ``exc`` itself otherwise."""
    if isinstance(exc, OSError) or "System error" not in str(exc):
        return exc
    code = getattr(getattr(sf, "_ffi", None), "errno", 0)  # cffi keeps the C errno of soundfile's last call
    return OSError(code, os.strerror(code)) if code else exc


def clip(block: np.ndarray, subtype: str) -> tuple[np.ndarray, int]:
    """Saturate to the PCM range (libsndfile would wrap around); returns (block, clipped count).

    Float subtypes are returned unchanged; lossy codecs (MP3, Opus) are saturated at 1.0.
    """
    if subtype == "FLOAT":
        return block, 0
    top = _PCM24_MAX if subtype == "PCM_24" else 1.0 if subtype in ("MPEG_LAYER_III", "OPUS") else 1.0 - 2.0**-15
    over = (block > top) | (block < -1.0)
    count = int(over.sum())
    return (np.clip(block, -1.0, top) if count else block), count


class AtomicWriter:
    """Block-wise writer of one output file: a temporary file in the target folder, renamed
    onto the target only by :meth:`commit`; :meth:`discard` (or an exception inside a ``with``
    block) removes it, so an interrupted run never leaves a partial output.

    ``write(block [n] or [n, C])``; samples beyond ``length`` are dropped and a short stream
    is padded with zeros on commit, so the file has exactly ``length`` frames (``length=None``:
    as many as are written, for a stream of unknown length; MP3 and Opus decoders may return a
    few more or less: codec framing). ``sample_rate`` must be one the format's encoder accepts
    (:func:`codec_rate`). Without ``overwrite``, :meth:`commit` claims the target exclusively
    (:func:`~tisdiss_cli.util.fileio.commit`) and raises :class:`OutputExistsError` if it exists,
    even when another process wrote it while this one was writing. NaN or Inf samples are refused
    (``ValueError``): libsndfile would write them as full-scale noise.
    """

    def __init__(
        self,
        path: Path,
        sample_rate: int,
        *,
        length: int | None,
        fmt: OutputFormat = "wav",
        float_output: bool = False,
        channels: int = 1,
        overwrite: bool = False,
    ) -> None:
        check_output_format(fmt, float_output)
        if codec_rate(fmt, sample_rate) != sample_rate:
            raise ValueError(f"{path}: {fmt.upper()} cannot be written at {sample_rate} Hz; use --format wav or flac")
        container, subtype = _CODECS[fmt]
        self.path = Path(path)
        self.length = length
        self.subtype = subtype or ("FLOAT" if float_output else "PCM_24")
        self.clipped = 0  # samples saturated at full scale
        self.written = 0
        self.channels = channels
        self.overwrite = overwrite
        self.tmp = new_part_file(self.path)  # also removes what dead writers left in that folder
        try:
            self._file: sf.SoundFile | None = sf.SoundFile(
                str(self.tmp), "w", samplerate=sample_rate, channels=channels, format=container, subtype=self.subtype
            )
        except (OSError, RuntimeError) as exc:
            remove_part_file(self.tmp)
            raise WriteError(self.path, _os_reason(exc)) from None
        except BaseException:
            remove_part_file(self.tmp)
            raise

    def write(self, block: np.ndarray) -> None:
        assert self._file is not None, "writer already closed"
        if self.length is not None:
            block = block[: max(0, self.length - self.written)]
        if not len(block):
            return
        block = np.asarray(block, dtype=np.float32)
        if not np.isfinite(block).all():
            self.discard()
            raise ValueError(f"{self.path}: NaN or Inf output samples; nothing written")
        block, n = clip(block, self.subtype)
        self.clipped += n
        try:
            self._file.write(block)
        except (OSError, RuntimeError) as exc:  # libsndfile reports a full disk as a RuntimeError
            reason = _os_reason(exc)
            self.discard()
            raise WriteError(self.path, reason) from None
        self.written += len(block)

    def commit(self) -> Path:
        assert self._file is not None, "writer already closed"
        try:
            if self.length is not None and self.written < self.length:
                shape = (self.length - self.written,) + ((self.channels,) if self.channels > 1 else ())
                self._file.write(np.zeros(shape, np.float32))
                self.written = self.length
            self._file.close()
            self._file = None
            commit(self.tmp, self.path, overwrite=self.overwrite)
        except FileExistsError:
            self.discard()
            raise OutputExistsError(f"{self.path}: exists") from None
        except (OSError, RuntimeError) as exc:
            reason = _os_reason(exc)
            self.discard()
            raise WriteError(self.path, reason) from None
        return self.path

    def discard(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError, RuntimeError):  # flushing a part file about to be deleted
                file.close()
        remove_part_file(self.tmp)

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None or self._file is not None:
            self.discard()


def write(
    path: str | os.PathLike[str],
    wave: np.ndarray,
    sample_rate: int,
    *,
    fmt: OutputFormat = "wav",
    float_output: bool = False,
    overwrite: bool = True,
) -> Path:
    """Write a whole mono ``[n]`` signal atomically (24-bit PCM, or 32-bit float); returns the path."""
    with AtomicWriter(
        Path(path), sample_rate, length=len(wave), fmt=fmt, float_output=float_output, overwrite=overwrite
    ) as w:
        w.write(wave)
        return w.commit()
