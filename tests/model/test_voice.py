"""The voice encoder: its features, the pretrained weights from the resemblyzer wheel, and that it
tells two real talkers apart in the model's band."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from tisdiss_cli.model.voice import VoiceEncoder, mel_filterbank
from tisdiss_cli.zoo.voice import load_voice_encoder

DEVCONV = Path(__file__).resolve().parents[3] / "shared" / "data" / "devconv"


def test_slaney_filterbank_triangles_have_unit_area_in_mels() -> None:
    basis = mel_filterbank(16000, 400, 40)
    assert basis.shape == (40, 201) and (basis >= 0).all()
    peaks = basis.argmax(1)
    assert (np.diff(peaks.numpy()) >= 0).all()  # centres rise with the band
    widths_hz = (basis > 0).sum(1) * 40.0  # 40 Hz per bin
    heights = basis.max(1).values
    assert torch.allclose(heights * widths_hz / 2, torch.ones(40), rtol=0.35)  # triangle area ~ 1 (Slaney)


def test_features_at_8_khz_equal_those_of_the_same_signal_upsampled() -> None:
    rng = np.random.default_rng(0)
    x8 = soxr.resample(rng.normal(size=16000).astype(np.float32) * 0.1, 8000, 8000)
    x16 = soxr.resample(x8, 8000, 16000)
    encoder = VoiceEncoder()
    f8 = encoder.features(torch.from_numpy(x8)[None], 8000)
    f16 = encoder.features(torch.from_numpy(x16)[None])
    assert f8.shape == f16.shape
    low = f16[..., :30]  # bands below the 8-kHz signal's anti-alias edge
    assert float((f8[..., :30] - low).abs().max() / low.max()) < 1e-2
    with pytest.raises(ValueError, match="whole fraction"):
        encoder.features(torch.zeros(1, 100), 11025)


@pytest.mark.skipif(not DEVCONV.is_dir(), reason="../shared/data/devconv is not beside the checkout")
def test_pretrained_encoder_tells_two_talkers_apart_in_the_model_band() -> None:
    encoder = load_voice_encoder()
    torch.manual_seed(0)
    name = "so2116_so0739.flac"
    pieces = []
    for talker in ("s1", "s2"):
        x, rate = sf.read(DEVCONV / talker / name, dtype="float32")
        x8 = soxr.resample(x, rate, 8000)
        chunks = [x8[s : s + 12000] for s in range(0, len(x8) - 12000, 12000)]
        pieces.append(np.stack([c for c in chunks if np.mean(c**2) > 1e-4][:6]))
    with torch.inference_mode():
        e1, e2 = (encoder.embed(torch.from_numpy(p), 8000).numpy() for p in pieces)
    same = np.mean([(e1 @ e1.T)[np.triu_indices(len(e1), 1)].mean(), (e2 @ e2.T)[np.triu_indices(len(e2), 1)].mean()])
    different = (e1 @ e2.T).mean()
    assert same > different + 0.1
    np.testing.assert_allclose(np.linalg.norm(e1, axis=1), 1.0, rtol=1e-5)
