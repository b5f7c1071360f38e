"""With no model named and no way to fetch the default, start at once with the bundled model and
say so in one line; a failed download is remembered for an hour, not retried on every run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, FileServer
from tests.zoo.test_registry import write_registry


@pytest.fixture()
def unreachable_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    """wsj0-2mix points at a local server that does not have the file (404, not retried)."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("TISDISS_OFFLINE", "0")
    server = FileServer()
    registry = write_registry(tmp_path / "r.toml", {"wsj0-2mix": {"url": server.url("valid.loss.ave_5best.pth")}})
    monkeypatch.setenv("TISDISS_REGISTRY", str(registry))
    yield server
    server.close()


def _separate(src: Path, out: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tisdiss_cli", "separate", str(src), "-o", str(out), "--nre", "1", "--threads", "1"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=dict(os.environ))


def test_failed_default_download_is_remembered_and_the_warning_is_one_line(
    unreachable_default: FileServer, tmp_path: Path
) -> None:
    src = tmp_path / "in.wav"
    sf.write(src, (0.1 * np.random.default_rng(0).standard_normal(4000)).astype(np.float32), 8000)

    first = _separate(src, tmp_path / "a")
    assert first.returncode == 0, first.stderr
    assert len(unreachable_default.requests) == 1
    [warning] = [line for line in first.stderr.splitlines() if line.startswith("warning:")]
    assert "using the bundled model tisdiss-small-8k, not wsj0-2mix (HTTP 404" in warning
    assert warning.endswith("get the better model with: tisdiss models download wsj0-2mix")

    record = Path(os.environ["TISDISS_CACHE_DIR"]) / "unavailable" / "wsj0-2mix.json"
    data = json.loads(record.read_text())
    # The first run's separation may take minutes on a loaded machine; the "ago" is about the record.
    record.write_text(json.dumps({**data, "time": time.time()}))
    second = _separate(src, tmp_path / "b")
    assert second.returncode == 0, second.stderr
    assert len(unreachable_default.requests) == 1  # not asked again
    [warning] = [line for line in second.stderr.splitlines() if line.startswith("warning:")]
    assert "its download failed under a minute ago: HTTP 404 Not Found; next try in 60 min" in warning
    assert "Traceback" not in first.stderr + second.stderr

    record.write_text(json.dumps({**data, "time": time.time() - 3601}))  # an hour later
    assert _separate(src, tmp_path / "c").returncode == 0
    assert len(unreachable_default.requests) == 2


def test_an_explicit_download_always_tries(unreachable_default: FileServer) -> None:
    from tisdiss_cli.zoo.download import DownloadError
    from tisdiss_cli.zoo.load import download_model, load_model

    assert load_model().name == "tisdiss-small-8k"
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_model("wsj0-2mix")
    assert len(unreachable_default.requests) == 2
