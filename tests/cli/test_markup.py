"""User text with square brackets reaches the terminal intact (rich would read it as markup)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tisdiss_cli.cli import _register_commands, app

_register_commands()
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "400"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.fixture()
def bracketed_input(tmp_path: Path) -> Path:
    path = tmp_path / "take[red]1.wav"
    sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(2000)).astype(np.float32), 8000)
    return path


def test_separate_keeps_bracketed_paths_and_model_names(
    bracketed_input: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out[x]"
    code, text = invoke("separate", str(bracketed_input), "-o", str(out), "-m", str(tiny_checkpoint))
    assert code == 0
    assert f"{bracketed_input} -> {out / 'take[red]1_spk1.wav'}" in text
    code, text = invoke("separate", str(bracketed_input), "-o", str(out), "-m", "mdl[x]")
    assert code == 1 and "unknown model 'mdl[x]'" in text
    code, text = invoke("separate", str(tmp_path / "gone[red].wav"), "-o", str(out), "-m", str(tiny_checkpoint))
    assert code == 1 and "gone[red].wav: matches no file" in text  # brackets make it a glob


def test_eval_keeps_bracketed_names_and_the_plot_hint(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, text = invoke("eval", str(tmp_path / "set[red]1"), "-m", str(tiny_checkpoint), "--no-sdr")
    assert code == 1 and "set[red]1: no such file or folder" in text
    from tests.evaluation.test_eval import write_set

    testset = write_set(tmp_path / "set")
    code, text = invoke("eval", str(testset), "-m", "mdl[x]", "--no-sdr")
    assert code == 1 and "unknown model 'mdl[x]'" in text
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    code, text = invoke("eval", str(testset), "-m", str(tiny_checkpoint), "--no-sdr", "--plot", str(tmp_path / "c.png"))
    assert code == 1 and "pip install 'tisdiss[plot]'" in text


def test_train_keeps_bracketed_recipe_and_data_names(tmp_path: Path) -> None:
    code, text = invoke("train", "--recipe", "mdl[x]", "--run", str(tmp_path / "run"))
    assert code == 2 and "unknown recipe 'mdl[x]'" in text
    code, text = invoke(
        "train", "--recipe", "tiny", "--data", str(tmp_path / "gone[red]"), "--run", str(tmp_path / "r")
    )
    assert code == 1 and "gone[red]" in text


@pytest.mark.parametrize("command", ["info", "download", "remove", "path"])
def test_models_commands_keep_bracketed_names(command: str) -> None:
    code, text = invoke("models", command, "mdl[x]")
    assert code == 1 and "unknown model 'mdl[x]'" in text


def test_models_import_and_bench_keep_bracketed_names(tmp_path: Path) -> None:
    code, text = invoke("models", "import", str(tmp_path / "ckpt[red].safetensors"), "--name", "n")
    assert code == 1 and "ckpt[red].safetensors: no such file or folder" in text
    code, text = invoke("bench", "--model", "mdl[x]", "--runs", "1", "--seconds", "0.1", "--nre", "0")
    assert code == 1 and "unknown model 'mdl[x]'" in text
