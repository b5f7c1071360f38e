"""Verified downloads into the model cache.

A file is streamed to ``<dest>.part`` while being hashed, and renamed to ``dest`` only once
its size and hashes match what the registry expects. A JSON marker ``<dest>.verified`` next
to it records what was checked; a cached file is trusted only when the marker exists and the
file size still matches it. A file lock serialises processes fetching the same file.

Network access goes through :mod:`urllib` (which honours ``http_proxy``/``https_proxy``/
``no_proxy``); ``TISDISS_OFFLINE=1`` forbids it altogether.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import platformdirs
from filelock import FileLock

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int | None], None]  # (bytes done, total or None)

_CHUNK = 1 << 16
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
_TRANSIENT_ERRORS = (
    http.client.IncompleteRead,
    http.client.RemoteDisconnected,
    ConnectionResetError,
    ConnectionAbortedError,
    socket.timeout,
    TimeoutError,
)


class DownloadError(RuntimeError):
    """A file could not be fetched or verified; the message says what to do, ``reason`` says
    why in a few words (for one-line warnings)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class OfflineError(DownloadError):
    """The file is not cached and ``TISDISS_OFFLINE`` forbids the network."""


class CacheError(DownloadError):
    """The cache cannot hold the file: read-only, not a folder, no permission. The cache is an
    optimisation, so callers with another way (the bundled model) take it."""


class IntegrityError(DownloadError):
    """Downloaded or cached bytes do not match the expected size or hash."""


@dataclass(frozen=True)
class Expected:
    """What a verified file must match; None means unknown (not checked)."""

    size: int | None = None  # bytes
    sha256: str | None = None  # hex digest of the content
    git_blob: str | None = None  # SHA-1 of b"blob <size>\\0" + content (a git blob id)

    def __post_init__(self) -> None:
        for name in ("sha256", "git_blob"):
            value = getattr(self, name)
            object.__setattr__(self, name, value.lower() if value else None)

    @property
    def checks_anything(self) -> bool:
        return bool(self.sha256 or self.git_blob or self.size)


# --------------------------------------------------------------------------- environment


