"""``--denoise`` on the command line: it runs where RNNoise is installed, and says what to install
where it is not; eval takes it for conversation and utterance sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.evaluation.test_conversations import write_conversations
from tisdiss_cli.audio import denoise
from tisdiss_cli.cli import app

needs_rnnoise = pytest.mark.skipif(not denoise.available(), reason="RNNoise is in the denoise extra")


def noisy_file(path: Path, rate: int = 16000) -> Path:
    rng = np.random.default_rng(1)
    t = np.arange(3 * rate) / rate
    x = 0.2 * np.sin(2 * np.pi * 220 * t) * (t > 1) + 0.05 * rng.standard_normal(len(t))
    sf.write(path, x, rate, subtype="PCM_16")
    return path


@needs_rnnoise
def test_separate_with_denoise_separates_the_denoised_mixture(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The files equal a plain run on the mixture denoised beforehand (saved as float, exactly)."""
    src = noisy_file(tmp_path / "talk.wav")
    before = src.read_bytes()
    x, rate = sf.read(src, dtype="float32")
    d = denoise.Denoiser(rate)
    cleaned = tmp_path / "pre" / "talk.wav"
    cleaned.parent.mkdir()
    sf.write(cleaned, np.concatenate([d.push(x), d.flush()]), rate, subtype="FLOAT")
    args = ["-m", str(tiny_checkpoint), "--speakers", "2", "--precision", "fp32"]
    runner_ok(["separate", str(src), "-o", str(tmp_path / "out"), "--denoise", *args])
    runner_ok(["separate", str(cleaned), "-o", str(tmp_path / "ref"), *args])
    runner_ok(["separate", str(src), "-o", str(tmp_path / "plain"), *args])
    files = sorted((tmp_path / "out").glob("*.wav"))
    assert [p.name for p in files] == ["talk_spk1.wav", "talk_spk2.wav"]
    for p in files:
        assert sf.info(p).frames == 3 * 16000
        assert np.array_equal(sf.read(p)[0], sf.read(tmp_path / "ref" / p.name)[0])
    assert not all(np.array_equal(sf.read(p)[0], sf.read(tmp_path / "plain" / p.name)[0]) for p in files)
    assert src.read_bytes() == before


def utterance_set(root: Path, rate: int = 8000) -> Path:
    """One two-talker utterance in the wsj0-2mix layout (a tone and a square wave)."""
    t = np.arange(rate) / rate
    talkers = {"s1": 0.2 * np.sin(2 * np.pi * 200 * t), "s2": 0.2 * np.sign(np.sin(2 * np.pi * 470 * t))}
    for folder, x in {**talkers, "mix": talkers["s1"] + talkers["s2"]}.items():
        (root / folder).mkdir(parents=True)
        sf.write(root / folder / "a.wav", x, rate, subtype="FLOAT")
    return root


def runner_ok(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def test_without_rnnoise_the_error_says_what_to_install(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(denoise, "_LIBRARY", None)
    monkeypatch.setattr(denoise.importlib.util, "find_spec", lambda name: None)
    src = noisy_file(tmp_path / "talk.wav")
    result = CliRunner().invoke(
        app, ["separate", str(src), "-m", str(tiny_checkpoint), "-o", str(tmp_path / "o"), "--denoise"]
    )
    assert result.exit_code == 1
    assert "pip install 'tisdiss[denoise]'" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    report = tmp_path / "utt.json"
    scored = CliRunner().invoke(
        app,
        ["eval", str(utterance_set(tmp_path / "utt")), "-m", str(tiny_checkpoint), "--json", str(report), "--denoise"],
    )
    assert scored.exit_code == 1 and "pip install 'tisdiss[denoise]'" in scored.output
    assert "Traceback" not in scored.output and not report.exists()


@needs_rnnoise
def test_eval_denoises_conversation_and_utterance_sets(tiny_checkpoint: Path, tmp_path: Path) -> None:
    root = write_conversations(tmp_path / "conv")
    out = tmp_path / "conv.json"
    args = ["eval", str(root), "-m", str(tiny_checkpoint), "--precision", "fp32", "--no-sdr", "--json", str(out)]
    result = CliRunner().invoke(app, [*args, "--denoise"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "denoised (RNNoise)" in result.output and json.loads(out.read_text())["denoise"] is True
    utterances = utterance_set(tmp_path / "utt")
    utt_json = tmp_path / "utt.json"
    scored = CliRunner().invoke(
        app,
        [
            "eval",
            str(utterances),
            "-m",
            str(tiny_checkpoint),
            "--no-sdr",
            "--rtf-utterances",
            "0",
            "--json",
            str(utt_json),
            "--denoise",
        ],
        env={"COLUMNS": "200"},
    )
    assert scored.exit_code == 0, scored.output
    assert "denoised (RNNoise)" in scored.output and json.loads(utt_json.read_text())["denoise"] is True
