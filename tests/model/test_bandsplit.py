"""The band-split variants (paper section 3.5) against the authors' golden vectors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import tisdiss_cli.cli.models  # noqa: F401  (registers the sub-command)
from tests.conftest import GOLDEN, load_golden
from tisdiss_cli import CheckpointError, ModelConfig, TISDiSS, load_checkpoint, load_espnet, save_checkpoint
from tisdiss_cli.cli import app
from tisdiss_cli.model.bandsplit import band_table, mel_bands, tiger_widths
from tisdiss_cli.model.espnet import config_from_espnet, tisdiss_to_espnet_key
from tisdiss_cli.model.layers import reference_paths
from tisdiss_cli.model.network import count_parameters, init_weights
from tisdiss_cli.zoo.load import load_model

VARIANTS = ["bandsplit", "melbandsplit"]


def _golden(variant: str) -> dict:
    return load_golden(GOLDEN / variant)


@pytest.fixture(scope="module", params=VARIANTS)
def golden(request: pytest.FixtureRequest) -> dict:
    return _golden(request.param)


def small_band_config(**changes: object) -> ModelConfig:
    """A small band-split model (C = 8) for the unit tests; ``changes`` override fields."""
    fields: dict = {"emb_dim": 8, "attention_dim": 8, "n_heads": 2, "ffn_hidden_dim": (8, 8), "num_groups": 2}
    return ModelConfig(**{"band_split": "bandsplit", **fields, **changes})


def _pairs(golden: dict) -> list[tuple[int, int]]:
    return [tuple(p) for p in golden["config"]["output_pairs"]]


def test_band_tables_match_the_reference(golden: dict) -> None:
    model = load_espnet(golden["config"], golden["state"])
    assert band_table(model.config) == golden["config"]["bands"]["bins_per_band"]


def test_fast_and_reference_gradients_agree() -> None:
    """The batched band modules and the one-Linear-per-band form train identically."""
    for kind, norm in [("bandsplit", "band"), ("mel", "band"), ("bandsplit", "utterance")]:
        torch.manual_seed(0)
        config = small_band_config(n_sep=2, n_re=1, band_split=kind, band_norm=norm)
        model = TISDiSS(config).double()
        init_weights(model)
        mix = torch.randn(2, 1200, dtype=torch.float64)
        grads = []
        for ctx in (torch.enable_grad, reference_paths):
            model.zero_grad()
            with ctx():
                model(mix).pow(2).mean().backward()
            grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
        for key in grads[0]:
            torch.testing.assert_close(grads[0][key], grads[1][key], rtol=1e-9, atol=1e-12, msg=key)


def test_parameter_counts_follow_the_closed_form() -> None:
    """band-split.md section 6: encoder S(C+1) + nband C, decoder nband (20C^2 + 8C) + (8C+2) S."""
    released = {"emb_dim": 128, "attention_dim": 128, "n_heads": 4, "ffn_hidden_dim": (384, 384)}
    expected = {"bandsplit": 19_008_439, "mel": 18_813_587}  # the design note's counts (shared RoPE once)
    with torch.device("meta"):
        standard = count_parameters(TISDiSS(ModelConfig(**released)))
        for kind, total in expected.items():
            model = TISDiSS(ModelConfig(**released, band_split=kind))
            table = band_table(model.config)
            c, s, nband = 128, 2 * sum(len(b) for b in table), len(table)
            band_modules = s * (c + 1) + nband * c + nband * (20 * c * c + 8 * c) + (8 * c + 2) * s
            # Standard head/tail: Conv2d 2->C (3x3) + GroupNorm(C) and ConvTranspose2d C->2 (3x3).
            head_tail = (2 * 9 * c + c) + 2 * c + (c * 2 * 9 + 2)
            assert count_parameters(model) == standard - head_tail + band_modules
            # The design note counts the 5 RoPE frequency vectors once (16 values): we keep none.
            assert count_parameters(model) == total - 48


def test_tiger_widths_and_mel_bands_generalise() -> None:
    assert tiger_widths(65, 8000) == [1] + [1] * 16 + [2] * 8 + [4] * 8
    assert tiger_widths(129, 8000) == [1] + [2] * 16 + [4] * 8 + [8] * 8  # same 33 bands at n_fft 256
    bands = mel_bands(129, 8000, 32)
    assert len(bands) == 32 and set().union(*map(set, bands)) == set(range(129))
    with pytest.raises(ValueError, match="band_widths sum"):
        band_table(ModelConfig(band_split="bandsplit", band_widths=(1, 2, 3)))
    with pytest.raises(ValueError, match="band_split"):
        ModelConfig(band_split="tiger")


def test_checkpoint_round_trip_keeps_the_band_layout(tmp_path: Path) -> None:
    config = small_band_config(n_fft=256, hop_length=128)
    torch.manual_seed(1)
    model = TISDiSS(config).eval()
    init_weights(model)
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    loaded = load_checkpoint(path)
    assert loaded.config == config and len(band_table(loaded.config)) == 33
    mix = torch.randn(1, 4000)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(mix), model(mix), rtol=0, atol=0)


def test_espnet_key_names_round_trip(golden: dict) -> None:
    model = load_espnet(golden["config"], golden["state"])
    espnet = {k for k in golden["state"] if not k.endswith("rope.freqs")}
    assert {tisdiss_to_espnet_key(k) for k in model.state_dict()} == espnet


def test_unsupported_band_split_settings_are_named() -> None:
    conf = _golden("bandsplit")["config"]
    for key, value in [("split_type", "tiger"), ("band_split_encoder_type", "conv1d"), ("band_split_decoder_depth", 3)]:
        bad = {**conf, "separator_conf": {**conf["separator_conf"], key: value}}
        with pytest.raises(CheckpointError, match=key):
            config_from_espnet(bad)


@pytest.mark.parametrize("variant", VARIANTS)
def test_espnet_band_split_folder_imports(variant: str, tmp_path: Path) -> None:
    golden = _golden(variant)
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(golden["config"]))
    torch.save(golden["state"], folder / "valid.loss.ave_5best.pth")
    result = CliRunner().invoke(
        app, ["models", "import", str(folder), "--name", f"golden-{variant}"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    model = load_model(f"golden-{variant}").model.double()
    with torch.inference_mode():
        out = model(golden["input"].double(), n_sep=2, n_re=3)[0]
    torch.testing.assert_close(out, golden["outputs"]["nsep2_nre3"], rtol=0, atol=1e-10)


def test_band_mask_multiplies_the_mixture_spectrum() -> None:
    """With band_mask, a unit mask from every band gives back the mixture for each speaker."""
    config = small_band_config(band_mask=True)
    model = TISDiSS(config).double().eval()
    init_weights(model)
    ones = lambda y: torch.ones(*y.shape[:-2], config.n_freq, dtype=torch.complex128)  # noqa: E731
    model.decoder.band_restore.forward = ones  # type: ignore[method-assign]
    mix = torch.randn(2, 3000, dtype=torch.float64)
    with torch.inference_mode():
        out = model(mix, n_sep=1, n_re=1)
    torch.testing.assert_close(out, mix[:, None].expand_as(out), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="band_mask"):
        ModelConfig(band_mask=True)


def test_utterance_band_norm_keeps_band_energies() -> None:
    """The reference per-band norm makes a band's embedding blind to its level; the utterance
    norm (tisdiss option) keeps it, and is blind only to the level of the whole input."""
    spec = torch.randn(1, 20, 65, dtype=torch.complex128)
    louder = spec.clone()
    louder[:, :, 40:50] *= 10  # one region 20 dB up
    for norm, sees_band_level in [("band", False), ("utterance", True)]:
        torch.manual_seed(0)
        config = small_band_config(band_norm=norm)
        encoder = TISDiSS(config).double().encoder.band_split
        first, second, scaled = encoder(spec), encoder(louder), encoder(spec * 3)
        band = 28  # bins 45-48, all inside the louder region
        assert torch.allclose(first, scaled, atol=1e-12)  # the whole input's level never matters
        assert torch.allclose(first[..., band, :], second[..., band, :], atol=1e-12) != sees_band_level
    with pytest.raises(ValueError, match="band_norm"):
        ModelConfig(band_split="bandsplit", band_norm="frame")  # type: ignore[arg-type]
