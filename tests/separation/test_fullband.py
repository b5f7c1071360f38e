"""The full-band stage: the input's band above the model's Nyquist shared out to the tracks.

The crossover is tested through the engine with an identity "network" (all of each chunk in the
first output): the first file must come back as the input, white noise keeping its spectrum
within 0.5 dB across 3-5 kHz, with no notch and no doubling at the model's 4 kHz.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soxr
import torch
from torch import Tensor

from tisdiss_cli.audio import files as audio
from tisdiss_cli.model.depth import Depth
from tisdiss_cli.separation import fullband
from tisdiss_cli.separation.chunking import ChunkPlan
from tisdiss_cli.separation.fullband import FullBandConfig, FullBandStage, SampleQueue, band_edges
from tisdiss_cli.separation.separator import Separator
from tisdiss_cli.separation.streaming import SeparationStream

MODEL_RATE = 8000


def split_network(gains: tuple[float, ...]) -> object:
    """A network factory whose outputs are the chunk times each gain (gains (1, 0): identity in the first)."""

    def factory(depth: Depth) -> object:
        def run(chunks: Tensor) -> Tensor:
            return torch.stack([g * chunks for g in gains], dim=1)

        return run

    return factory


def engine(
    rate: int, gains: tuple[float, ...] = (1.0, 0.0), *, stage: bool = True, output_rate: int | None = None
) -> SeparationStream:
    out_rate = rate if output_rate is None else output_rate
    highs = FullBandStage(len(gains), out_rate, MODEL_RATE, rate) if stage else None
    plan = ChunkPlan.from_seconds(1.0, 0.25, MODEL_RATE, 1)
    return SeparationStream(
        split_network(gains), Depth(1, 1), plan, len(gains), MODEL_RATE, rate, output_rate=out_rate, fullband=highs
    )


def run(stream: SeparationStream, x: np.ndarray, block: int = 4000) -> np.ndarray:
    parts = [stream.feed(x[i : i + block]) for i in range(0, len(x), block)]
    return np.concatenate([*parts, stream.close()], axis=1)


def spectrum_db(x: np.ndarray, rate: int, n: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectrum in dB (Hann frames, half overlap)."""
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[:: n // 2] * np.hanning(n)
    power = (np.abs(np.fft.rfft(frames, axis=-1)) ** 2).mean(0)
    return np.fft.rfftfreq(n, 1 / rate), 10 * np.log10(power)


def white(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_crossover_gives_back_white_noise_flat_across_the_model_nyquist(rate: int) -> None:
    x = white(8.0, rate)
    out = run(engine(rate), x)
    assert out.shape == (2, len(x))
    assert not out[1].any()  # the silent output stays silent, highs included
    freqs, want = spectrum_db(x, rate)
    _, got = spectrum_db(out[0], rate)
    across = (freqs >= 3000) & (freqs <= 5000)
    assert np.abs(got - want)[across].max() < 0.5  # no notch, no doubling at 4 kHz
    np.testing.assert_allclose(out[0], x, atol=1e-4)  # in fact the input itself

    _, narrow = spectrum_db(run(engine(rate, stage=False), x)[0], rate)  # the model's band alone
    assert (narrow - want)[(freqs >= 4500) & (freqs <= 7000)].max() < -40  # what the stage gives back


def test_shared_highs_add_up_to_the_mixture_and_follow_the_tracks() -> None:
    rate = 16000
    x = white(6.0, rate, seed=1)
    out = run(engine(rate, (0.7, 0.3)), x)
    np.testing.assert_allclose(out.sum(0), x, atol=1e-4)  # nothing lost or doubled
    freqs, total = spectrum_db(x, rate)
    above = (freqs >= 4500) & (freqs <= 7500)
    for k, gain in enumerate((0.7, 0.3)):
        _, got = spectrum_db(out[k], rate)
        # every frame has the same split of the low band's energy, 0.49 : 0.09, and so have the highs
        share = gain**2 / (0.7**2 + 0.3**2)
        assert np.abs(got - total - 20 * np.log10(share))[above].max() < 0.5


def test_any_number_of_tracks() -> None:
    x = white(3.0, 16000, seed=4)
    out = run(engine(16000, (0.6, 0.4, 0.0)), x)
    assert out.shape == (3, len(x)) and not out[2].any()  # a silent talker's file stays silent
    np.testing.assert_allclose(out.sum(0), x, atol=1e-4)


def test_output_at_another_rate_than_the_input() -> None:
    x = white(4.0, 16000, seed=2)
    out = run(engine(16000, output_rate=48000), x)
    assert out.shape == (2, audio.resampled_length(len(x), 16000, 48000))
    want = soxr.resample(x, 16000, 48000)
    freqs, a = spectrum_db(want, 48000, 4096)
    _, b = spectrum_db(out[0], 48000, 4096)
    band = (freqs >= 3000) & (freqs <= 7000)
    assert np.abs(a - b)[band].max() < 0.5


def talkers(rate: int, seconds: float = 24.0) -> tuple[np.ndarray, np.ndarray]:
    """Two synthetic talkers taking turns with some overlap: A with highs (noise bursts from 2.5 kHz
    up, like fricatives), B a tone complex below 3.4 kHz recorded without highs."""
    rng = np.random.default_rng(5)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    turns = (t % 4.0) < 2.4  # A talks the first 2.4 s of every 4, B from 1.6 s: 0.8 s overlaps
    hiss = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * (np.fft.rfftfreq(n, 1 / rate) > 2500), n)
    bursts = (np.sin(2 * np.pi * 3 * t) > 0).astype(float)
    a = 0.2 * hiss * bursts * turns + 0.1 * np.sin(2 * np.pi * 300 * t) * turns
    tones = sum(np.sin(2 * np.pi * f * t) for f in range(180, 3400, 180)) / 20
    b = 0.3 * tones * ((t % 4.0) >= 1.6)
    return a.astype(np.float32), b.astype(np.float32)


def test_highs_go_to_the_talker_who_has_them() -> None:
    """The stage learns from the turns that B has no highs, so in the overlaps A keeps them."""
    rate = 16000
    a, b = talkers(rate)
    mix = a + b
    narrow = soxr.resample(mix, rate, MODEL_RATE).astype(np.float32)
    # perfectly separated low bands, as the engine would bring them back
    tracks = np.stack([soxr.resample(soxr.resample(s, rate, MODEL_RATE), MODEL_RATE, rate) for s in (a, b)])
    for lookahead in (0.0, fullband.OFFLINE_LOOKAHEAD):
        stage = FullBandStage(2, rate, MODEL_RATE, rate, FullBandConfig(lookahead_seconds=lookahead))
        stage.mixture(mix, narrow, last=True)
        out = stage.push(tracks.T, last=True).T
        highs_a = out[0] - tracks[0]
        highs_b = out[1] - tracks[1]
        residual = mix - soxr.resample(narrow, MODEL_RATE, rate)[: len(mix)]
        assert np.sum(highs_b**2) < 1e-3 * np.sum(residual**2)  # B gets 30 dB less than all of them
        np.testing.assert_allclose(highs_a + highs_b, residual, atol=1e-4)


def test_blocks_do_not_change_the_output_and_a_long_wait_goes_to_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    rate = 16000
    a, b = talkers(rate, 6.0)
    mix = a + b
    tracks = np.stack([soxr.resample(soxr.resample(s, rate, MODEL_RATE), MODEL_RATE, rate) for s in (a, b)]).T

    def separate(mixture_block: int, track_block: int, memory_seconds: float) -> np.ndarray:
        monkeypatch.setattr(fullband, "SPOOL_MEMORY_SECONDS", memory_seconds)
        config = FullBandConfig(lookahead_seconds=1.0)
        stage = FullBandStage(2, rate, MODEL_RATE, rate, config)
        down = soxr.ResampleStream(rate, MODEL_RATE, 1, dtype="float32")
        outs, pushed = [], 0
        for i in range(0, len(mix), mixture_block):  # the tracks trail the mixture, as in the engine
            block = mix[i : i + mixture_block]
            stage.mixture(block, down.resample_chunk(block, last=False))
            while pushed + track_block <= i - rate // 2:
                outs.append(stage.push(tracks[pushed : pushed + track_block]))
                pushed += track_block
        stage.mixture(np.zeros(0, np.float32), down.resample_chunk(np.zeros(0, np.float32), last=True), last=True)
        outs.append(stage.push(tracks[pushed:], last=True))
        if memory_seconds < 1:
            assert stage._residual.written > 0 and stage._residual.file is None  # it went to a file, now closed
        return np.concatenate(outs)

    whole = separate(len(mix), len(mix), 120.0)
    assert whole.shape == tracks.shape
    np.testing.assert_array_equal(separate(777, 1234, 120.0), whole)
    np.testing.assert_array_equal(separate(3000, 999, 0.1), whole)


def test_sample_queue_spills_to_a_file_in_order() -> None:
    queue = SampleQueue(memory_frames=10)
    data = np.arange(40, dtype=np.float32)
    queue.append(data[:8])
    queue.append(data[8:25])  # over the limit: to the file
    np.testing.assert_array_equal(queue.take(5), data[:5])
    queue.append(data[25:])
    assert len(queue) == 35 and queue.file is not None
    np.testing.assert_array_equal(queue.take(100), data[5:])
    assert len(queue) == 0 and len(queue.take(3)) == 0
    queue.close()


def test_stream_latency_includes_the_stage() -> None:
    rate = 16000
    stream = engine(rate)
    stage = stream.fullband
    assert stage is not None and stage.latency_seconds == pytest.approx((512 + 5 * 128) / rate)
    x = white(3.0, rate)
    emitted = fed = 0
    for i in range(0, len(x), 800):
        emitted += stream.feed(x[i : i + 800]).shape[1]
        fed = min(len(x), i + 800)
        assert fed - emitted <= stream.latency_bound * rate + 0.15 * rate + 800  # + soxr's own blocks
    assert emitted + stream.close().shape[1] == len(x)


def test_band_edges_cover_the_band_above() -> None:
    edges = band_edges(4000, 8000, 8)
    assert len(edges) == 9 and edges[0] == 4000 and edges[-1] == 8000
    edges = band_edges(4000, 22050, 8)
    assert edges[-1] == 22050 and np.all(np.diff(edges) > 0)
    assert (edges[-1] / edges[-2]) > 2 ** (1 / 16)  # no sliver of a last band


def test_band_model_leaves_the_stage_out_and_full_only_adds_above(tiny_checkpoint: Path) -> None:
    x = white(2.5, 16000, seed=3)
    model = Separator(tiny_checkpoint, device="cpu", precision="fp32", segment=1.0, tracker="overlap", band="model")
    full = Separator(tiny_checkpoint, device="cpu", precision="fp32", segment=1.0, tracker="overlap")
    assert full.band == "full" and full.full_band(16000) and not full.full_band(8000)
    assert not full.full_band(16000, 8000)  # written at the model's rate: nothing above it fits
    assert model.stream(16000).fullband is None and full.stream(16000).fullband is not None
    narrow = model.separate(x, 16000)
    wide = full.separate(x, 16000)
    np.testing.assert_array_equal(full.separate(x, 16000, band="model"), narrow)
    freqs, total = spectrum_db(narrow[0], 16000)
    _, added = spectrum_db(wide[0] - narrow[0], 16000)
    assert (added - total)[(freqs > 200) & (freqs < 3400)].max() < -50  # the model's band untouched
    _, highs = spectrum_db(wide[0], 16000)
    assert (highs - total)[(freqs > 4500) & (freqs < 7500)].min() > 30  # and the highs are there
    with pytest.raises(ValueError, match="unknown band 'wide'; choose from full, model"):
        Separator(tiny_checkpoint, device="cpu", band="wide")
