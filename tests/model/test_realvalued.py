"""The real-valued form used for export: the same weights give the same outputs as the network."""

from __future__ import annotations

import pytest
import torch

from tests.model.test_bandsplit import small_band_config
from tisdiss_cli.model.config import ARCHITECTURES, ModelConfig
from tisdiss_cli.model.depth import Depth
from tisdiss_cli.model.network import TISDiSS, init_weights, istft, stft
from tisdiss_cli.model.realvalued import RealSTFT, RealValuedTISDiSS

CONFIGS = {
    "conv": ARCHITECTURES["tiny"],
    "band-mask": small_band_config(band_mask=True, n_fft=256, hop_length=128),
    "mel": small_band_config(band_split="mel"),
    "utterance-norm": small_band_config(band_norm="utterance"),
    "separation-only": ARCHITECTURES["tiny"].replace(m_re=0, n_re=0),
}


def _model(config: ModelConfig) -> TISDiSS:
    torch.manual_seed(0)
    model = TISDiSS(config)
    init_weights(model)
    return model.eval()


@pytest.mark.parametrize("length", [700, 1000, 1063])
def test_real_stft_is_the_stft_and_its_inverse(length: int) -> None:
    x = torch.randn(2, length, dtype=torch.float64)
    real = RealSTFT(128, 64)
    re, im = real(x)
    spec = stft(x, 128, 64)
    torch.testing.assert_close(re, spec.real, rtol=0, atol=1e-12)
    torch.testing.assert_close(im, spec.imag, rtol=0, atol=1e-12)
    # the inverse of an arbitrary spectrum, not only of one that came from a signal
    noise = torch.randn_like(spec)
    back = real.inverse(noise.real, noise.imag, length)
    torch.testing.assert_close(back, istft(noise, 128, 64, length), rtol=0, atol=1e-12)
    torch.testing.assert_close(real.inverse(re, im, length), x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_real_valued_forward_equals_the_network(name: str) -> None:
    model = _model(CONFIGS[name]).double()
    depth = Depth(2, 0 if model.reconstructor is None else 2)
    graph = RealValuedTISDiSS(model, depth)
    x = torch.randn(2, 1500, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model(x, n_sep=depth.n_sep, n_re=depth.n_re)
        got = graph(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    for buffer in graph.stft.buffers():
        assert not buffer.is_complex()


def test_real_valued_forward_has_no_complex_tensor() -> None:
    """Every intermediate of a traced real-valued forward is real (what ONNX needs)."""
    model = _model(CONFIGS["band-mask"])
    graph = RealValuedTISDiSS(model, Depth(1, 1))
    complex_ops: list[str] = []

    class Watch(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor) and out.is_complex():
                complex_ops.append(getattr(func, "__name__", str(func)))
            return out

    x = torch.randn(1, 900)
    with torch.inference_mode(), Watch():
        graph(x)
    assert complex_ops == []
    with torch.inference_mode(), Watch():
        model(x, n_sep=1, n_re=1)
    assert complex_ops, "the watch sees the normal forward's complex tensors"


def test_real_stft_refuses_a_hop_it_cannot_invert() -> None:
    with pytest.raises(ValueError, match="hop 100 > n_fft / 2"):
        RealSTFT(128, 100)
