"""`tisdiss models ...` through the Typer app (in-process)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from typer.testing import CliRunner

import tisdiss_cli.cli.models  # noqa: F401  (registers the sub-command)
from tests.conftest import golden_output
from tisdiss_cli.cli import app
from tisdiss_cli.zoo.load import load_model

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["models", *args], env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_list_shows_registry_with_presets_and_state() -> None:
    code, out = run("list")
    assert code == 0
    line = next(line for line in out.splitlines() if "wsj0-2mix" in line)
    assert "8.0 M" in line and "8 kHz" in line and "fast 2/1 21.5 dB" in line and "not downloaded" in line
    assert "balanced 2/3 24.4 dB" in out and "best 2/8 25.2 dB" in out
    assert "tisdiss-small-8k" in out


def test_info_shows_entry_and_card() -> None:
    code, out = run("info", "wsj0-2mix")
    assert code == 0
    assert "8,011,779" in out and "226f9f1349ce8f8c123c34225476ee9d0cdfedaf" in out and "MIT" in out
    assert "Quality by depth" in out


def test_path_prints_cache_and_manual_download_location() -> None:
    code, out = run("path")
    assert code == 0 and out.strip() == os.environ["TISDISS_CACHE_DIR"]
    code, out = run("path", "wsj0-2mix")
    assert code == 0
    assert (
        Path(out.strip()) == Path(os.environ["TISDISS_CACHE_DIR"]) / "models" / "wsj0-2mix" / "valid.loss.ave_5best.pth"
    )


def test_download_offline_fails_with_one_line() -> None:
    code, out = run("download", "wsj0-2mix")
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith("error:") and "TISDISS_OFFLINE" in lines[0] and "Traceback" not in out


def test_unknown_model_lists_names() -> None:
    for command in ("info", "remove", "download", "path"):
        code, out = run(command, "nope")
        assert code == 1 and "available:" in out and "wsj0-2mix" in out, command


def test_import_list_remove_roundtrip(espnet_dir: Path) -> None:
    code, out = run("import", str(espnet_dir), "--name", "golden-cli")
    assert code == 0 and "golden-cli" in out
    out_tensor, expected = golden_output(load_model("golden-cli").model, 2, 3)
    torch.testing.assert_close(out_tensor, expected, rtol=0, atol=1e-10)
    code, out = run("list")
    assert any("golden-cli" in line and "imported" in line for line in out.splitlines())
    code, out = run("import", str(espnet_dir), "--name", "golden-cli")
    assert code == 1 and "already imported" in out
    code, out = run("remove", "golden-cli")
    assert code == 0 and "removed" in out
    code, out = run("list")
    assert "golden-cli" not in out


def test_import_bad_path_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    code, out = run("import", str(tmp_path / "junk.safetensors"), "--name", "junk")
    assert code == 1 and out.startswith("error:") and "junk.safetensors" in out and "Traceback" not in out
