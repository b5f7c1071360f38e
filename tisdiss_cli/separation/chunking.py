"""Chunked inference with overlap-add, speaker re-alignment and bounded memory.

The network's GroupNorm and attention see the whole input (utterance-level statistics), so
separating a long file chunk by chunk only approximates whole-file inference. An input that
fits in one segment is therefore run whole, giving exactly the whole-file output.

A longer input is cut into chunks of ``segment`` samples starting every ``hop`` samples; the
last chunk is shifted to end at the last sample, so the network never sees zero padding.
Each chunk's outputs are weighted by a window with linear ramps over the overlap, summed, and
divided by the summed weights. Before being added, a chunk's speakers are re-ordered to the
permutation that best matches the running output on their overlap (largest summed
correlation), so speakers do not swap at chunk borders.

Streaming: :class:`OverlapAdd` consumes input blocks and returns finished output blocks,
keeping about one segment of input and output, whatever the file length. It is built in one
place, by the engine :class:`~.streaming.SeparationStream`, which every front-end feeds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

SeparateFn = Callable[[Tensor], Tensor]  # chunks [B, S] -> sources [B, J, S]
ChunkCallback = Callable[[int], None]  # called with the end sample of each finished chunk


def check_segment(seconds: float) -> float:
    """``seconds`` as a chunk length: finite and above 0 (one longer than an input runs it whole;
    infinity is not "whole", it is refused like NaN); else a ``ValueError``."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"segment must be a finite number of seconds above 0, got {seconds}")
    return seconds


