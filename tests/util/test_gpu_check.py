"""benchmarks/gpu_check.py runs end to end on CPU (--quick), so the GPU run never breaks unseen."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from tests.conftest import GOLDEN, REPO


def test_gpu_check_quick_on_cpu(tmp_path: Path) -> None:
    command = [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick"]
    done = subprocess.run(
        [*command, "--no-compile", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    if GOLDEN.exists():
        assert report["parity"]["ok"], report["parity"]
        assert sorted(report["parity"]["max_abs_error"]) == ["nsep1_nre3", "nsep2_nre1"]  # --quick's two depths
        assert math.isfinite(report["precision_golden"]["bf16"])
    else:
        assert "skipped" in report["parity"]
    assert report["precision_released_10s"]["bf16"] > 0  # bf16 autocast runs and roughly agrees
    (row,) = report["speed"]
    assert row["presets"]["fast"]["rtf"] > 0 and "error" not in row
    assert "| 1 | 1 | 0.5 |" in done.stdout
