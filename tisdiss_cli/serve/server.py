"""Running a server: load the model once, listen, and stop in order on SIGTERM or Ctrl-C.

:func:`serve` returns when the server stops; the command line prints the :class:`Stopped` it
returns. Stopping: the listener closes, open requests get the grace period, queued jobs are
cancelled, running ones finish within the grace period or are cancelled at their next chunk,
and the data folder (every upload and result) is deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import torch
import uvicorn

from ..separation.separator import Separator
from ..util.signals import HANDLED
from .app import Service, create_app
from .config import ServeConfig
from .info import measure_speed
from .jobs import JobManager

log = logging.getLogger(__name__)

DATA_PREFIX = "tisdiss-serve-"
_DATA_NAME = re.compile(rf"^{DATA_PREFIX}(\d+)-[0-9a-f]+$")


@dataclass(frozen=True)
class Ready:
    """What a started server tells its caller."""

    url: str  # where it listens, e.g. http://127.0.0.1:8000/
    separator: Separator
    data_dir: Path
    seconds: float  # from serve() to listening


@dataclass(frozen=True)
class Stopped:
    signal: str | None  # SIGINT, SIGTERM, ... (None: stopped otherwise)
    finished: int  # running jobs that finished in the grace period
    cancelled: int  # queued jobs, and running ones past the grace period


class _Server(uvicorn.Server):
    """uvicorn's server, telling us of the stop signal and not re-raising it after shutdown
    (the command line decides the exit code)."""

    def __init__(self, config: uvicorn.Config, manager: JobManager, grace: float) -> None:
        super().__init__(config)
        self.manager, self.grace = manager, grace
        self.signals: list[int] = []
        self.stop_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.signals:  # a plain attribute: this runs in a signal handler, no lock is taken
            self.stop_at = self.manager.clock() + self.grace
            self.manager.closing = True
        self.signals.append(sig)
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        before = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)


def data_folder(parent: Path | None) -> Path:
    """A new folder for this server's jobs inside ``parent`` (default: the system temp folder); folders
    there left by servers that were killed (their process is gone) are removed first."""
    parent = Path(tempfile.gettempdir()) if parent is None else parent
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.iterdir():
        found = _DATA_NAME.match(old.name)
        if found and old.is_dir() and not _alive(int(found[1])):
            shutil.rmtree(old, ignore_errors=True)
    folder = parent / f"{DATA_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    folder.mkdir(mode=0o700)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 takes a free one. ``OSError`` when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(config: ServeConfig, *, on_ready: Callable[[Ready], None] | None = None) -> Stopped:
    """Load the model, listen on ``config.host:config.port`` and serve until a signal stops it.

    Raises what loading the model raises (``MODEL_ERRORS``, ``ValueError``) and ``OSError`` when the
    address cannot be bound, each before anything listens."""
    start = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    sock = listen(config.host, config.port)  # a taken port fails before the model loads
    try:
        separator = Separator(config.model, device=config.device, precision=config.precision)
    except BaseException:
        sock.close()
        raise
    root = data_folder(config.data_dir)
    manager = JobManager(separator, config.limits, root)
    grace = config.limits.grace_seconds
    app = create_app(Service(separator, manager, config))
    uv_config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=max(1, round(grace))
    )
    server = _Server(uv_config, manager, grace)
    manager.start()
    if config.measure_speed:
        threading.Thread(target=_measure, args=(separator, manager), name="tisdiss-speed", daemon=True).start()
    ready = Ready(url_of(sock, config.host), separator, root, time.perf_counter() - start)
    try:
        if on_ready is not None:
            on_ready(ready)
        server.run(sockets=[sock])
    finally:
        stop_at = server.stop_at if server.stop_at is not None else manager.clock() + grace
        finished, cancelled = manager.shutdown(stop_at)
        sock.close()
    name = signal.Signals(server.signals[0]).name if server.signals else None
    return Stopped(name, finished, cancelled)


def _measure(separator: Separator, manager: JobManager) -> None:
    try:
        manager.rtf.update(measure_speed(separator))
    except Exception:  # the page then shows no speed; separation is unaffected
        log.warning("measuring this machine's speed failed", exc_info=True)