@dataclass(frozen=True)
class ChunkPlan:
    """How a long input is cut, in samples at the model's rate (``from_seconds`` takes seconds)."""

    segment_samples: int  # samples per chunk
    overlap_samples: int  # samples shared by consecutive chunks (0 <= overlap < segment)
    batch_size: int = 1  # chunks run through the network together

    def __post_init__(self) -> None:
        if self.segment_samples < 1:
            raise ValueError(f"segment must be at least one sample, got {self.segment_samples}")
        if not 0 <= self.overlap_samples < self.segment_samples:
            raise ValueError(
                f"overlap must be in [0, segment), got {self.overlap_samples} for segment {self.segment_samples}"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @property
    def hop_samples(self) -> int:
        return self.segment_samples - self.overlap_samples

    @classmethod
    def from_seconds(cls, segment_seconds: float, overlap: float, sample_rate: int, batch_size: int = 1) -> ChunkPlan:
        """Chunks of ``segment_seconds``; ``overlap`` as a fraction of a chunk (0 <= overlap < 1)."""
        check_segment(segment_seconds)
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap is a fraction in [0, 1), got {overlap}")
        seg = max(1, int(round(segment_seconds * sample_rate)))
        return cls(seg, min(seg - 1, int(round(overlap * seg))), batch_size)

    def num_chunks(self, length: int) -> int:
        """Chunks the engine runs for an input of ``length`` samples (1 when it fits whole)."""
        seg, hop = self.segment_samples, self.hop_samples
        if length <= seg:
            return 1
        regular = (length - seg) // hop + 1
        return regular + int((regular - 1) * hop + seg < length)


def window(segment: int, overlap: int) -> Tensor:
    """``[segment]`` weights: linear ramps over ``overlap`` samples at both ends, 1 between.

    Never zero (the ramps start at half a step), so any covered sample has a positive weight sum.
    """
    w = torch.ones(segment)
    if overlap:
        ramp = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        w[:overlap] = ramp
        w[segment - overlap :] = torch.minimum(w[segment - overlap :], ramp.flip(0))
    return w


def best_permutation(reference: Tensor, estimate: Tensor) -> list[int]:
    """Order of ``estimate``'s speakers that best matches ``reference``.

    reference, estimate: ``[J, n]``. Returns ``perm`` with ``estimate[perm]`` aligned, maximising
    the summed correlation ``sum_j <reference[j], estimate[perm[j]]>``.
    """
    corr = reference.double() @ estimate.double().T  # [J, J]
    j = corr.shape[0]
    best, best_score = list(range(j)), float("-inf")
    for perm in itertools.permutations(range(j)):
        score = float(corr[range(j), list(perm)].sum())
        if score > best_score:
            best, best_score = list(perm), score
    return best


class OverlapAdd:
    """Streaming chunked separation: :meth:`push` input blocks ``[n]`` and collect the finished
    output blocks ``[J, m]`` it returns, then :meth:`finish` for the rest. The concatenated
    outputs have the input's length."""

    def __init__(self, fn: SeparateFn, plan: ChunkPlan, num_spk: int, *, on_chunk: ChunkCallback | None = None) -> None:
        self.fn, self.plan, self.num_spk, self.on_chunk = fn, plan, num_spk, on_chunk
        self._win: Tensor | None = None
        self.buf = torch.zeros(0)  # input samples from buf_start on
        self.buf_start = 0
        self.available = 0  # input samples received
        self.next_start = 0  # start of the next regular chunk to schedule
        self.pending: list[int] = []  # chunk starts scheduled but not yet run
        self.acc = torch.zeros(num_spk, 0)  # weighted output sums from out_start on
        self.wsum = torch.zeros(0)
        self.out_start = 0  # samples already emitted
        self.ran_chunks = 0
        self.finished = False

    @property
    def win(self) -> Tensor:
        """The chunk window, made when a second chunk needs it: a segment may be far longer than
        any input (``--segment 1e9``), and an input that fits runs whole without one."""
        if self._win is None:
            self._win = window(self.plan.segment_samples, self.plan.overlap_samples)
        return self._win

    # -- input side
    def push(self, block: Tensor | np.ndarray) -> list[Tensor]:
        """Add input samples ``[n]``; returns the output blocks ``[J, m]`` now final."""
        assert not self.finished, "push after finish"
        block = torch.as_tensor(block, dtype=torch.float32).reshape(-1)
        self.buf = torch.cat((self.buf, block))
        self.available += len(block)
        out: list[Tensor] = []
        seg, hop = self.plan.segment_samples, self.plan.hop_samples
        # Chunk 0 waits for more than one segment: an input of at most one segment runs whole.
        while self.next_start + seg <= self.available and (self.next_start > 0 or self.available > seg):
            self.pending.append(self.next_start)
            self.next_start += hop
            if len(self.pending) >= self.plan.batch_size:
                self._run_pending()
        # Output is final before the next chunk to run; the final (shifted) chunk may start as
        # early as available - segment.
        out.extend(self._emit(min(self.next_start, self.available - seg, *self.pending)))
        return out

    def finish(self) -> list[Tensor]:
        """Flush: run the remaining chunks and return the last output blocks."""
        assert not self.finished, "finish called twice"
        self.finished = True
        length, seg = self.available, self.plan.segment_samples
        if length == 0:
            return []
        if self.ran_chunks == 0 and not self.pending:
            whole = self.fn(self.buf.unsqueeze(0))[0]
            self.ran_chunks = 1
            if self.on_chunk:
                self.on_chunk(length)
            return [whole]
        last_end = (self.pending[-1] if self.pending else self.next_start - self.plan.hop_samples) + seg
        if last_end < length:
            self.pending.append(length - seg)
        self._run_pending()
        return self._emit(length)

    # -- engine
    def _run_pending(self) -> None:
        if not self.pending:
            return
        seg = self.plan.segment_samples
        chunks = torch.stack([self.buf[s - self.buf_start : s - self.buf_start + seg] for s in self.pending])
        sources = self.fn(chunks)  # [B, J, S]
        if sources.shape != (len(self.pending), self.num_spk, seg):
            raise RuntimeError(
                f"network returned {tuple(sources.shape)}, expected {(len(self.pending), self.num_spk, seg)}"
            )
        for start, est in zip(self.pending, sources, strict=True):
            self._add(start, est.float().cpu())
        self.pending = []

    def _add(self, start: int, est: Tensor) -> None:
        seg = self.plan.segment_samples
        lo = start - self.out_start
        assert lo >= 0, "chunk starts before already emitted output"
        covered = self.acc.shape[1]
        if lo < covered:  # re-align speakers on the overlap with the running output
            ref = self.acc[:, lo:] / self.wsum[lo:]
            est = est[best_permutation(ref, est[:, : covered - lo])]
        if lo + seg > covered:
            grow = lo + seg - covered
            self.acc = torch.cat((self.acc, torch.zeros(self.num_spk, grow)), dim=1)
            self.wsum = torch.cat((self.wsum, torch.zeros(grow)))
        self.acc[:, lo : lo + seg] += est * self.win
        self.wsum[lo : lo + seg] += self.win
        self.ran_chunks += 1
        if self.on_chunk:
            self.on_chunk(start + seg)

    def _emit(self, upto: int) -> list[Tensor]:
        """Return output before absolute sample ``upto`` (when final) and drop spent input."""
        n = min(upto - self.out_start, self.acc.shape[1])
        out = []
        if n > 0:
            out.append(self.acc[:, :n] / self.wsum[:n])
            self.acc, self.wsum = self.acc[:, n:].clone(), self.wsum[n:].clone()
            self.out_start += n
        keep_from = min(
            self.next_start, self.available - self.plan.segment_samples, *(self.pending or [self.next_start])
        )
        drop = keep_from - self.buf_start
        if drop > 0:
            self.buf = self.buf[drop:].clone()
            self.buf_start += drop
        return out
