"""benchmarks/talker_count.py: held-out conversations follow devconv's recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from tests.benchmarks import load_benchmark

talker_count = load_benchmark("talker_count")

RATE = 8000


def sentences(folder: Path, count: int, seed: int, seconds: tuple[float, float] = (1, 2)) -> list[Path]:
    """Tones of ``seconds`` with 0.3 s of silence either side (what trimming should take away)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        t = np.arange(int(rng.uniform(*seconds) * RATE)) / RATE
        tone = rng.uniform(0.05, 0.5) * np.sin(2 * np.pi * rng.uniform(150, 400) * t)
        silence = np.zeros(int(0.3 * RATE))
        sf.write(folder / f"{i}.wav", np.concatenate((silence, tone, silence)), RATE, subtype="FLOAT")  # exact zeros
        paths.append(folder / f"{i}.wav")
    return paths


def turns(refs: np.ndarray) -> list[tuple[int, int, int]]:
    """(talker, start, end) of each stretch of non-zero samples, in order of start."""
    found = []
    for k, r in enumerate(refs):
        edges = np.diff(np.concatenate(([0], (r != 0).astype(int), [0])))
        found += [
            (k, int(a), int(b)) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
        ]
    return sorted(found, key=lambda x: x[1])


def test_two_talkers_alternate_with_bounded_overlap_at_the_set_level(tmp_path: Path) -> None:
    speakers = [sentences(tmp_path / f"spk{k}", 12, k) for k in range(2)]
    mix, refs = talker_count.conversation(speakers, 20.0, np.random.default_rng(3), RATE)
    assert refs.shape == (2, 20 * RATE) and np.array_equal(mix, refs.sum(0))
    found = turns(refs)
    assert len(found) >= 6
    assert [k for k, _, _ in found] == [i % 2 for i in range(len(found))]  # turns alternate
    for (_, s0, e0), (_, s1, _) in zip(found, found[1:], strict=False):
        assert s1 >= s0 + 0.6 * (e0 - s0) - 1  # never more than 40 % into the previous turn
        assert e0 - 1.8 * RATE - 1 <= s1 <= e0 + 1.0 * RATE + 1  # placed with 100 ms of padding either side
    for k, s, e in found:  # trimmed to the tone +-100 ms, and levelled to -25 dBFS +-3 dB
        assert 0.9 * RATE <= e - s <= 2.2 * RATE
        level = 10 * np.log10(np.mean(refs[k, s + RATE // 10 : e - RATE // 10] ** 2))
        assert -28.5 < level < -21.5


def test_more_talkers_never_follow_themselves_and_at_most_two_talk_at_once(tmp_path: Path) -> None:
    speakers = [sentences(tmp_path / f"spk{k}", 8, 10 + k, seconds=(0.5, 4.0)) for k in range(4)]
    for seed in range(8):  # short turns inside long ones: three at once unless prevented
        _, refs = talker_count.conversation(speakers, 40.0, np.random.default_rng(seed), RATE)
        order = [k for k, _, _ in turns(refs)]
        assert len(set(order)) == 4 and all(a != b for a, b in zip(order, order[1:], strict=False))
        assert ((refs != 0).sum(axis=0) <= 2).all()
