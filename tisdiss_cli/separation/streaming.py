"""The separation engine: feed samples as they arrive, take each speaker's output as it becomes final.

:class:`SeparationStream` is the one path from a mixture to its sources. Arrays
(:meth:`Separator.separate`), files, standard input and live capture are front-ends that feed it
blocks and write what it returns. It owns the steps in order: the finite check, downmix, the
optional denoiser (:mod:`~tisdiss_cli.audio.denoise`, ``--denoise``), soxr to
the model's rate, :class:`~.chunking.OverlapAdd` (chunk plan, overlap-add, speaker
re-alignment), the talker stage, soxr back to the output rate, the full-band stage (the input's
band above the model's shared out to the tracks, :mod:`~.fullband`), and the trim to the input's
length. None of these depends on how the input is cut into blocks: soxr's stream output does
not, and the chunk starts depend only on segment and hop. The one thing that depends on the total
length, the last chunk (shifted to end on the last sample), is run by
:meth:`~SeparationStream.close`. So an input fed whole, in file blocks or in pipe reads gives the
same output sample for sample.

Latency: output is final once no later chunk can overlap it. The shifted last chunk may start
one segment before the newest sample, so the output trails the input by one segment, plus the
compute time of the chunk that completes it, plus ``batch_size - 1`` hops when chunks are
batched, plus the online talker stage's and the full-band stage's own (about 1.1 s and 0.07 s).
soxr resamples in blocks of its own: input at another rate than the model's adds about
0.1 s each way (measured 16 kHz <-> 8 kHz), so live capture defaults to the model's rate.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import soxr
import torch
from torch import Tensor

from ..audio import files as audio
from ..audio.arrays import samples_to_float32
from ..audio.denoise import Denoiser
from ..model.depth import Depth
from ..util.timing import Stopwatch
from .chunking import ChunkCallback, ChunkPlan, OverlapAdd, SeparateFn
from .fullband import FullBandStage
from .talkers import OnlineTalkerStage, TalkerStage
from .tracking import TalkerSummary

NetworkFactory = Callable[[Depth], SeparateFn]
Clock = Callable[[], float]


@dataclass
class StreamStats:
    """What a stream has done so far (times from the stream's clock, in seconds)."""

    input_frames: int = 0  # at the input rate
    output_frames: int = 0  # at the output rate
    chunks: int = 0  # network chunks run
    compute_seconds: float = 0.0  # wall time inside the network
    last_chunk_seconds: float = 0.0  # wall time of the latest chunk
    latency_max: float = 0.0  # longest wait of an input sample for its output (every block, close's too)
    latency_sum: float = 0.0
    latency_blocks: int = 0

    @property
    def latency_mean(self) -> float:
        return self.latency_sum / self.latency_blocks if self.latency_blocks else 0.0


def frames_to_float32(samples: object, channels: int) -> np.ndarray:
    """A block ``[n]`` (mono) or ``[n, channels]`` as float32 ``[n, channels]``, scaled as arrays are
    (:func:`~tisdiss_cli.audio.arrays.samples_to_float32`: float, int8/16/32 or uint8 PCM).

    Frames first, as soundfile and sounddevice deliver them (a block may hold fewer frames than
    channels, so ``[channels, n]`` could not be told apart).
    """
    x = np.asarray(samples)
    if x.ndim == 1 and channels == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != channels:
        want = "[frames] or [frames, 1]" if channels == 1 else f"[frames, {channels}]"
        raise ValueError(f"block of shape {tuple(x.shape)}: expected {want}")
    return samples_to_float32(x)


class SeparationStream:
    """Incremental separation of one input stream (see the module docstring).

    ``feed(block)`` returns the output ``[J, n]`` float32 (at the output rate) that is final so
    far, possibly with ``n == 0``; ``close()`` returns the rest. ``J`` is :attr:`files`: with the
    offline voice tracker and ``speakers`` auto it is known only once a file's talkers are counted
    at close (until then, empty blocks have the network's ``num_spk`` rows). The concatenated outputs have the
    length the file path writes: the input's frame count at the input rate (or its resampled
    length at another output rate). Once closed, ``feed`` and ``close`` raise ``ValueError``. Use
    :meth:`Separator.stream` to make one.
    """

    def __init__(
        self,
        network: NetworkFactory,
        depth: Depth,
        plan: ChunkPlan,
        num_spk: int,
        model_rate: int,
        sample_rate: float,
        *,
        channels: int = 1,
        channel: int | None = None,
        output_rate: float | None = None,
        clock: Clock = time.perf_counter,
        on_chunk: ChunkCallback | None = None,
        name: str | None = None,
        device: torch.device | None = None,
        talkers: TalkerStage | None = None,
        fullband: FullBandStage | None = None,
        denoiser: Denoiser | None = None,
    ) -> None:
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        if channel is not None and not 0 <= channel < channels:
            raise ValueError(f"the stream has {channels} channel(s), no channel {channel + 1}")
        self.network, self.depth, self.plan, self.num_spk = network, depth, plan, num_spk
        self.model_rate, self.sample_rate = model_rate, sample_rate
        self.output_rate = self.sample_rate if output_rate is None else output_rate
        self.channels, self.channel, self.clock = channels, channel, clock
        self.device = device if device is not None else torch.device("cpu")  # where chunk compute is timed
        self.name = name  # prefixes error messages ("meeting.wav: NaN or Inf samples near ...")
        self.stats = StreamStats()
        self._to_model = audio.resample_stream(self.sample_rate, model_rate, 1)
        self._to_output: soxr.ResampleStream | None = None  # made for the first tracks, once their number is known
        self._output_channels = 0
        self.engine = OverlapAdd(self._timed(network(depth)), plan, num_spk, on_chunk=on_chunk)
        self.talkers = talkers  # None: the outputs as stitched (speakers aligned on chunk overlaps only)
        self.fullband = fullband  # None: the model's band only
        self.denoiser = denoiser  # None: the mixture as it comes
        self._held = np.zeros((0, num_spk), np.float32)  # output beyond what the input so far justifies
        self._arrivals: deque[tuple[int, float]] = deque()  # (input frames received by then, time)
        self.closed = False

    @property
    def latency_bound(self) -> float:
        """Seconds an output sample waits for the input, before compute: one segment (plus batching)."""
        plan = self.plan
        chunks = (plan.segment_samples + (plan.batch_size - 1) * plan.hop_samples) / self.model_rate
        tracking = self.talkers.latency_seconds if isinstance(self.talkers, OnlineTalkerStage) else 0.0
        highs = self.fullband.latency_seconds if self.fullband is not None else 0.0
        denoise = self.denoiser.latency_seconds if self.denoiser is not None else 0.0
        return chunks + tracking + highs + denoise

    @property
    def files(self) -> int:
        """How many tracks the stream returns: the talker stage's (one per talker, or ``speakers``),
        else the network's outputs."""
        if self.talkers is not None and self.talkers.files is not None:
            return self.talkers.files
        return self.num_spk

    @property
    def talker_summary(self) -> TalkerSummary | None:
        """What the voice tracker found, once the stream is closed (None without a tracker)."""
        return self.talkers.summary if self.talkers is not None else None

    @property
    def hop_seconds(self) -> float:
        """New audio per chunk, in seconds: a chunk must run faster than this to keep up."""
        return self.plan.hop_samples / self.model_rate

    def set_depth(self, depth: Depth) -> None:
        """Run later chunks at another depth (live separation steps down when it falls behind)."""
        self.depth = depth
        self.engine.fn = self._timed(self.network(depth))

    def feed(self, samples: object) -> np.ndarray:
        """Add a block ``[n]`` or ``[n, channels]`` (float at full scale 1.0, or int PCM)."""
        self._check_open("feed")
        block = frames_to_float32(samples, self.channels)
        audio.check_finite(block, self.stats.input_frames, self.sample_rate, self.name)
        if not len(block):
            return np.zeros((self.files, 0), np.float32)
        now = self.clock()
        self.stats.input_frames += len(block)
        self._arrivals.append((self.stats.input_frames, now))
        wide = np.ascontiguousarray(audio.to_mono(block, self.channel))
        if self.denoiser is not None:
            wide = self.denoiser.push(wide)
        parts = self._tracked(self._take(wide, block))
        return self._release(self._back(parts, last=False), final=False)

    def _take(self, wide: np.ndarray, block: np.ndarray) -> list[Tensor]:
        """The mono mixture at the input rate -> the model's rate, the full-band stage and the chunks."""
        mono = wide
        if self._to_model is not None:
            mono = self._to_model.resample_chunk(wide, last=False)
            if not np.isfinite(mono).all():  # a float input at the very top of the float32 range
                prefix = f"{self.name}: " if self.name else ""
                raise audio.AudioError(
                    f"{prefix}samples of up to {float(np.abs(block).max()):.3g} overflow float32 when resampled "
                    f"to {self.model_rate} Hz; scale the input down"
                )
        if self.fullband is not None:
            self.fullband.mixture(wide, mono)
        return self.engine.push(mono) if len(mono) else []

    def close(self) -> np.ndarray:
        """Run the last chunks and return the rest of the output."""
        return np.concatenate(list(self.close_blocks()), axis=1)

    def close_blocks(self) -> Iterator[np.ndarray]:
        """:meth:`close` in blocks ``[J, n]``: a file's tracked tracks are rendered piece by piece."""
        self._check_open("close")
        self.closed = True
        if self.stats.input_frames == 0:
            if self.fullband is not None:
                self.fullband.close()
            if self.denoiser is not None:
                self.denoiser.close()
            yield np.zeros((self.files, 0), np.float32)
            return
        parts: list[Tensor] = []
        if self.denoiser is not None:  # its delayed tail
            rest = self.denoiser.flush()
            parts += self._take(rest, rest)
        tail = np.zeros(0, np.float32)
        if self._to_model is not None:
            tail = self._to_model.resample_chunk(tail, last=True)
            if len(tail):
                parts += self.engine.push(tail)
        if self.fullband is not None:
            self.fullband.mixture(np.zeros(0, np.float32), tail, last=True)
        parts += self.engine.finish()
        if self.talkers is None:
            yield self._release(self._back(self._arrays(parts), last=True), final=True)
            return
        last = np.concatenate(self._arrays(parts), axis=1) if parts else None
        pending: list[np.ndarray] = []
        for piece in self.talkers.finish(last, single_pass=self.engine.ran_chunks <= 1):
            if pending:
                yield self._release(self._back(pending, last=False), final=False)
            pending = [piece]
        yield self._release(self._back(pending, last=True), final=True)

    # -- internals
    def _check_open(self, method: str) -> None:
        if self.closed:  # as a closed file does: ValueError, not a silent restart or an assert
            raise ValueError(f"{method}() on a closed stream; start another with Separator.stream()")

    def _timed(self, fn: SeparateFn) -> SeparateFn:
        def run(chunks: Tensor) -> Tensor:
            watch = Stopwatch(self.device)
            out = fn(chunks)
            seconds = watch.seconds()
            self.stats.chunks += len(chunks)
            self.stats.compute_seconds += seconds
            self.stats.last_chunk_seconds = seconds / len(chunks)
            return out

        return run

    @staticmethod
    def _arrays(parts: list[Tensor]) -> list[np.ndarray]:
        return [p.numpy() for p in parts]

    def _tracked(self, parts: list[Tensor]) -> list[np.ndarray]:
        """The stitched outputs, through the tracker when there is one."""
        if self.talkers is None or not parts:
            return self._arrays(parts)
        return self.talkers.push(np.concatenate(self._arrays(parts), axis=1))

    def _back(self, parts: list[np.ndarray], *, last: bool) -> np.ndarray:
        """Model-rate blocks ``[J, n]`` -> ``[n, J]`` at the output rate."""
        y = np.concatenate([p.T for p in parts]) if parts else np.zeros((0, self.files), np.float32)
        if not self._output_channels and (len(y) or last):
            self._output_channels = y.shape[1]
            self._to_output = audio.resample_stream(self.model_rate, self.output_rate, y.shape[1])
        if self._to_output is not None and (len(y) or last):
            y = self._to_output.resample_chunk(np.ascontiguousarray(y), last=last)
        if self.fullband is not None and (len(y) or last):
            y = self.fullband.push(y, last=last)
        return y

    def _expected(self, frames: int) -> int:
        return audio.resampled_length(frames, self.sample_rate, self.output_rate)

    def _release(self, y: np.ndarray, *, final: bool) -> np.ndarray:
        """Cap the output at the length the input so far implies (the file path's exact length)."""
        ready = np.concatenate((self._held, y)) if len(self._held) else y
        limit = self._expected(self.stats.input_frames) - self.stats.output_frames
        if final and len(ready) < limit:  # as the file writer does: pad a short tail with zeros
            ready = np.concatenate((ready, np.zeros((limit - len(ready), ready.shape[1]), np.float32)))
        out, self._held = ready[:limit], ready[limit:]
        if len(out):  # the last block counts too: in an input of one chunk it is the only one
            self._note_latency(self.stats.output_frames)
        self.stats.output_frames += len(out)
        return np.ascontiguousarray(out.T, dtype=np.float32)

    def _note_latency(self, first: int) -> None:
        """Latency of a block = now - arrival of its first sample (the one that waited longest)."""
        position = first * self.sample_rate / self.output_rate  # that sample, in input frames
        while len(self._arrivals) > 1 and self._arrivals[0][0] <= position:
            self._arrivals.popleft()
        waited = self.clock() - self._arrivals[0][1]
        self.stats.latency_max = max(self.stats.latency_max, waited)
        self.stats.latency_sum += waited
        self.stats.latency_blocks += 1
