"""How long the audio of a RIFF/WAVE, RF64 or Sony Wave64 file really is, from its header and size.

A recorder that crashed, or a writer that never went back to fill in its sizes, leaves a data
chunk whose size field says less than the audio that follows it (often 0). libsndfile goes by
that field and drops the rest without a word (Wave64 excepted: it reads to the end of the file
whatever the header says). When the data chunk is the last one, and what follows its declared
end is neither chunks (tags) nor zero padding nor a few stray bytes, the audio runs to the end of
the file: :func:`data_chunk` says so and gives the header bytes that make libsndfile read it all
(:class:`PatchedFile` shows them in place of the file's own; the file itself is never written).
A size of 0, or all ones, declares no length.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_W64_GUID_TAIL = b"\xf3\xac\xd3\x11\x8c\xd1\x00\xc0\x4f\x8e\xdb\x8a"  # after 'fmt ', 'data', 'wave'
_W64_RIFF = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"
_SCAN_BYTES = 1 << 16  # what is read at a time when looking for anything but zeros after the data


@dataclass(frozen=True)
class DataChunk:
    """What the header of a RIFF-family file says about its audio, and what the file holds."""

    declared_frames: int | None  # what the header declares; None: no length (0, or all ones)
    patches: tuple[tuple[int, bytes], ...] = ()  # header bytes to read in place of the file's (offset, bytes)


def data_chunk(path: Path) -> DataChunk | None:
    """The data chunk of a WAV, RF64 or Wave64 file (None for other files, or a header that cannot be
    followed); ``patches`` is not empty when libsndfile would stop short of the end of the file."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
            length = os.fstat(f.fileno()).st_size
            if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
                return _riff(f, length, rf64=head[:4] == b"RF64")
            if head == _W64_RIFF:
                return _wave64(f, length)
    except (OSError, struct.error):
        pass
    return None


def _riff(f: BinaryIO, length: int, *, rf64: bool) -> DataChunk | None:
    """WAV, or RF64 (whose data size is the 64-bit one of its ds64 chunk)."""
    pos, align, ds64, ds64_size = 12, 0, 0, 0
    while pos + 8 <= length:
        f.seek(pos)
        tag, size = struct.unpack("<4sI", f.read(8))
        body = pos + 8
        if tag == b"ds64" and size >= 16:
            ds64 = body + 8  # the 64-bit data size, after the 64-bit RIFF size
            ds64_size = struct.unpack("<8xQ", f.read(16))[0]
        elif tag == b"fmt " and size >= 14:
            align = _frame_bytes(f.read(min(size, 26)))
        elif tag == b"data":
            if not align or (rf64 and not ds64):
                return None
            if rf64:
                return _ends_at(f, body, length, ds64_size, align, field=(ds64, 8))
            return _ends_at(f, body, length, size, align, field=(pos + 4, 4))
        pos = body + size + (size & 1)
    return None


def _frame_bytes(fmt: bytes) -> int:
    """The bytes of one frame, from a fmt chunk's body, for PCM, float, A-law and mu-law (plain or
    WAVE_FORMAT_EXTENSIBLE); 0 for codecs whose blocks hold many frames (ADPCM, GSM, ...): their
    length is left to libsndfile."""
    tag, align = struct.unpack("<H10xH", fmt[:14])
    if tag == 0xFFFE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]
    return align if tag in (1, 3, 6, 7) else 0


def _ends_at(f: BinaryIO, body: int, length: int, size: int, align: int, *, field: tuple[int, int]) -> DataChunk:
    """The data chunk whose audio starts at ``body`` and whose size field (at ``field``: offset, width)
    reads ``size``. It runs to the end of the file when the field declares no length and more than
    chunks follow, or declares less than follows and what follows is neither chunks, nor zeros, nor
    shorter than a chunk header (stray bytes some writers leave)."""
    offset, width = field
    held = length - body
    if size in (0, 2 ** (8 * width) - 1):
        declared = None
        if _chunks_follow(f, body, length):
            return DataChunk(None)  # an empty data chunk, then the rest of the header
    else:
        declared = size // align
        end = body + size + (size & 1)
        if length - end < max(8, align) or _chunks_follow(f, end, length) or _zeros_follow(f, end, length):
            return DataChunk(declared)  # as declared, or cut short (libsndfile reads what there is)
    if held < align:
        return DataChunk(declared)
    patched = min(held - held % align, 2 ** (8 * width) - 2)  # whole frames; all ones would say "no length"
    return DataChunk(declared, ((offset, patched.to_bytes(width, "little")),))


def _chunks_follow(f: BinaryIO, pos: int, length: int) -> bool:
    """The bytes from ``pos`` to the end are RIFF chunks (each a printable four-letter id and a size
    that fits; a missing pad byte at the end is forgiven), such as a LIST of tags after the data."""
    if length - pos < 8:
        return False
    while length - pos >= 8:
        f.seek(pos)
        tag, size = struct.unpack("<4sI", f.read(8))
        if not all(32 <= c < 127 for c in tag):
            return False
        pos += 8 + size + (size & 1)
        if pos > length + 1:
            return False
    return True


def _zeros_follow(f: BinaryIO, pos: int, length: int) -> bool:
    """Only zero bytes from ``pos`` to the end (padding to a whole sector). Stops at the first other
    byte, so audio after a header that under-declares it is told at once, whatever its length."""
    f.seek(pos)
    while pos < length:
        block = f.read(min(_SCAN_BYTES, length - pos))
        if not block:
            break
        if block.strip(b"\0"):
            return False
        pos += len(block)
    return True


def _wave64(f: BinaryIO, length: int) -> DataChunk | None:
    """Wave64: GUID chunk ids and 64-bit sizes that count the 24-byte chunk header, 8-byte aligned.
    libsndfile reads its data to the end of the file whatever the size says: nothing to patch, only
    what the header declared, for the warning."""
    pos, align = 40, 0
    while pos + 24 <= length:
        f.seek(pos)
        guid, size = struct.unpack("<16sQ", f.read(24))
        if guid == b"fmt " + _W64_GUID_TAIL and size >= 24 + 14:
            align = _frame_bytes(f.read(min(size - 24, 26)))
        elif guid == b"data" + _W64_GUID_TAIL:
            if not align:
                return None
            return DataChunk(None if size in (0, 2**64 - 1) or size < 24 else (size - 24) // align)
        if size < 24:
            return None
        pos += size + (-size % 8)
    return None


class PatchedFile(io.RawIOBase):
    """A file opened for reading that shows ``patches`` (offset, bytes) in place of its own bytes there:
    what libsndfile is given to read a header as corrected, the file on disk left as it is."""

    def __init__(self, path: Path, patches: tuple[tuple[int, bytes], ...]) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._patches = patches

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        start = self._file.tell()
        view = memoryview(buffer).cast("B")
        n = self._file.readinto(view)
        for offset, data in self._patches:
            lo, hi = max(start, offset), min(start + n, offset + len(data))
            if lo < hi:
                view[lo - start : hi - start] = data[lo - offset : hi - offset]
        return n

    def close(self) -> None:
        self._file.close()
        super().close()
