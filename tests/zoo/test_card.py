"""The typed model card: built once at load time from a registry entry or checkpoint metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.zoo.test_registry import tiny_model
from tisdiss_cli.model.checkpoint import save_checkpoint
from tisdiss_cli.model.depth import Depth
from tisdiss_cli.zoo.card import ModelCard, Quality
from tisdiss_cli.zoo.load import LoadedModel, load_any


def test_bundled_entry_card_has_typed_fields() -> None:
    loaded = load_any("tisdiss-small-8k")
    card = loaded.card
    assert isinstance(card, ModelCard)
    assert card.sample_rate == 8000 and card.num_spk == 2
    assert card.presets["best"] == loaded.presets["best"] and isinstance(card.presets["fast"], Depth)
    assert card.quality is not None and card.quality.metric.startswith("SI-SNRi")
    assert all(isinstance(k, int) for k in card.quality.by_n_re) and 1 in card.quality.by_n_re
    assert card.source is not None and card.source.endswith(".safetensors")
    assert card.sha256 is not None and len(card.sha256) == 64
    assert card.documented_n_re == max(card.quality.by_n_re)


def test_checkpoint_metadata_card(tmp_path: Path) -> None:
    model = tiny_model()
    path = save_checkpoint(
        model,
        tmp_path / "m.safetensors",
        {"segment": 3, "presets": {"best": [1, 3]}, "licence": "MIT", "quality": {"by_n_re": {"2": 7.5}}},
    )
    card = load_any(str(path)).card
    assert card.segment_seconds == 3.0
    assert card.presets["best"] == Depth(1, 3)
    assert card.licence == "MIT" and card.source == str(path)
    assert card.quality == Quality(by_n_re={2: 7.5})
    assert card.trained == model.config.depth
    assert card.metadata["licence"] == "MIT"  # the checkpoint's own metadata stays readable


@pytest.mark.parametrize(
    "raw",
    [None, "fast", {}, {"by_n_re": "x"}, {"by_n_re": {"one": 1.0}}, {"by_n_re": {"1": float("nan")}}],
)
def test_quality_without_usable_figures_is_none(raw: object) -> None:
    assert Quality.parse(raw) is None


@pytest.mark.parametrize("segment", [0, -2, float("inf"), "4", True])
def test_unusable_segment_falls_back_to_the_default(tmp_path: Path, segment: object) -> None:
    path = save_checkpoint(tiny_model(), tmp_path / "m.safetensors", {"segment": segment})
    assert load_any(str(path)).card.segment_seconds is None


def test_registry_entry_segment_and_quality(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = save_checkpoint(tiny_model(), tmp_path / "w.safetensors")
    extra = tmp_path / "extra.toml"
    extra.write_text(
        "[models.mine]\n"
        f'bundled = true\nfile = "{weights.name}"\nsegment = 2.5\nlicence = "CC-BY-4.0"\n'
        "presets = { fast = [1, 1], best = [1, 4] }\n"
        "[models.mine.quality]\nby_n_re = { 1 = 3.0, 4 = 5.0 }\n"
    )
    monkeypatch.setenv("TISDISS_REGISTRY", str(extra))
    card = load_any("mine").card
    assert card.segment_seconds == 2.5 and card.licence == "CC-BY-4.0"
    assert card.quality is not None and card.quality.by_n_re == {1: 3.0, 4: 5.0}
    assert card.documented_n_re == 4


def test_in_memory_model_gets_default_presets() -> None:
    model = tiny_model()
    loaded = LoadedModel.in_memory(model)
    assert loaded.card.segment_seconds is None and loaded.card.quality is None
    assert loaded.presets and all(isinstance(d, Depth) for d in loaded.presets.values())
    assert loaded.documented_n_re == max([model.config.n_re, *(d.n_re for d in loaded.presets.values())])
    custom = LoadedModel.in_memory(model, "m", {"best": (1, 2)})
    assert custom.presets == {"best": Depth(1, 2)}
    assert torch.equal(next(custom.model.parameters()), next(model.parameters()))


def test_registry_entry_card_takes_rate_and_speakers_from_the_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model = tiny_model()
    weights = save_checkpoint(model, tmp_path / "w.safetensors")
    extra = tmp_path / "extra.toml"
    extra.write_text(
        f'[models.mislabelled]\nbundled = true\nfile = "{weights.name}"\nsample_rate = 44100\nnum_spk = 5\n'
    )
    monkeypatch.setenv("TISDISS_REGISTRY", str(extra))
    with caplog.at_level("WARNING", logger="tisdiss_cli.zoo.load"):
        card = load_any("mislabelled").card
    assert (card.sample_rate, card.num_spk) == (model.config.sample_rate, model.config.num_spk)
    assert "sample_rate = 44100" in caplog.text and "num_spk = 5" in caplog.text
