"""An upload streamed to disk as it arrives, within its limits: ``multipart/form-data`` with one
``file`` part and a few short option fields.

The body is parsed here rather than by the framework, so an upload over the size limit is
refused (413) while it arrives instead of after it was spooled whole to a temporary file, and
malformed bodies (huge part headers, too many fields, a body cut short) are a 400 naming the
problem. The stored file's name is fixed (``input`` plus a known audio suffix): nothing the
client sends becomes a path.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..audio.files import AUDIO_SUFFIXES
from .errors import RequestError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks  # defined for type checkers only

MAX_FIELDS = 16  # option fields in one form
MAX_FIELD_BYTES = 1024  # each option's value
MULTIPART_SLACK = 64 * 1024  # what boundaries, part headers and fields may add to the file's size
FILE_FIELD = "file"


@dataclass
class Upload:
    """A stored upload and the form fields that came with it."""

    path: Path  # inside the job's folder
    name: str  # the client's file name, reduced to safe characters (for download names only)
    size: int  # bytes
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem or "recording"


def safe_name(filename: str) -> str:
    """A client's file name as a plain name of at most 100 safe characters (no folders)."""
    base = PurePosixPath(filename.replace("\\", "/")).name
    cleaned = re.sub(r"[^\w.-]+", "_", base).strip("._")
    return cleaned[-100:] or "recording"


def stored_suffix(filename: str) -> str:
    """The suffix the stored upload keeps: the client's, when it is a known audio suffix (the
    readers choose between libsndfile and FFmpeg by it), else none."""
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    return suffix if suffix in AUDIO_SUFFIXES else ""


def check_length(content_length: str | None, max_bytes: int) -> int | None:
    """The declared body size, or 413 when it is already over the limit."""
    if content_length is None:
        return None
    try:
        declared = int(content_length)
    except ValueError:
        raise RequestError(400, f"Content-Length {content_length[:40]!r} is not a number") from None
    if declared > max_bytes + MULTIPART_SLACK:
        raise RequestError(413, too_large(max_bytes))
    return declared


def too_large(max_bytes: int) -> str:
    return f"the upload is larger than this server takes ({max_bytes / 1e6:g} MB)"


async def receive(chunks: AsyncIterator[bytes], content_type: str | None, folder: Path, max_bytes: int) -> Upload:
    """Parse a multipart body from ``chunks`` into ``folder``; :class:`RequestError` 400 / 413 / 415."""
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data":
        raise RequestError(415, "send the recording as multipart/form-data with a 'file' field")
    boundary = params.get(b"boundary")
    if not boundary:
        raise RequestError(400, "the multipart body has no boundary")
    form = _Form(folder, max_bytes)
    parser = MultipartParser(boundary, form.callbacks())
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        form.discard()
        raise RequestError(400, f"malformed multipart body ({' '.join(str(exc).split())[:200]})") from None
    except BaseException:
        form.discard()
        raise
    return form.result()


class _Form:
    """The parser's callbacks: option fields in memory, the file part straight to disk."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self.fields: dict[str, str] = {}
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.part_name: str | None = None
        self.value = bytearray()
        self.file: IO[bytes] | None = None
        self.path: Path | None = None
        self.client_name = ""
        self.size = 0
        self.ended = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda data, start, end: self.header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self.header_value.extend(data[start:end]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.headers, self.part_name, self.value = {}, None, bytearray()

    def header_end(self) -> None:
        self.headers[bytes(self.header_name).lower()] = bytes(self.header_value)
        self.header_name, self.header_value = bytearray(), bytearray()

    def headers_finished(self) -> None:
        disposition, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = params.get(b"name")
        if disposition != b"form-data" or name is None:
            raise RequestError(400, "a part of the form has no Content-Disposition name")
        self.part_name = name.decode("utf-8", "replace")
        if b"filename" in params or self.part_name == FILE_FIELD:
            if self.part_name != FILE_FIELD or self.path is not None:
                raise RequestError(400, f"send one file, in the '{FILE_FIELD}' field")
            self.client_name = params.get(b"filename", b"").decode("utf-8", "replace")
            self.path = self.folder / f"input{stored_suffix(self.client_name)}"
            self.file = self.path.open("xb")
        elif len(self.fields) >= MAX_FIELDS:
            raise RequestError(400, f"too many form fields (at most {MAX_FIELDS})")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.file is not None:
            self.size += end - start
            if self.size > self.max_bytes:
                raise RequestError(413, too_large(self.max_bytes))
            self.file.write(data[start:end])
            return
        self.value.extend(data[start:end])
        if len(self.value) > MAX_FIELD_BYTES:
            raise RequestError(400, f"form field {self.part_name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def part_end(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        elif self.part_name is not None:
            self.fields[self.part_name] = self.value.decode("utf-8", "replace").strip()

    def end(self) -> None:
        self.ended = True

    def result(self) -> Upload:
        if not self.ended:
            self.discard()
            raise RequestError(400, "the upload ended early (the multipart body is incomplete)")
        if self.path is None:
            raise RequestError(400, f"no recording: send it in the '{FILE_FIELD}' field")
        if self.size == 0:
            self.discard()
            raise RequestError(400, "the uploaded file is empty")
        return Upload(self.path, safe_name(self.client_name), self.size, self.fields)

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
