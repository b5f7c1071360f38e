"""Talkers tracked by voice: which network output belongs to which talker, block by block.

The network separates each chunk on its own, and its outputs carry no identity: at a turn
change, or across a pause longer than the chunk overlap, the stitched outputs may swap talkers,
and a lone talker is spread over both. The tracker re-decides the assignment every
``block_seconds`` from voices (``models/cards/voice-ge2e.md`` names the encoder):

1. *Analysis* (:func:`analyse`). For each block, the level of the mixture (the outputs' sum) and
   of each output, the mixture's voice over ``talker_seconds`` and each output's voice over
   ``voice_seconds``, both centred on the block.
2. *Talkers* (:func:`find_talkers`). The recording's talkers are centroids of the mixture's voices
   in its loud blocks: turn-taking speech is one talker most of the time, so those voices
   gather around each talker. Two talkers are kept only when splitting the voices in two raises
   their mean similarity to their centroid by ``split_gain`` (chosen on devconv): a lone
   talker's voices do not split. Files use the whole recording (offline); streams grow the
   talkers as they go (:class:`OnlineTalkers`).
3. *Assignment* (:func:`decide`). Where both outputs are active and their voices are nearest to
   different talkers, each output goes to its talker. Otherwise one talker speaks: the one
   nearest to the mixture's voice gets both outputs summed, and the other file silence. That is
   what keeps a lone talker whole. A pause keeps the previous block's assignment.
4. *Rendering* (:func:`render`). Each block's assignment is a 0/1 matrix ``[talkers, outputs]``;
   the matrices are smoothed by a ``fade_seconds`` moving average across block borders, so an
   unchanged assignment leaves the outputs untouched and a change is a short cross-fade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

EmbedFn = Callable[[np.ndarray, int], np.ndarray]  # waves [B, S] at a rate -> unit vectors [B, D]
ANALYSIS_BATCH = 64  # blocks embedded together (bounds memory on long files)


@dataclass(frozen=True)
class TrackerConfig:
    block_seconds: float = 0.5  # the assignment is decided this often
    voice_seconds: float = 1.0  # each output's voice is embedded over this much audio around the block
    talker_seconds: float = 1.6  # the mixture's voice, which defines the talkers, over this much
    loud_db: float = -20.0  # blocks within this of the loudest one define the talkers
    active_db: float = -20.0  # an output within this of the louder output is active ...
    silence_db: float = -40.0  # ... unless it is this far below the loudest block: a pause
    split_gain: float = 0.035  # two talkers only if splitting raises the voices' mean similarity this much
    distinct_outputs: float = 0.65  # outputs less similar than this (median) where both are active: two talkers
    new_talker: float = 0.6  # online: a loud voice less similar than this to every talker is a new one
    fade_seconds: float = 0.04  # cross-fade where the assignment changes
    max_talkers: int = 2  # files written


@dataclass
class Analysis:
    """Per block: levels and voices (rows in time order)."""

    mix_energy: np.ndarray  # [nb] mean square of the outputs' sum
    out_energy: np.ndarray  # [nb, J] mean square of each output
    mix_voice: np.ndarray  # [nb, D]
    out_voice: np.ndarray  # [nb, J, D]

    def __len__(self) -> int:
        return len(self.mix_energy)

    @classmethod
    def concat(cls, parts: list[Analysis]) -> Analysis:
        return cls(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("mix_energy", "out_energy", "mix_voice", "out_voice")
            )
        )


def normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def _context(signal: np.ndarray, centre: int, width: int) -> np.ndarray:
    """``signal[..., centre - width/2 : centre + width/2]``, zero-padded to ``width`` where it runs off."""
    lo, hi = centre - width // 2, centre - width // 2 + width
    piece = signal[..., max(lo, 0) : min(hi, signal.shape[-1])]
    pad = [(0, 0)] * (signal.ndim - 1) + [(max(0, -lo), max(0, hi - signal.shape[-1]))]
    return np.pad(piece, pad)


def analyse_blocks(
    outputs: np.ndarray, first: int, count: int, rate: int, config: TrackerConfig, embed: EmbedFn
) -> Analysis:
    """Blocks ``first .. first+count-1`` of ``outputs [J, N]`` (the whole signal so far, contexts
    included: a context past the end is zero-padded, as at the end of a file)."""
    block = round(config.block_seconds * rate)
    outputs = np.asarray(outputs, dtype=np.float64)  # squares of a float32 near its top overflow float32
    mix = outputs.sum(0)
    starts = [(first + b) * block for b in range(count)]
    mix_energy = np.array([np.mean(mix[s : s + block] ** 2) for s in starts])
    out_energy = np.stack([np.mean(outputs[:, s : s + block] ** 2, axis=1) for s in starts])
    centres = [min(s + block // 2, outputs.shape[1]) for s in starts]
    talker_width, voice_width = round(config.talker_seconds * rate), round(config.voice_seconds * rate)
    mix_voice = embed(np.stack([_context(mix, c, talker_width) for c in centres]), rate)
    pieces = np.stack([_context(outputs, c, voice_width) for c in centres])  # [count, J, width]
    out_voice = embed(pieces.reshape(-1, voice_width), rate).reshape(count, outputs.shape[0], -1)
    return Analysis(mix_energy, out_energy, mix_voice, out_voice)


def analyse(outputs: np.ndarray, rate: int, config: TrackerConfig, embed: EmbedFn) -> Analysis:
    """Every block of ``outputs [J, N]`` (an array or a memory map), ``ANALYSIS_BATCH`` blocks at a time."""
    block = round(config.block_seconds * rate)
    total = -(-outputs.shape[1] // block)
    margin_blocks = -(-max(round(config.talker_seconds * rate), round(config.voice_seconds * rate)) // block)
    parts = []
    for first in range(0, total, ANALYSIS_BATCH):
        count = min(ANALYSIS_BATCH, total - first)
        lo = max(0, first - margin_blocks)  # in blocks: the window starts on a block border
        window = np.asarray(outputs[:, lo * block : (first + count + margin_blocks) * block], dtype=np.float32)
        parts.append(analyse_blocks(window, first - lo, count, rate, config, embed))
    if not parts:
        num_out = outputs.shape[0]
        return Analysis(np.zeros(0), np.zeros((0, num_out)), np.zeros((0, 0)), np.zeros((0, num_out, 0)))
    return Analysis.concat(parts)


def spherical_kmeans(vectors: np.ndarray, k: int, *, restarts: int = 8, iterations: int = 50) -> np.ndarray:
    """``k`` unit centroids maximising the summed cosine similarity of ``vectors [N, D]`` to their
    nearest one: k-means++ starts from a fixed seed, the best of ``restarts``."""
    rng = np.random.default_rng(0)
    best, best_score = None, -np.inf
    for _ in range(restarts):
        chosen = [vectors[rng.integers(len(vectors))]]
        while len(chosen) < k:
            distance = np.maximum(1 - (vectors @ np.stack(chosen).T).max(1), 0) ** 2
            total = distance.sum()
            pick = rng.choice(len(vectors), p=distance / total) if total > 0 else rng.integers(len(vectors))
            chosen.append(vectors[pick])
        centroids = np.stack(chosen)
        for _ in range(iterations):
            labels = (vectors @ centroids.T).argmax(1)
            updated = np.stack(
                [normalise(vectors[labels == j].mean(0)) if (labels == j).any() else centroids[j] for j in range(k)]
            )
            if np.allclose(updated, centroids):
                break
            centroids = updated
        score = float((vectors @ centroids.T).max(1).sum())
        if score > best_score:
            best, best_score = centroids, score
    assert best is not None
    return best


def find_talkers(analysis: Analysis, config: TrackerConfig) -> np.ndarray:
    """Centroids ``[K, D]``, ``0 <= K <= max_talkers``, in order of first appearance."""
    if len(analysis) == 0 or analysis.mix_energy.max() <= 0:
        return np.zeros((0, analysis.mix_voice.shape[-1]))
    loud = analysis.mix_energy >= analysis.mix_energy.max() * 10 ** (config.loud_db / 10)
    voices = analysis.mix_voice[loud]
    centroids = normalise(voices.mean(0))[None]
    for k in range(2, config.max_talkers + 1):
        if len(voices) < k:
            break
        split = spherical_kmeans(voices, k)
        gain = (voices @ split.T).max(1).mean() - (voices @ centroids.T).max(1).mean()
        if gain < config.split_gain:
            break
        centroids = split
    if len(centroids) == 1 and config.max_talkers >= 2:  # talkers who always overlap share the mixture's voice
        both = _both_active(analysis, config)
        pairs = np.einsum("bd,bd->b", analysis.out_voice[both, 0], analysis.out_voice[both, 1])
        if len(pairs) and np.median(pairs) < config.distinct_outputs:
            voices = analysis.out_voice[both].reshape(-1, analysis.out_voice.shape[-1])
            centroids = spherical_kmeans(voices, 2)
    first_seen = [int(np.argmax((voices @ centroids.T).argmax(1) == k)) for k in range(len(centroids))]
    return centroids[np.argsort(first_seen, kind="stable")]


def _both_active(analysis: Analysis, config: TrackerConfig) -> np.ndarray:
    """``[nb]`` loud blocks where every output is within ``active_db`` of the louder."""
    energy = analysis.out_energy
    loud = analysis.mix_energy >= analysis.mix_energy.max() * 10 ** (config.loud_db / 10)
    return loud & (energy.min(1) >= energy.max(1) * 10 ** (config.active_db / 10))


def decide_block(
    analysis: Analysis, b: int, centroids: np.ndarray, loudest: float, config: TrackerConfig
) -> np.ndarray | None:
    """Block ``b``'s assignment ``[max_talkers, J]`` (0/1), or None in a pause (keep the last one)."""
    energy = analysis.out_energy[b]
    active = (energy >= energy.max() * 10 ** (config.active_db / 10)) & (
        energy > loudest * 10 ** (config.silence_db / 10)
    )
    if not active.any() or len(centroids) == 0:
        return None
    matrix = np.zeros((config.max_talkers, len(energy)))
    if len(centroids) >= 2 and active.sum() >= 2:
        sims = analysis.out_voice[b] @ centroids.T  # [J, K]
        nearest = sims.argmax(1)
        if len(set(nearest[active].tolist())) == active.sum():  # every active output a different talker
            for j in np.flatnonzero(active):
                matrix[nearest[j], j] = 1.0
            for j in np.flatnonzero(~active):  # a quiet output rides with the talker nearest to it
                matrix[nearest[j], j] = 1.0
            return matrix
    matrix[int((analysis.mix_voice[b] @ centroids.T).argmax()), :] = 1.0
    return matrix


