"""Every front-end reaches the same engine: arrays, files, standard input (files and --stdout)
and live capture give bit-identical outputs at fp32, resampled and chunked included, with the
voice tracker off. With it on (the default), arrays and files share its offline form and standard
input and live capture its online form: each pair is bit-identical, and the two forms agree
within the online bound (tests/separation/test_tracking.py)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.separation.live import FileSource, run_live
from tisdiss_cli.separation.separator import Separator

pytestmark = pytest.mark.numerics  # CI runs these again with `auto` pinned to bf16

_register_commands()
RATE = 16000  # the tiny model runs at 8 kHz: every path resamples in and out
SECONDS = 2.6  # more than two 1-s segments: chunked, re-aligned, with a shifted last chunk


@pytest.fixture(scope="module")
def stereo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    t = np.arange(int(SECONDS * RATE)) / RATE
    left = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    right = 0.2 * np.sign(np.sin(2 * np.pi * 150 * t)) * (t % 0.5 < 0.3)
    x = np.stack([left, right], axis=1) + 0.02 * rng.standard_normal((len(t), 2))
    path = tmp_path_factory.mktemp("one-engine") / "mix.wav"
    sf.write(path, x.astype(np.float32), RATE, subtype="FLOAT")
    return path


def _read(paths: list[Path]) -> np.ndarray:
    return np.stack([sf.read(p, dtype="float32")[0] for p in paths])


def _cli(*args: str, data: bytes) -> bytes:
    result = CliRunner().invoke(app, [*args], input=data, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


@pytest.mark.parametrize("tracker", ["overlap", "voice"])
def test_files_arrays_stdin_and_live_give_identical_outputs(
    tiny_checkpoint: Path, stereo: Path, tmp_path: Path, tracker: str
) -> None:
    separator = Separator(tiny_checkpoint, device="cpu", precision="fp32", segment=1.0, tracker=tracker)
    wave, rate = sf.read(stereo, dtype="float32")
    from_array = separator.separate(wave.T, rate)
    assert from_array.shape == (2, len(wave))

    result = separator.process_file(stereo, tmp_path / "file", float_output=True)
    assert result.chunks > 2
    np.testing.assert_array_equal(_read(result.outputs), from_array)

    common = ["separate", "-", "-m", str(tiny_checkpoint), "--segment", "1", "--precision", "fp32", "--float"]
    common += ["--tracker", tracker]
    data = stereo.read_bytes()
    _cli(*common, "-o", str(tmp_path / "stdin"), "-q", data=data)
    from_stdin = _read([tmp_path / "stdin" / f"stdin_spk{j}.wav" for j in (1, 2)])
    if tracker == "overlap":
        np.testing.assert_array_equal(from_stdin, from_array)
    else:  # online: the same shape and samples, the assignment decided without looking ahead
        assert from_stdin.shape == from_array.shape
        np.testing.assert_allclose(from_stdin.sum(0), from_array.sum(0), atol=1e-5)  # nothing lost or doubled
        online = separator.stream(rate, channels=2)
        np.testing.assert_array_equal(np.concatenate((online.feed(wave), online.close()), axis=1), from_stdin)
    piped, _ = sf.read(io.BytesIO(_cli(*common, "--stdout", "-q", data=data)), dtype="float32")
    np.testing.assert_array_equal(piped.T, from_stdin)

    (tmp_path / "live").mkdir()
    targets = [tmp_path / "live" / f"live_spk{j}.wav" for j in (1, 2)]
    live = run_live(
        separator, FileSource(stereo, realtime=False), targets, depth=separator.depth(), float_output=True, adapt=False
    )
    np.testing.assert_array_equal(_read(live.outputs), from_stdin)
