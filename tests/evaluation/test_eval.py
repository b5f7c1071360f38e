"""Test-set loading, the one-pass depth sweep, and `tisdiss eval` end to end (tiny model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from tests.conftest import DEV2MIX, need
from tisdiss_cli.audio import denoise
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.evaluation import metrics
from tisdiss_cli.evaluation.evaluate import evaluate, parse_depths
from tisdiss_cli.evaluation.testset import TestSetError, check_headers, load_testset, read_example
from tisdiss_cli.model.checkpoint import save_checkpoint
from tisdiss_cli.model.config import ARCHITECTURES
from tisdiss_cli.model.network import TISDiSS, init_weights
from tisdiss_cli.zoo.load import LoadedModel

pytest.importorskip("mir_eval")
RATE = 8000


def write_set(
    root: Path, n: int = 2, seconds: float = 0.4, rate: int = RATE, mix_dir: str = "mix", seed: int = 0
) -> Path:
    """A small wsj0-2mix style folder of two 'talkers' (modulated tones + noise), mix = s1 + s2."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(n):
        s1 = 0.3 * np.sin(2 * np.pi * (180 + 40 * i) * t) * (
            1 + np.sin(2 * np.pi * 3 * t)
        ) + 0.01 * rng.standard_normal(t.size)
        s2 = 0.2 * np.sign(np.sin(2 * np.pi * (430 + 25 * i) * t)) * np.hanning(t.size) + 0.01 * rng.standard_normal(
            t.size
        )
        for folder, wave in ((mix_dir, s1 + s2), ("s1", s1), ("s2", s2)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            sf.write(root / folder / f"utt{i}.wav", wave, rate, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def tiny() -> TISDiSS:
    torch.manual_seed(0)
    model = TISDiSS(ARCHITECTURES["tiny"])
    init_weights(model)
    return model.double().eval()


# ----------------------------------------------------------------------------- test sets


def test_layouts_wsj0_librimix_and_list(tmp_path):
    wsj = write_set(tmp_path / "wsj")
    t = load_testset(wsj)
    assert t.layout == "wsj0-2mix" and [u.id for u in t.utterances] == ["utt0", "utt1"]
    assert t.utterances[0].refs == (wsj / "s1" / "utt0.wav", wsj / "s2" / "utt0.wav")

    libri = write_set(tmp_path / "libri", mix_dir="mix_both")
    assert load_testset(libri).layout == "librimix:mix_both"
    assert load_testset(libri / "mix_both").root == libri  # pointing at the mix folder works
    (libri / "mix_single").mkdir()
    sf.write(libri / "mix_single" / "utt0.wav", np.zeros(100), RATE)
    assert load_testset(libri, mix_dir="mix_single").num_refs == 1  # mix_single pairs with s1 only

    listing = tmp_path / "list.tsv"
    listing.write_text(
        "mix\ts1\ts2\tid\n# comment\nwsj/mix/utt1.wav\twsj/s1/utt1.wav\twsj/s2/utt1.wav\tfirst\n"
        "wsj/mix/utt0.wav\twsj/s1/utt0.wav\twsj/s2/utt0.wav\n"
    )
    t = load_testset(listing)
    assert t.layout == "list" and [u.id for u in t.utterances] == ["first", "utt0"]
    assert t.utterances[0].mix == tmp_path / "wsj" / "mix" / "utt1.wav"
    check_headers(t)


def test_missing_reference_names_the_file(tmp_path):
    root = write_set(tmp_path / "set")
    (root / "s2" / "utt1.wav").unlink()
    with pytest.raises(TestSetError, match=r"s2/utt1\.wav"):
        load_testset(root)
    listing = tmp_path / "l.tsv"
    listing.write_text("set/mix/utt0.wav\tset/s1/utt0.wav\tset/s2/nope.wav\n")
    with pytest.raises(TestSetError, match=r"nope\.wav"):
        load_testset(listing)
    with pytest.raises(TestSetError, match="not a test set"):
        load_testset(tmp_path)


def test_length_and_rate_mismatches_name_both_files(tmp_path):
    root = write_set(tmp_path / "set")
    wave, _ = sf.read(root / "s1" / "utt1.wav")
    sf.write(root / "s1" / "utt1.wav", wave[:-7], RATE)
    t = load_testset(root)
    with pytest.raises(TestSetError, match=r"s1/utt1\.wav: \d+ samples differ from mixture .*mix/utt1\.wav"):
        check_headers(t)
    with pytest.raises(TestSetError, match=r"s1/utt1\.wav.*mix/utt1\.wav"):
        read_example(t.utterances[1])
    sf.write(root / "s1" / "utt1.wav", wave, 16000)
    with pytest.raises(TestSetError, match=r"s1/utt1\.wav: sample rate 16000 Hz differs from mixture .*utt1\.wav"):
        check_headers(t)


def test_parse_depths():
    assert parse_depths("1-8") == list(range(1, 9))
    assert parse_depths("3") == [3]
    assert parse_depths("1,3,6") == [1, 3, 6]
    assert parse_depths("6,0-2, 2") == [0, 1, 2, 6]
    for bad in ("a", "3-1", "-1", "1,,2", ""):
        with pytest.raises(ValueError):
            parse_depths(bad)


# ----------------------------------------------------------------------------- evaluation


def test_one_pass_sweep_equals_separate_runs(tmp_path, tiny):
    root = write_set(tmp_path / "set")
    report = evaluate(
        tiny, root, n_sep=1, n_re_values=[3, 0, 2], rtf_utterances=0, save_estimates=tmp_path / "est", precision="fp32"
    )
    assert [s.n_re for s in report.settings] == [0, 2, 3]
    assert all(s.rtf is None for s in report.settings)
    rows = {(r.id, r.n_re): r for r in report.utterances}
    assert len(rows) == 6
    with torch.inference_mode():
        for utt in load_testset(root).utterances:
            ex = read_example(utt)
            base = metrics.mixture_baseline(ex.mix, ex.refs)
            for k in (0, 2, 3):
                est = tiny(torch.from_numpy(ex.mix)[None], n_sep=1, n_re=k)[0].numpy()
                s = metrics.score(est, ex.refs, base)
                r = rows[(utt.id, k)]
                assert r.perm == s.perm
                assert abs(r.si_snr - s.si_snr) < 1e-8 and abs(r.sdr - s.sdr) < 1e-6
                # saved estimates are permutation-aligned: scoring them in file order gives the same
                saved = np.stack(
                    [sf.read(tmp_path / "est" / f"nsep1-nre{k}" / f"s{j}" / f"{utt.id}.wav")[0] for j in (1, 2)]
                )
                assert saved.shape == ex.refs.shape
                assert np.allclose(saved, est[list(s.perm)], atol=1e-6)
    means = report.setting(2)
    assert abs(means.si_snri - np.mean([rows[(u, 2)].si_snri for u in ("utt0", "utt1")])) < 1e-12


def test_a_set_above_the_model_rate_is_also_scored_at_its_rate_and_above(tmp_path, tiny):
    root = write_set(tmp_path / "set16k", n=2, rate=16000, seconds=1.0)
    full = evaluate(tiny, root, rtf_utterances=0, with_sdr=False, n_re_values=[1, 2])
    model = evaluate(tiny, root, rtf_utterances=0, with_sdr=False, n_re_values=[1, 2], band="model")
    assert full.input_rate == 16000 and full.band == "full" and model.band == "model"
    for a, b in zip(full.settings, model.settings, strict=True):
        assert a.si_snri == b.si_snri  # the model's band: the same outputs
        assert a.si_snri_full is not None and a.si_snr_high is not None and b.si_snr_high is not None
        assert a.si_snr_high > b.si_snr_high + 10  # the model's band alone has nothing above 4 kHz
    rows = [r for r in full.utterances if r.n_re == 2]
    assert abs(full.setting(2).si_snri_full - np.mean([r.si_snri_full for r in rows])) < 1e-12
    at_model_rate = evaluate(tiny, write_set(tmp_path / "set8k", n=1), rtf_utterances=0, with_sdr=False)
    assert at_model_rate.input_rate is None and at_model_rate.settings[0].si_snri_full is None
    with pytest.raises(ValueError, match="unknown band"):
        evaluate(tiny, root, rtf_utterances=0, band="wide")


@pytest.mark.skipif(not denoise.available(), reason="RNNoise is in the denoise extra")
def test_denoise_separates_the_denoised_mixture_and_scores_over_the_recorded_one(tmp_path, tiny):
    root = write_set(tmp_path / "set16k", n=2, rate=16000, seconds=1.0)
    copy = tmp_path / "denoised"  # the same set, its mixtures denoised beforehand
    for folder in ("mix", "s1", "s2"):
        (copy / folder).mkdir(parents=True)
        for path in sorted((root / folder).iterdir()):
            x, rate = sf.read(path)
            sf.write(copy / folder / path.name, denoise.denoised(x, rate) if folder == "mix" else x, rate, "FLOAT")
    args = {"n_sep": 1, "n_re_values": [2], "rtf_utterances": 0, "with_sdr": False, "precision": "fp32"}
    den, pre, plain = (evaluate(tiny, r, denoise=d, **args) for r, d in ((root, True), (copy, False), (root, False)))
    assert den.denoise and not pre.denoise
    for d, p, q in zip(den.utterances, pre.utterances, plain.utterances, strict=True):
        assert d.si_snr == pytest.approx(p.si_snr, abs=1e-9)  # the network heard the denoised mixture
        assert d.si_snr != pytest.approx(q.si_snr, abs=1e-3)
        assert d.si_snr - d.si_snri == pytest.approx(q.si_snr - q.si_snri, abs=1e-9)  # improvement over the recording
        ex = read_example(next(u for u in load_testset(root).utterances if u.id == d.id))
        denoised_ex = read_example(next(u for u in load_testset(copy).utterances if u.id == d.id))
        gap = (
            metrics.mixture_baseline(denoised_ex.mix, ex.refs, with_sdr=False).si_snr
            - metrics.mixture_baseline(ex.mix, ex.refs, with_sdr=False).si_snr
        )
        assert d.si_snri_full == pytest.approx(p.si_snri_full + gap, abs=1e-6)


def test_loaded_model_presets_rates_and_limits(tmp_path, tiny):
    root = write_set(tmp_path / "set16k", n=3, rate=16000, seconds=0.3)
    loaded = LoadedModel.in_memory(tiny, "tiny-test", {"best": (1, 1)})
    report = evaluate(loaded, root, limit=2, rtf_utterances=1, with_sdr=False)
    assert report.model == "tiny-test" and report.sample_rate == RATE
    assert [(s.n_sep, s.n_re) for s in report.settings] == [(1, 1)]  # the "best" preset
    assert report.settings[0].utterances == 2 and report.settings[0].sdr is None
    assert report.settings[0].rtf > 0 and report.rtf_utterances == 1
    assert abs(report.audio_seconds - 0.6) < 1e-3

    sep_only = TISDiSS(ARCHITECTURES["tiny"].replace(m_re=0, n_re=0))
    with pytest.raises(ValueError, match="no reconstruction stage"):
        evaluate(sep_only, root, n_re_values=[1], rtf_utterances=0)
    with pytest.raises(ValueError, match="1 reference"):
        libri = write_set(tmp_path / "libri", n=1, mix_dir="mix_single")
        evaluate(tiny, load_testset(libri), rtf_utterances=0)


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    model = TISDiSS(ARCHITECTURES["tiny"])
    init_weights(model)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", {"presets": {"best": [1, 2]}})


def run_cli(*args: str):
    _register_commands()
    return CliRunner().invoke(app, ["eval", *args])


def test_cli_end_to_end(tmp_path, checkpoint):
    root = write_set(tmp_path / "set", n=2, seconds=0.3)
    out = tmp_path / "out"
    result = run_cli(
        str(root),
        "--model",
        str(checkpoint),
        "--nre",
        "0,2",
        "--nsep",
        "1",
        "--rtf-utterances",
        "1",
        "--json",
        str(out / "r.json"),
        "--csv",
        str(out / "r.csv"),
    )
    assert result.exit_code == 0, result.output
    assert "SI-SNRi" in result.output and "tiny.safetensors" in result.output
    summary = json.loads((out / "r.json").read_text())
    assert [s["n_re"] for s in summary["settings"]] == [0, 2] and summary["num_utterances"] == 2
    assert all(s["rtf"] > 0 for s in summary["settings"])
    with open(out / "r.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["id"] for r in rows} == {"utt0", "utt1"}
    mean = np.mean([float(r["si_snri"]) for r in rows if r["n_re"] == "2"])
    assert abs(mean - summary["settings"][1]["si_snri"]) < 1e-9


def test_cli_errors_are_one_line(tmp_path, checkpoint):
    root = write_set(tmp_path / "set", n=1, seconds=0.3)
    (root / "s2" / "utt0.wav").unlink()
    result = run_cli(str(root), "--model", str(checkpoint))
    assert result.exit_code == 1
    assert "s2/utt0.wav" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = run_cli(str(tmp_path / "set"), "--model", str(checkpoint), "--nre", "5-2")
    assert result.exit_code != 0 and "5-2" in result.output


def test_cli_on_dev2mix_with_plot(tmp_path, checkpoint):
    pytest.importorskip("matplotlib")
    dev = need(DEV2MIX)
    result = run_cli(
        str(dev),
        "--model",
        str(checkpoint),
        "--limit",
        "1",
        "--nre",
        "0-1",
        "--rtf-utterances",
        "0",
        "--no-sdr",
        "--plot",
        str(tmp_path / "curve.png"),
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_adaptive_rows_match_separate_adaptive_runs(tmp_path, tiny):
    from tisdiss_cli.separation.adaptive import separate_adaptive

    root = write_set(tmp_path / "set")
    for threshold in (-1e9, 1e9, 20.0):
        report = evaluate(
            tiny,
            root,
            n_sep=1,
            n_re_values=[1, 3],
            rtf_utterances=0,
            with_sdr=False,
            adaptive_threshold=threshold,
            precision="fp32",  # compared with fp32 forwards below
        )
        rows = {r.id: r for r in report.utterances if r.adaptive}
        assert len(rows) == 2 and [s.n_re for s in report.settings] == [1, 3]  # fixed rows unchanged
        with torch.inference_mode():
            for utt in load_testset(root).utterances:
                ex = read_example(utt)
                wave, depth = separate_adaptive(
                    tiny, torch.from_numpy(ex.mix)[None], n_sep=1, max_n_re=3, threshold_db=threshold
                )
                assert rows[utt.id].n_re == depth <= 3
                s = metrics.score(
                    wave[0].numpy(), ex.refs, metrics.mixture_baseline(ex.mix, ex.refs, with_sdr=False), with_sdr=False
                )
                assert abs(rows[utt.id].si_snri - s.si_snri) < 1e-8
        assert report.adaptive_mean_n_re == np.mean([r.n_re for r in rows.values()])
        if threshold < 0:
            assert report.adaptive_mean_n_re == 1.0
        if threshold > 1e6:
            assert report.adaptive_mean_n_re == 3.0


def test_cli_sdr_backends_agree(tmp_path, checkpoint):
    root = write_set(tmp_path / "set", n=2, seconds=0.3)
    means = {}
    for backend in ("fast", "mir_eval"):
        out = tmp_path / f"{backend}.json"
        args = ["--model", str(checkpoint), "--nre", "1-2", "--rtf-utterances", "0", "--json", str(out)]
        result = run_cli(str(root), *args, "--sdr-backend", backend)
        assert result.exit_code == 0, result.output
        summary = json.loads(out.read_text())
        assert summary["sdr_backend"] == backend
        means[backend] = [(s["sdr"], s["sdri"]) for s in summary["settings"]]
    assert np.max(np.abs(np.subtract(means["fast"], means["mir_eval"]))) < 0.01
    result = run_cli(str(root), "--model", str(checkpoint), "--sdr-backend", "museval")
    assert result.exit_code != 0 and "unknown SDR backend 'museval'" in result.output
