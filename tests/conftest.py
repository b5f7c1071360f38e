"""Shared fixtures and helpers: no test touches the network or the user's real cache."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from tisdiss_cli.evaluation import metrics
from tisdiss_cli.model.network import TISDiSS

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GOLDEN = SHARED / "golden"
DEV2MIX = SHARED / "data" / "dev2mix"


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TISDISS_OFFLINE", "1")
    monkeypatch.setenv("TISDISS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("TISDISS_REGISTRY", raising=False)
    torch.set_num_threads(1)


def need(path: Path) -> Path:
    """Skip the calling test when an optional shared resource is absent."""
    if not path.exists():
        pytest.skip(f"{path.name} not available (../shared absent)")
    return path


def load_golden(folder: Path) -> dict:
    """A golden set (config, state dict, input, references, outputs) from ``folder``; skips if absent."""
    need(folder / "outputs.pt")

    def load(name: str) -> object:
        return torch.load(folder / name, weights_only=True)

    return {
        "config": json.loads((folder / "config.json").read_text()),
        "state": load("state_dict.pt"),
        "input": load("input.pt"),
        "refs": load("refs.pt"),
        "outputs": load("outputs.pt"),
    }


# --------------------------------------------------------------------------- golden vectors


@pytest.fixture()
def espnet_dir(tmp_path: Path) -> Path:
    """An ESPnet experiment folder built from the golden vectors."""
    need(GOLDEN / "state_dict.pt")
    folder = tmp_path / "exp"
    folder.mkdir()
    config = json.loads((GOLDEN / "config.json").read_text())
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    state = torch.load(GOLDEN / "state_dict.pt", weights_only=True)
    torch.save(state, folder / "valid.loss.ave_5best.pth")
    return folder


def golden_output(model: TISDiSS, n_sep: int, n_re: int) -> tuple[torch.Tensor, torch.Tensor]:
    mix = torch.load(GOLDEN / "input.pt", weights_only=True).double()
    with torch.no_grad():
        out = model.double()(mix, n_sep=n_sep, n_re=n_re)[0]
    expected = torch.load(GOLDEN / "outputs.pt", weights_only=True)[f"nsep{n_sep}_nre{n_re}"]
    return out, expected


def dev2mix_si_snri(model: TISDiSS, utt: str, n_sep: int, n_re: int) -> float:
    """SI-SNRi (dB) of ``model`` on one whole dev2mix mixture, float32 forward, float64 scoring."""
    mix = sf.read(DEV2MIX / "mix" / f"{utt}.wav", dtype="float32")[0]
    refs = np.stack([sf.read(DEV2MIX / s / f"{utt}.wav", dtype="float64")[0] for s in ("s1", "s2")])
    with torch.inference_mode():
        est = model(torch.from_numpy(mix)[None], n_sep=n_sep, n_re=n_re)[0].double().numpy()
    baseline = metrics.mixture_baseline(mix.astype(np.float64), refs, with_sdr=False)
    return metrics.score(est, refs, baseline, with_sdr=False).si_snri


# --------------------------------------------------------------------------- a local HTTP server


def run_events(run: Path, kind: str) -> list[dict[str, object]]:
    """The events of one kind in a training run's metrics.jsonl, in order."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FileServer:
    """Serves ``files`` with selectable misbehaviour; records every request it receives."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.mode = "ok"  # ok | corrupt | drop_once | fail_once | no_length | slow
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self._dropped = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        data = self.files.get(h.path.lstrip("/"))
        if data is None:
            h.send_error(404)
            return
        if self.mode == "fail_once" and not self._dropped:
            self._dropped = True
            h.send_error(503)
            return
        if self.mode == "corrupt":
            data = data[:1000] + bytes([data[1000] ^ 1]) + data[1001:]
        start = 0
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes=") and self.mode != "no_length":
            start = int(rng[6:].split("-")[0])
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        if self.mode != "no_length":
            h.send_header("Content-Length", str(len(data) - start))
        h.end_headers()
        body = data[start:]
        if self.mode == "drop_once" and not self._dropped:
            self._dropped = True
            h.wfile.write(body[: len(body) // 3])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        if self.mode == "slow":
            for i in range(0, len(body), 8192):
                h.wfile.write(body[i : i + 8192])
                time.sleep(0.05)
            return
        h.wfile.write(body)


# --------------------------------------------------------------------------- a small model


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny model with presets fast (1, 1), balanced (2, 1), best (2, 3)."""
    from tisdiss_cli.model.checkpoint import save_checkpoint
    from tisdiss_cli.model.config import ARCHITECTURES
    from tisdiss_cli.model.network import init_weights

    torch.manual_seed(0)
    model = TISDiSS(ARCHITECTURES["tiny"])
    init_weights(model)
    meta = {"presets": {"fast": [1, 1], "balanced": [2, 1], "best": [2, 3]}}
    return save_checkpoint(model, tmp_path_factory.mktemp("tiny-model") / "tiny.safetensors", meta)


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- a training corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SPEAKER/UTT.flac folders of voiced, speaker-specific synthetic signals."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    t = np.arange(int(1.2 * 8000)) / 8000
    for split, speakers in (("train", 6), ("valid", 3)):
        for s in range(speakers):
            f0 = 90 + 37 * s + (200 if split == "valid" else 0)
            folder = root / split / f"spk{s}"
            folder.mkdir(parents=True)
            for u in range(2):
                env = 0.5 + 0.5 * np.sin(2 * np.pi * (3 + u) * t + s)
                wave = sum(np.sin(2 * np.pi * f0 * h * t * (1 + 0.02 * u)) / h for h in range(1, 6)) * env
                wave += 0.01 * rng.standard_normal(len(t))
                sf.write(folder / f"u{u}.flac", (0.1 * wave).astype(np.float32), 8000)
    return root
