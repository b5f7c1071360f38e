"""Interruptions: SIGTERM / SIGHUP / SIGINT clean up and exit 128 + signal; a SIGKILL's leftovers
are removed by the next run that writes there (separate, eval --save-estimates, checkpoints)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, dead_pid

HOST = socket.gethostname()


def _long_input(folder: Path, seconds: float = 240.0) -> Path:
    path = folder / "long.wav"
    rng = np.random.default_rng(0)
    sf.write(path, (0.1 * rng.standard_normal(int(seconds * 8000))).astype(np.float32), 8000)
    return path


def _start_separating(src: Path, out: Path, model: Path) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "tisdiss_cli",
        "separate",
        str(src),
        "-o",
        str(out),
        "-m",
        str(model),
        "--threads",
        "1",
        "--speakers",
        "2",  # two files known from the start: their part files exist while it runs
    ]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_parts(proc: subprocess.Popen[str], out: Path, timeout: float = 120.0) -> list[Path]:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        parts = sorted(out.glob(".*.part")) if out.is_dir() else []
        if len(parts) == 2:
            return parts
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no part files appeared (exit {proc.poll()}): {proc.communicate()[1]}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_termination_signals_leave_no_part_files(sig: signal.Signals, tiny_checkpoint: Path, tmp_path: Path) -> None:
    src, out = _long_input(tmp_path), tmp_path / "out"
    proc = _start_separating(src, out, tiny_checkpoint)
    _wait_for_parts(proc, out)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr
    assert f"tisdiss: stopped by {sig.name}" in stderr and "Traceback" not in stderr
    assert not out.exists()  # no output, no part file, not even the folder the run made


def test_part_files_left_by_sigkill_are_removed_by_the_next_run(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src, out = _long_input(tmp_path, seconds=20.0), tmp_path / "out"
    proc = _start_separating(src, out, tiny_checkpoint)
    leftovers = _wait_for_parts(proc, out)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate(timeout=60)
    assert all(p.exists() for p in leftovers)
    again = _start_separating(src, out, tiny_checkpoint)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["long_spk1.wav", "long_spk2.wav"]


def test_sweep_removes_only_dead_writers_parts(tmp_path: Path) -> None:
    from tisdiss_cli.util.fileio import new_part_file, remove_stale_parts

    target = tmp_path / "x.wav"
    dead = tmp_path / f".x.wav.tisdiss-{dead_pid()}@{HOST}-abcd1234.part"
    legacy = tmp_path / ".x.wav.k2j4h5g6.part"  # tisdiss before part files named their writer
    alive = tmp_path / f".x.wav.tisdiss-{os.getppid()}@{HOST}-abcd1234.part"
    elsewhere = tmp_path / f".x.wav.tisdiss-{dead_pid()}@another-host-abcd1234.part"
    mine = new_part_file(target)
    unrelated = tmp_path / ".hidden.txt"
    for p in (dead, legacy, alive, elsewhere, unrelated):
        p.write_bytes(b"x")
    removed = remove_stale_parts(tmp_path, again=True)
    assert sorted(removed) == sorted([dead, legacy])
    assert all(p.exists() for p in (alive, elsewhere, mine, unrelated))


def test_eval_estimates_and_checkpoints_sweep_stale_parts(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The next eval --save-estimates and the next resumed training remove a killed run's part files."""
    from typer.testing import CliRunner

    from tests.evaluation.test_eval import write_set
    from tisdiss_cli.cli import _register_commands, app

    _register_commands()
    estimates = tmp_path / "est" / "nsep2-nre1" / "s1"
    estimates.mkdir(parents=True)
    stale = estimates / f".utt0.wav.tisdiss-{dead_pid()}@{HOST}-abcd1234.part"
    stale.write_bytes(b"RIFF")
    args = ["eval", str(write_set(tmp_path / "set")), "-m", str(tiny_checkpoint), "--nre", "1", "--no-sdr"]
    result = CliRunner().invoke(app, [*args, "--rtf-utterances", "0", "--save-estimates", str(tmp_path / "est")])
    assert result.exit_code == 0, result.output
    assert not stale.exists() and (estimates / "utt0.wav").exists()
    assert not [p for p in (tmp_path / "est").rglob(".*") if p.is_file()]

    from tisdiss_cli.training.config import resolve_config
    from tisdiss_cli.training.loop import train

    data = tmp_path / "corpus"
    for split, speakers in (("train", 2), ("valid", 2)):
        for s in range(speakers):
            (data / split / f"spk{s}").mkdir(parents=True)
            tone = 0.1 * np.sin(2 * np.pi * (120 + 60 * s) * np.arange(4000) / 8000)
            sf.write(data / split / f"spk{s}" / "u.flac", tone.astype(np.float32), 8000)
    overrides = ["optim.max_steps=2", "data.epoch_size=4", "data.valid_size=2", "data.num_workers=0"]
    config = resolve_config("tiny", None, str(data), overrides)
    run = tmp_path / "run"
    train(config, run)
    stale_ckpt = run / "checkpoints" / f".last.pt.tisdiss-{dead_pid()}@{HOST}-abcd1234.tmp"
    stale_ckpt.write_bytes(b"half a checkpoint")
    train(resolve_config("tiny", None, str(data), [*overrides[1:], "optim.max_steps=4"]), run, resume=True)
    assert not stale_ckpt.exists()