def decide(analysis: Analysis, centroids: np.ndarray, config: TrackerConfig, num_out: int) -> np.ndarray:
    """Every block's assignment ``[nb, max_talkers, J]``; pauses keep the one before (the first
    talker's at the start)."""
    loudest = float(analysis.mix_energy.max(initial=0.0))
    previous = np.zeros((config.max_talkers, num_out))
    previous[0, :] = 1.0
    matrices = np.zeros((len(analysis), config.max_talkers, num_out))
    for b in range(len(analysis)):
        matrix = decide_block(analysis, b, centroids, loudest, config)
        previous = matrices[b] = previous if matrix is None else matrix
    return matrices


def gains(matrices: np.ndarray, start: int, stop: int, block: int, fade: int) -> np.ndarray:
    """``[stop - start, K, J]``: each sample's assignment, the block matrices averaged over the
    ``fade`` samples centred on it (blocks past either end repeat the first or last)."""
    half = fade // 2
    lo, hi = start - half, stop + (fade - half) - 1 if fade > 1 else stop
    index = np.clip(np.arange(lo, hi) // block, 0, len(matrices) - 1)
    per_sample = matrices[index]
    if fade <= 1:
        return per_sample
    cumulative = np.concatenate((np.zeros((1, *per_sample.shape[1:])), np.cumsum(per_sample, axis=0)))
    return (cumulative[fade:] - cumulative[:-fade]) / fade


def render(
    outputs: np.ndarray, matrices: np.ndarray, start: int, stop: int, rate: int, config: TrackerConfig
) -> np.ndarray:
    """Talkers ``[K, stop - start]`` from ``outputs [J, N]`` between two samples."""
    block, fade = round(config.block_seconds * rate), round(config.fade_seconds * rate)
    g = gains(matrices, start, stop, block, fade)
    piece = np.asarray(outputs[:, start:stop], dtype=np.float64)
    top = float(np.finfo(np.float32).max)  # a talker's summed outputs may pass it for float input near the top
    return np.clip(np.einsum("nkj,jn->kn", g, piece), -top, top).astype(np.float32)


@dataclass
class TalkerSummary:
    """What the tracker found in one recording."""

    talkers: int  # talkers found
    active_seconds: list[float] = field(default_factory=list)  # per file written: seconds assigned speech

    def describe(self) -> str:
        """One line for a person: how many talkers, and each file's share of the speech."""
        if self.talkers == 0:
            return "no talker found (silence): the files are silent"
        seconds = ", ".join(f"spk{j + 1} {s:.1f} s" for j, s in enumerate(self.active_seconds))
        if self.talkers == 1:
            return f"1 talker: everything is in spk1, the other file is silent (speech: {seconds})"
        return f"{self.talkers} talkers (speech: {seconds})"

    @classmethod
    def of(cls, analysis: Analysis, matrices: np.ndarray, talkers: int, config: TrackerConfig) -> TalkerSummary:
        loudest = float(analysis.mix_energy.max(initial=0.0))
        speech = analysis.mix_energy > loudest * 10 ** (config.silence_db / 10)
        owns = matrices.max(axis=2) > 0  # [nb, K]
        seconds = (owns & speech[:, None]).sum(0) * config.block_seconds
        return cls(talkers, [float(s) for s in seconds])


def track_offline(
    outputs: np.ndarray, rate: int, config: TrackerConfig, embed: EmbedFn
) -> tuple[np.ndarray, TalkerSummary]:
    """The assignment matrices ``[nb, K, J]`` of a whole recording and what was found."""
    analysis = analyse(outputs, rate, config, embed)
    centroids = find_talkers(analysis, config)
    matrices = decide(analysis, centroids, config, outputs.shape[0])
    return matrices, TalkerSummary.of(analysis, matrices, len(centroids), config)


def rendered(
    outputs: np.ndarray, matrices: np.ndarray, rate: int, config: TrackerConfig, piece: int
) -> Iterator[np.ndarray]:
    """The talkers' tracks ``[K, n]`` of ``outputs [J, N]``, ``piece`` samples at a time."""
    for start in range(0, outputs.shape[1], piece):
        yield render(outputs, matrices, start, min(start + piece, outputs.shape[1]), rate, config)


@dataclass
class OnlineTalkers:
    """Talkers found so far in a stream: a loud block's voice less similar than ``new_talker`` to
    every talker starts a new one (up to ``max_talkers``); else it joins its nearest talker's mean."""

    config: TrackerConfig
    sums: list[np.ndarray] = field(default_factory=list)

    @property
    def centroids(self) -> np.ndarray:
        return np.stack([normalise(s) for s in self.sums]) if self.sums else np.zeros((0, 0))

    def observe(self, voice: np.ndarray) -> None:
        if not self.sums:
            self.sums.append(voice.astype(np.float64))
            return
        sims = self.centroids @ voice
        k = int(sims.argmax())
        if sims[k] < self.config.new_talker and len(self.sums) < self.config.max_talkers:
            self.sums.append(voice.astype(np.float64))
        else:
            self.sums[k] = self.sums[k] + voice
