"""The bundled default model: installed, offline, the quickstart works, and its scores hold."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.conftest import DEV2MIX, REPO, dev2mix_si_snri, need
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.evaluation import metrics
from tisdiss_cli.model.network import count_parameters
from tisdiss_cli.zoo.load import load_model
from tisdiss_cli.zoo.registry import load_registry

NAME = "tisdiss-small-8k"
EXAMPLE = REPO / "models" / "examples" / "two_speakers.wav"

# SI-SNRi (dB) of the bundled model on two dev2mix mixtures, whole utterances, float32, at its
# "best" preset; recorded with the shipped weights (see models/cards/tisdiss-small-8k.md).
# The network is run in float32 directly (no `auto` choice), so the pins hold on any CPU.
RECORDED = {
    "5703-47212-0000_p0_-0.6576_7800-283478-0000_p0_0.6576": 10.7976,
    "1263-138246-0000_p0_0.6191_so-030230060_p0_-0.6191": 12.4511,
}

_register_commands()


def test_bundled_model_loads_offline_with_its_card() -> None:
    entry = load_registry().get(NAME)
    loaded = load_model(NAME)
    assert entry.bundled and loaded.name == NAME
    assert count_parameters(loaded.model) == entry.params
    assert set(loaded.presets) == {"fast", "balanced", "best"}
    fast, balanced, best = (loaded.presets[k][1] for k in ("fast", "balanced", "best"))
    assert fast <= balanced <= best


def test_default_model_falls_back_to_the_bundled_one_offline(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        loaded = load_model(None)
    assert loaded.name == NAME
    assert any(NAME in r.getMessage() for r in caplog.records)


def test_quickstart_separates_the_bundled_example(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["separate", str(EXAMPLE), "--model", NAME, "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    mix, rate = sf.read(EXAMPLE)
    outs = [sf.read(tmp_path / f"two_speakers_spk{j}.wav") for j in (1, 2)]
    assert all(r == rate and len(w) == len(mix) for w, r in outs)
    s1, s2 = (w for w, _ in outs)
    assert np.isfinite(s1).all() and np.isfinite(s2).all()
    assert np.std(s1) > 1e-4 and np.std(s2) > 1e-4 and not np.allclose(s1, s2, atol=1e-4)
    # at the input's level (the preview model's own output is ~17x too loud and clipped)
    assert "clipped" not in result.output
    assert 0.5 < (np.sum(s1**2) + np.sum(s2**2)) / np.sum(mix**2) < 2.0


EXAMPLE_UTT = "5703-47212-0000_p0_-0.6576_7800-283478-0000_p0_0.6576"  # models/examples/README.md


def test_quickstart_example_is_separated_at_least_8_db(tmp_path: Path) -> None:
    """What a new user hears first: `tisdiss separate` of the example, scored against its dev2mix sources."""
    refs = np.stack([sf.read(need(DEV2MIX / s / f"{EXAMPLE_UTT}.wav"), dtype="float64")[0] for s in ("s1", "s2")])
    result = CliRunner().invoke(
        app, ["separate", str(EXAMPLE), "--model", NAME, "--preset", "best", "--precision", "fp32", "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    mix = sf.read(EXAMPLE, dtype="float64")[0]
    est = np.stack([sf.read(tmp_path / f"two_speakers_spk{j}.wav", dtype="float64")[0] for j in (1, 2)])
    baseline = metrics.mixture_baseline(mix, refs, with_sdr=False)
    assert metrics.score(est, refs, baseline, with_sdr=False).si_snri >= 8.0


@pytest.mark.parametrize("utt", sorted(RECORDED))
def test_bundled_model_scores_hold_on_dev2mix(utt: str) -> None:
    need(DEV2MIX)
    loaded = load_model(NAME)
    n_sep, n_re = loaded.presets["best"]
    assert abs(dev2mix_si_snri(loaded.model, utt, n_sep, n_re) - RECORDED[utt]) < 0.1
