"""Separating what FFmpeg decodes (m4a, mp4) end to end, and writing MP3 / Opus outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.media import CONTAINERS, best_lag_si_snr, voiced, write_media
from tisdiss_cli import Separator
from tisdiss_cli.audio import files as audio
from tisdiss_cli.cli import _register_commands, app

_register_commands()
runner = CliRunner()
# Lossy outputs: libsndfile 1.2 trims the codec delay and padding (lengths came back exact); allow one
# codec frame (1,152 samples for MP3, 20 ms for Opus) for other versions.
FRAME_SLACK = {"mp3": lambda rate: 1152, "opus": lambda rate: rate // 50}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("av", reason="PyAV not installed: pip install 'tisdiss[av]'")
    folder = tmp_path_factory.mktemp("media")
    m4a, mp4 = CONTAINERS["m4a-aac"], CONTAINERS["mp4-video-aac"]
    return {
        "m4a": write_media(folder / "memo.m4a", [voiced(0.6, m4a.rate)], m4a),
        "mp4": write_media(folder / "call.mp4", [voiced(0.5, mp4.rate, 2), voiced(0.4, mp4.rate)], mp4),
    }


def test_cli_separates_m4a_and_mp4(clips: dict[str, Path], tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    model = ["-m", str(tiny_checkpoint), "--speakers", "2"]  # two files per input, checked below
    args = ["separate", str(clips["m4a"]), str(clips["mp4"]), "-o", str(out), *model]
    result = runner.invoke(app, [*args, "--segment", "0.25", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files"] == 2 and summary["failed"] == 0
    for stem, path in (("memo", clips["m4a"]), ("call", clips["mp4"])):
        info = audio.probe(path)
        for spk in (1, 2):
            written = sf.info(str(out / f"{stem}_spk{spk}.wav"))
            assert (written.samplerate, written.frames, written.subtype) == (info.sample_rate, info.frames, "PCM_24")
    only_mp4 = ["separate", str(clips["mp4"]), "-o", str(out), *model, "--stream", "2"]
    second = runner.invoke(app, [*only_mp4, "-q", "--format", "flac"])
    assert second.exit_code == 0, second.output
    assert sf.info(str(out / "call_spk1.flac")).frames == audio.probe(clips["mp4"], stream=1).frames == 17640
    beyond = runner.invoke(app, [*args, "--stream", "3", "--overwrite"])
    assert beyond.exit_code == 1
    assert f"{clips['mp4']}: has 2 audio streams, no stream 3" in beyond.stderr.splitlines()
    assert f"{clips['m4a']}: has 1 audio stream, no stream 3" in beyond.stderr.splitlines()


def test_api_separates_m4a_and_mp4(clips: dict[str, Path], tiny_checkpoint: Path, tmp_path: Path) -> None:
    sep = Separator(tiny_checkpoint, device="cpu", segment=0.25, speakers=2)
    for path in clips.values():
        info = audio.probe(path)
        outputs = sep.separate_file(path, tmp_path, fmt="wav")
        assert len(outputs) == 2
        tracks = np.stack([sf.read(p, dtype="float32")[0] for p in outputs])
        assert tracks.shape == (2, info.frames) and np.isfinite(tracks).all()
        # Scaled to the input's energy: the speakers add up to the mixture's level.
        mix = audio.read_mono(path)
        assert np.sum(tracks**2) == pytest.approx(np.sum(mix**2), rel=0.5)


def test_missing_pyav_is_one_line_per_file_and_the_rest_goes_on(
    clips: dict[str, Path], tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tisdiss_cli.audio import ffmpeg as decode

    wav = tmp_path / "fine.wav"
    audio.write(wav, voiced(0.3, 8000)[:, 0], 8000)
    decode._probe.cache_clear()
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    out = tmp_path / "out"
    args = [
        "separate",
        str(clips["m4a"]),
        str(wav),
        "-o",
        str(out),
        "-m",
        str(tiny_checkpoint),
        "-q",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"{clips['m4a']}: reading m4a needs PyAV: pip install 'tisdiss[av]'"]
    written = sorted(p.name for p in out.iterdir())  # one per talker found
    assert written[0] == "fine_spk1.wav" and all(name.startswith("fine_spk") for name in written)


@pytest.mark.parametrize(
    ("fmt", "rate", "written_rate"),
    [("opus", 8000, 8000), ("opus", 44100, 48000), ("mp3", 16000, 16000), ("mp3", 96000, 48000)],
)
def test_mp3_and_opus_outputs_read_back(fmt: audio.OutputFormat, rate: int, written_rate: int, tmp_path: Path) -> None:
    assert audio.codec_rate(fmt, rate) == written_rate
    source = voiced(0.8, written_rate, 1)[:, 0]
    path = audio.write(tmp_path / f"x.{fmt}", source, written_rate, fmt=fmt)
    back, got_rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert (got_rate, back.shape[1]) == (written_rate, 1)
    assert abs(len(back) - len(source)) <= FRAME_SLACK[fmt](written_rate)
    assert best_lag_si_snr(source, back[:, 0], max_lag=0) > 12.0  # measured: 15-19 dB at libsndfile's bitrates
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"x.{fmt}"]  # atomic: no part file left
    if rate != written_rate:  # the writer refuses a rate its encoder does not take
        with pytest.raises(ValueError, match=f"cannot be written at {rate} Hz"):
            audio.AtomicWriter(tmp_path / f"y.{fmt}", rate, length=1, fmt=fmt)


def test_cli_writes_opus_at_48k_for_a_44k_input(tiny_checkpoint: Path, tmp_path: Path) -> None:
    wav = tmp_path / "talk.wav"
    audio.write(wav, voiced(0.5, 44100)[:, 0], 44100)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["separate", str(wav), "-o", str(out), "-m", str(tiny_checkpoint), "--speakers", "2", "--format", "opus"]
    )
    assert result.exit_code == 0, result.output
    for spk in (1, 2):
        info = sf.info(str(out / f"talk_spk{spk}.opus"))
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("OGG", "OPUS", 48000, 1)
        assert abs(info.frames - 24000) <= FRAME_SLACK["opus"](48000)
    refused = runner.invoke(app, ["separate", str(wav), "--format", "mp3", "--float"])
    assert refused.exit_code == 2 and "MP3 cannot hold float samples" in refused.output
