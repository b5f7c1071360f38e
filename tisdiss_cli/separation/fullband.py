"""The full band: each talker's track gets the recording's band above the model's Nyquist.

The network separates the model's band (0-4 kHz for an 8 kHz model). Above it the recording
already holds every talker's highs, mixed; this stage shares them out, after the talker stage and
before the outputs are written. It works at the output rate:

- The highs are the residual ``r = x - R(x)``: the mixture at the output rate minus the same
  mixture taken to the model's rate and back, the path the tracks take. ``r`` holds exactly what
  the tracks cannot (soxr's roll-off below the model's Nyquist included), so track ``k`` becomes
  ``y_k + ISTFT(M_k * STFT(r))``: masks of ones over one track give back the input (no notch and
  no doubling at the crossover), and masks that sum to one give back the mixture's highs.
- Masks per frame (32 ms, 8 ms hop) and band (1/8 octave from the model's Nyquist up, linear
  between band centres): each track's energy in a band is predicted as its energy near the top
  of its own band (0.625-0.9 of the model's Nyquist) times the talker's own ratio of that band to
  it, weighted by how well the shape of the mixture's highs in the frame fits the talker's.
  Ratio and shape are learned from the recording itself, in the frames where one track holds
  nearly all of the low band (there the mixture's highs are that talker's): a talker recorded
  without highs, or with a hiss of their own, is learned as such. The predictions, normalised
  over the K tracks, are the masks. A track that is all zeros in a frame gets nothing there,
  so a silent talker's file stays silent.
- What is learned grows as frames arrive; frame ``t`` is rendered with the statistics of frames
  up to ``t + lookahead`` (files: 10 s; streams: none), and nothing depends on how the input was
  cut into blocks.

Latency (streams): one window plus the shape evidence's smoothing, ``latency_seconds`` (72 ms at
the defaults). Memory: the residual waits for the tracks (the whole recording for a file, whose
talkers are decided at its end): in memory up to ``SPOOL_MEMORY_SECONDS``, then in a temporary
file (4 bytes per sample at the output rate); the frames within the lookahead stay in memory.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from dataclasses import dataclass
from typing import IO

import numpy as np

from ..audio import files as audio
from ..util.fileio import WriteError

OFFLINE_LOOKAHEAD = 10.0  # seconds of later frames a file's masks learn from
SPOOL_MEMORY_SECONDS = 120.0  # residual waiting for its tracks stays in memory up to this long
BATCH_FRAMES = 250  # frames analysed or rendered at a time (2 s): bounds the working arrays
BANDS = ("full", "model")  # full: the input's band above the model's is shared out; model: the model's band only
TINY = 1e-30


def check_band(band: str) -> str:
    """``band`` itself, or a ``ValueError`` naming the choices."""
    if band not in BANDS:
        raise ValueError(f"unknown band {band!r}; choose from {', '.join(BANDS)}")
    return band


@dataclass(frozen=True)
class FullBandConfig:
    """How the highs are shared out (the defaults were measured on devconv, docs/full-band.md)."""

    frame_seconds: float = 0.032  # STFT window; the hop is a quarter of it
    # the tracks' bands, as fractions of the model's Nyquist: the highs are continued from `top`,
    # and `low` says who holds a frame (both end below soxr's roll-off)
    top: tuple[float, float] = (0.625, 0.9)
    low: tuple[float, float] = (0.025, 0.9)
    bands_per_octave: int = 8  # resolution of the masks above the model's Nyquist
    dominant_share: float = 0.9  # a track holding this share of the low band owns the frame's highs
    active_share: float = 1e-4  # frames whose low band is below this share of the loudest so far teach nothing
    prior_frames: float = 50.0  # frames of the pooled statistics each talker's start from
    shape_weight: float = 1.0  # weight of the highs' shape evidence (log-likelihood, nats)
    shape_clip: float = 5.0  # the shape evidence moves a prediction by at most this many nats
    shape_smooth: int = 5  # frames each side the shape evidence is averaged over
    shape_floor: float = 0.05  # variance floor of the shape model (log-energy squared)
    lookahead_seconds: float = 0.0  # later frames the statistics include (files: OFFLINE_LOOKAHEAD)


@dataclass(frozen=True)
class Geometry:
    """Frames and bands of a stage at ``rate``: ``n`` and ``hop`` in samples; the bands as bin
    ranges; each bin's mask as a blend of two bands' (linear between band centres)."""

    rate: float
    n: int
    hop: int
    top: slice  # bins of the tracks' top band
    low: slice  # bins of the tracks' low band
    starts: np.ndarray  # [B] first bin of each high band (contiguous, in order)
    below: np.ndarray  # [F] the band centre at or below each bin (0 below the first centre)
    weight: np.ndarray  # [F] the weight of the band above it (0 at or below the first centre, 1 above the last)

    @property
    def bands(self) -> int:
        return len(self.starts)


def band_edges(cutoff: float, highest: float, per_octave: int) -> np.ndarray:
    """Edges from ``cutoff`` up to ``highest`` (Hz), ``per_octave`` bands an octave; a last band
    narrower than half a band is merged into the one below."""
    count = max(1, int(np.ceil(per_octave * np.log2(highest / cutoff) - 0.5)))
    edges = cutoff * 2.0 ** (np.arange(count + 1) / per_octave)
    edges[-1] = highest
    return edges


def geometry(rate: float, model_rate: int, input_rate: float, config: FullBandConfig) -> Geometry:
    """Frames at ``rate`` (the output's); bands from the model's Nyquist up to the lower of the
    input's and the output's."""
    hop = max(1, round(config.frame_seconds * rate / 4))
    while not _smooth(hop):  # an FFT size of small primes only (at 44.1 kHz 1440, not 1412 = 4 x 353)
        hop += 1
    n = 4 * hop
    freqs = np.fft.rfftfreq(n, 1 / rate)
    cutoff = model_rate / 2
    edges = band_edges(cutoff, min(rate, input_rate) / 2, config.bands_per_octave)
    starts = np.searchsorted(freqs, edges[:-1])
    centres = (edges[:-1] + edges[1:]) / 2
    position = np.interp(freqs, centres, np.arange(len(centres)))  # fractional band index of each bin
    below = np.minimum(np.floor(position).astype(int), len(centres) - 1)
    weight = position - below
    top = slice(*np.searchsorted(freqs, [config.top[0] * cutoff, config.top[1] * cutoff]))
    low = slice(*np.searchsorted(freqs, [config.low[0] * cutoff, config.low[1] * cutoff]))
    return Geometry(rate, n, hop, top, low, starts, below, weight)


def _smooth(number: int) -> bool:
    """Whether ``number`` has no prime factor above 5."""
    for prime in (2, 3, 5):
        while number % prime == 0:
            number //= prime
    return number == 1


def analysis_window(n: int) -> np.ndarray:
    """Square-root periodic Hann: analysis and synthesis at a quarter hop add up to 2."""
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n))


@dataclass
class Frames:
    """Frames ``[T]``: the tracks' energies ``[T, K]``, the mixture's highs ``[T, B]``."""

    top: np.ndarray  # [T, K] each track's energy in the top band
    low: np.ndarray  # [T, K] each track's energy in the low band
    silent: np.ndarray  # [T, K] the track is all zeros in the frame
    high: np.ndarray  # [T, B] the residual's energy per band
    spectrum: np.ndarray  # [T, F] the residual's STFT (complex64)

    def __len__(self) -> int:
        return len(self.top)

    def __getitem__(self, index: slice) -> Frames:
        return Frames(self.top[index], self.low[index], self.silent[index], self.high[index], self.spectrum[index])

    @classmethod
    def concat(cls, parts: list[Frames]) -> Frames:
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in FRAME_FIELDS))


FRAME_FIELDS = ("top", "low", "silent", "high", "spectrum")


def analyse(tracks: np.ndarray, residual: np.ndarray, geo: Geometry) -> Frames:
    """Frames of ``tracks [T, K, n]`` and ``residual [T, n]`` (windowed here)."""
    window = analysis_window(geo.n)
    y = np.fft.rfft(tracks * window, axis=-1)
    power = y.real**2 + y.imag**2
    r = np.fft.rfft(residual * window, axis=-1)
    high = np.add.reduceat(r.real**2 + r.imag**2, geo.starts, axis=-1)
    top = power[..., geo.top].sum(-1)
    low = power[..., geo.low].sum(-1)
    silent = ~(tracks != 0).any(-1)
    return Frames(top, low, silent, high, r.astype(np.complex64))


def frame_stats(frames: Frames, loudest: np.ndarray, config: FullBandConfig) -> np.ndarray:
    """Each frame's contribution to the talkers' statistics ``[T, K, 1 + 3B]``: a count, the log
    ratio of the highs to the track's top band, the highs' shape (log energies less their total's)
    and its square, where the track owns the frame: it holds ``dominant_share`` of the low band,
    which is above ``active_share`` of ``loudest [T]`` (the loudest low band up to each frame).
    Owned frames without highs count too: they teach that the talker has none."""
    total = frames.low.sum(-1, keepdims=True)
    owns = (frames.low > config.dominant_share * total) & (total > config.active_share * loudest[:, None])
    log_high = np.log(frames.high + TINY)
    ratio = log_high[:, None, :] - np.log(frames.top + TINY)[..., None]  # [T, K, B]
    shape = np.broadcast_to((log_high - np.log(frames.high.sum(-1) + TINY)[:, None])[:, None, :], ratio.shape)
    w = owns[..., None].astype(np.float64)
    return np.concatenate([w, ratio * w, shape * w, shape**2 * w], axis=-1)


def predictions(frames: Frames, sums: np.ndarray, config: FullBandConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, from the statistics ``sums [T, K, 1 + 3B]`` it may use (talker by talker, shrunk
    towards the talkers' pooled ones by ``prior_frames``): each track's predicted log energies in
    the bands ``[T, K, B]``, and the shape evidence ``[T, K]`` (log-likelihood of the highs'
    shape under each talker's diagonal Gaussian, nats)."""
    bands = frames.high.shape[-1]
    count = sums[..., :1]
    ratio, shape, square = (sums[..., 1 + i * bands : 1 + (i + 1) * bands] for i in range(3))
    pooled = np.maximum(count.sum(1, keepdims=True), 1.0)
    n0 = config.prior_frames
    mean_ratio = (ratio + n0 * ratio.sum(1, keepdims=True) / pooled) / (count + n0)
    prior_mean = shape.sum(1, keepdims=True) / pooled
    prior_var = np.maximum(square.sum(1, keepdims=True) / pooled - prior_mean**2, 0.0)
    mean = (shape + n0 * prior_mean) / (count + n0)
    second = (square + n0 * (prior_var + prior_mean**2)) / (count + n0)
    var = np.maximum(second - mean**2, 0.0) + config.shape_floor
    log_high = np.log(frames.high + TINY)
    observed = (log_high - np.log(frames.high.sum(-1, keepdims=True) + TINY))[:, None, :]
    evidence = -0.5 * ((observed - mean) ** 2 / var + np.log(var)).sum(-1)
    base = np.log(frames.top + TINY)[..., None] + mean_ratio
    return base, evidence


def smooth(evidence: np.ndarray, start: int, stop: int, width: int) -> np.ndarray:
    """Rows ``start:stop`` of ``evidence [T, K]`` (consecutive frames) averaged with their
    neighbours up to ``width`` rows each side that ``evidence`` holds."""
    rows = np.arange(start, stop)
    acc = np.zeros((len(rows),) + evidence.shape[1:])
    count = np.zeros((len(rows), 1))
    for d in range(-width, width + 1):
        index = rows + d
        valid = ((index >= 0) & (index < len(evidence)))[:, None]
        acc += np.where(valid, evidence[np.clip(index, 0, len(evidence) - 1)], 0.0)
        count += valid
    return acc / np.maximum(count, 1)


def masks(
    base: np.ndarray, evidence: np.ndarray, silent: np.ndarray, geo: Geometry, config: FullBandConfig
) -> np.ndarray:
    """Per-bin masks ``[T, K, F]`` from the predictions ``base [T, K, B]``, the smoothed shape
    evidence ``[T, K]`` and the tracks' all-zero frames ``silent [T, K]``: normalised over the
    tracks, zero for a silent track (all zero where every track is)."""
    shift = np.maximum(evidence - evidence.max(1, keepdims=True), -config.shape_clip)
    logits = np.where(silent[..., None], -np.inf, base + config.shape_weight * shift[..., None])
    peak = logits.max(1, keepdims=True)
    energy = np.exp(logits - np.where(np.isfinite(peak), peak, 0.0))
    total = energy.sum(1, keepdims=True)
    share = np.divide(energy, total, out=np.zeros_like(energy), where=total > 0)
    above = np.minimum(geo.below + 1, geo.bands - 1)
    return share[..., geo.below] * (1 - geo.weight) + share[..., above] * geo.weight


class SampleQueue:
    """Mono float32 samples, first in first out: in memory up to ``memory_frames``, the rest in a
    temporary file (a file's residual waits for its tracks until the recording has been read)."""

    def __init__(self, memory_frames: int) -> None:
        self.memory_frames = memory_frames
        self.blocks: deque[np.ndarray] = deque()
        self.held = 0  # samples in memory
        self.file: IO[bytes] | None = None
        self.written = self.read = 0  # samples in / taken from the file

    def __len__(self) -> int:
        return self.held + self.written - self.read

    def append(self, x: np.ndarray) -> None:
        if not len(x):
            return
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.file is None and self.held + len(x) <= self.memory_frames:
            self.blocks.append(x)
            self.held += len(x)
            return
        if self.file is None:
            self.file = tempfile.TemporaryFile(prefix="tisdiss-highs-")  # noqa: SIM115 (closed by close())
        try:
            self.file.seek(0, os.SEEK_END)
            self.file.write(x.tobytes())
        except OSError as exc:
            raise WriteError(f"the full-band stage's temporary file in {tempfile.gettempdir()}", exc) from None
        self.written += len(x)

    def take(self, count: int) -> np.ndarray:
        """Up to ``count`` samples from the front."""
        parts: list[np.ndarray] = []
        while count > 0 and self.blocks:
            block = self.blocks.popleft()
            if len(block) > count:
                self.blocks.appendleft(block[count:])
                block = block[:count]
            parts.append(block)
            self.held -= len(block)
            count -= len(block)
        if count > 0 and self.file is not None and self.read < self.written:
            self.file.flush()
            take = min(count, self.written - self.read)
            data = os.pread(self.file.fileno(), take * 4, self.read * 4)
            parts.append(np.frombuffer(data, np.float32))
            self.read += take
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class FullBandStage:
    """The engine's full-band step: the mixture in as it arrives (:meth:`mixture`), the tracks at
    the output rate in (:meth:`push`), the same tracks with their highs out, as many samples in
    the end, trailing by :attr:`latency_seconds`.

    ``num_out`` tracks at ``rate`` (the output's) of a mixture at ``input_rate`` separated at
    ``model_rate``. Frame ``t`` covers samples ``t * hop - n + hop`` on; it is analysed once tracks
    and residual have arrived past it, predicted with the statistics of the frames up to
    ``t + lookahead``, and rendered once the shape evidence of ``shape_smooth`` frames past it is known.
    """

    def __init__(
        self,
        num_out: int | None,
        rate: float,
        model_rate: int,
        input_rate: float,
        config: FullBandConfig | None = None,
    ) -> None:
        self.config = config if config is not None else FullBandConfig()
        self.num_out, self.rate = num_out or 0, rate
        self.geo = geo = geometry(rate, model_rate, input_rate, self.config)
        self.lookahead = round(self.config.lookahead_seconds * rate / geo.hop)  # frames
        self._wide = audio.resample_stream(input_rate, rate, 1)  # the mixture at the output rate
        self._narrow = audio.resample_stream(model_rate, rate, 1)  # the mixture as the tracks hear it
        self._pending = (np.zeros(0, np.float32), np.zeros(0, np.float32))  # (wide, narrow) not yet paired
        self._residual = SampleQueue(round(SPOOL_MEMORY_SECONDS * rate))
        self._mixture_done = False
        lead = geo.n - geo.hop  # frame 0 starts this far before sample 0
        self._highs = np.zeros(lead, np.float32)  # the residual, from the start of frame `analysed` on
        self._received = 0  # track samples in
        self._analysed = 0  # frames analysed
        self._waiting: Frames | None = None  # analysed frames from `predicted` on
        self._loudest = 0.0  # the loudest low band so far
        self._predicted = 0
        self._first = 0  # absolute frame of the rows below
        self._spectrum = np.zeros((0, geo.n // 2 + 1), np.complex64)
        self._rendered = 0
        self._out = 0  # samples returned
        self._tracks_for(self.num_out)

    def _tracks_for(self, num_out: int) -> None:
        """The state kept per track, for ``num_out`` tracks (known when the first tracks arrive: a
        file's talkers are counted only once it has been read)."""
        geo, lead = self.geo, self.geo.n - self.geo.hop
        self.num_out = num_out
        self._tracks = np.zeros((lead, num_out), np.float32)  # from the start of frame `analysed` on
        self._cumulative = np.zeros((0, num_out, 1 + 3 * geo.bands))  # statistics through each of them
        self._sums = np.zeros((num_out, 1 + 3 * geo.bands))  # through the last analysed frame
        self._base = np.zeros((0, num_out, geo.bands))  # predictions from frame `first` on
        self._evidence = np.zeros((0, num_out))
        self._silent = np.zeros((0, num_out), bool)
        self._synth = np.zeros((0, num_out))  # overlap-added highs from sample `out` on
        self._held = np.zeros((0, num_out), np.float32)  # tracks from sample `out` on

    @property
    def latency_seconds(self) -> float:
        """How far the output trails the tracks: a window, the smoothing and the lookahead."""
        geo = self.geo
        return (geo.n + (self.config.shape_smooth + self.lookahead) * geo.hop) / self.rate

    def mixture(self, wide: np.ndarray, narrow: np.ndarray, *, last: bool = False) -> None:
        """The mono mixture as it arrives: ``wide`` at the input rate, ``narrow`` at the model's
        (what the network gets); ``last`` flushes the resamplers."""
        if self._mixture_done:
            return
        if self._wide is not None:
            wide = self._wide.resample_chunk(np.ascontiguousarray(wide, np.float32), last=last)
        if self._narrow is not None:
            narrow = self._narrow.resample_chunk(np.ascontiguousarray(narrow, np.float32), last=last)
        wide = np.concatenate((self._pending[0], wide))
        narrow = np.concatenate((self._pending[1], narrow))
        count = min(len(wide), len(narrow))
        self._residual.append(wide[:count] - narrow[:count])
        self._pending = (wide[count:], narrow[count:])
        if last:  # the input's tail past the narrow path's: nothing was taken from it
            self._residual.append(self._pending[0])
            self._mixture_done = True

    def push(self, tracks: np.ndarray, *, last: bool = False) -> np.ndarray:
        """Tracks ``[n, K]`` at the output rate -> tracks with their highs ``[m, K]``, those final
        so far; ``last``: the tracks end here (the mixture must have ended before)."""
        tracks = np.asarray(tracks, np.float32)
        if self._received == 0 and tracks.ndim == 2 and tracks.shape[1] != self.num_out:
            self._tracks_for(tracks.shape[1])  # the first tracks say how many there are
        tracks = tracks.reshape(-1, self.num_out)
        self._received += len(tracks)
        self._held = np.concatenate((self._held, tracks))
        self._tracks = np.concatenate((self._tracks, tracks))
        self._highs = np.concatenate((self._highs, self._residual.take(len(self._tracks) - len(self._highs))))
        if last:
            self._finish_frames()
            self._residual.close()
        else:
            ready = min(len(self._tracks), len(self._highs))
            self._analyse((ready - self.geo.n) // self.geo.hop + 1)
        self._predict(final=last)
        self._render(final=last)
        return self._emit(final=last)

    def close(self) -> None:
        """Drop the residual's temporary file (``push(..., last=True)`` does too)."""
        self._residual.close()

    # -- frames
    def _finish_frames(self) -> None:
        """Analyse every frame that covers a sample, with zeros past the end (the residual cut or
        padded to the tracks' length)."""
        geo = self.geo
        frames = -(-(self._received + geo.n - geo.hop) // geo.hop) - self._analysed
        if self._received == 0 or frames <= 0:
            return
        valid = len(self._tracks)  # samples of the tracks from frame `analysed`'s start on
        need = (frames - 1) * geo.hop + geo.n
        self._tracks = np.concatenate((self._tracks, np.zeros((need - valid, self.num_out), np.float32)))
        highs = self._highs[:valid]
        self._highs = np.concatenate((highs, np.zeros(need - len(highs), np.float32)))
        self._analyse(frames)

    def _analyse(self, count: int) -> None:
        while count > 0:
            step = min(count, BATCH_FRAMES)
            self._analyse_batch(step)
            count -= step

    def _analyse_batch(self, count: int) -> None:
        geo = self.geo
        index = np.arange(count)[:, None] * geo.hop + np.arange(geo.n)
        frames = analyse(
            self._tracks[index].transpose(0, 2, 1).astype(np.float64), self._highs[index].astype(np.float64), geo
        )
        loudest = np.maximum.accumulate(np.concatenate(([self._loudest], frames.low.sum(-1))))[1:]
        self._loudest = float(loudest[-1])
        stats = frame_stats(frames, loudest, self.config)
        cumulative = np.cumsum(np.concatenate((self._sums[None], stats)), axis=0)[1:]
        self._sums = cumulative[-1]
        self._cumulative = np.concatenate((self._cumulative, cumulative))
        self._waiting = frames if self._waiting is None else Frames.concat([self._waiting, frames])
        self._analysed += count
        self._tracks = self._tracks[count * geo.hop :]
        self._highs = self._highs[count * geo.hop :]

    def _predict(self, *, final: bool) -> None:
        """Frames whose statistics (``lookahead`` frames on, or the last ones) are known."""
        count = self._analysed - self._predicted if final else self._analysed - self.lookahead - self._predicted
        if count <= 0 or self._waiting is None:
            return
        rows = np.minimum(np.arange(count) + self.lookahead, len(self._cumulative) - 1)
        frames = self._waiting[:count]
        base, evidence = predictions(frames, self._cumulative[rows], self.config)
        self._base = np.concatenate((self._base, base))
        self._evidence = np.concatenate((self._evidence, evidence))
        self._silent = np.concatenate((self._silent, frames.silent))
        self._spectrum = np.concatenate((self._spectrum, frames.spectrum))
        self._waiting = self._waiting[count:]
        self._cumulative = self._cumulative[count:]
        self._predicted += count

    def _render(self, *, final: bool) -> None:
        width = self.config.shape_smooth
        stop = self._predicted if final else self._predicted - width
        if stop <= self._rendered:
            return
        for first in range(self._rendered, stop, BATCH_FRAMES):
            self._render_batch(first, min(stop, first + BATCH_FRAMES))
        self._rendered = stop
        keep = max(0, self._rendered - width) - self._first  # rows the next frames' smoothing still reads
        self._base, self._evidence = self._base[keep:], self._evidence[keep:]
        self._silent, self._spectrum = self._silent[keep:], self._spectrum[keep:]
        self._first += keep

    def _render_batch(self, first: int, stop: int) -> None:
        """Overlap-add the highs of frames ``first:stop`` into the synthesis buffer."""
        geo, width = self.geo, self.config.shape_smooth
        a, b = first - self._first, stop - self._first  # rows of the frames to render
        evidence = smooth(self._evidence, a, b, width)
        mask = masks(self._base[a:b], evidence, self._silent[a:b], geo, self.config)  # [T, K, F]
        frames = np.fft.irfft(mask * self._spectrum[a:b, None, :], geo.n, axis=-1) * (analysis_window(geo.n) / 2)
        start = first * geo.hop - (geo.n - geo.hop)  # absolute sample of the first frame's start
        end = stop * geo.hop  # and the last frame's end
        synth_start = self._out
        grow = end - synth_start - len(self._synth)
        if grow > 0:
            self._synth = np.concatenate((self._synth, np.zeros((grow, self.num_out))))
        for i, frame in enumerate(frames):
            lo = start + i * geo.hop
            skip = max(0, synth_start - lo)  # samples before the output's start (before sample 0)
            self._synth[lo + skip - synth_start : lo + geo.n - synth_start] += frame.T[skip:]

    def _emit(self, *, final: bool) -> np.ndarray:
        geo = self.geo
        complete = self._received if final else self._rendered * geo.hop - (geo.n - geo.hop)
        count = max(0, min(complete, self._received) - self._out)
        out = (self._held[:count] + self._synth[:count]).astype(np.float32)
        self._held, self._synth = self._held[count:], self._synth[count:]
        self._out += count
        return out


def separated_at_rate(
    tracks: np.ndarray,
    mixture: np.ndarray,
    narrow: np.ndarray,
    model_rate: int,
    rate: int,
    *,
    band: str = "full",
    config: FullBandConfig | None = None,
) -> np.ndarray:
    """Tracks ``[K, m]`` separated at ``model_rate`` from ``narrow [m]`` (the mixture there) as the
    engine writes a file's at ``rate`` for the mixture ``[L]`` at ``rate``: resampled back, with the
    band above the model's when ``band`` is "full" -> ``[K, L]`` (for scoring outside the engine;
    ``config`` None: a file's, with ``OFFLINE_LOOKAHEAD``)."""
    back = audio.resample_stream(model_rate, rate, len(tracks))
    y = np.ascontiguousarray(np.asarray(tracks, np.float32).T)
    if back is not None:
        y = back.resample_chunk(y, last=True)
    y = np.concatenate((y, np.zeros((max(0, len(mixture) - len(y)), len(tracks)), np.float32)))[: len(mixture)]
    if band == "full" and rate > model_rate:
        config = config if config is not None else FullBandConfig(lookahead_seconds=OFFLINE_LOOKAHEAD)
        stage = FullBandStage(len(tracks), rate, model_rate, rate, config)
        stage.mixture(np.asarray(mixture, np.float32), np.asarray(narrow, np.float32), last=True)
        y = stage.push(y, last=True)
    return np.ascontiguousarray(y.T)
