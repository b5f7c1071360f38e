"""Fixtures for the server's tests: an in-process app on the tiny model, recordings, a gate that holds
jobs, and a real `tisdiss serve` process on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[test]'")

from fastapi.testclient import TestClient  # noqa: E402

from tests.conftest import REPO  # noqa: E402
from tisdiss_cli.separation.separator import Separator  # noqa: E402
from tisdiss_cli.serve.app import Service, create_app  # noqa: E402
from tisdiss_cli.serve.config import Limits, ServeConfig  # noqa: E402
from tisdiss_cli.serve.jobs import JobManager  # noqa: E402

ARTIFACTS = REPO / "test-artifacts"  # screenshots and load-test figures (not committed)
EXAMPLE = REPO / "models" / "examples" / "two_speakers.wav"


def recording(path: Path, seconds: float, rate: int = 8000, channels: int = 1, seed: int = 0) -> Path:
    """Two voiced synthetic talkers with a little noise: ``seconds`` at ``rate``, as float WAV."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    a = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 2.5 * t))
    b = 0.2 * np.sign(np.sin(2 * np.pi * 130 * t)) * (t % 0.6 < 0.35)
    x = (a + b)[:, None] + 0.02 * rng.standard_normal((len(t), channels))
    sf.write(path, x.astype(np.float32), rate, subtype="FLOAT")
    return path


class Gate:
    """Stands in for the manager's Separator: each job waits at the gate until it is opened."""

    def __init__(self, separator: Separator) -> None:
        self.separator = separator
        self.open = threading.Event()
        self.entered = threading.Semaphore(0)
        self.fail: Exception | None = None  # raised by the next job instead of separating

    def __getattr__(self, name: str) -> Any:
        return getattr(self.separator, name)

    def process_file(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.release()
        assert self.open.wait(60), "gate never opened"
        if self.fail is not None:
            exc, self.fail = self.fail, None
            raise exc
        return self.separator.process_file(*args, **kwargs)


@dataclass
class Server:
    """An app under test: its HTTP client, job manager and data folder."""

    client: TestClient
    manager: JobManager
    root: Path
    gate: Gate | None = None
    now: list[float] = field(default_factory=lambda: [1000.0])

    def post(self, path: Path, route: str = "/v1/jobs", **fields: str) -> Any:
        with path.open("rb") as f:
            return self.client.post(route, files={"file": (path.name, f, "audio/wav")}, data=fields)

    def wait(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] not in ("queued", "running"):
                return job
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")


@pytest.fixture(scope="session")
def tiny_separator(tiny_checkpoint: Path) -> Separator:
    return Separator(tiny_checkpoint, device="cpu", precision="fp32")


@pytest.fixture()
def make_server(tiny_separator: Separator, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``make_server(token=..., gated=..., fake_clock=..., **limits)`` -> a running in-process :class:`Server`."""
    made: list[Server] = []

    def make(
        *, token: str | None = None, gated: bool = False, fake_clock: bool = False, errors: bool = True, **limits: Any
    ) -> Server:
        config = ServeConfig(token=token, measure_speed=False, limits=replace(Limits(workers=1, queue=4), **limits))
        root = tmp_path / f"data{len(made)}"
        now = [1000.0]
        clock = (lambda: now[0]) if fake_clock else time.monotonic
        manager = JobManager(tiny_separator, config.limits, root, clock=clock)
        gate = Gate(tiny_separator) if gated else None
        if gate is not None:
            manager.separator = gate  # type: ignore[assignment]
        manager.start()
        client = TestClient(create_app(Service(tiny_separator, manager, config)), raise_server_exceptions=errors)
        server = Server(client, manager, root, gate, now)
        made.append(server)
        return server

    yield make
    for server in made:
        if server.gate is not None:
            server.gate.open.set()
        server.manager.shutdown(server.manager.clock())
        server.client.close()


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recording(tmp_path_factory.mktemp("rec") / "meeting.wav", 1.2)


# --------------------------------------------------------------------------- a real `tisdiss serve`

SERVE_CACHE: Path | None = None  # one cache for every server of a test run


@pytest.fixture(scope="session", autouse=True)
def _serve_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The servers' speed measurement after start (cached by model and device) is then made once."""
    global SERVE_CACHE
    SERVE_CACHE = tmp_path_factory.mktemp("serve-cache")


@dataclass
class Process:
    proc: subprocess.Popen[str]
    url: str
    started: float  # seconds from launch to "serving on"
    lines: list[str]
    started_cpu: float = 0.0  # CPU seconds it had used by then

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far (user + system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_peak_mb(self) -> float:
        """The server's peak resident memory so far (VmHWM), in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@contextlib.contextmanager
def tisdiss_serve(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> Iterator[Process]:
    """``tisdiss serve --port 0 ARGS`` as a child process, ready when it prints where it listens."""
    cmd = [sys.executable, "-m", "tisdiss_cli", "serve", "--port", "0", *args]
    cache = {"TISDISS_CACHE_DIR": str(SERVE_CACHE)} if SERVE_CACHE is not None else {}
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **cache, **(env or {})}
    launched = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            match = re.search(r"serving on (http://\S+?/)", line)
            if match and not url:
                url.append(match[1])
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not found.wait(timeout):
            raise AssertionError(f"tisdiss serve did not start in {timeout} s: {lines}")
        process = Process(proc, url[0], time.perf_counter() - launched, lines)
        process.started_cpu = process.cpu_seconds()
        yield process
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(5)
