"""Live separation against a simulated device: the outputs equal the streaming API's, stops commit cleanly."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.conftest import REPO
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.model.depth import Depth
from tisdiss_cli.separation.live import FileSource, LiveStatus, level_db, run_live
from tisdiss_cli.separation.separator import Separator

pytestmark = pytest.mark.numerics  # CI runs these again with `auto` pinned to bf16

_register_commands()
runner = CliRunner()
SEGMENT = 0.25


class FakeClock:
    """Time that passes only when slept: a real-time source without the wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@pytest.fixture(scope="module")
def separator(tiny_checkpoint: Path) -> Separator:
    return Separator(tiny_checkpoint, device="cpu", segment=SEGMENT)


def recording(folder: Path, seconds: float = 1.2, rate: int = 8000, channels: int = 1) -> Path:
    rng = np.random.default_rng(0)
    path = folder / "mic.wav"
    sf.write(path, (0.1 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32), rate, "FLOAT")
    return path


def streamed(separator: Separator, path: Path, frames: int | None = None) -> np.ndarray:
    """The streaming API on the first ``frames`` frames of a file."""
    x, rate = sf.read(path, dtype="float32", always_2d=True)
    x = x[:frames]
    stream = separator.stream(rate, channels=x.shape[1])
    parts = [stream.feed(x[i : i + 123]) for i in range(0, len(x), 123)]
    return np.concatenate([*parts, stream.close()], axis=1)


def as_pcm24(x: np.ndarray) -> np.ndarray:
    """``[J, n]`` as a 24-bit file holds it."""
    buf = io.BytesIO()
    sf.write(buf, x.T, 8000, format="WAV", subtype="PCM_24")
    return sf.read(io.BytesIO(buf.getvalue()), dtype="float32")[0].T


def read_outputs(paths: list[Path]) -> np.ndarray:
    return np.stack([sf.read(p, dtype="float32")[0] for p in paths])


class ListSink:
    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def write(self, block: np.ndarray) -> None:
        self.blocks.append(block.copy())

    def stop(self) -> None:
        self.stopped = True


def test_live_at_real_time_pace_equals_the_streaming_api(separator: Separator, tmp_path: Path) -> None:
    path = recording(tmp_path, channels=2)  # at the model's rate: no resampler delay in the latency
    clock = FakeClock()
    source = FileSource(path, clock=clock, sleep=clock.sleep)
    sink, statuses = ListSink(), []
    targets = [tmp_path / "out" / f"live_spk{j}.wav" for j in (1, 2)]
    result = run_live(
        separator,
        source,
        targets,
        depth=separator.depth(),
        float_output=True,
        monitor=1,
        sink=sink,
        on_status=statuses.append,
        adapt=False,  # a loaded test machine must not change the depth mid-run
        clock=clock,
    )
    assert clock.slept == pytest.approx(1.2, abs=0.021)  # paced like a microphone: 1.2 s of audio, 1.2 s
    assert result.outputs == targets and result.seconds == pytest.approx(1.2)
    expected = streamed(separator, path)
    np.testing.assert_array_equal(read_outputs(targets), expected)
    np.testing.assert_array_equal(np.concatenate(sink.blocks), expected[1])  # the monitored speaker
    assert sink.started and sink.stopped
    assert statuses and all(isinstance(s, LiveStatus) and len(s.levels) == 2 for s in statuses)
    # Latency on the fake clock (compute takes no fake time): one segment, plus the voice tracker's
    # look-ahead (half a block, its widest voice context past the block's centre, a cross-fade).
    bound = separator.stream(8000).latency_bound
    assert bound == pytest.approx(SEGMENT + 0.25 + 0.8 + 0.04)
    assert bound - 0.5 <= result.stats.latency_max <= bound + 0.021  # within a block of the bound
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["live_spk1.wav", "live_spk2.wav"]


def test_a_stop_event_commits_what_was_captured(separator: Separator, tmp_path: Path) -> None:
    path = recording(tmp_path, seconds=3.0, rate=16000)  # resampled both ways
    clock, stop = FakeClock(), threading.Event()

    def stop_after_a_second(status: LiveStatus) -> None:
        if status.seconds >= 1.0:
            stop.set()

    targets = [tmp_path / "o" / f"s{j}.wav" for j in (1, 2)]
    result = run_live(
        separator,
        FileSource(path, clock=clock, sleep=clock.sleep),
        targets,
        depth=separator.depth(),
        float_output=True,
        stop=stop,
        on_status=stop_after_a_second,
        adapt=False,
    )
    got = read_outputs(result.outputs)
    assert 1.0 <= result.seconds < 1.5 and got.shape[1] == result.stats.input_frames
    np.testing.assert_array_equal(got, streamed(separator, path, result.stats.input_frames))
    assert not list((tmp_path / "o").glob(".*"))  # no part file left


