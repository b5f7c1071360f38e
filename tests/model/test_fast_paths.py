"""The optimised layer implementations agree with the straightforward reference ones."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import GOLDEN, need
from tisdiss_cli.model import layers
from tisdiss_cli.model.config import ARCHITECTURES
from tisdiss_cli.model.layers import SwiGLUConvFFN, fast_paths_enabled, reference_paths
from tisdiss_cli.model.network import TISDiSS, init_weights


def _tiny(seed: int = 0, dtype: torch.dtype = torch.float32) -> TISDiSS:
    torch.manual_seed(seed)
    model = TISDiSS(ARCHITECTURES["tiny"])
    init_weights(model)
    return model.to(dtype).eval()


def test_reference_paths_switch_restores_flag() -> None:
    assert fast_paths_enabled()
    with reference_paths():
        assert not fast_paths_enabled()
    assert fast_paths_enabled()


@pytest.mark.parametrize("seq", [1, 2, 3, 8, 9, 40])
@pytest.mark.parametrize("grad", [True, False])
def test_ffn_fast_equals_reference(seq: int, grad: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layers, "_SHORT_ROWS", 2)  # 5 rows: blocks of 2, 2 and 1 at inference
    torch.manual_seed(seq)
    ffn = SwiGLUConvFFN(16, 24, 4, 1)
    x, res = torch.randn(5, seq, 16), torch.randn(5, seq, 16)
    with torch.set_grad_enabled(grad):
        with reference_paths():
            want = res + ffn(x)
        torch.testing.assert_close(ffn(x, residual=res), want, atol=2e-6, rtol=1e-5)
        torch.testing.assert_close(ffn(x), want - res, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("n_sep,n_re", [(1, 0), (2, 1), (2, 3), (3, 2)])
def test_model_fast_equals_reference(n_sep: int, n_re: int) -> None:
    """Same arithmetic, different order: in float64 the paths agree to the golden 1e-10.

    (In float32 this random tiny model is too ill-conditioned to compare two float32 runs at
    2e-6: the reference path alone is up to 3.1e-6 away from its own float64 result at (3, 2).
    The float32 comparison runs on the golden model below, where that tolerance is defined.)
    """
    model = _tiny(dtype=torch.float64)
    mix = torch.randn(2, 3000, dtype=torch.float64) * 0.02  # the golden input's scale (peak 0.1)
    with torch.inference_mode():
        with reference_paths():
            want = model(mix, n_sep=n_sep, n_re=n_re)
        got = model(mix, n_sep=n_sep, n_re=n_re)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


def test_fast_equals_reference_float32_on_golden_model() -> None:
    from tisdiss_cli.model.espnet import load_espnet

    folder = need(GOLDEN)
    model = load_espnet(
        json.loads((folder / "config.json").read_text()), torch.load(folder / "state_dict.pt", weights_only=True)
    )
    mix = torch.load(folder / "input.pt", weights_only=True).float()
    with torch.inference_mode():
        for n_sep, n_re in [(2, 1), (2, 3), (3, 2), (1, 1)]:
            with reference_paths():
                want = model(mix, n_sep=n_sep, n_re=n_re)
            torch.testing.assert_close(model(mix, n_sep=n_sep, n_re=n_re), want, atol=2e-6, rtol=0)


def test_training_path_gradients_match_reference() -> None:
    model = _tiny(seed=1, dtype=torch.float64).train()
    mix = torch.randn(1, 1600, dtype=torch.float64) * 0.1

    def grads() -> list[torch.Tensor]:
        model.zero_grad()
        loss = sum(o.wave.pow(2).mean() for o in model.forward_train(mix, n_sep=2, n_re=2))
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    with reference_paths():
        want = grads()
    for g, w in zip(grads(), want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-10), (torch.float32, 2e-6)])
def test_fast_paths_match_golden(dtype: torch.dtype, atol: float) -> None:
    from tisdiss_cli.model.espnet import load_espnet

    folder = need(GOLDEN)
    model = load_espnet(
        json.loads((folder / "config.json").read_text()), torch.load(folder / "state_dict.pt", weights_only=True)
    ).to(dtype)
    mix = torch.load(folder / "input.pt", weights_only=True).to(dtype)
    outputs = torch.load(folder / "outputs.pt", weights_only=True)
    with torch.inference_mode():
        for n_sep, n_re in [(2, 1), (2, 3), (3, 2), (1, 1)]:
            got = model(mix, n_sep=n_sep, n_re=n_re)[0].double()
            torch.testing.assert_close(got, outputs[f"nsep{n_sep}_nre{n_re}"], atol=atol, rtol=0)


@pytest.mark.parametrize("kernel,padding", [(3, 1), (3, 0), (3, 2), ((3, 5), (1, 2))])
def test_deconv2d_same_equals_conv_transpose(kernel: int | tuple, padding: int | tuple) -> None:
    torch.manual_seed(0)
    deconv = torch.nn.ConvTranspose2d(6, 4, kernel, padding=padding).double()
    x = torch.randn(2, 6, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(layers.deconv2d_same(x, deconv), deconv(x), atol=1e-12, rtol=0)
