"""Separator: presets, arrays of any layout, files block by block, chunked == whole when it fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tisdiss_cli import Separator
from tisdiss_cli.audio.files import AudioError
from tisdiss_cli.model.checkpoint import save_checkpoint
from tisdiss_cli.model.config import ARCHITECTURES
from tisdiss_cli.model.network import TISDiSS, init_weights
from tisdiss_cli.separation.separator import OutputExistsError
from tisdiss_cli.util.device import pick_device

pytestmark = pytest.mark.numerics  # CI runs these again with `auto` pinned to bf16

PRESET_META = {"presets": {"fast": [1, 1], "balanced": [2, 1], "best": [2, 3]}}


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = TISDiSS(ARCHITECTURES["tiny"])
    init_weights(model)
    return save_checkpoint(model, tmp_path_factory.mktemp("model") / "tiny.safetensors", PRESET_META)


def speechy(n: int, rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    return (0.2 * np.sin(2 * np.pi * 150 * t) * np.sin(2 * np.pi * 3 * t) + 0.05 * rng.standard_normal(n)).astype(
        np.float32
    )


def test_presets_and_overrides(tiny_path: Path) -> None:
    sep = Separator(tiny_path, device="cpu", preset="balanced", match_level=False, tracker="overlap")
    assert sep.depth() == (2, 1)
    assert sep.depth("best") == (2, 3)
    assert sep.depth("fast", n_re=0) == (1, 0)
    assert sep.depth(n_sep=3, n_re=4) == (3, 4)
    with pytest.raises(ValueError, match="unknown preset 'turbo'; available: fast, balanced, best"):
        sep.depth("turbo")
    with pytest.raises(ValueError, match="n_sep >= 1"):
        sep.depth(n_sep=0)
    x = speechy(4000, 8000)
    model = sep.model
    with torch.inference_mode():  # the path separate() runs (in-place fast ops round differently)
        expected = model(torch.from_numpy(x)[None], n_sep=1, n_re=2)[0].numpy()
    np.testing.assert_allclose(sep.separate(x, 8000, preset="fast", n_re=2), expected, atol=1e-6)


def test_array_layouts_and_input_untouched(tiny_path: Path) -> None:
    sep = Separator(tiny_path, device="cpu", speakers=2)
    x = speechy(3000, 8000)
    stereo = np.stack([x, x])
    keep = stereo.copy()
    a = sep.separate(x, 8000)
    b = sep.separate(stereo, 8000)
    c = sep.separate(torch.from_numpy(stereo), 8000)
    assert a.shape == (2, 3000) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(b, c, atol=1e-6)
    np.testing.assert_array_equal(stereo, keep)
    up = sep.separate(np.repeat(x, 2), 16000)  # resampled to 8 kHz and back
    assert up.shape == (2, 6000)
    with pytest.raises(ValueError, match="NaN"):
        sep.separate(np.full(100, np.nan), 8000)


def test_edge_cases_silence_and_tiny_inputs(tiny_path: Path) -> None:
    sep = Separator(tiny_path, device="cpu", speakers=2)
    silent = sep.separate(np.zeros(5000, np.float32), 8000)
    assert silent.shape == (2, 5000) and not silent.any()
    for n in (1, 10, 80, 127):  # shorter than one STFT frame (n_fft 128)
        y = sep.separate(speechy(n, 8000), 8000)
        assert y.shape == (2, n) and np.isfinite(y).all()
    assert sep.separate(np.zeros(0), 8000).shape == (2, 0)


def test_chunked_equals_whole_when_it_fits_and_long_input_chunks(tiny_path: Path) -> None:
    whole = Separator(tiny_path, device="cpu", segment=100.0)
    chunked = Separator(tiny_path, device="cpu", segment=1.0, overlap=0.25, batch_size=2)
    x = speechy(8000, 8000)  # exactly one segment of the chunked separator
    np.testing.assert_array_equal(chunked.separate(x, 8000), whole.separate(x, 8000))
    long = speechy(8000 * 4, 8000, seed=1)
    steps: list[tuple[int, int]] = []
    y = chunked.separate(long, 8000, progress=lambda done, total: steps.append((done, total)))
    assert y.shape == (2, len(long)) and np.isfinite(y).all()
    assert len(steps) == chunked.plan.num_chunks(len(long)) == 5 and steps[-1] == (len(long), len(long))


def test_separate_file_matches_array_api_and_never_overwrites(tiny_path: Path, tmp_path: Path) -> None:
    sep = Separator(tiny_path, device="cpu", segment=1.0)
    x = speechy(22050 * 3, 22050)
    src = tmp_path / "in" / "talk.wav"
    src.parent.mkdir()
    sf.write(src, np.stack([x, x], 1), 22050, subtype="PCM_16")
    before = src.read_bytes()
    outs = sep.separate_file(src, tmp_path / "out", float_output=True)
    assert [p.name for p in outs] == ["talk_spk1.wav", "talk_spk2.wav"]
    assert src.read_bytes() == before
    ref = sep.separate(sf.read(src, dtype="float32")[0].T, 22050)
    for j, p in enumerate(outs):
        y, rate = sf.read(p, dtype="float32")
        assert rate == 22050 and len(y) == len(x)
        # streaming resampling differs from whole-signal resampling only at block seams
        assert np.abs(y - ref[j]).max() < 2e-3 * max(1.0, np.abs(ref[j]).max())
    with pytest.raises(OutputExistsError, match="talk_spk1.wav: exists"):
        sep.separate_file(src, tmp_path / "out")
    res = sep.process_file(
        src, tmp_path / "out", overwrite=True, output_rate="model", fmt="flac", filename="{spk}-{stem}.{ext}"
    )
    assert [p.name for p in res.outputs] == ["1-talk.flac", "2-talk.flac"]
    assert res.warnings == []
    (tmp_path / "out" / "3-talk.flac").write_bytes(b"an earlier run's third talker")
    again = sep.process_file(
        src, tmp_path / "out", overwrite=True, output_rate="model", fmt="flac", filename="{spk}-{stem}.{ext}"
    )
    assert again.warnings == ["3-talk.flac: not from this run, which wrote 2 files; left as it was"]
    assert (tmp_path / "out" / "3-talk.flac").read_bytes() == b"an earlier run's third talker"
    assert sf.info(res.outputs[0]).samplerate == 8000 and sf.info(res.outputs[0]).frames == 8000 * 3
    assert res.depth == (2, 1) and res.chunks == 4
    with pytest.raises(ValueError, match="same name"):
        sep.separate_file(src, tmp_path / "out", filename="{stem}.{ext}")
    bad = tmp_path / "in" / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(AudioError, match="bad.wav: not a readable audio file"):
        sep.separate_file(bad, tmp_path / "out")
    assert not any(p.name.endswith(".part") for p in (tmp_path / "out").iterdir())


def test_device_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pick_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        monkeypatch.setenv("LOCAL_RANK", str(torch.cuda.device_count() + 1))  # torchrun rank -> its GPU
        assert pick_device("auto") == torch.device(f"cuda:{1 % torch.cuda.device_count()}")
        assert pick_device("cuda:0") == torch.device("cuda:0")
    else:
        assert pick_device("auto").type in ("cpu", "mps")
        assert pick_device("auto", mps=False) == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda:0")


@pytest.mark.gpu
def test_cuda_separation_matches_cpu(tiny_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = speechy(8000 * 3, 8000)
    on_cpu = Separator(tiny_path, device="cpu", segment=1.0).separate(x, 8000)
    on_gpu = Separator(tiny_path, device="cuda", segment=1.0)
    assert on_gpu.device.type == "cuda" and next(on_gpu.model.parameters()).is_cuda
    np.testing.assert_allclose(on_gpu.separate(x, 8000), on_cpu, atol=1e-4)


def test_outputs_are_matched_to_the_input_level(tiny_path: Path) -> None:
    x = speechy(6000, 8000)
    raw = Separator(tiny_path, device="cpu", segment=100.0, match_level=False).separate(x, 8000)
    matched = Separator(tiny_path, device="cpu", segment=100.0).separate(x, 8000)
    # one gain for the whole (single-chunk) file: same waveforms, the mixture's total energy and polarity
    gain = float(np.sqrt((x.astype(np.float64) ** 2).sum() / (raw.astype(np.float64) ** 2).sum()))
    assert abs(gain - 1.0) > 0.05  # the random tiny model's own level is off, so this tests something
    polarity = np.sign(float(raw.astype(np.float64).sum(0) @ x.astype(np.float64)))
    np.testing.assert_allclose(matched, polarity * gain * raw, rtol=1e-4, atol=1e-7)
    assert float(matched.astype(np.float64).sum(0) @ x.astype(np.float64)) > 0  # they add back up to the input
    # chunked: every chunk is matched, so the whole file lands near the input's energy too
    chunked = Separator(tiny_path, device="cpu", segment=0.25, overlap=0.25).separate(
        speechy(8000 * 3, 8000, seed=2), 8000
    )
    ratio = (chunked.astype(np.float64) ** 2).sum() / (speechy(8000 * 3, 8000, seed=2).astype(np.float64) ** 2).sum()
    assert 0.7 < ratio < 1.3


def test_match_level_keeps_silence_and_relative_levels() -> None:
    from tisdiss_cli.separation.separator import match_level

    sources = torch.stack([torch.randn(2, 100) * 5, torch.zeros(2, 100)])  # [B=2, J=2, S]
    mixture = torch.randn(2, 100)
    out = match_level(sources, mixture)
    torch.testing.assert_close(out[0].pow(2).sum(), mixture[0].pow(2).sum())
    torch.testing.assert_close(out[0, 0] / out[0, 1], sources[0, 0] / sources[0, 1])
    assert torch.equal(out[1], torch.zeros(2, 100))  # nothing to scale: no NaN
    inverted = match_level(-sources, mixture)  # a network that returns the talkers upside down
    torch.testing.assert_close(inverted, out)
    assert float((out[0].sum(0) * mixture[0]).sum()) > 0 or float((sources[0].sum(0) * mixture[0]).sum()) == 0


def test_segment_defaults_to_the_model_card(tiny_path: Path, tmp_path: Path) -> None:
    from tisdiss_cli.model.checkpoint import read_model
    from tisdiss_cli.separation.separator import DEFAULT_SEGMENT

    model, _ = read_model(tiny_path)
    carded = save_checkpoint(model, tmp_path / "carded.safetensors", {**PRESET_META, "segment": 3.0})
    assert Separator(str(carded), device="cpu").segment_seconds == 3.0
    assert Separator(str(carded), device="cpu").plan.segment_samples == 3 * model.config.sample_rate
    assert Separator(str(carded), device="cpu", segment=0.5).segment_seconds == 0.5  # an explicit value wins
    assert Separator(str(tiny_path), device="cpu").segment_seconds == DEFAULT_SEGMENT  # no card value
