"""`tisdiss train` through the command line: checks before any write, resume on the run's own config
(explicit changes shown and recorded), and a full disk while saving a checkpoint."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import run_events
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.model.network import TISDiSS
from tisdiss_cli.training.config import TrainConfig, config_from_dict
from tisdiss_cli.training.state import load_state

_register_commands()
runner = CliRunner()
QUICK = ["--set", "optim.max_steps=2", "--set", "data.epoch_size=8", "--set", "data.valid_size=2"]


def train(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["train", "--quiet", "--threads", "1", *args], env={"COLUMNS": "400"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def read_run_config(run: Path) -> TrainConfig:
    return config_from_dict(json.loads((run / "config.json").read_text()))


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_bad_data_fails_before_the_run_folder_is_written(make: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    if make == "empty":
        data.mkdir()
    run = tmp_path / "run"
    code, out = train("--recipe", "tiny", "--data", str(data), "--run", str(run))
    assert code == 1 and out.startswith("error:") and str(data / "train") in out
    assert not run.exists()


def test_bad_setting_types_are_refused_by_name(tmp_path: Path) -> None:
    code, out = train(
        "--recipe", "tiny", "--data", str(tmp_path), "--run", str(tmp_path / "run"), "--set", "optim.lr=abc"
    )
    assert code == 2 and "optim.lr: expected a number, got 'abc'" in out
    code, out = train("--recipe", "tiny", "--set", "model.emb_dim=wide", "--print-config")
    assert code == 2 and "model.emb_dim: expected an integer, got 'wide'" in out
    assert not (tmp_path / "run").exists()


@pytest.fixture()
def started(corpus: Path, tmp_path: Path) -> Path:
    """A tiny run started with explicit settings the recipe does not have."""
    run = tmp_path / "run"
    overrides = ["--set", "model.n_re=1", "--set", "optim.lr=1e-3", "--set", "optim.batch_size=4"]
    code, out = train("--recipe", "tiny", "--data", str(corpus), "--run", str(run), *overrides, *QUICK)
    assert code == 0, out
    return run


def test_resume_with_a_recipe_that_would_change_the_run_is_refused(started: Path, corpus: Path) -> None:
    before = {p: p.read_bytes() for p in started.rglob("*") if p.is_file()}
    code, out = train("--recipe", "tiny", "--data", str(corpus), "--run", str(started), "--resume")
    assert code == 2
    assert "--recipe would change the run's settings (" in out
    assert "model.n_re 1 -> 2" in out and "optim.batch_size 4 -> 2" in out and "optim.lr 0.001 -> 0.003" in out
    assert "use --set KEY=VALUE for a deliberate change" in out
    assert {p: p.read_bytes() for p in started.rglob("*") if p.is_file()} == before  # nothing touched
    code, out = train("--run", str(started), "--resume", "--data", str(corpus / "elsewhere"))
    assert code == 2 and "is not the run's data" in out


def test_resume_uses_the_runs_config_and_records_explicit_changes(started: Path) -> None:
    """The campaign's form: --resume --run RUN --set optim.max_minutes=N (and a lower learning rate)."""
    code, out = train(
        "--resume",
        "--run",
        str(started),
        "--set",
        "optim.max_minutes=5",
        "--set",
        "optim.lr=5e-4",
        "--set",
        "optim.max_steps=3",
    )
    assert code == 0, out
    assert (
        f"resuming {started} at step 2 with changed settings: optim.lr 0.001 -> 0.0005, "
        "optim.max_minutes 0.0 -> 5.0, optim.max_steps 2 -> 3 (recorded in config.json and metrics.jsonl)"
    ) in " ".join(out.split())
    [change] = run_events(started, "config")
    assert change["step"] == 2 and change["changes"] == {
        "optim.lr": [0.001, 0.0005],
        "optim.max_minutes": [0.0, 5.0],
        "optim.max_steps": [2, 3],
    }
    config = read_run_config(started)
    assert (config.model.n_re, config.optim.batch_size, config.optim.lr, config.optim.max_minutes) == (1, 4, 5e-4, 5.0)
    assert run_events(started, "done")[-1]["step"] == 3
    assert not [p for p in started.rglob(".*") if p.is_file()]  # config.json replaced atomically

    code, out = train("--resume", "--run", str(started), "--set", "optim.max_steps=3")
    assert code == 0 and "changed settings" not in out  # nothing differs now
    code, out = train("--resume", "--run", str(started), "--set", "model.emb_dim=16")
    assert code == 2 and "a resumed run keeps its architecture (model.emb_dim 8 -> 16)" in out


def test_disk_full_while_saving_a_checkpoint_keeps_the_previous_one(
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_save = torch.save
    saves = {"n": 0}

    def fill_up(obj: object, f: object, *args: object, **kwargs: object) -> None:
        saves["n"] += 1
        if saves["n"] == 2 and str(f).endswith(".tmp"):
            Path(str(f)).write_bytes(b"\0" * 1000)  # part of it landed, then the disk was full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, f, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "save", fill_up)
    run = tmp_path / "run"
    code, out = train(
        "--recipe",
        "tiny",
        "--data",
        str(corpus),
        "--run",
        str(run),
        *QUICK,
        "--set",
        "optim.max_steps=4",
        "--set",
        "save_every_steps=2",
    )
    last = run / "checkpoints" / "last.pt"
    assert code == 1
    assert out.strip() == f"error: cannot write {last}: No space left on device"
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.pt"]
    config = read_run_config(run)
    model = TISDiSS(config.model)
    optimizer = torch.optim.AdamW(model.parameters())
    assert load_state(last, model, optimizer).step == 2  # the previous good checkpoint
