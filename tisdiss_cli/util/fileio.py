"""Atomic file writes: a temporary "part" file in the target's folder, renamed over it when complete.

Part files are named ``.<target>.tisdiss-<pid>@<host>-<random>.part`` (``.tmp`` for whole-file
writes), so that a later process can tell a dead writer's leftovers (after a SIGKILL or a power
cut) from a file another live process is still writing: :func:`remove_stale_parts` deletes only
those of processes that no longer run on this host. A failed write raises :class:`WriteError`,
naming the file and the reason, and leaves no part file behind, nor a folder it had to create.

:func:`commit` is the one place a part file becomes its target: without ``overwrite`` it claims
the target exclusively (a hard link, which fails if the name exists), so two runs writing the
same output never replace each other's file.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from .signals import signals_deferred


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; finished files get the mode a plain open() would give them.
FILE_MODE = 0o666 & ~_read_umask()

_HOST = socket.gethostname().replace("/", "_") or "localhost"
_TAGGED = re.compile(r"^\..+\.tisdiss-(?P<pid>\d+)@(?P<host>.+)-[a-z0-9_]{8}\.(part|tmp)$")
# Part files of tisdiss before they were tagged: no owner recorded, so only names of what tisdiss writes.
_LEGACY = re.compile(r"^\..+\.(wav|flac|pt|safetensors|json|csv|png)\.[a-z0-9_]{8}\.(part|tmp)$")
_swept: set[Path] = set()  # folders already swept by this process (a sweep lists the whole folder)
_created: set[Path] = set()  # folders this process created for part files (removed again if left empty)
_NO_HARD_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK)  # what link() says where it cannot


class WriteError(OSError):
    """A file could not be written (disk full, no permission, ...). ``str()`` is one line:
    ``cannot write PATH: reason``; ``errno`` is the underlying error's, when it had one."""

    def __init__(self, path: str | os.PathLike[str], cause: BaseException) -> None:
        code = cause.errno if isinstance(cause, OSError) else None
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
        super().__init__(code, " ".join(reason.split()) or type(cause).__name__, os.fspath(path))

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


def _owner_gone(name: str) -> bool:
    """Whether part file ``name`` was left by a process that no longer runs (on this host)."""
    if _LEGACY.match(name):
        return True
    tagged = _TAGGED.match(name)
    if tagged is None or tagged["host"] != _HOST:
        return False  # not ours, or another machine's: cannot tell
    pid = int(tagged["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def live_writer(path: str | os.PathLike[str]) -> int | None:
    """The pid of another live process on this host writing ``path`` now (one of its part files
    is there), else None: a cheap early check; :func:`commit` is what guarantees exclusivity."""
    path = Path(path)
    prefix = f".{path.name}.tisdiss-"
    try:
        names = [e.name for e in os.scandir(path.parent) if e.name.startswith(prefix)]
    except OSError:
        return None
    for name in names:
        tagged = _TAGGED.match(name)
        if tagged is None or tagged["host"] != _HOST or int(tagged["pid"]) == os.getpid():
            continue
        if not _owner_gone(name):
            return int(tagged["pid"])
    return None


def remove_stale_parts(folder: str | os.PathLike[str], *, again: bool = False) -> list[Path]:
    """Delete the part files of dead writers in ``folder``; returns what was removed.

    Done once per folder and process unless ``again`` (every write calls it, and a folder of
    thousands of outputs should be listed once, not once per output).
    """
    folder = Path(folder)
    key = folder.resolve()
    if key in _swept and not again:
        return []
    _swept.add(key)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(".") and _owner_gone(entry.name):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass  # removed meanwhile, or not ours to remove
    return removed


def _make_folders(folder: Path) -> None:
    """``mkdir -p``, remembering each folder created (so :func:`remove_part_file` can take it back)."""
    missing: list[Path] = []
    while not folder.is_dir() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        try:
            created.mkdir()
        except FileExistsError:
            continue  # made meanwhile by another writer: not ours to remove
        _created.add(created.absolute())


def new_part_file(path: str | os.PathLike[str], suffix: str = ".part", *, sweep_again: bool = False) -> Path:
    """Create an empty, owner-tagged part file beside ``path``; its folder is created and swept
    (see :func:`remove_stale_parts`)."""
    path = Path(path)
    prefix = f".{path.name}.tisdiss-{os.getpid()}@{_HOST}-"
    for attempt in range(3):
        try:
            _make_folders(path.parent)
            remove_stale_parts(path.parent, again=sweep_again)
            fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
            break
        except FileNotFoundError as exc:  # an empty folder removed by another writer's clean-up: again
            if attempt == 2:
                raise WriteError(path, exc) from None
        except OSError as exc:
            raise WriteError(path, exc) from None
    os.close(fd)
    os.chmod(tmp, FILE_MODE)
    return Path(tmp)


def remove_part_file(tmp: Path) -> None:
    """Delete a part file, then the folders above it that this process created and that are now empty."""
    tmp.unlink(missing_ok=True)
    folder = tmp.parent.absolute()
    while folder in _created:
        try:
            folder.rmdir()  # only succeeds when empty: another file there keeps it
        except OSError:
            return
        _created.discard(folder)
        folder = folder.parent


def commit(tmp: Path, path: Path, *, overwrite: bool) -> None:
    """Rename part file ``tmp`` to ``path``. Without ``overwrite`` the name is claimed exclusively:
    ``FileExistsError`` if it exists, even when another process created it a moment ago (the check
    and the claim are one hard link); ``tmp`` is gone either way on success."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except OSError as exc:
        if isinstance(exc, FileExistsError) or exc.errno not in _NO_HARD_LINKS:
            raise
        # No hard links here (FAT, some network shares): claim the name with O_EXCL, then replace
        # that empty placeholder; readers may see it empty for a moment, never partly written.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        os.replace(tmp, path)
        return
    tmp.unlink()


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` then rename ``tmp`` to ``path``; readers never see a partial file,
    and a failure (or an interruption) leaves no temporary file behind. An ``OSError`` from
    ``write`` (disk full, ...) is raised as :class:`WriteError` naming ``path``.

    Whole-file writes (checkpoints, reports, configs) are few and go to small folders, so each
    one sweeps its folder for a dead writer's leftovers."""
    path = Path(path)
    tmp: Path | None = None
    try:
        with signals_deferred():  # a signal raises once ``tmp`` is set, inside this try
            tmp = new_part_file(path, ".tmp", sweep_again=True)
        write(tmp)
        os.chmod(tmp, FILE_MODE)  # in case ``write`` replaced the file
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            remove_part_file(tmp)
        raise (exc if isinstance(exc, WriteError) else WriteError(path, exc)) from None
    except BaseException:
        if tmp is not None:
            remove_part_file(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def unwritable_folder(folder: str | os.PathLike[str]) -> str | None:
    """Why files cannot be written into ``folder`` (created if missing), as a sentence; None if they can.

    Checked before any work starts, so a bad output folder is reported once.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "it" if existing == folder else f"{existing}"
        return f"cannot write into {folder}: {what} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        reason = "read-only file system" if read_only else "permission denied"
        where = "" if existing == folder else f" ({existing} is not writable)"
        return f"cannot write into {folder}: {reason}{where}"
    return None
