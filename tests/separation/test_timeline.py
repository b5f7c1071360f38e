"""Speaker timelines: RTTM and JSON written by `separate --timeline`, read back independently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tisdiss_cli.audio import files as audio
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.separation.timeline import Timeline, to_rttm, write_timeline
from tisdiss_cli.separation.tracking import TalkerSummary, segments_of

_register_commands()


def read_rttm(text: str) -> list[tuple[str, str, float, float]]:
    """A small RTTM reader of our own: (recording, speaker, start, end) per SPEAKER line."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        assert len(fields) == 10 and fields[0] == "SPEAKER" and fields[2] == "1"
        assert fields[5] == fields[6] == fields[8] == fields[9] == "<NA>"
        start, duration = float(fields[3]), float(fields[4])
        assert duration > 0
        rows.append((fields[1], fields[7], start, round(start + duration, 3)))
    return rows


def test_segments_are_runs_of_blocks_cut_at_the_end() -> None:
    speaks = np.array([[1, 0], [1, 1], [0, 1], [0, 0], [1, 0]], bool)
    assert segments_of(speaks, 0.5, 2.3) == [(0, 0.0, 1.0), (1, 0.5, 1.5), (0, 2.0, 2.3)]


def test_rttm_round_trip(tmp_path: Path) -> None:
    summary = TalkerSummary(3, [1.0, 0.5, 2.0], segments=[(0, 0.0, 1.0), (2, 0.5, 2.5), (1, 3.0, 3.5)])
    other = TalkerSummary(1, [0.5], segments=[(0, 0.25, 0.75)])
    timelines = [Timeline(Path("in/team meeting.wav"), [], summary), Timeline(Path("b.flac"), [], other)]
    path = write_timeline(tmp_path / "who.rttm", timelines)
    assert read_rttm(path.read_text()) == [
        ("team_meeting", "spk1", 0.0, 1.0),
        ("team_meeting", "spk3", 0.5, 2.5),
        ("team_meeting", "spk2", 3.0, 3.5),
        ("b", "spk1", 0.25, 0.75),
    ]
    assert to_rttm([]) == ""
    with pytest.raises(ValueError, match=r"who.txt: a timeline is written as .rttm or .json"):
        write_timeline(tmp_path / "who.txt", timelines)


def test_separate_writes_rttm_and_json_that_agree(tiny_checkpoint: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(3 * 8000) / 8000
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (t < 1.5) + 0.3 * np.sin(2 * np.pi * 1300 * t) * (t >= 1.2)
    audio.write(tmp_path / "talk.wav", (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32), 8000)
    out = tmp_path / "out"
    args = ["separate", str(tmp_path / "talk.wav"), "-o", str(out), "-m", str(tiny_checkpoint), "--segment", "1"]
    timelines = ["--timeline", str(tmp_path / "t.rttm"), "--timeline", str(tmp_path / "t.json")]
    result = CliRunner().invoke(app, [*args, "--speakers", "2", *timelines])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["talk_spk1.wav", "talk_spk2.wav"]
    rttm = read_rttm((tmp_path / "t.rttm").read_text())
    recordings = json.loads((tmp_path / "t.json").read_text())["recordings"]
    assert [r["input"] for r in recordings] == [str(tmp_path / "talk.wav")]
    from_json = [("talk", s["speaker"], s["start"], s["end"]) for s in recordings[0]["segments"]]
    assert rttm == from_json and rttm  # the same segments, and some speech
    assert all(speaker in ("spk1", "spk2") and 0 <= start < end <= 3.0 for _, speaker, start, end in rttm)
    wide = {"COLUMNS": "300"}  # the usage error on one line
    bad = CliRunner().invoke(app, [*args, "--timeline", str(tmp_path / "t.csv")], env=wide)
    assert bad.exit_code == 2 and "a timeline is written as .rttm or .json" in bad.output
    overlap = CliRunner().invoke(app, [*args, "--tracker", "overlap", "--timeline", str(tmp_path / "t.rttm")], env=wide)
    assert overlap.exit_code == 2 and "--tracker voice" in overlap.output
