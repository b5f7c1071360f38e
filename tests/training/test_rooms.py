"""Rooms and noise in dynamic mixing: RT60 in range, reproducible examples, the target, the SNR."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_events
from tisdiss_cli.training import rooms
from tisdiss_cli.training.config import resolve_config
from tisdiss_cli.training.data import DynamicMixDataset, MixingConfig, read_noise
from tisdiss_cli.training.loop import train

pytest.importorskip("pyroomacoustics")

RATE = 8000
SHORT = rooms.RoomRanges(rt60=(0.2, 0.4), length=(3.0, 5.0), height=(2.5, 3.0))  # quick rooms


def _mixing(**changes: object) -> MixingConfig:
    base = MixingConfig(segment_seconds=0.5, rt60_range=SHORT.rt60, room_length_range=SHORT.length)
    return dataclasses.replace(base, room_height_range=SHORT.height, **changes)  # type: ignore[arg-type]


def test_a_room_s_rt60_falls_in_the_asked_range() -> None:
    spec, rirs, rt60 = rooms.measured_room(np.random.default_rng(3), SHORT, 2, RATE)
    assert len(rirs) == len(spec.sources) == 2
    assert 0.2 <= rt60 <= 0.4
    # measured again on the stored (tail-trimmed) RIRs, each near the room's figure
    for rir in rirs:
        assert rooms.measure_rt60(rir, RATE) == pytest.approx(rt60, abs=0.1)


def test_the_sabine_target_is_roughly_what_a_simulated_room_decays_at() -> None:
    spec = rooms.draw_room(np.random.default_rng(0), SHORT, 1, rt60=0.3)
    (rir,) = rooms.simulate(spec, RATE) or []
    assert 0.15 <= rooms.measure_rt60(rir, RATE) <= 0.6


def test_early_part_keeps_50_ms_after_the_direct_path() -> None:
    rir = np.exp(-np.arange(2000) / 400.0).astype(np.float32)
    rir[:100] = 0
    rir[100] = 3.0  # the direct path
    early = rooms.early_part(rir, RATE, 50.0)
    assert np.array_equal(early[:500], rir[:500])  # 100 + 400 samples (50 ms)
    assert np.all(early[540:] == 0) and 0 < early[520] < rir[520]  # a 5-ms fade, then nothing


def test_bank_is_made_once_and_read_back(tmp_path: Path) -> None:
    bank = rooms.RirBank.load_or_build(tmp_path, SHORT, rooms=10, num_sources=2, sample_rate=RATE, seed=1)
    (path,) = tmp_path.glob("rirs-*.npz")
    again = rooms.RirBank.load_or_build(tmp_path, SHORT, rooms=10, num_sources=2, sample_rate=RATE, seed=1)
    pairs = [(a, b) for ra, rb in zip(bank.rirs, again.rirs, strict=True) for a, b in zip(ra, rb, strict=True)]
    assert len(pairs) == 20 and all(np.array_equal(a, b) for a, b in pairs)
    assert np.all((bank.rt60 >= 0.2) & (bank.rt60 <= 0.4))
    assert list(bank.part(valid=True)) == [9] and list(bank.part(valid=False)) == list(range(9))
    path.write_bytes(b"not a bank")
    with pytest.raises(ValueError, match="not a RIR bank"):
        rooms.RirBank.read(path)


def test_room_mixtures_are_a_pure_function_of_seed_epoch_and_index(corpus: Path, tmp_path: Path) -> None:
    mixing = _mixing(room_prob=1.0, room_bank=str(tmp_path / "bank"), room_bank_size=10)
    a = DynamicMixDataset(corpus / "train", mixing, epoch_size=4, seed=0)
    b = DynamicMixDataset(corpus / "train", mixing, epoch_size=4, seed=0)
    for i in range(3):
        assert all(np.array_equal(x, y) for x, y in zip(a[i], b[i], strict=True))
    b.set_epoch(1)
    assert not np.array_equal(a[0][0], b[0][0])
    # made on the fly (no bank) it is just as reproducible
    fly = DynamicMixDataset(corpus / "train", _mixing(room_prob=1.0), epoch_size=2, seed=0)
    assert np.array_equal(fly[1][0], fly[1][0])


def test_the_target_is_the_reverberant_image_or_its_early_part(corpus: Path, tmp_path: Path) -> None:
    bank = str(tmp_path / "bank")
    dry = DynamicMixDataset(corpus / "train", _mixing(), epoch_size=2, seed=0)[0]
    wet = DynamicMixDataset(
        corpus / "train", _mixing(room_prob=1.0, room_bank=bank, room_bank_size=10), epoch_size=2, seed=0
    )[0]
    early = DynamicMixDataset(
        corpus / "train",
        _mixing(room_prob=1.0, room_bank=bank, room_bank_size=10, room_target="early"),
        epoch_size=2,
        seed=0,
    )[0]
    mix, images = wet
    np.testing.assert_allclose(mix.numpy(), images.sum(0).numpy(), atol=1e-5)  # mix = sum of the images
    assert np.array_equal(early[0], mix)  # the target changes what is taught, not what is heard
    assert not np.allclose(early[1], images, atol=1e-3) and not np.allclose(images, dry[1], atol=1e-3)
    # the early target is closer to the image than to nothing, and holds less of the tail's energy
    residual = float(((early[1] - images) ** 2).sum())
    assert 0 < residual < float((images**2).sum())


def test_noise_comes_at_the_drawn_snr_from_its_span(corpus: Path, tmp_path: Path) -> None:
    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    ramp = np.linspace(-0.5, 0.5, 8000, dtype=np.float32)  # a sample's value says where it is
    sf.write(noise_dir / "ramp.wav", ramp, RATE, subtype="FLOAT")
    mixing = _mixing(noise_prob=1.0, noise_snr_db=(5.0, 5.0), gain_db=(0.0, 0.0), noise_span=(0.5, 1.0))
    ds = DynamicMixDataset(corpus / "train", mixing, epoch_size=3, seed=0, noise_dir=noise_dir)
    for i in range(3):
        mix, src = (t.numpy().astype(np.float64) for t in ds[i])
        noise = mix - src.sum(0)
        snr = 10 * np.log10(np.mean(src.sum(0) ** 2) / np.mean(noise**2))
        assert snr == pytest.approx(5.0, abs=0.01)
    part = read_noise(noise_dir / "ramp.wav", 8000, 6000, (0.5, 1.0), np.random.default_rng(0))
    assert len(part) == 6000 and part.min() >= -1e-4  # tiled from the second half only


def test_runs_validate_each_condition_and_keep_the_best_mean(corpus: Path, tmp_path: Path) -> None:
    config = resolve_config(
        "tiny",
        None,
        str(corpus),
        [
            "optim.max_steps=4",
            "data.epoch_size=4",
            "data.valid_size=2",
            "keep_best=1",
            'select_by="si_snri"',
            'data.valid_conditions=["clean", "room"]',
            "data.mixing.room_prob=0.5",
            f'data.mixing.room_bank="{tmp_path / "bank"}"',
            "data.mixing.room_bank_size=10",
            "data.mixing.rt60_range=[0.2, 0.4]",
            "data.mixing.room_length_range=[3.0, 5.0]",
        ],
    )
    train(config, tmp_path / "run")
    epochs = run_events(tmp_path / "run", "epoch")
    assert len(epochs) == 2
    for e in epochs:
        conditions = e["valid_conditions"]
        assert isinstance(conditions, dict) and set(conditions) == {"clean", "room"}
        assert e["valid_si_snri"] == pytest.approx(np.mean([c["si_snri"] for c in conditions.values()]))
    best = max(epochs, key=lambda e: e["valid_si_snri"])  # type: ignore[arg-type,return-value]
    assert (tmp_path / "run" / "checkpoints" / f"epoch{best['epoch']}.safetensors").exists()


def test_unknown_conditions_and_targets_are_refused(corpus: Path) -> None:
    with pytest.raises(ValueError, match="valid_conditions"):
        resolve_config("tiny", None, str(corpus), ['data.valid_conditions=["reverb"]'])
    with pytest.raises(ValueError, match="room_target"):
        resolve_config("tiny", None, str(corpus), ['data.mixing.room_target="dry"'])
    with pytest.raises(ValueError, match="select_by"):
        resolve_config("tiny", None, str(corpus), ['select_by="sdr"'])
