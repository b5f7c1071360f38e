"""Verified downloads against a real HTTP server on 127.0.0.1 started by the test."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, FileServer, blob_id
from tisdiss_cli.zoo.download import (
    DownloadError,
    Expected,
    IntegrityError,
    OfflineError,
    fetch,
    git_blob_id,
    is_verified,
    read_marker,
)

PAYLOAD = bytes(range(256)) * 800  # 204,800 bytes


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("TISDISS_OFFLINE", "0")
    srv = FileServer()
    srv.files["model.bin"] = PAYLOAD
    yield srv
    srv.close()


def good() -> Expected:
    return Expected(size=len(PAYLOAD), sha256=hashlib.sha256(PAYLOAD).hexdigest(), git_blob=blob_id(PAYLOAD))


def test_good_download_verified_with_progress(server: FileServer, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    dest = fetch(
        server.url("model.bin"), tmp_path / "m" / "model.bin", good(), progress=lambda d, t: seen.append((d, t))
    )
    assert dest.read_bytes() == PAYLOAD
    assert is_verified(dest, good())
    assert read_marker(dest)["git_blob"] == blob_id(PAYLOAD)
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert not list(tmp_path.glob("m/*.part"))
    # a verified cache hit does not touch the network
    fetch(server.url("model.bin"), dest, good())
    assert len(server.requests) == 1


def test_corrupted_content_rejected_and_nothing_cached(server: FileServer, tmp_path: Path) -> None:
    server.mode = "corrupt"
    dest = tmp_path / "model.bin"
    with pytest.raises(IntegrityError) as err:
        fetch(server.url("model.bin"), dest, good())
    message = str(err.value)
    assert "sha256" in message and hashlib.sha256(PAYLOAD).hexdigest() in message and str(dest) in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin.lock"]


def test_git_blob_mismatch_rejected(server: FileServer, tmp_path: Path) -> None:
    wrong = "0" * 40
    with pytest.raises(IntegrityError, match=f"expected {wrong}, got {blob_id(PAYLOAD)}"):
        fetch(server.url("model.bin"), tmp_path / "model.bin", Expected(git_blob=wrong))
    assert not (tmp_path / "model.bin").exists()


def test_git_blob_without_content_length(server: FileServer, tmp_path: Path) -> None:
    server.mode = "no_length"
    dest = fetch(server.url("model.bin"), tmp_path / "model.bin", Expected(git_blob=blob_id(PAYLOAD)))
    assert dest.read_bytes() == PAYLOAD


@pytest.mark.parametrize("content", [b"", b"hello\n", PAYLOAD[:5000]])
def test_git_blob_id_matches_git(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(content)
    assert git_blob_id(path) == blob_id(content)
    git = shutil.which("git")
    if git is None:
        pytest.skip("git not installed")
    out = subprocess.run([git, "hash-object", "--no-filters", str(path)], capture_output=True, text=True, check=True)
    assert git_blob_id(path) == out.stdout.strip()


def test_dropped_connection_resumes_with_range(server: FileServer, tmp_path: Path) -> None:
    server.mode = "drop_once"
    dest = fetch(server.url("model.bin"), tmp_path / "model.bin", good(), backoff=0.01)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 2
    resumed_from = int(server.requests[1][1].split("=")[1].rstrip("-"))
    assert 0 < resumed_from < len(PAYLOAD)


def test_transient_error_retried(server: FileServer, tmp_path: Path) -> None:
    server.mode = "fail_once"
    dest = fetch(server.url("model.bin"), tmp_path / "model.bin", good(), backoff=0.01)
    assert dest.read_bytes() == PAYLOAD and len(server.requests) == 2


def test_404_says_url_and_where_to_put_the_file(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "missing.bin"
    url = server.url("missing.bin")
    with pytest.raises(DownloadError) as err:
        fetch(url, dest, backoff=0.01)
    assert "404" in str(err.value) and url in str(err.value) and str(dest) in str(err.value)
    assert len(server.requests) == 1  # not retried
    assert not dest.exists()


def test_connection_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TISDISS_OFFLINE", "0")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/model.bin"
    dest = tmp_path / "model.bin"
    with pytest.raises(DownloadError) as err:
        fetch(url, dest, backoff=0.01)
    assert url in str(err.value) and str(dest) in str(err.value) and "refused" in str(err.value).lower()


def test_offline_never_connects(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TISDISS_OFFLINE", "1")

    def no_connect(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used in offline mode")

    monkeypatch.setattr(socket, "create_connection", no_connect)
    dest = tmp_path / "model.bin"
    with pytest.raises(OfflineError, match="TISDISS_OFFLINE") as err:
        fetch(server.url("model.bin"), dest, good())
    assert str(dest) in str(err.value)
    assert server.requests == []
    # a file placed there by hand is verified and used without the network
    dest.write_bytes(PAYLOAD)
    assert fetch(server.url("model.bin"), dest, good()) == dest and is_verified(dest, good())
    assert server.requests == []


def test_manually_placed_wrong_file_reported(tmp_path: Path) -> None:
    dest = tmp_path / "model.bin"
    dest.write_bytes(PAYLOAD[:-1])
    with pytest.raises(IntegrityError, match="size mismatch"):
        fetch("http://127.0.0.1:9/none", dest, good())
    assert dest.read_bytes() == PAYLOAD[:-1]  # left for the user to inspect


def test_corrupted_cache_entry_refetched(server: FileServer, tmp_path: Path) -> None:
    dest = fetch(server.url("model.bin"), tmp_path / "model.bin", good())
    dest.write_bytes(PAYLOAD[:1000])  # truncated behind our back
    assert not is_verified(dest, good())
    assert fetch(server.url("model.bin"), dest, good()).read_bytes() == PAYLOAD
    assert len(server.requests) == 2


_WORKER = """
import importlib.util, sys, time
from pathlib import Path
# load download.py alone: importing the tisdiss_cli package would import torch (slow)
url, dest, size, sha, blob, flag, module = sys.argv[1:]
spec = importlib.util.spec_from_file_location("download", module)
download = sys.modules["download"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(download)
Expected, fetch = download.Expected, download.fetch
Path(flag + ".ready").touch()
while not Path(flag + ".go").exists():
    time.sleep(0.01)
fetch(url, dest, Expected(int(size), sha, blob))
print(Path(dest).stat().st_size)
"""


def test_two_processes_one_verified_file(server: FileServer, tmp_path: Path) -> None:
    server.mode = "slow"  # about 1.3 s: the second process must wait on the lock
    dest = tmp_path / "cache" / "model.bin"
    exp = good()
    env = dict(os.environ)
    procs = []
    for i in range(2):
        args = [
            server.url("model.bin"),
            str(dest),
            str(exp.size),
            exp.sha256,
            exp.git_blob,
            str(tmp_path / f"p{i}"),
            str(REPO / "tisdiss_cli" / "zoo" / "download.py"),
        ]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"p{i}.ready").exists() for i in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), procs[0].stderr.read()
        time.sleep(0.02)
    (tmp_path / "p0.go").touch()
    (tmp_path / "p1.go").touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o.strip() for o, _ in outs] == [str(len(PAYLOAD))] * 2
    assert len(server.requests) == 1  # the waiting process found the verified file
    assert dest.read_bytes() == PAYLOAD and is_verified(dest, exp)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.bin", "model.bin.lock", "model.bin.verified"]