def test_an_error_mid_run_leaves_no_part_file(separator: Separator, tmp_path: Path) -> None:
    path = recording(tmp_path)
    clock = FakeClock()

    def fail(status: LiveStatus) -> None:
        raise KeyboardInterrupt  # a second Ctrl-C: abort

    with pytest.raises(KeyboardInterrupt):
        run_live(
            separator,
            FileSource(path, clock=clock, sleep=clock.sleep),
            [tmp_path / "o" / "a.wav", tmp_path / "o" / "b.wav"],
            depth=separator.depth(),
            on_status=fail,
        )
    assert not (tmp_path / "o").exists()  # no part file, not even the folder the run made


def test_falling_behind_warns_and_steps_n_re_down(separator: Separator, tmp_path: Path) -> None:
    path = recording(tmp_path, seconds=2.0)
    clock, warnings = FakeClock(), []
    result = run_live(
        separator,
        FileSource(path, clock=clock, sleep=clock.sleep),
        [tmp_path / "a.wav", tmp_path / "b.wav"],
        depth=Depth(2, 1),
        on_warning=warnings.append,
        keep_up_rtf=0.0,  # every chunk counts as too slow
    )
    assert result.depth == Depth(2, 0)
    assert warnings[0].startswith("cannot keep up") and warnings[0].endswith("stepping down to n_re=0")
    assert len(warnings) > 1 and "stepping" not in warnings[-1]  # at n_re=0 it can only warn


def test_level_db() -> None:
    assert level_db(np.full(100, 0.1, np.float32)) == pytest.approx(-20.0)
    assert level_db(np.zeros(10, np.float32)) == -np.inf and level_db(np.zeros(0, np.float32)) == -np.inf


def test_missing_sounddevice_is_one_line(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as if not installed
    result = runner.invoke(app, ["live", "-m", str(tiny_checkpoint), "--nre", "1", "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.stderr.strip() == "tisdiss: live separation needs sounddevice: pip install 'tisdiss[live]'"


def test_live_cli_from_file_and_calibrated_depth(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = recording(tmp_path, seconds=0.6)
    args = [
        "live",
        "--from-file",
        str(path),
        "-m",
        str(tiny_checkpoint),
        "--segment",
        str(SEGMENT),
        "-o",
        str(tmp_path),
    ]
    result = runner.invoke(app, [*args, "--name", "take.1"])
    assert result.exit_code == 0, result.output
    assert "input ended" in result.stderr and "latency max" in result.stderr
    assert (tmp_path / "take.1_spk1.wav").is_file() and (tmp_path / "take.1_spk2.wav").is_file()  # the stem is whole
    again = runner.invoke(app, [*args, "--name", "take.1"])
    assert again.exit_code == 1 and "exists (use --overwrite" in again.stderr


def test_ctrl_c_commits_the_files_and_exits_0(separator: Separator, tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = recording(tmp_path, seconds=60.0)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tisdiss_cli", "live", "--from-file", str(path), "-m", str(tiny_checkpoint)]
    cmd += ["--nre", "1", "--no-adapt", "--segment", str(SEGMENT), "-o", str(out), "--name", "take", "--threads", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(list(out.glob(".*.part"))) < 2:
        time.sleep(0.05)
    time.sleep(1.0)  # some audio captured
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopped by SIGINT" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["take_spk1.wav", "take_spk2.wav"]
    got = read_outputs(sorted(out.iterdir()))
    assert 0 < got.shape[1] < 60 * 8000
    np.testing.assert_array_equal(got, as_pcm24(streamed(separator, path, got.shape[1])))


def test_meter_shows_each_speaker_level() -> None:
    from rich.console import Console

    from tisdiss_cli.cli.live import _meter

    console = Console(record=True, width=100)
    console.print(_meter(LiveStatus(75.0, [-20.0, -np.inf], Depth(2, 1), 0.42, 0.31, 0)))
    text = console.export_text()
    assert "spk1" in text and "-20.0 dBFS" in text and "-inf dBFS" in text
    assert "1:15 captured" in text and "n_re=1" in text and "chunk RTF 0.42" in text
    bar = text.splitlines()[0]
    assert bar.count("█") == 20 and bar.count("░") == 10  # -20 dBFS: two thirds of the 60-dB span
