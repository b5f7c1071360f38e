"""Overlap-add engine: exact reconstruction, speaker re-alignment, whole-file equivalence."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tisdiss_cli.separation.chunking import ChunkCallback, ChunkPlan, OverlapAdd, SeparateFn, best_permutation, window


def separate_stream(
    fn: SeparateFn,
    blocks: Iterable[torch.Tensor | np.ndarray],
    plan: ChunkPlan,
    num_spk: int,
    *,
    on_chunk: ChunkCallback | None = None,
) -> Iterator[torch.Tensor]:
    """Finished output blocks ``[J, m]`` for input blocks ``[n]``, straight through :class:`OverlapAdd`."""
    engine = OverlapAdd(fn, plan, num_spk, on_chunk=on_chunk)
    for block in blocks:
        yield from engine.push(block)
    yield from engine.finish()


def separate_chunked(fn: SeparateFn, wave: torch.Tensor, plan: ChunkPlan, num_spk: int) -> torch.Tensor:
    """Whole signal ``[L] -> [J, L]`` through the streaming engine."""
    return torch.cat(list(separate_stream(fn, [wave], plan, num_spk)), dim=1)


def identity(num_spk: int = 2):
    return lambda chunks: chunks.unsqueeze(1).repeat(1, num_spk, 1)


@settings(max_examples=150, deadline=None)
@given(
    length=st.integers(1, 3000),
    segment=st.integers(1, 700),
    overlap_frac=st.floats(0.0, 0.95),
    batch=st.integers(1, 4),
    block=st.integers(1, 900),
)
def test_identity_network_reconstructs_input(
    length: int, segment: int, overlap_frac: float, batch: int, block: int
) -> None:
    plan = ChunkPlan(segment, min(segment - 1, int(overlap_frac * segment)), batch)
    x = torch.randn(length, generator=torch.Generator().manual_seed(length))
    chunks: list[int] = []
    parts = list(
        separate_stream(
            identity(), [x[i : i + block] for i in range(0, length, block)], plan, 2, on_chunk=chunks.append
        )
    )
    y = torch.cat(parts, dim=1)
    assert y.shape == (2, length)
    torch.testing.assert_close(y, x.expand(2, -1), atol=2e-6, rtol=1e-5)
    assert len(chunks) == plan.num_chunks(length)
    assert chunks[-1] == length


def si_snr(est: np.ndarray, ref: np.ndarray) -> float:
    est, ref = est - est.mean(), ref - ref.mean()
    proj = ref * (est @ ref) / (ref @ ref)
    return 10 * math.log10((proj @ proj) / ((est - proj) @ (est - proj)))


def test_oracle_network_in_random_order_is_realigned() -> None:
    """A network returning each chunk's true sources, shuffled per chunk: the engine undoes it."""
    rate, seconds = 8000, 60
    t = np.arange(rate * seconds) / rate
    rng = np.random.default_rng(0)
    # Two talkers with different pitch and syllable rhythm, both active most of the time.
    s1 = np.sin(2 * np.pi * 140 * t + 3 * np.sin(2 * np.pi * 0.3 * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3.1 * t))
    s2 = 0.8 * np.sin(2 * np.pi * 230 * t) * (0.6 + 0.4 * np.cos(2 * np.pi * 4.3 * t)) + 0.05 * rng.standard_normal(
        t.size
    )
    sources = torch.tensor(np.stack([s1, s2]), dtype=torch.float32)
    mix = sources.sum(0)
    plan = ChunkPlan.from_seconds(4.0, 0.25, rate)
    assert plan.num_chunks(len(mix)) >= 10
    swaps = []
    gen = torch.Generator().manual_seed(1)

    def oracle(chunks: torch.Tensor) -> torch.Tensor:
        out = []
        for c in chunks:
            # find where this chunk sits in the mixture (the engine gives no offsets)
            start = int(torch.nonzero((mix.unfold(0, len(c), 1)[:, :64] == c[:64]).all(1))[0])
            perm = torch.randperm(2, generator=gen)
            swaps.append(int(perm[0]))
            out.append(sources[perm, start : start + len(c)])
        return torch.stack(out)

    est = separate_chunked(oracle, mix, plan, 2)
    assert 0 < sum(swaps) < len(swaps)  # the fake network did shuffle
    order = best_permutation(sources, est)
    assert order == [0, 1] or order == [1, 0]
    for j in range(2):
        # the same speaker on the same output across the whole minute
        assert si_snr(est[order[j]].numpy(), sources[j].numpy()) > 40


def test_fits_in_one_segment_runs_whole() -> None:
    calls: list[tuple[int, ...]] = []
    net = torch.nn.Conv1d(1, 2, 9, padding=4)

    def fn(chunks: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(chunks.shape))
        with torch.no_grad():
            return net(chunks.unsqueeze(1))

    x = torch.randn(1000)
    y = separate_chunked(fn, x, ChunkPlan(1000, 250), 2)
    assert calls == [(1, 1000)]
    assert torch.equal(y, fn(x.unsqueeze(0))[0])
    calls.clear()
    separate_chunked(fn, x, ChunkPlan(999, 250, batch_size=2), 2)
    assert calls == [(2, 999)]  # one sample too long: two chunks in one batch


def test_output_streams_with_bounded_buffers() -> None:
    plan = ChunkPlan(400, 100)
    engine = OverlapAdd(identity(), plan, 2)
    emitted = 0
    for _ in range(200):
        emitted += sum(p.shape[1] for p in engine.push(torch.randn(97)))
        assert len(engine.buf) <= plan.segment_samples + 97 + plan.hop_samples
        assert engine.acc.shape[1] <= 2 * plan.segment_samples
    assert emitted > 200 * 97 - 2 * plan.segment_samples
    emitted += sum(p.shape[1] for p in engine.finish())
    assert emitted == 200 * 97


def test_window_and_permutation_helpers() -> None:
    w = window(10, 4)
    assert w.min() > 0 and w.max() == 1 and torch.equal(w, w.flip(0))
    ref = torch.randn(3, 50)
    assert best_permutation(ref, ref[[2, 0, 1]]) == [1, 2, 0]
    with pytest.raises(ValueError):
        ChunkPlan(10, 10)
    with pytest.raises(ValueError):
        ChunkPlan.from_seconds(1.0, 1.0, 8000)
