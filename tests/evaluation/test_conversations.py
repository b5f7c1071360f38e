"""The conversation benchmark's scoring: silent references, windows in the wrong file, swaps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.evaluation.conversations import SILENT_DB, score_recording, window_counts
from tisdiss_cli.evaluation.talkers import match_talkers, per_talker_si_snri, speech_errors

_register_commands()

RATE = 8000


def turns(seconds: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(round(seconds * RATE))
    a = rng.normal(size=len(t)) * (t < 3 * RATE)
    b = rng.normal(size=len(t)) * (t >= 3 * RATE)
    return a, b


def test_a_silent_reference_is_scored_by_how_quiet_its_output_is_never_nan() -> None:
    a, _ = turns()
    refs = np.stack([a, np.zeros_like(a)])
    for quiet, expected in ((0.0, SILENT_DB), (0.01, -40.0)):
        est = np.stack([a, quiet * np.random.default_rng(1).normal(size=len(a))])
        scores = score_recording(est, refs, a, RATE, RATE, with_sdr=False)
        assert scores["si_snri"] is None  # no improvement over a mixture that is the talker
        if quiet == 0.0:
            assert scores["absent_db"] <= SILENT_DB
        else:
            assert abs(scores["absent_db"] - (expected - 10 * np.log10(np.mean(a**2)))) < 1.0
        assert scores["present_si_snr"] > 100
        assert not any(isinstance(v, float) and np.isnan(v) for v in scores.values())


def test_two_talkers_in_one_file_and_a_silent_one_are_scored_without_sdr() -> None:
    """The tracker may take a reverberant pair for one talker: a silent output, scored, never a crash."""
    a, b = turns()
    scores = score_recording(np.stack([a + b, np.zeros_like(a)]), np.stack([a, b]), a + b, RATE, RATE)
    assert scores["sdri"] is None and scores["sdri_full"] is None
    assert isinstance(scores["si_snri"], float) and np.isfinite(scores["si_snri"])
    assert scores["si_snri"] < 3.0  # one talker's worth of mixture, the other nothing: no real gain


def test_a_turn_in_the_wrong_file_is_counted_per_second() -> None:
    a, b = turns()
    refs = np.stack([a, b])
    right = window_counts(refs, refs, (0, 1), RATE)
    assert right["single_windows"] == 6 and right["wrong_windows"] == 0 and right["leakage_db"] == SILENT_DB
    swapped_second_turn = np.stack([a + b * (np.arange(len(a)) >= 5 * RATE), b * (np.arange(len(a)) < 5 * RATE)])
    wrong = window_counts(swapped_second_turn, refs, (0, 1), RATE)
    assert wrong["wrong_windows"] == 1


def test_whole_file_scores_use_the_best_assignment() -> None:
    a, b = turns()
    refs = np.stack([a, b])
    mix = a + b
    scores = score_recording(np.stack([b, a]), refs, mix, RATE, RATE, with_sdr=False)
    assert scores["si_snri"] > 100 and scores["wrong_windows"] == 0


def test_overlapped_windows_count_swaps() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 4 * RATE))
    est = np.stack([a, b])
    est[:, 2 * RATE :] = est[::-1, 2 * RATE :]
    counts = window_counts(est, np.stack([a, b]), (0, 1), RATE)
    assert counts["overlap_windows"] == 4 and counts["swapped_windows"] == 2


def write_conversations(root: Path, rate: int = 16000) -> Path:
    """A devconv-style set: two turn-taking recordings (one FM, one FF) and a lone talker."""
    rng = np.random.default_rng(4)
    t = np.arange(int(6.0 * rate)) / rate
    rows = ["name\tseconds\ts1_speaker\ts1_gender\ts2_speaker\ts2_gender\toverlap_of_speech"]
    for name, genders, solo in (("fm", ("F", "M"), False), ("ff", ("F", "F"), False), ("one", ("M", ""), True)):
        a = 0.3 * np.sin(2 * np.pi * 200 * t) * (t < 3.2) + 0.01 * rng.standard_normal(t.size) * (t < 3.2)
        b = 0.2 * np.sin(2 * np.pi * 520 * t) * (t > 2.8) + 0.01 * rng.standard_normal(t.size) * (t > 2.8)
        if solo:
            a, b = a + 0.3 * np.sin(2 * np.pi * 200 * t) * (t >= 3.2), np.zeros_like(t)
        for folder, x in (("mix", a + b), ("s1", a), ("s2", b)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            sf.write(root / folder / f"{name}.flac", x, rate, subtype="PCM_24")
        rows.append(f"{name}\t6.00\tA\t{genders[0]}\t{'B' if genders[1] else ''}\t{genders[1]}\t0.05")
    (root / "metadata.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_eval_scores_a_conversation_set_through_the_engine(tiny_checkpoint: Path, tmp_path: Path) -> None:
    root = write_conversations(tmp_path / "conv")
    out = tmp_path / "conv.json"
    result = CliRunner().invoke(
        app, ["eval", str(root), "-m", str(tiny_checkpoint), "--precision", "fp32", "--json", str(out)],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mean SI-SNRi over 2 recordings of two or more talkers" in result.output
    assert "tracker voice, speakers auto" in result.output
    report = json.loads(out.read_text())
    rows = {r["id"]: r for r in report["rows"]}
    assert {rows["fm"]["pair"], rows["ff"]["pair"], rows["one"]["pair"]} == {"FM", "FF", "solo"}
    assert rows["one"]["si_snri"] is None and rows["one"]["absent_db"] is not None  # scored by quietness
    assert all(rows[k]["si_snri"] is not None and np.isfinite(rows[k]["si_snri_full"]) for k in ("fm", "ff"))
    assert report["band"] == "full" and all(np.isfinite(rows[k]["si_snr_high"]) for k in ("fm", "ff"))
    assert np.isfinite(report["mean_si_snri_high"]) and "band above 4000 Hz" in result.output
    assert "NaN" not in out.read_text()
    assert [p["pair"] for p in report["pairs"]] == ["FF", "FM", "solo"]
    utterances = CliRunner().invoke(
        app, ["eval", str(root), "-m", str(tiny_checkpoint), "--precision", "fp32", "--utterances", "--no-sdr"]
    )
    assert utterances.exit_code == 0, utterances.output
    assert "mean SI-SNRi over" not in utterances.output and "N_re" in utterances.output  # the depth sweep instead
    assert "at the set's 16000 Hz with --band full" in utterances.output


def test_a_set_with_more_talkers_than_outputs_is_scored_per_talker(tiny_checkpoint: Path, tmp_path: Path) -> None:
    root = write_conversations(tmp_path / "meet", rate=8000)
    (root / "s3").mkdir()
    t = np.arange(6 * 8000) / 8000
    for f in sorted((root / "s1").iterdir()):
        third = 0.2 * np.sin(2 * np.pi * 900 * t) * ((t > 1.0) & (t < 2.0))
        sf.write(root / "s3" / f.name, third, 8000, subtype="PCM_24")
        mix = sum(sf.read(root / s / f.name)[0] for s in ("s1", "s2", "s3"))
        sf.write(root / "mix" / f.name, mix, 8000, subtype="PCM_24")
    out = tmp_path / "meet.json"
    args = ["eval", str(root), "-m", str(tiny_checkpoint), "--precision", "fp32", "--no-sdr", "--json", str(out)]
    result = CliRunner().invoke(app, [*args, "--speakers", "2"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["fm"]["talkers"] == 3 and rows["fm"]["files"] == 2 and rows["fm"]["pair"] == "FM"
    assert sum(v is None for v in rows["fm"]["per_talker"]) == 1  # three talkers, two files: one without
    assert len(rows["fm"]["per_talker_full"]) == 3
    assert rows["fm"]["speech_seconds"] > 0 and rows["fm"]["missed_seconds"] > 0  # the third talker's second
    assert "missed + wrong-talker speech" in result.output
    assert "per-talker SI-SNRi" in result.output  # a meeting's own figures


def test_talkers_are_matched_to_files_and_who_spoke_when_is_counted() -> None:
    rng = np.random.default_rng(5)
    n = 4 * RATE
    t = np.arange(n)
    refs = np.stack([rng.normal(size=n) * (t < RATE * (k + 1)) * (t >= RATE * k) for k in range(4)])  # one a second
    mix = refs.sum(0)
    est = np.stack([refs[2], refs[0] + refs[1], refs[3]])  # talkers 0 and 1 share a file
    owner = match_talkers(est, refs)
    assert owner[2] == 0 and owner[3] == 2 and {owner[0], owner[1]} == {1, None}
    errors = speech_errors(est, refs, owner, RATE)
    assert errors.speech_seconds == 4.0
    assert errors.missed_seconds == 0.0 and errors.wrong_seconds == 1.0  # the unmatched talker's second: another's file
    assert errors.missed_or_wrong == 0.25
    perfect = speech_errors(refs, refs, [0, 1, 2, 3], RATE)
    assert perfect.missed_seconds == perfect.wrong_seconds == perfect.false_alarm_seconds == 0.0
    silent = speech_errors(refs[:2], refs, [0, 1, None, None], RATE)
    assert silent.missed_seconds == 2.0
    improved = per_talker_si_snri(refs, refs, mix, [0, 1, 2, 3])
    assert all(v is not None and v > 100 for v in improved)
