"""benchmarks/wideband_data.py rebuilds pieces at 16 kHz from git repositories, with checksums."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.benchmarks import load_benchmark

wideband = load_benchmark("wideband_data")

HEADER = "path\tsplit\tspeaker\tgender\tgender_source\tage\tseconds\tcorpus\tsource\tlicense"


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture()
def source(tmp_path: Path) -> tuple[Path, str, dict[str, np.ndarray]]:
    """A fake source repository (owner/corpus) with a 16 kHz WAV, a 44.1 kHz stereo FLAC and an 8 kHz
    FLAC committed, then changed in a later commit (the pinned commit must be the one read)."""
    repo = tmp_path / "mirrors" / "owner+corpus"
    (repo / "WAVE").mkdir(parents=True)
    git("init", "-q", cwd=repo)
    rng = np.random.default_rng(0)
    waves = {
        "WAVE/a.WAV": (0.3 * rng.standard_normal(3 * 16000)).astype(np.float32),
        "WAVE/b.flac": (0.3 * rng.standard_normal((2 * 44100, 2))).astype(np.float32),
        "WAVE/c.flac": (0.3 * rng.standard_normal(2 * 8000)).astype(np.float32),
    }
    rates = {"WAVE/a.WAV": 16000, "WAVE/b.flac": 44100, "WAVE/c.flac": 8000}
    for name, x in waves.items():
        sf.write(repo / name, x, rates[name], subtype="PCM_16")
        waves[name] = sf.read(repo / name, dtype="float32")[0]  # as stored (16-bit)
    git("add", ".", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "audio", cwd=repo)
    commit = git("rev-parse", "HEAD", cwd=repo)[:12]
    sf.write(repo / "WAVE/a.WAV", np.zeros(16000, np.float32), 16000)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "later", cwd=repo)
    return tmp_path / "mirrors", commit, waves


def manifest(tmp_path: Path, commit: str) -> Path:
    rows = [
        f"train/s1/a_p0.flac\ttrain\ts1\tF\t\t\t1.0\tC\towner/corpus@{commit}:WAVE/a.WAV#0.50-1.50s\tX",
        f"train/s1/a_p1.flac\ttrain\ts1\tF\t\t\t1.2\tC\towner/corpus@{commit}:WAVE/a.WAV#1.60-2.80s\tX",
        f"valid/s2/b_p0.flac\tvalid\ts2\tM\t\t\t1.0\tC\towner/corpus@{commit}:WAVE/b.flac#0.25-1.25s\tX",
        f"train/s3/c_p0.flac\ttrain\ts3\tM\t\t\t1.0\tC\towner/corpus@{commit}:WAVE/c.flac#0.00-1.00s\tX",
        "train/d/d-000.flac\ttrain\td\tM\t\t\t1.0\tFSDD\tJak/fsdd@26eb9aaf76e8:recordings/{1_d_2+3_d_4}.wav\tX",
    ]
    path = tmp_path / "MANIFEST.tsv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_rebuilds_pieces_at_16k_with_checksums(
    tmp_path: Path, source: tuple[Path, str, dict[str, np.ndarray]], capsys: pytest.CaptureFixture[str]
) -> None:
    mirrors, commit, waves = source
    out = tmp_path / "wide"
    code = wideband.main([str(manifest(tmp_path, commit)), str(out), "--sources", str(mirrors)])
    assert code == 1  # the 8 kHz source cannot be rebuilt at 16 kHz
    err = capsys.readouterr().err
    assert "train/s3/c_p0.flac: error: train/s3/c_p0.flac: WAVE/c.flac is 8000 Hz at the source, below 16000 Hz" in err

    a, rate = sf.read(out / "train/s1/a_p0.flac", dtype="float32")
    assert rate == 16000 and len(a) == 16000
    np.testing.assert_allclose(a, waves["WAVE/a.WAV"][8000:24000], atol=1 / 32768)  # the pinned commit's file
    assert len(sf.read(out / "train/s1/a_p1.flac")[0]) == round(1.2 * 16000)
    b = sf.read(out / "valid/s2/b_p0.flac", dtype="float32")[0]
    mono = soxr.resample(waves["WAVE/b.flac"].mean(axis=1), 44100, 16000, quality="VHQ")
    np.testing.assert_allclose(b, mono[4000:20000], atol=2 / 32768)

    rows = (out / "MANIFEST.tsv").read_text().splitlines()
    assert rows[0].endswith("\trate\tsha256") and len(rows) == 4  # header and the three built pieces
    assert "FSDD" in (out / "SKIPPED.tsv").read_text()
    sums = wideband.read_sums(out / "MANIFEST.tsv")
    assert sums["train/s1/a_p0.flac"] == wideband.samples_sha256(sf.read(out / "train/s1/a_p0.flac", dtype="int16")[0])

    # a second run keeps what matches; --check finds a piece that changed, and a rebuild restores it
    assert wideband.main([str(manifest(tmp_path, commit)), str(out), "--sources", str(mirrors), "--only", "x"]) == 0
    sf.write(out / "train/s1/a_p0.flac", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    args = [str(manifest(tmp_path, commit)), str(out), "--sources", str(mirrors), "--limit", "3"]
    assert wideband.main([*args, "--check"]) == 1
    assert "train/s1/a_p0.flac: differs from MANIFEST.tsv" in capsys.readouterr().err
    assert wideband.main(args) == 0
    assert "1 written, 2 already there, 0 problems" in capsys.readouterr().out
    assert wideband.read_sums(out / "MANIFEST.tsv") == sums

    expected = tmp_path / "expected.tsv"
    expected.write_text((out / "MANIFEST.tsv").read_text().replace(sums["valid/s2/b_p0.flac"], "0" * 64))
    assert wideband.main([*args, "--expect", str(expected)]) == 1
    assert "valid/s2/b_p0.flac: differs from the expected sha256 (kept)" in capsys.readouterr().err


def test_a_missing_repository_says_how_to_get_it(
    tmp_path: Path, source: tuple[Path, str, dict[str, np.ndarray]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, commit, _ = source
    out = tmp_path / "wide"
    (tmp_path / "empty").mkdir()
    args = [str(manifest(tmp_path, commit)), str(out), "--sources", str(tmp_path / "empty"), "--limit", "1"]
    assert wideband.main(args) == 1
    assert not (out / "train/s1/a_p0.flac").exists()
    err = capsys.readouterr().err
    assert "owner/corpus: no clone under" in err and "git clone --bare https://github.com/owner/corpus" in err


def test_source_forms() -> None:
    assert wideband.parse_source("a/b@0123456789ab:x/y.flac#0.39-3.31s") == (
        "a/b",
        "0123456789ab",
        "x/y.flac",
        0.39,
        3.31,
    )
    assert wideband.parse_source("Jak/fsdd@26eb9aaf76e8:recordings/{1+2}.wav") is None
    assert wideband.parse_source("a/b@0123456789ab:x.flac#3.0-1.0s") is None
