"""`tisdiss separate` end to end: a folder of good and bad files, skipping, ranks, golden outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from typer.testing import CliRunner

from tests.conftest import GOLDEN, REPO, need
from tisdiss_cli.cli import _register_commands, app

pytestmark = pytest.mark.numerics  # CI runs these again with `auto` pinned to bf16

_register_commands()
runner = CliRunner()

GOOD = {  # name -> (rate, frames)
    "mono8k.wav": (8000, 4000),
    "stereo44k.wav": (44100, 13230),
    "deep/hi24.flac": (16000, 4800),
    "silent.wav": (8000, 2000),
    "short10ms.wav": (8000, 80),
}
BAD = {
    "empty.wav": "empty file",
    "text.wav": "not a readable audio file",
    "nan.wav": "NaN or Inf samples",
}


def make_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    src = root / "in"
    (src / "deep").mkdir(parents=True)
    noise = lambda n, c=1: (0.1 * rng.standard_normal((n, c))).astype(np.float32)  # noqa: E731
    sf.write(src / "mono8k.wav", noise(4000), 8000, subtype="PCM_16")
    sf.write(src / "stereo44k.wav", noise(13230, 2), 44100, subtype="PCM_16")
    sf.write(src / "deep/hi24.flac", noise(4800), 16000, subtype="PCM_24")
    sf.write(src / "silent.wav", np.zeros((2000, 1), np.float32), 8000)
    sf.write(src / "short10ms.wav", noise(80), 8000)
    (src / "empty.wav").write_bytes(b"")
    (src / "text.wav").write_text("this is not audio\n" * 10)
    bad = noise(800)
    bad[400] = np.nan
    sf.write(src / "nan.wav", bad, 8000, subtype="FLOAT")
    (src / "notes.txt").write_text("ignored: not an audio suffix")
    return src


def test_folder_with_good_and_bad_files(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = make_folder(tmp_path)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    args = ["separate", str(src), "-r", "-o", str(out), "-m", str(tiny_checkpoint), "--segment", "0.25"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "preset balanced: n_sep=2, n_re=1" in result.stdout
    assert "Traceback" not in result.output
    error_lines = result.stderr.strip().splitlines()
    assert sorted(error_lines) == sorted(
        f"{src / name}: {reason}" + (" near 0.05 s" if name == "nan.wav" else "") for name, reason in BAD.items()
    )
    for name, (rate, frames) in GOOD.items():
        stem = Path(name).with_suffix("")
        written = sorted(out.glob(f"{stem}_spk*.wav"))  # one per talker found
        assert written and written[0].name == f"{stem.name}_spk1.wav"
        for path in written:
            y, out_rate = sf.read(path, dtype="float32")
            assert (out_rate, len(y)) == (rate, frames), name
            assert sf.info(path).subtype == "PCM_24"
            assert np.isfinite(y).all()
            if name == "silent.wav":
                assert not y.any()
    assert not list(out.glob("empty*")) and not list(out.glob("nan*")) and not list(out.rglob("*.part"))
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before  # inputs untouched

    stamp = (out / "mono8k_spk1.wav").stat().st_mtime_ns
    again = runner.invoke(app, [*args, "--json", "--preset", "fast", "--nre", "0"])
    assert again.exit_code == 1
    summary = json.loads(again.stdout)
    assert (summary["files"], summary["skipped"], summary["failed"]) == (0, 5, 3)
    assert (summary["n_sep"], summary["n_re"]) == (1, 0)
    assert "skipped" in again.stderr and (out / "mono8k_spk1.wav").stat().st_mtime_ns == stamp

    third = runner.invoke(
        app,
        [
            "separate",
            str(src / "mono8k.wav"),
            "-o",
            str(out),
            "-m",
            str(tiny_checkpoint),
            "--overwrite",
            "--json",
            "--output-rate",
            "model",
            "--float",
        ],
    )
    assert third.exit_code == 0, third.output
    summary = json.loads(third.stdout)
    assert summary["files"] == 1 and summary["rtf"] > 0 and summary["audio_seconds"] == 0.5
    assert sf.info(out / "mono8k_spk1.wav").subtype == "FLOAT"


def test_globs_templates_and_argument_errors(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = make_folder(tmp_path)
    out = tmp_path / "o"
    result = runner.invoke(
        app,
        [
            "separate",
            str(src / "**" / "*.flac"),
            "-o",
            str(out),
            "-m",
            str(tiny_checkpoint),
            "--format",
            "flac",
            "--filename",
            "{spk}_{stem}.{ext}",
            "--speakers",
            "2",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # --quiet
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.flac")) == [
        "deep/1_hi24.flac",
        "deep/2_hi24.flac",
    ]
    missing = runner.invoke(app, ["separate", str(tmp_path / "nope.wav"), "-m", str(tiny_checkpoint), "-o", str(out)])
    assert missing.exit_code == 1 and "nope.wav: no such file or folder" in missing.stderr
    unknown = runner.invoke(
        app, ["separate", str(src / "mono8k.wav"), "-m", str(tiny_checkpoint), "--preset", "turbo", "-o", str(out)]
    )
    assert unknown.exit_code == 2 and "'turbo' is not one of" in unknown.output and "Traceback" not in unknown.output
    wide = runner.invoke(app, ["separate", str(src / "mono8k.wav"), "--band", "wide", "-o", str(out)])
    assert wide.exit_code == 2 and "'wide' is not one of 'full', 'model'" in wide.output
    flac_float = runner.invoke(app, ["separate", str(src / "mono8k.wav"), "--format", "flac", "--float"])
    assert flac_float.exit_code == 2 and "FLAC cannot hold float" in flac_float.output
    assert "tisdiss separate recordings/ -o separated/ --recursive" in runner.invoke(app, ["separate", "--help"]).output


def test_ranks_split_files_deterministically(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Two CPU processes with torchrun's RANK/WORLD_SIZE each take a disjoint share."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        sf.write(src / f"f{i}.wav", np.full(400, 0.01 * (i + 1), np.float32), 8000)
    cmd = [
        sys.executable,
        "-c",
        "from tisdiss_cli.cli import main; main()",
        "separate",
        str(src),
        "-o",
        str(tmp_path / "out"),
        "-m",
        str(tiny_checkpoint),
        "--json",
        "--threads",
        "1",
    ]
    procs = [
        subprocess.Popen(
            cmd,
            env={**os.environ, "RANK": str(r), "WORLD_SIZE": "2"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for r in range(2)
    ]
    shares = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        shares.append({Path(o).name.split("_spk")[0] for o in json.loads(stdout)["outputs"]})
    assert shares == [{"f0", "f2", "f4"}, {"f1", "f3"}]


def test_imported_espnet_model_reproduces_golden_outputs(tmp_path: Path) -> None:
    golden = need(GOLDEN)
    conf = json.loads((golden / "config.json").read_text())
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump(conf))
    torch.save(torch.load(golden / "state_dict.pt", weights_only=True), exp / "valid.loss.ave.pth")
    imported = runner.invoke(app, ["models", "import", str(exp), "--name", "golden-tiny"])
    assert imported.exit_code == 0, imported.output
    mix = torch.load(golden / "input.pt", weights_only=True)[0].numpy()
    wav = tmp_path / "mix.wav"
    sf.write(wav, mix, 8000, subtype="FLOAT")
    out = tmp_path / "sep"
    # --segment 4: the 2-s input must run whole (the CPU default segment is shorter).
    args = [
        "separate",
        str(wav),
        "-o",
        str(out),
        "--model",
        "golden-tiny",
        "--nsep",
        "2",
        "--nre",
        "3",
        "--format",
        "wav",
        "--float",
        "--segment",
        "4",
        "--model-level",
        "--precision",
        "fp32",  # the default, auto, is bf16 on a CPU with native bf16
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "n_sep=2, n_re=3" in result.stdout
    expected = torch.load(golden / "outputs.pt", weights_only=True)["nsep2_nre3"].numpy()
    for j in range(2):
        y, rate = sf.read(out / f"mix_spk{j + 1}.wav", dtype="float32")
        assert rate == 8000
        np.testing.assert_allclose(y, expected[j], atol=2e-6, rtol=0)


def test_max_rtf_chooses_a_measured_depth_and_says_so(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.wav"
    sf.write(src, (0.1 * np.random.default_rng(1).standard_normal(4000)).astype(np.float32), 8000)
    generous = runner.invoke(
        app,
        [
            "separate",
            str(src),
            "-o",
            str(tmp_path / "a"),
            "--model",
            str(tiny_checkpoint),
            "--max-rtf",
            "1e6",
            "--json",
        ],
    )
    assert generous.exit_code == 0, generous.output
    assert json.loads(generous.stdout)["n_re"] == 3  # everything fits: the deepest preset's depth
    assert "--max-rtf 1e+06 (measured RTF" in generous.stderr
    strict = runner.invoke(
        app,
        ["separate", str(src), "-o", str(tmp_path / "b"), "--model", str(tiny_checkpoint), "--max-rtf", "0", "--json"],
    )
    assert strict.exit_code == 0, strict.output
    assert json.loads(strict.stdout)["n_re"] == 0  # nothing is that fast: the shallowest depth


@pytest.mark.parametrize("threshold, expected", [(-1e9, 1.0), (1e9, 3.0)])
def test_adaptive_depth_is_reported_and_bounded_by_the_preset(
    tiny_checkpoint: Path, tmp_path: Path, threshold: float, expected: float
) -> None:
    src = tmp_path / "in.wav"
    sf.write(src, (0.1 * np.random.default_rng(2).standard_normal(30000)).astype(np.float32), 8000)
    result = runner.invoke(
        app,
        [
            "separate",
            str(src),
            "-o",
            str(tmp_path / "o"),
            "--model",
            str(tiny_checkpoint),
            "--preset",
            "best",
            "--adaptive",
            "--adaptive-threshold",
            str(threshold),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n_re"] == 3
    assert summary["adaptive_mean_n_re"] == expected  # stops at step 1, or runs to the preset's N_re and no further
