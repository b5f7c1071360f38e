"""What Separator.separate accepts: documented shapes and dtypes; everything else refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tisdiss_cli import Separator

pytestmark = pytest.mark.numerics  # CI runs these again with `auto` pinned to bf16

N = 3000


@pytest.fixture(scope="module")
def sep(tiny_checkpoint: Path) -> Separator:
    return Separator(tiny_checkpoint, device="cpu", speakers=2)  # the shapes below are the network's


@pytest.fixture(scope="module")
def wave() -> np.ndarray:
    t = np.arange(N) / 8000
    return (0.3 * np.sin(2 * np.pi * 150 * t) + 0.05 * np.random.default_rng(0).standard_normal(N)).astype(np.float32)


def test_soundfile_layout_is_refused_not_misread(sep: Separator, wave: np.ndarray) -> None:
    """sf.read gives [samples, channels]: before, (3000, 2) was taken as 3000 channels of 2 samples."""
    with pytest.raises(ValueError, match=r"shape \(3000, 2\).*\[samples, channels\].*wave\.T"):
        sep.separate(np.stack([wave, wave], 1), 8000)
    with pytest.raises(ValueError, match=r"shape \(3000, 1\)"):
        sep.separate(wave[:, None], 8000)
    np.testing.assert_allclose(sep.separate(np.stack([wave, wave], 1).T, 8000), sep.separate(wave, 8000), atol=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((2, 2, N), np.float32), "3 dimensions"),
        (np.float32(0.5), "0 dimensions"),
        (np.zeros((65, N), np.float32), "65 channels"),
        (np.zeros((0, N), np.float32), "no channels"),
        (np.zeros(N, np.int64), "int64"),
        (np.zeros(N, bool), "bool"),
        (np.zeros(N, np.complex64), "complex"),
        (torch.zeros(N, dtype=torch.complex64), "complex"),
        (np.array(["a", "b"]), "<U1"),
    ],
)
def test_other_shapes_and_dtypes_are_refused(sep: Separator, bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sep.separate(bad, 8000)  # type: ignore[arg-type]


def test_pcm_integers_are_scaled_like_soundfile_reads_them(sep: Separator, wave: np.ndarray) -> None:
    pcm16 = np.round(wave * 32767).astype(np.int16)
    expected = sep.separate(pcm16.astype(np.float32) / 32768, 8000)
    np.testing.assert_allclose(sep.separate(pcm16, 8000), expected, atol=1e-6)
    np.testing.assert_allclose(sep.separate(pcm16.astype(np.int32) << 16, 8000), expected, atol=1e-6)
    np.testing.assert_allclose(sep.separate(torch.from_numpy(pcm16), 8000), expected, atol=1e-6)
    pcm8 = (np.round(wave * 127) + 128).astype(np.uint8)  # 8-bit WAV: unsigned around 128
    np.testing.assert_allclose(sep.separate(pcm8, 8000), sep.separate((pcm8 - 128.0) / 128, 8000), atol=1e-6)


def test_float64_non_contiguous_torch_and_half_inputs(sep: Separator, wave: np.ndarray) -> None:
    expected = sep.separate(wave, 8000)
    np.testing.assert_allclose(sep.separate(wave.astype(np.float64), 8000), expected, atol=1e-6)
    strided = np.stack([wave, np.zeros_like(wave)], 1)[:, 0]  # a view with stride 2
    assert not strided.flags.c_contiguous
    np.testing.assert_allclose(sep.separate(strided, 8000), expected, atol=1e-6)
    tensor = torch.from_numpy(wave).requires_grad_()
    np.testing.assert_allclose(sep.separate(tensor, 8000), expected, atol=1e-6)
    for half in (torch.float16, torch.bfloat16):
        out = sep.separate(torch.from_numpy(wave).to(half), 8000)
        assert out.shape == (2, N) and np.isfinite(out).all()
    keep = wave.copy()
    sep.separate(wave, 8000)
    np.testing.assert_array_equal(wave, keep)


def test_empty_input_and_bad_rates(sep: Separator, wave: np.ndarray) -> None:
    assert sep.separate(np.zeros(0, np.float32), 8000).shape == (2, 0)
    assert sep.separate(np.zeros((2, 0), np.float32), 8000).shape == (2, 0)
    for rate in (0, -8000, float("nan"), "8000", True):
        with pytest.raises(ValueError, match="sample_rate"):
            sep.separate(wave, rate)  # type: ignore[arg-type]
