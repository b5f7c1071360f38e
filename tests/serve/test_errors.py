"""Every error code and limit: bad uploads (400/415/422), size (413), duration, queue (503 +
Retry-After), disk, retention, cancellation, a crashing job, an internal error, and the auth rule."""

from __future__ import annotations

import io
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.serve.conftest import Server, recording
from tisdiss_cli.audio import denoise
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.serve.config import ServeConfig, auth_warning, is_loopback

_register_commands()
BOUNDARY = "tisdissboundary"


def multipart(*parts: tuple[str, str | None, bytes], end: bool = True) -> bytes:
    """A form body by hand: (field name, file name or None, content) per part."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return body + (f"--{BOUNDARY}--\r\n".encode() if end else b"")


def send(server: Server, body: bytes, route: str = "/v1/jobs", **headers: str):
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}", **headers}
    return server.client.post(route, content=body, headers=headers)


def wav_bytes(seconds: float = 0.5, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(seconds * rate), np.float32), rate, format="WAV")
    return buffer.getvalue()


GOOD = wav_bytes()


def riff(*, channels: int = 1, rate: int = 8000, declared: int | None = None, frames: int = 1000) -> bytes:
    """A 16-bit PCM WAV by hand, with any header values."""
    data = b"\0\1" * frames * channels
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2 & 0xFFFFFFFF, channels * 2 & 0xFFFF, 16)
    size = len(data) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b'{"file": 1}', {"content-type": "application/json"}, 415, "send the recording as multipart/form-data"),
        (b"x", {"content-type": "multipart/form-data"}, 400, "the multipart body has no boundary"),
        (multipart(("preset", None, b"fast")), {}, 400, "no recording: send it in the 'file' field"),
        (multipart(("file", "a.wav", b"")), {}, 400, "the uploaded file is empty"),
        (multipart(("file", "a.wav", GOOD[:5000]), end=False), {}, 400, "the upload ended early"),
        (b"--" + BOUNDARY.encode() + b"\r\nX: " + b"y" * 9000 + b"\r\n\r\n", {}, 400, "malformed multipart body"),
        (multipart(("file", "a.wav", GOOD), ("file", "b.wav", GOOD)), {}, 400, "send one file, in the 'file' field"),
        (multipart(("upload", "a.wav", GOOD)), {}, 400, "send one file, in the 'file' field"),
        (multipart(*[(f"f{i}", None, b"1") for i in range(17)], ("file", "a.wav", GOOD)), {}, 400, "too many form"),
        (multipart(("preset", None, b"x" * 2000), ("file", "a.wav", GOOD)), {}, 400, "is longer than 1024 bytes"),
        (multipart(("file", "a.wav", os.urandom(4000))), {}, 415, "a.wav: not a readable audio file"),
        (multipart(("file", "notes.txt", b"hello " * 500)), {}, 415, "notes.txt: "),
        (multipart(("file", "cut.wav", GOOD[:30])), {}, 415, "cut.wav: "),
        (multipart(("file", "silent.wav", GOOD[:44])), {}, 422, "silent.wav: no audio samples"),
        (multipart(("file", "wide.wav", riff(channels=4000))), {}, 415, "wide.wav: Too many channels"),
        (multipart(("file", "zero.wav", riff(rate=0))), {}, 415, "zero.wav: "),
        (multipart(("file", "a.wav", GOOD), ("colour", None, b"red")), {}, 422, "unknown option 'colour'"),
        (multipart(("file", "a.wav", GOOD), ("preset", None, b"slow")), {}, 422, "unknown preset 'slow'"),
        (multipart(("file", "a.wav", GOOD), ("n_re", None, b"99")), {}, 422, "at most 32 repetitions"),
        (multipart(("file", "a.wav", GOOD), ("n_sep", None, b"two")), {}, 422, "n_sep must be a whole number"),
        (multipart(("file", "a.wav", GOOD), ("n_sep", None, b"0")), {}, 422, "n_sep must be at least 1"),
        (multipart(("file", "a.wav", GOOD), ("format", None, b"aiff")), {}, 422, "unknown output format 'aiff'"),
        (multipart(("file", "a.wav", GOOD), ("format", None, b"mp3"), ("float", None, b"1")), {}, 422, "MP3 cannot"),
        (multipart(("file", "a.wav", GOOD), ("float", None, b"maybe")), {}, 422, "float must be true or false"),
        (multipart(("file", "a.wav", GOOD), ("speakers", None, b"many")), {}, 422, "speakers 'many': use auto or"),
        (multipart(("file", "a.wav", GOOD), ("speakers", None, b"0")), {}, 422, "speakers 0: use auto or a number"),
        (
            multipart(("file", "a.wav", GOOD), ("band", None, b"wide")),
            {},
            422,
            "unknown band 'wide'; choose full, model",
        ),
        (multipart(("file", "a.wav", GOOD), ("channel", None, b"2")), {}, 422, "a.wav has 1 channel(s), no channel 2"),
        (multipart(("file", "a.wav", GOOD), ("denoise", None, b"much")), {}, 422, "denoise must be true or false"),
    ],
)
def test_bad_uploads_get_one_sentence_and_leave_nothing(make_server, body, headers, status, message) -> None:
    server: Server = make_server()
    answer = send(server, body, **headers)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in answer.text
    assert str(server.root) not in error  # the server's folders are never shown
    assert server.manager.jobs == {} and list(server.root.iterdir()) == []
    assert server.manager.disk.used == 0


def test_denoise_on_a_server_without_rnnoise_is_refused_before_anything_is_kept(
    make_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(denoise, "available", lambda: False)
    server: Server = make_server()
    assert server.client.get("/v1/info").json()["denoise"] is False  # the page disables the choice
    answer = send(server, multipart(("file", "a.wav", GOOD), ("denoise", None, b"true")))
    assert answer.status_code == 422
    assert answer.json()["error"] == (
        "denoise is not available on this server: RNNoise is not installed (pip install 'tisdiss[denoise]')"
    )
    assert server.manager.jobs == {} and list(server.root.iterdir()) == []


def test_upload_size_limit_is_413_declared_or_streamed(make_server, tmp_path: Path) -> None:
    server: Server = make_server(max_upload_bytes=20_000)
    big = recording(tmp_path / "big.wav", 1.0)  # 32 kB of float samples
    declared = server.post(big)
    assert declared.status_code == 413
    assert declared.json() == {"error": "the upload is larger than this server takes (0.02 MB)"}

    def chunks():  # no Content-Length: refused while it arrives
        body = multipart(("file", "big.wav", big.read_bytes()))
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    streamed = server.client.post(
        "/v1/jobs", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    )
    assert streamed.status_code == 413 and list(server.root.iterdir()) == []
    assert send(server, b"", **{"content-length": "many"}).status_code == 400
    assert server.post(recording(tmp_path / "small.wav", 0.3)).status_code == 202


def test_duration_limit_is_422(make_server, tmp_path: Path) -> None:
    server: Server = make_server(max_duration=1.0)
    answer = server.post(recording(tmp_path / "lecture.wav", 1.5))
    assert answer.status_code == 422
    assert answer.json()["error"] == "lecture.wav is 0:01.50 long; POST /v1/jobs takes recordings of up to 0:01.00"
    assert server.post(recording(tmp_path / "ok.wav", 1.0)).status_code == 202


def test_a_full_queue_is_503_with_retry_after(make_server, short_wav: Path) -> None:
    server: Server = make_server(gated=True, workers=1, queue=2)
    ids = [server.post(short_wav).json()["id"] for _ in range(3)]  # one running, two waiting
    assert server.gate is not None and server.gate.entered.acquire(timeout=30)
    assert [server.client.get(f"/v1/jobs/{i}").json()["state"] for i in ids] == ["running", "queued", "queued"]
    assert server.client.get(f"/v1/jobs/{ids[2]}").json()["progress"]["queue_position"] == 2
    refused = server.post(short_wav)
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert "busy (1 running, 2 waiting)" in refused.json()["error"]
    assert len(list(server.root.iterdir())) == 3  # the refused upload left nothing
    server.gate.open.set()
    assert [server.wait(i)["state"] for i in ids] == ["done"] * 3
    assert server.post(short_wav).status_code == 202


def test_disk_budget_is_503_and_never_exceeded(make_server, short_wav: Path) -> None:
    server: Server = make_server(max_disk_bytes=2_000_000)
    auto = server.post(short_wav)  # auto reserves room for up to max_speakers files: more than this budget
    assert auto.status_code == 503 and "storage for recordings is full" in auto.json()["error"]
    first = server.wait(server.post(short_wav, speakers="2").json()["id"])
    assert first["state"] == "done"
    used = server.manager.disk.used
    on_disk = sum(f.stat().st_size for f in server.root.rglob("*") if f.is_file())
    assert on_disk <= used <= 2_000_000
    refused = server.post(short_wav, speakers="2")  # a second job's worst case does not fit
    assert refused.status_code == 503 and "storage for recordings is full" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) >= 1
    assert server.client.delete(f"/v1/jobs/{first['id']}").status_code == 204
    assert server.manager.disk.used == 0 and server.post(short_wav, speakers="2").status_code == 202


def test_finished_jobs_expire_and_their_files_go(make_server, short_wav: Path) -> None:
    server: Server = make_server(fake_clock=True, keep_seconds=60.0)
    job = server.wait(server.post(short_wav).json()["id"])
    assert job["expires_in_seconds"] == 60
    folder = server.root / job["id"]
    assert folder.is_dir()
    server.now[0] += 59.0
    assert server.manager.sweep() == 0 and folder.is_dir()
    server.now[0] += 1.0
    assert server.manager.sweep() == 1
    assert not folder.exists() and server.manager.disk.used == 0
    assert server.client.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_deleting_queued_and_running_jobs_cancels_them(make_server, short_wav: Path) -> None:
    server: Server = make_server(gated=True, queue=2)
    running, queued = (server.post(short_wav).json()["id"] for _ in range(2))
    assert server.gate is not None and server.gate.entered.acquire(timeout=30)
    assert server.client.delete(f"/v1/jobs/{queued}").status_code == 204
    assert not (server.root / queued).exists()
    assert server.client.delete(f"/v1/jobs/{running}").status_code == 204
    server.gate.open.set()  # its worker finds it cancelled at the first chunk and removes its files
    for _ in range(500):
        if not any(server.root.iterdir()) and server.manager.disk.used == 0:
            break
        time.sleep(0.01)
    assert list(server.root.iterdir()) == [] and server.manager.disk.used == 0


def test_a_crashing_job_fails_alone_and_the_server_goes_on(make_server, short_wav: Path) -> None:
    server: Server = make_server(gated=True)
    assert server.gate is not None
    server.gate.fail = RuntimeError(f"CUDA error: an illegal memory access in {server.root}/x/input.wav")
    server.gate.open.set()
    failed = server.wait(server.post(short_wav).json()["id"])
    assert failed["state"] == "failed" and failed["speakers"] == []
    assert failed["error"] == "CUDA error: an illegal memory access in [server]/x/input.wav"
    assert server.client.get(f"/v1/jobs/{failed['id']}/zip").json()["error"].startswith("no result: CUDA error")
    assert not (server.root / failed["id"]).exists() and server.manager.disk.used == 0
    assert server.wait(server.post(short_wav).json()["id"])["state"] == "done"
    sync_fail = RuntimeError("boom")
    server.gate.fail = sync_fail
    answer = server.post(short_wav, "/v1/separate")
    assert answer.status_code == 500 and answer.json() == {"error": "boom"}


def test_bad_samples_fail_the_job_with_the_reason(make_server, tmp_path: Path) -> None:
    server: Server = make_server()
    x = np.zeros(8000, np.float32)
    x[4000] = np.nan
    sf.write(tmp_path / "nan.wav", x, 8000, subtype="FLOAT")
    job = server.wait(server.post(tmp_path / "nan.wav").json()["id"])
    assert job["state"] == "failed" and job["error"] == "NaN or Inf samples near 0.50 s"
    answer = server.post(tmp_path / "nan.wav", "/v1/separate")
    assert answer.status_code == 422 and answer.json() == {"error": "NaN or Inf samples near 0.50 s"}


def test_an_internal_error_is_a_500_without_a_traceback(make_server, monkeypatch: pytest.MonkeyPatch) -> None:
    server: Server = make_server(errors=False)
    monkeypatch.setattr("tisdiss_cli.serve.app.describe", lambda *a, **k: 1 / 0)
    answer = server.client.get("/v1/info")
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error (the server's log has the details)"}
    assert server.client.get("/v1/health").status_code == 200


def test_a_token_guards_every_route(make_server, short_wav: Path) -> None:
    server: Server = make_server(token="s3cret-token")
    routes = ["/", "/assets/app.js", "/docs", "/openapi.json", "/v1/health", "/v1/info", "/v1/jobs/x", "/nothing"]
    for route in routes:
        refused = server.client.get(route)
        assert refused.status_code == 401, route
        assert refused.headers["www-authenticate"] == 'Bearer realm="tisdiss"'
        assert "Bearer" in refused.json()["error"]
    assert server.client.get("/v1/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert server.client.get("/v1/info", headers={"Authorization": "Basic s3cret-token"}).status_code == 401
    assert server.post(short_wav).status_code == 401 and server.manager.jobs == {}
    bearer = {"Authorization": "Bearer s3cret-token"}
    assert server.client.get("/v1/info", headers=bearer).status_code == 200
    with short_wav.open("rb") as f:
        assert server.client.post("/v1/jobs", files={"file": f}, headers=bearer).status_code == 202

    page = server.client.get("/", params={"access_token": "s3cret-token"})  # a browser opening the printed link
    assert page.status_code == 200 and "HttpOnly; SameSite=Strict" in page.headers["set-cookie"]
    assert server.client.get("/assets/app.js").status_code == 200  # the cookie now carries it
    server.client.cookies.clear()
    assert server.client.get("/assets/app.js").status_code == 401


def test_the_auth_rule_for_the_address() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "::", "example.org"))
    assert auth_warning(ServeConfig()) is None
    with pytest.raises(ValueError, match="--host 0.0.0.0 is reachable from other machines: pass --token"):
        auth_warning(ServeConfig(host="0.0.0.0"))
    assert auth_warning(ServeConfig(host="0.0.0.0", token="t")) is None
    warning = auth_warning(ServeConfig(host="0.0.0.0", no_auth=True))
    assert warning is not None and "without authentication (--no-auth)" in warning

    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "pass --token TOKEN" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["serve", "--token", "two words"], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "--token may hold letters, digits" in result.output


def test_without_the_extra_serve_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a))
    result = CliRunner().invoke(app, ["serve"], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert result.output.strip() == "error: tisdiss serve needs fastapi: pip install 'tisdiss[serve]'"


def test_a_wav_shorter_than_its_header_declares_is_separated_with_a_warning(make_server) -> None:
    server: Server = make_server()
    answer = send(server, multipart(("file", "cut.wav", riff(declared=0xFFFFFFF0))))
    assert answer.status_code == 202, answer.text
    job = server.wait(answer.json()["id"])
    assert job["state"] == "done" and job["input"]["duration_seconds"] == 0.125
    assert job["warnings"] == [
        "file is truncated: read 1000 of the 2147483640 frames its header declares (0:00.12 of 4473:55.46)"
    ]


@pytest.mark.parametrize("declared", [500, 0], ids=["under-declared", "size-0"])
def test_a_wav_longer_than_its_header_declares_is_separated_to_the_end(make_server, declared: int) -> None:
    server: Server = make_server()
    answer = send(server, multipart(("file", "crashed.wav", riff(declared=declared))))
    assert answer.status_code == 202, answer.text
    job = server.wait(answer.json()["id"])
    assert job["state"] == "done" and job["input"]["duration_seconds"] == 0.125
    assert job["warnings"] == (
        ["the header declares 250 frames (0:00.03) but the file holds 1000 (0:00.12): read to the end of the file"]
        if declared
        else []
    )
