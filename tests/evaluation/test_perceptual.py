"""STOI and PESQ: the wrappers, their rates, the missing extra, and `tisdiss eval --metrics`."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from tests.conftest import DEV2MIX, need
from tisdiss_cli.audio import files as audio
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.evaluation import perceptual
from tisdiss_cli.evaluation.evaluate import evaluate, write_csv, write_json
from tisdiss_cli.evaluation.testset import load_testset, read_example
from tisdiss_cli.model.checkpoint import save_checkpoint
from tisdiss_cli.model.config import ARCHITECTURES
from tisdiss_cli.model.network import TISDiSS, init_weights

pystoi = pytest.importorskip("pystoi")
pesq_module = pytest.importorskip("pesq")


@pytest.fixture(scope="module")
def example():
    return read_example(load_testset(need(DEV2MIX)).utterances[0])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(2)
    model = TISDiSS(ARCHITECTURES["tiny"])
    init_weights(model)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", {"presets": {"best": [1, 1]}})


def test_parse_metrics_and_pesq_rates():
    assert perceptual.parse_metrics("pesq, STOI,pesq") == ("pesq", "stoi")
    with pytest.raises(ValueError, match="unknown metric 'sisnr'"):
        perceptual.parse_metrics("stoi,sisnr")
    assert perceptual.pesq_rate(8000) == (8000, "nb")
    assert perceptual.pesq_rate(16000) == (16000, "wb")
    assert perceptual.pesq_rate(44100) == (16000, "wb")
    assert perceptual.pesq_rate(11025) == (8000, "nb")


def test_values_match_the_packages_and_rank_the_mixture_lower(example):
    refs, mix = example.refs, np.stack([example.mix, example.mix])
    assert np.allclose(perceptual.stoi(refs, refs, 8000), 1.0, atol=1e-9)
    assert np.all(perceptual.pesq(refs, refs, 8000) > 4.5)  # the top of the narrow-band MOS-LQO scale
    stoi, pesq = perceptual.stoi(mix, refs, 8000), perceptual.pesq(mix, refs, 8000)
    assert np.all(stoi < 0.9) and np.all(pesq < 2.5)
    # reference first, degraded second, per speaker (PESQ is not symmetric)
    for j in range(2):
        assert stoi[j] == pytest.approx(pystoi.stoi(refs[j], mix[j], 8000), abs=1e-12)
        assert pesq[j] == pytest.approx(pesq_module.pesq(8000, refs[j], mix[j], "nb"), abs=1e-6)
    assert perceptual.compute(("pesq", "stoi"), mix, refs, 8000) == pytest.approx(
        {"pesq": pesq.mean(), "stoi": stoi.mean()}
    )


def test_other_rates_are_resampled_for_wideband_pesq(example):
    up = lambda x, a, b: audio.resample(np.ascontiguousarray(x.T), a, b).T  # noqa: E731
    refs16, mix16 = up(example.refs, 8000, 16000), up(np.stack([example.mix] * 2), 8000, 16000)
    wb = perceptual.pesq(mix16, refs16, 16000)
    at_22k = perceptual.pesq(up(mix16, 16000, 22050), up(refs16, 16000, 22050), 22050)
    assert np.allclose(at_22k, wb, atol=0.01)
    assert not np.allclose(wb, perceptual.pesq(np.stack([example.mix] * 2), example.refs, 8000), atol=0.05)


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pesq", None)
    message = "PESQ needs pesq: pip install 'tisdiss[metrics]'"
    assert perceptual.missing_package(("stoi", "pesq")) == message
    with pytest.raises(ImportError, match=r"tisdiss\[metrics\]"):
        perceptual.pesq(np.ones((1, 8000)), np.ones((1, 8000)), 8000)
    _register_commands()
    result = CliRunner().invoke(app, ["eval", "nowhere", "--metrics", "stoi,pesq"])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {message}"


def test_evaluate_reports_stoi_and_pesq_per_setting(tmp_path, checkpoint):
    dev = need(DEV2MIX)
    model = TISDiSS(ARCHITECTURES["tiny"])
    init_weights(model)
    report = evaluate(
        model.eval(),
        dev,
        n_sep=1,
        n_re_values=[0, 1],
        limit=1,
        rtf_utterances=0,
        with_sdr=False,
        extra_metrics=("stoi", "pesq"),
        save_estimates=tmp_path / "est",
    )
    assert report.metrics == ("stoi", "pesq") and report.pesq_mode == "nb"
    ex = read_example(load_testset(dev).utterances[0])
    for row in report.utterances:
        saved = np.stack(
            [sf.read(tmp_path / "est" / f"nsep1-nre{row.n_re}" / f"s{j}" / f"{row.id}.wav")[0] for j in (1, 2)]
        )
        assert row.stoi == pytest.approx(perceptual.stoi(saved, ex.refs, 8000).mean(), abs=1e-4)
        assert row.pesq == pytest.approx(perceptual.pesq(saved, ex.refs, 8000).mean(), abs=1e-3)
        assert report.setting(row.n_re).stoi == row.stoi and report.setting(row.n_re).pesq == row.pesq
    with open(write_csv(report, tmp_path / "r.csv")) as f:
        rows = list(csv.DictReader(f))
    assert {"stoi", "pesq"} <= set(rows[0]) and float(rows[0]["pesq"]) == pytest.approx(report.utterances[0].pesq)
    summary = json.loads(write_json(report, tmp_path / "r.json").read_text())
    assert summary["settings"][1]["stoi"] == pytest.approx(report.setting(1).stoi)

    _register_commands()
    args = ["eval", str(dev), "--model", str(checkpoint), "--limit", "1", "--rtf-utterances", "0", "--no-sdr"]
    result = CliRunner().invoke(app, [*args, "--metrics", "pesq,stoi", "--csv", str(tmp_path / "c.csv")])
    assert result.exit_code == 0, result.output
    assert "PESQ-NB" in result.output and "STOI" in result.output
    result = CliRunner().invoke(app, [*args, "--csv", str(tmp_path / "plain.csv")])
    assert result.exit_code == 0 and "STOI" not in result.output
    assert "stoi" not in (tmp_path / "plain.csv").read_text().splitlines()[0]