def is_offline() -> bool:
    """True when ``TISDISS_OFFLINE`` is set to a true value (1, true, yes, on)."""
    return os.environ.get("TISDISS_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """Root of the tisdiss cache: ``TISDISS_CACHE_DIR`` or the platform's user cache."""
    override = os.environ.get("TISDISS_CACHE_DIR")
    return Path(override).expanduser() if override else Path(platformdirs.user_cache_dir("tisdiss"))


# --------------------------------------------------------------------------- hashing


def git_blob_id(path: str | os.PathLike) -> str:
    """Git blob id of a file: SHA-1 of ``b"blob <size>\\0"`` followed by the content."""
    path = Path(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _StreamHashes:
    """sha256 of the content, plus the git blob id when the total size is known up front."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.done = 0
        self.sha256 = hashlib.sha256()
        self.blob = hashlib.sha1(f"blob {total}\0".encode()) if total is not None else None

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        if self.blob is not None:
            self.blob.update(chunk)
        self.done += len(chunk)

    def git_blob(self, path: Path) -> str:
        if self.blob is not None and self.total == self.done:
            return self.blob.hexdigest()
        return git_blob_id(path)  # size was unknown while streaming: hash the file again


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _mismatch(path: Path, what: str, expected: object, actual: object) -> IntegrityError:
    return IntegrityError(f"{path}: {what} mismatch (expected {expected}, got {actual})", f"{what} mismatch")


def verify_file(path: Path, expected: Expected) -> dict[str, object]:
    """Hash ``path`` completely and compare with ``expected``; returns the measured values."""
    size = path.stat().st_size
    measured: dict[str, object] = {"size": size, "sha256": sha256_file(path)}
    if expected.git_blob:
        measured["git_blob"] = git_blob_id(path)
    _compare(path, expected, measured)
    return measured


def _compare(path: Path, expected: Expected, measured: dict[str, object]) -> None:
    if expected.size is not None and measured["size"] != expected.size:
        raise _mismatch(path, "size", f"{expected.size} bytes", f"{measured['size']} bytes")
    if expected.sha256 and measured["sha256"] != expected.sha256:
        raise _mismatch(path, "sha256", expected.sha256, measured["sha256"])
    if expected.git_blob and measured.get("git_blob") != expected.git_blob:
        raise _mismatch(path, "git blob id", expected.git_blob, measured.get("git_blob"))


def write_marker(path: Path, measured: dict[str, object], **extra: object) -> None:
    """Record that ``path`` was verified (atomically)."""
    marker = _marker(path)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps({**measured, **extra}, indent=1))
    os.replace(tmp, marker)


def read_marker(path: Path) -> dict[str, object] | None:
    try:
        return json.loads(_marker(path).read_text())
    except (OSError, ValueError):
        return None


def is_verified(path: Path, expected: Expected = Expected()) -> bool:
    """Cheap re-check of a cached file: marker present, size unchanged, hashes as expected."""
    marker = read_marker(path)
    if marker is None or not path.is_file():
        return False
    if marker.get("size") != path.stat().st_size:
        return False
    if expected.size is not None and marker.get("size") != expected.size:
        return False
    sha256_ok = not expected.sha256 or marker.get("sha256") == expected.sha256
    git_blob_ok = not expected.git_blob or marker.get("git_blob") == expected.git_blob
    return sha256_ok and git_blob_ok


def forget(path: Path) -> None:
    """Delete a cached file with its marker and any partial download."""
    for p in (path, _marker(path), path.with_name(path.name + ".part")):
        p.unlink(missing_ok=True)


# --------------------------------------------------------------------------- fetching


def _unreachable(url: str, dest: Path, reason: str) -> DownloadError:
    return DownloadError(f"cannot download {url} ({reason}); download it by other means and save it as {dest}", reason)


def fetch(
    url: str,
    dest: str | os.PathLike,
    expected: Expected = Expected(),
    *,
    progress: ProgressCallback | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 30.0,
) -> Path:
    """Return ``dest`` verified, downloading ``url`` into it first when needed.

    A file already at ``dest`` with a valid marker is trusted; one without a marker (for
    example placed there by hand) is hashed and accepted if it matches. A corrupted cache
    entry is deleted and fetched again. Raises :class:`OfflineError` when the network is
    needed but ``TISDISS_OFFLINE`` is set, :class:`IntegrityError` on a hash mismatch,
    :class:`CacheError` when the file is not cached and the cache cannot take it, and
    :class:`DownloadError` when the server cannot be reached.
    """
    dest = Path(dest)
    if is_verified(dest, expected):
        return dest  # a read-only cache still serves what it holds
    lock = FileLock(str(dest.with_name(dest.name + ".lock")))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as exc:
        reason = f"cache {cache_dir()} is not writable: {exc.strerror or exc}"
        hint = "set TISDISS_CACHE_DIR to a writable folder"
        raise CacheError(f"cannot store {dest.name}: {reason}; {hint}", reason) from None
    try:
        if is_verified(dest, expected):
            return dest
        if dest.is_file():
            if read_marker(dest) is None:
                # Placed by hand (or a marker was lost): accept it only if it verifies.
                measured = verify_file(dest, expected)
                write_marker(dest, measured, url=url)
                return dest
            log.warning("%s: cached file no longer matches its verification record; fetching again", dest)
            forget(dest)
        if is_offline():
            raise OfflineError(
                f"{dest.name} is not in the cache and TISDISS_OFFLINE is set; unset it to download "
                f"{url}, or save the file as {dest}",
                "TISDISS_OFFLINE is set",
            )
        _download(url, dest, expected, progress=progress, retries=retries, backoff=backoff, timeout=timeout)
        return dest
    finally:
        lock.release()


def _download(
    url: str,
    dest: Path,
    expected: Expected,
    *,
    progress: ProgressCallback | None,
    retries: int,
    backoff: float,
    timeout: float,
) -> None:
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)  # we hold the lock: any part file is a dead process's leftover
    state = _Transfer()
    attempt = 0
    with part.open("wb") as out:
        while True:
            try:
                _stream_once(url, out, state, expected, progress, timeout)
                break
            except urllib.error.HTTPError as exc:
                if exc.code not in _TRANSIENT_HTTP or attempt >= retries:
                    part.unlink(missing_ok=True)
                    raise _unreachable(url, dest, f"HTTP {exc.code} {exc.reason}") from None
                reason = f"HTTP {exc.code}"
            except urllib.error.URLError as exc:
                # DNS failure, connection refused, TLS errors: retrying will not help.
                if not isinstance(exc.reason, _TRANSIENT_ERRORS) or attempt >= retries:
                    part.unlink(missing_ok=True)
                    raise _unreachable(url, dest, str(exc.reason)) from None
                reason = type(exc.reason).__name__
            except _TRANSIENT_ERRORS as exc:
                if attempt >= retries:
                    part.unlink(missing_ok=True)
                    raise _unreachable(url, dest, f"connection kept failing: {exc!r}") from None
                reason = type(exc).__name__
            attempt += 1
            delay = backoff * 2 ** (attempt - 1)
            log.info("download of %s interrupted (%s); retry %d/%d in %.1f s", url, reason, attempt, retries, delay)
            time.sleep(delay)
    hashes = state.hashes
    assert hashes is not None
    measured: dict[str, object] = {"size": hashes.done, "sha256": hashes.sha256.hexdigest()}
    if expected.git_blob:
        measured["git_blob"] = hashes.git_blob(part)
    try:
        _compare(dest, expected, measured)
    except IntegrityError as exc:
        part.unlink(missing_ok=True)
        raise IntegrityError(f"{exc}; the partial file was deleted, retry the download", exc.reason) from None
    if not expected.checks_anything:
        log.warning("%s: the registry gives no hash for this file; sha256 is %s", dest.name, measured["sha256"])
    os.replace(part, dest)
    write_marker(dest, measured, url=url)


class _Transfer:
    """Progress of one download across retries (survives an interrupted request)."""

    def __init__(self) -> None:
        self.hashes: _StreamHashes | None = None


def _stream_once(
    url: str,
    out: BinaryIO,
    state: _Transfer,
    expected: Expected,
    progress: ProgressCallback | None,
    timeout: float,
) -> None:
    """One HTTP request, continuing from the bytes ``state`` already holds when possible."""
    hashes = state.hashes
    have = hashes.done if hashes is not None else 0
    request = urllib.request.Request(url, headers={"User-Agent": "tisdiss"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        content_range = response.headers.get("Content-Range", "")
        if hashes is not None and response.status == 206 and content_range.startswith(f"bytes {have}-"):
            log.info("resuming %s at byte %d", url, have)
        else:
            # A fresh start (or a server that ignored Range): discard what we had.
            out.seek(0)
            out.truncate()
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else expected.size
            hashes = state.hashes = _StreamHashes(total)
        if progress is not None:
            progress(hashes.done, hashes.total)
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            out.write(chunk)
            hashes.update(chunk)
            if progress is not None:
                progress(hashes.done, hashes.total)
        if hashes.total is not None and hashes.done < hashes.total:
            raise http.client.IncompleteRead(b"", hashes.total - hashes.done)
    out.flush()
