"""`speakers`: how many files a recording is written to, checked once, the same in every front-end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tisdiss_cli.audio import files as audio
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.separation.separator import Separator, check_speakers

_register_commands()


def test_speakers_is_auto_or_a_number_of_files() -> None:
    assert check_speakers("auto") == "auto" and check_speakers(3) == 3 and check_speakers("4") == 4
    for bad in (0, 33, "three", 2.5, True, None):
        with pytest.raises(ValueError, match="use auto or a number of files from 1 to 32"):
            check_speakers(bad)


def test_files_known_in_advance(tiny_checkpoint: Path) -> None:
    auto = Separator(tiny_checkpoint, device="cpu")
    assert auto.files() is None  # counted per recording
    assert auto.files(stream=True) == 2  # a stream writes the network's number
    assert auto.files(3) == 3 and auto.files(3, stream=True) == 3
    overlap = Separator(tiny_checkpoint, device="cpu", tracker="overlap")
    assert overlap.files() == 2
    with pytest.raises(ValueError, match="speakers 3: a number of files other than the model's 2 needs the voice"):
        Separator(tiny_checkpoint, device="cpu", tracker="overlap", speakers=3)


def test_a_fixed_number_of_files_is_written_by_every_front_end(tiny_checkpoint: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(8000 * 3)).astype(np.float32)
    audio.write(tmp_path / "in.wav", x, 8000)
    x = audio.read_mono(tmp_path / "in.wav")  # the file's samples, as the file path reads them
    separator = Separator(tiny_checkpoint, device="cpu", segment=1.0, precision="fp32")
    array = separator.separate(x, 8000, speakers=3)
    assert array.shape == (3, len(x))
    result = separator.process_file(tmp_path / "in.wav", tmp_path / "out", speakers=3)
    assert [p.name for p in result.outputs] == ["in_spk1.wav", "in_spk2.wav", "in_spk3.wav"]
    written = np.stack([audio.read_mono(p) for p in result.outputs])
    np.testing.assert_allclose(written, array, atol=2e-6)  # 24-bit PCM of the same tracks
    stream = separator.stream(8000, speakers=3)
    streamed = np.concatenate([stream.feed(x), stream.close()], axis=1)
    assert streamed.shape == (3, len(x))
    cli = CliRunner().invoke(
        app,
        [
            "separate",
            str(tmp_path / "in.wav"),
            "-o",
            str(tmp_path / "cli"),
            "-m",
            str(tiny_checkpoint),
            "--segment",
            "1",
        ]
        + ["--precision", "fp32", "--speakers", "3", "-q"],
    )
    assert cli.exit_code == 0, cli.output
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["in_spk1.wav", "in_spk2.wav", "in_spk3.wav"]
    bad = CliRunner().invoke(app, ["separate", str(tmp_path / "in.wav"), "--speakers", "lots"], env={"COLUMNS": "300"})
    assert bad.exit_code == 2 and "use auto or a number of files from 1 to 32" in bad.output
