"""WAV and raw PCM over pipes: read a stream from standard input, write one to standard output.

libsndfile needs a seekable file, and a WAV written to a pipe (``ffmpeg ... -f wav -``) cannot
go back to fill in its sizes: its RIFF and data sizes are 0 or 0xFFFFFFFF. So the header is
parsed here, and samples are read until the end of the stream. Samples are decoded to float32
exactly as libsndfile reads them (int16 / 2^15, 24-bit / 2^23, int32 / 2^31, unsigned 8-bit
centred on 128), and encoded for output by libsndfile itself, so a stream and a file hold the
same samples.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

import numpy as np
import soundfile as sf

from ..util.fileio import WriteError
from .files import AudioError, clip

RawFormat = Literal["s16le", "s24le", "s32le", "f32le"]
RAW_FORMATS: tuple[str, ...] = ("s16le", "s24le", "s32le", "f32le")
_BYTES = {"u8": 1, "s16le": 2, "s24le": 3, "s32le": 4, "f32le": 4, "f64le": 8}
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
READ_BYTES = 1 << 16  # at most this much per read; a pipe returns what it has


@dataclass(frozen=True)
class StreamFormat:
    """Layout of a PCM stream."""

    sample_rate: int
    channels: int
    encoding: str  # one of RAW_FORMATS, or "u8" / "f64le" (from a WAV header)
    declared_frames: int | None = None  # what a WAV header says, when it says

    @property
    def block_align(self) -> int:
        return _BYTES[self.encoding] * self.channels


def raw_format(sample_rate: int, encoding: str, channels: int = 1) -> StreamFormat:
    if encoding not in RAW_FORMATS:
        raise ValueError(f"unknown raw format {encoding!r} ({', '.join(RAW_FORMATS)})")
    if sample_rate <= 0 or channels <= 0:
        raise ValueError(f"raw PCM needs a positive rate and channel count, got {sample_rate} Hz, {channels}")
    return StreamFormat(sample_rate, channels, encoding)


def decode(data: bytes, fmt: StreamFormat) -> np.ndarray:
    """Whole frames of ``data`` -> float32 ``[frames, channels]``."""
    enc = fmt.encoding
    if enc == "s24le":
        b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.uint32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8  # into the top bytes: sign comes for free
        x = ints.view(np.int32).astype(np.float64) / 2.0**31
    elif enc == "u8":
        x = (np.frombuffer(data, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif enc == "s16le":
        x = np.frombuffer(data, "<i2").astype(np.float64) / 2.0**15
    elif enc == "s32le":
        x = np.frombuffer(data, "<i4").astype(np.float64) / 2.0**31
    elif enc == "f32le":
        return np.frombuffer(data, "<f4").astype(np.float32).reshape(-1, fmt.channels)
    else:  # f64le
        x = np.frombuffer(data, "<f8")
    return x.astype(np.float32).reshape(-1, fmt.channels)


def _read_exactly(f: BinaryIO, n: int, name: str, what: str) -> bytes:
    data = b""
    while len(data) < n:
        more = f.read(n - len(data))
        if not more:
            raise AudioError(f"{name}: stream ends inside the WAV header ({what})")
        data += more
    return data


def read_wav_header(f: BinaryIO, name: str = "stdin") -> StreamFormat:
    """Read a RIFF/WAVE (or RF64) header up to the start of its samples."""
    riff = f.read(12)
    if not riff:
        raise AudioError(f"{name}: empty stream")
    riff += b"" if len(riff) == 12 else f.read(12 - len(riff))
    if len(riff) < 12 or riff[:4] not in (b"RIFF", b"RF64") or riff[8:12] != b"WAVE":
        raise AudioError(
            f"{name}: not a WAV stream (no RIFF/WAVE header); for raw PCM pass --raw-rate and --raw-format"
        )
    fmt: tuple[int, int, int, int] | None = None  # (tag, channels, rate, bits)
    ds64_data: int | None = None
    while True:
        head = _read_exactly(f, 8, name, "chunk header")
        chunk, size = head[:4], struct.unpack("<I", head[4:])[0]
        if chunk == b"data":
            break
        if size in _UNKNOWN_SIZES and chunk != b"fmt ":
            raise AudioError(f"{name}: WAV chunk {chunk!r} before the samples has no size")
        body = _read_exactly(f, size + (size & 1), name, f"{chunk.decode('latin-1')!r} chunk")
        if chunk == b"fmt ":
            if size < 16:
                raise AudioError(f"{name}: WAV fmt chunk of {size} bytes is too short")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, channels, rate, bits)
        elif chunk == b"ds64" and size >= 16:
            ds64_data = struct.unpack("<Q", body[8:16])[0]
    if fmt is None:
        raise AudioError(f"{name}: WAV stream has no fmt chunk before its samples")
    tag, channels, rate, bits = fmt
    encoding = {(1, 8): "u8", (1, 16): "s16le", (1, 24): "s24le", (1, 32): "s32le", (3, 32): "f32le"}.get(
        (tag, bits), "f64le" if (tag, bits) == (3, 64) else None
    )
    if encoding is None:
        raise AudioError(f"{name}: unsupported WAV encoding (format tag {tag:#06x}, {bits} bits); use PCM or float")
    if channels < 1 or rate < 1:
        raise AudioError(f"{name}: bad WAV header ({rate} Hz, {channels} channels)")
    stream = StreamFormat(rate, channels, encoding)
    data_size = ds64_data if size == 0xFFFFFFFF and ds64_data is not None else size
    declared = None if data_size in _UNKNOWN_SIZES else data_size // stream.block_align
    return StreamFormat(rate, channels, encoding, declared)


class PcmReader:
    """Blocks ``[frames, channels]`` float32 from a byte stream, as soon as they arrive.

    Stops at the end of the stream, or after the frames a WAV header declares. ``warnings`` then
    notes a stream cut short of what its header declared, or a last partial frame (dropped).
    """

    def __init__(self, f: BinaryIO, fmt: StreamFormat, name: str = "stdin") -> None:
        self.f, self.fmt, self.name = f, fmt, name
        self.frames = 0
        self.warnings: list[str] = []
        self._read = getattr(f, "read1", f.read)

    def blocks(self) -> Iterator[np.ndarray]:
        align = self.fmt.block_align
        left = None if self.fmt.declared_frames is None else self.fmt.declared_frames * align
        rest = b""
        while left is None or left > 0:
            want = READ_BYTES if left is None else min(READ_BYTES, left)
            try:
                data = self._read(want)
            except OSError as exc:
                raise AudioError(f"{self.name}: {exc.strerror or exc}") from None
            if not data:
                break
            if left is not None:
                left -= len(data)
            data = rest + data
            whole = len(data) - len(data) % align
            rest = data[whole:]
            if whole:
                block = decode(data[:whole], self.fmt)
                self.frames += len(block)
                yield block
        if rest:
            self.warnings.append(f"stream ends inside a frame ({len(rest)} bytes dropped)")
        declared = self.fmt.declared_frames
        if declared is not None and self.frames < declared:
            self.warnings.append(f"stream is truncated: read {self.frames} of the {declared} frames declared")


class WavStreamWriter:
    """An interleaved WAV stream to a pipe: 24-bit PCM (saturated at full scale) or 32-bit float.

    The header is written first with the sizes a pipe cannot know, 0xFFFFFFFF (as ffmpeg does);
    when the output turns out to be seekable (a redirect to a file), :meth:`close` fills them in.
    """

    def __init__(
        self,
        out: BinaryIO,
        sample_rate: int,
        channels: int,
        *,
        float_output: bool = False,
        name: str = "standard output",
    ) -> None:
        self.out, self.channels, self.name = out, channels, name
        self.subtype = "FLOAT" if float_output else "PCM_24"
        self.width = 4 if float_output else 3
        self.clipped = 0
        self.frames = 0
        try:
            self._start = out.tell() if out.seekable() else None
        except OSError:
            self._start = None
        tag, bits = (3, 32) if float_output else (1, 24)
        align = self.width * channels
        fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * align, align, bits)
        header = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        self._data_field = len(header) + 4  # offset of the data size
        self._emit(header + b"data" + struct.pack("<I", 0xFFFFFFFF))

    def _emit(self, data: bytes) -> None:
        with self._reported():
            self.out.write(data)
            self.out.flush()

    @contextlib.contextmanager
    def _reported(self) -> Iterator[None]:
        """An OSError (a full disk behind a redirect) as a :class:`WriteError` naming the stream; a
        closed pipe stays a ``BrokenPipeError`` (the reader left: not a write failure to report)."""
        try:
            yield
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise WriteError(self.name, exc) from None

    def write(self, block: np.ndarray) -> None:
        """Frames ``[n, channels]`` (or ``[n]`` for mono) at full scale 1.0."""
        block = np.asarray(block, np.float32).reshape(-1, self.channels)
        if not len(block):
            return
        block, n = clip(block, self.subtype)
        self.clipped += n
        buf = io.BytesIO()
        with sf.SoundFile(buf, "w", 1, self.channels, self.subtype, format="RAW", endian="LITTLE") as raw:
            raw.write(block)
        self._emit(buf.getvalue())
        self.frames += len(block)

    def close(self) -> None:
        data = self.frames * self.width * self.channels
        if self._start is None or data + self._data_field > 0xFFFFFFFF:
            return
        with self._reported():
            if data & 1:
                self.out.write(b"\0")  # RIFF chunks are padded to an even size
            self.out.seek(self._start + 4)
            self.out.write(struct.pack("<I", self._data_field - 4 + data + (data & 1)))
            self.out.seek(self._start + self._data_field)
            self.out.write(struct.pack("<I", data))
            self.out.seek(0, io.SEEK_END)
            self.out.flush()
