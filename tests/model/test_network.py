"""The network against the authors' golden vectors, parameter counts and checkpoint layout."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import GOLDEN, load_golden, need
from tisdiss_cli import CheckpointError, ModelConfig, TISDiSS, load_checkpoint, load_espnet, save_checkpoint
from tisdiss_cli.model.config import ARCHITECTURES
from tisdiss_cli.model.espnet import config_from_espnet, espnet_to_tisdiss_key
from tisdiss_cli.model.network import count_parameters, init_weights
from tisdiss_cli.training.losses import LossWeights, multi_loss


@pytest.fixture(scope="module")
def golden() -> dict:
    return load_golden(GOLDEN)


def _pairs(golden: dict) -> list[tuple[int, int]]:
    return [tuple(p) for p in golden["config"]["output_pairs"]]


def test_iter_depths_equals_separate_calls(golden: dict) -> None:
    model = load_espnet(golden["config"], golden["state"]).double()
    mix = golden["input"].double()
    with torch.inference_mode():
        swept = dict(model.iter_depths(mix, n_sep=2, max_n_re=3))
        assert sorted(swept) == [0, 1, 2, 3]
        for k, wave in swept.items():
            torch.testing.assert_close(wave, model(mix, n_sep=2, n_re=k), rtol=0, atol=1e-12)


# Spec section 8: trainable parameters without the constant RoPE frequencies.
PAPER_COUNTS = {
    "sep1x2-re1x6": 8_011_779,
    "sep1x2-re2x2": 11_163_011,
    "sep2x1-re3x1": 16_808_963,
    "sep6x1": 17_334_147,
    "sep2x3": 7_355_267,
    "sep1x6": 4_860_547,
}


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_parameter_counts_match_the_paper(name: str) -> None:
    with torch.device("meta"):
        model = TISDiSS(ARCHITECTURES[name])
    assert count_parameters(model) == PAPER_COUNTS[name]


def _released_state(seed: int = 0) -> dict[str, torch.Tensor]:
    keys = json.loads((GOLDEN / "released_keys.json").read_text())
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in keys:
        if key.endswith("rope.freqs"):
            state[key] = 1.0 / (10000 ** (torch.arange(0, 32, 2).float() / 32))
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.01
    return state


@pytest.fixture(scope="module")
def released_config() -> dict:
    cfg = json.loads((need(GOLDEN / "config.json")).read_text())
    sep = dict(
        cfg["separator_conf"],
        emb_dim=128,
        attention_dim=128,
        n_heads=4,
        ffn_hidden_dim=[384, 384],
        encoder_repeat_times=2,
        reconstructor_repeat_times=6,
    )
    return {**cfg, "separator_conf": sep}


def test_released_layout_loads_exactly(released_config: dict) -> None:
    need(GOLDEN / "released_keys.json")
    assert config_from_espnet(released_config) == ARCHITECTURES["sep1x2-re1x6"]
    state = _released_state()
    model = load_espnet(released_config, state)
    # Every non-constant key landed where its name says.
    ours = model.state_dict()
    for key, value in state.items():
        new = espnet_to_tisdiss_key(key)
        if new is not None:
            torch.testing.assert_close(ours[new].reshape(value.shape), value, rtol=0, atol=0)


def test_released_layout_missing_key_is_named(released_config: dict) -> None:
    state = _released_state()
    del state["separator.reconstructor_blocks.0.spk_path.ffn.0.conv1d.bias"]
    with pytest.raises(
        CheckpointError, match=r"missing key 'separator\.reconstructor_blocks\.0\.spk_path\.ffn\.0\.conv1d\.bias'"
    ):
        load_espnet(released_config, state)


def test_released_layout_shape_change_is_named(released_config: dict) -> None:
    state = _released_state()
    state["separator.encoder_blocks.0.frame_path.attn.qkv.weight"] = torch.zeros(384, 64)
    with pytest.raises(
        CheckpointError, match=r"shape mismatch for 'separator\.encoder_blocks\.0\.frame_path\.attn\.qkv\.weight'"
    ):
        load_espnet(released_config, state)


def test_released_layout_unexpected_key_is_named(released_config: dict) -> None:
    state = _released_state()
    state["separator.extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"unexpected key 'separator\.extra\.weight'"):
        load_espnet(released_config, state)


def test_save_load_round_trip_is_exact(tmp_path) -> None:
    torch.manual_seed(0)
    model = TISDiSS(ARCHITECTURES["tiny"])
    init_weights(model)
    path = save_checkpoint(model.eval(), tmp_path / "m.safetensors", {"presets": {"fast": [1, 1]}})
    loaded = load_checkpoint(path)
    assert loaded.config == model.config
    mix = torch.randn(2, 3000)
    with torch.inference_mode():
        for n_sep, n_re in [(1, 0), (2, 1), (2, 3)]:
            assert torch.equal(model(mix, n_sep=n_sep, n_re=n_re), loaded(mix, n_sep=n_sep, n_re=n_re))


def test_not_a_checkpoint_is_reported(tmp_path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_text("hello")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_checkpoint(bad)


def test_depth_is_chosen_per_call_and_validated() -> None:
    model = TISDiSS(ARCHITECTURES["tiny"]).eval()
    mix = torch.randn(1, 2000)
    with torch.inference_mode():
        assert model(mix).shape == (1, 2, 2000)
        assert not torch.equal(model(mix, n_re=1), model(mix, n_re=2))
        with pytest.raises(ValueError):
            model(mix, n_sep=0)


def test_separation_only_model_and_config_round_trip() -> None:
    config = ARCHITECTURES["tiny"].replace(m_re=0, n_re=0)
    assert ModelConfig.from_dict(config.to_dict()) == config
    model = TISDiSS(config).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 1000)).shape == (1, 2, 1000)
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"emb_dim": 8, "typo": 1})


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    model = TISDiSS(ARCHITECTURES["tiny"]).double()
    init_weights(model)
    mix, ref = torch.randn(2, 1200, dtype=torch.float64), torch.randn(2, 2, 1200, dtype=torch.float64)

    def grads(checkpointing: bool) -> dict[str, torch.Tensor]:
        model.zero_grad()
        model.set_checkpointing(checkpointing)
        loss, _ = multi_loss(model.forward_train(mix, n_sep=2, n_re=2), ref, LossWeights.named("released"))
        loss.backward()
        return {k: p.grad.clone() for k, p in model.named_parameters()}

    plain, recomputed = grads(False), grads(True)
    for key in plain:
        torch.testing.assert_close(recomputed[key], plain[key], rtol=1e-9, atol=1e-12)


def test_attention_in_slices_equals_one_call() -> None:
    """What a CUDA device runs for batches its attention kernels cannot launch at once."""
    from tisdiss_cli.model.layers import batched_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(37, 4, 9, 8) for _ in range(3))
    whole = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    for size in (1, 5, 36, 37, 100):
        torch.testing.assert_close(batched_attention(q, k, v, size), whole, rtol=1e-6, atol=1e-6)
