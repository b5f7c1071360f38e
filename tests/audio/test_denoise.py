"""The RNNoise front end (``--denoise``): aligned, as long as its input, blind to block sizes, and
it takes noise out of speech; the engine runs it before everything else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO
from tisdiss_cli.audio import denoise
from tisdiss_cli.audio import files as audio
from tisdiss_cli.evaluation.metrics import si_snr_matrix

pytestmark = pytest.mark.skipif(not denoise.available(), reason="RNNoise is in the denoise extra")

EXAMPLE = REPO / "models" / "examples" / "two_speakers.wav"


def speech(rate: int, seconds: float = 6.0) -> np.ndarray:
    """The bundled example's talkers (real speech) at ``rate``."""
    x, source_rate = sf.read(EXAMPLE, dtype="float32", always_2d=True)
    x = audio.resample(x.mean(1), source_rate, rate).astype(np.float32)
    return x[: int(seconds * rate)]


def run(x: np.ndarray, rate: int, block: int) -> np.ndarray:
    d = denoise.Denoiser(rate)
    parts = [d.push(x[i : i + block]) for i in range(0, len(x), block)]
    return np.concatenate([*parts, d.flush()])


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_as_long_as_the_input_and_the_same_in_any_blocks(rate: int) -> None:
    x = speech(rate, 3.0)
    whole = run(x, rate, len(x))
    assert len(whole) == len(x)
    for block in (1, 333, 4801):
        assert np.array_equal(run(x, rate, block), whole)


def test_a_flushed_denoiser_refuses_more() -> None:
    d = denoise.Denoiser(16000)
    d.push(np.zeros(1000, np.float32))
    d.flush()
    with pytest.raises(ValueError, match="flushed"):
        d.push(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="flushed"):
        d.flush()


def test_aligned_with_the_input() -> None:
    """RNNoise's own delay is taken out: the output lines up with the speech it keeps."""
    rate = 16000
    x = speech(rate)
    y = run(x, rate, 1024)
    lags = range(-80, 81)
    score = [float(np.dot(np.roll(y, -lag), x)) for lag in lags]
    assert list(lags)[int(np.argmax(score))] == 0


def test_takes_noise_out_of_speech() -> None:
    """White noise at 0 dB SNR, alone for a second and then under speech: the lone noise all but
    goes, and the speech comes out closer to the clean speech."""
    rate = 16000
    clean = np.concatenate([np.zeros(rate, np.float32), speech(rate)])
    noise = np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32)
    noise *= np.sqrt(np.mean(clean[rate:] ** 2) / np.mean(noise**2))
    noisy = clean + noise
    out = run(noisy, rate, 4096)
    lone_noise_db = 10 * np.log10(np.mean(out[:rate] ** 2) / np.mean(noisy[:rate] ** 2))
    assert lone_noise_db < -20.0
    score = lambda x: si_snr_matrix(x[None].astype(np.float64), clean[None].astype(np.float64))[0, 0]  # noqa: E731
    assert score(out) > score(noisy) + 3.0, (score(noisy), score(out))


def test_the_engine_denoises_before_separating(tiny_checkpoint: Path) -> None:
    """``denoise=True`` separates exactly what a separator without it makes of the denoised mixture."""
    from tisdiss_cli.separation.separator import Separator

    rate = 16000
    x = speech(rate, 4.0)
    with_denoise = Separator(
        tiny_checkpoint, device="cpu", precision="fp32", segment=1.0, tracker="overlap", denoise=True
    ).separate(x, rate)
    plain = Separator(tiny_checkpoint, device="cpu", precision="fp32", segment=1.0, tracker="overlap")
    assert np.array_equal(with_denoise, plain.separate(run(x, rate, len(x)), rate))
    assert not np.array_equal(with_denoise, plain.separate(x, rate))
    empty = Separator(
        tiny_checkpoint, device="cpu", precision="fp32", segment=1.0, tracker="overlap", denoise=True
    ).stream(rate)
    assert empty.close().shape[1] == 0 and empty.denoiser is not None and empty.denoiser._state is None
