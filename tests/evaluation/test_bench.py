"""`tisdiss bench` and the benchmark API: what is timed, in which unit (no speed assertions)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.evaluation.bench import BenchResult, deepest_realtime, random_model, time_forward


class SleepyModel(torch.nn.Module):
    """Stands in for TISDiSS: each forward takes ``delay`` seconds; calls are counted."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay, self.calls = delay, 0
        self.config = SimpleNamespace(sample_rate=8000)
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, mix: torch.Tensor, *, n_sep: int, n_re: int) -> torch.Tensor:
        self.calls += 1
        time.sleep(self.delay)
        return mix


def test_time_forward_times_each_run_after_the_warmup() -> None:
    model = SleepyModel(0.05)
    r = time_forward(model, n_sep=1, n_re=1, seconds=0.25, batch_size=2, runs=3, warmup=1)
    assert model.calls == 4 and len(r.times) == 3
    assert all(0.05 <= t < 0.5 for t in r.times)
    assert r.rtf == pytest.approx(r.median_s / 0.5)  # per second of audio, both inputs of the batch
    assert 0.1 <= r.rtf < 1.0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_memory_is_this_process_peak_rss_in_mb() -> None:
    r = time_forward(random_model("random-tiny"), n_sep=1, n_re=1, seconds=0.25, runs=1, warmup=0)
    status = Path("/proc/self/status").read_text()
    hwm_kib = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
    assert r.peak_memory_mb == pytest.approx(hwm_kib / 1024, rel=0.05)  # KiB from getrusage, not bytes


def test_deepest_realtime_picks_largest_fast_depth() -> None:
    rows = [BenchResult(2, k, 1.0, 1, (t,), 1.0) for k, t in [(1, 0.2), (3, 0.9), (6, 1.5)]]
    best = deepest_realtime(rows)
    assert best is not None and best.n_re == 3
    assert deepest_realtime(rows[2:]) is None


def test_bench_cli_json() -> None:
    _register_commands()
    result = CliRunner().invoke(
        app, ["bench", "--model", "random-tiny", "--seconds", "0.25", "--nre", "0,2", "--runs", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [r["n_re"] for r in data["results"]] == [0, 2]
    assert all(r["rtf"] > 0 and r["peak_memory_mb"] > 0 for r in data["results"])


def test_bench_cli_rejects_bad_depth_list() -> None:
    _register_commands()
    result = CliRunner().invoke(app, ["bench", "--model", "random-tiny", "--nre", "1,x"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
