"""`tisdiss bench` and the benchmark API at tiny size (no timing assertions)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tisdiss_cli.evaluation.bench import BenchResult, deepest_realtime, random_model, time_forward
from tisdiss_cli.cli import _register_commands, app


def test_time_forward_reports_rtf_and_memory() -> None:
    model = random_model("random-tiny")
    r = time_forward(model, n_sep=1, n_re=1, seconds=0.25, runs=2, warmup=0)
    assert len(r.times) == 2 and r.median_s > 0
    assert abs(r.rtf * r.throughput - 1) < 1e-9
    assert r.peak_memory_mb > 0


def test_deepest_realtime_picks_largest_fast_depth() -> None:
    rows = [BenchResult(2, k, 1.0, 1, (t,), 1.0) for k, t in [(1, 0.2), (3, 0.9), (6, 1.5)]]
    best = deepest_realtime(rows)
    assert best is not None and best.n_re == 3
    assert deepest_realtime(rows[2:]) is None


def test_bench_cli_json() -> None:
    _register_commands()
    result = CliRunner().invoke(app, ["bench", "--model", "random-tiny", "--seconds", "0.25", "--nre", "0,2",
                                      "--runs", "1", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [r["n_re"] for r in data["results"]] == [0, 2]
    assert all(r["rtf"] > 0 and r["peak_memory_mb"] > 0 for r in data["results"])


def test_bench_cli_rejects_bad_depth_list() -> None:
    _register_commands()
    result = CliRunner().invoke(app, ["bench", "--model", "random-tiny", "--nre", "1,x"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
