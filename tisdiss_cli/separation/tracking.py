"""Talkers tracked by voice: which network output belongs to which talker, block by block.

The network separates each chunk on its own, and its outputs carry no identity: at a turn
change, or across a pause longer than the chunk overlap, the stitched outputs may swap talkers,
and a lone talker is spread over both. The tracker re-decides the assignment every
``block_seconds`` (``models/cards/voice-ge2e.md`` names the voice encoder):

1. *Analysis* (:func:`analyse`). Per block: the level of the mixture (the outputs' sum) and of
   each output; the mixture's voice over ``talker_seconds`` and each output's voice over
   ``voice_seconds``, centred on the block; and the *coherence* of the two loudest outputs (the
   correlation of their magnitude spectrograms). A lone talker that the network spread over both
   outputs gives coherent outputs (the same harmonics, split); two talkers give incoherent ones.
   Measured on devconv and dev2mix: median 0.68 where one talks, 0.15 where both do.
2. *Talkers* (:func:`find_talkers`). The voices that can be trusted to be one talker each are
   pooled: the mixture's voice where one talks (coherent outputs, or one output alone), and each
   output's voice where two talk. A file's are clustered by average linkage (:func:`count_talkers`):
   groups whose voices are on average less similar than ``talker_similarity`` are different
   talkers, and a group with less than ``min_talker_seconds`` of voices is not a talker of its own
   (its voices join the nearest talker). That finds any number of talkers from a two-output
   network: a meeting of four has at most two talking at once. Where that finds one group (one
   talker, or a file too short for two such groups), a spherical 2-means split is kept when it
   raises the voices' mean similarity by ``split_gain``; failing that, there is one talker unless
   the outputs are mostly incoherent where both are active (talkers who always overlap), and then
   the outputs' voices are split. ``speakers`` fixes the number of files: more talkers than that are
   clustered into that many, fewer leave files silent (the summary says what the voices
   suggested). Streams grow their talkers as they go (:class:`OnlineTalkers`), up to the number
   of files they were opened with.
3. *Assignment* (:func:`decide`). Each block is in one state: each output to its own talker (one
   state per ordered choice of talkers) or all outputs summed into one talker (one state per
   talker; the other files are silent there: that keeps a lone talker whole). A state scores the
   similarity of each active output's voice to its talker; summing is favoured where the outputs are coherent and where
   only one output is active. Changing state costs ``switch_cost``, or ``free_switch_cost`` next
   to a block where an output falls silent (where a turn changes or chunks may not have been
   aligned); the best sequence is found by Viterbi. Streams take the best next state given the
   last one. A recording the network separated in one pass (no chunks to align) keeps the
   network's order, and is only summed into one file when it has one talker.
4. *Rendering* (:func:`render`). Each block's assignment is a 0/1 matrix ``[talkers, outputs]``;
   the matrices are smoothed by a ``fade_seconds`` moving average across block borders, so an
   unchanged assignment leaves the outputs untouched and a change is a short cross-fade.

The thresholds and costs were chosen on devconv, devmeet and dev2mix (``tisdiss eval``), with the
bundled model; docs/separating.md (Conversations, Meetings) gives the figures.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

EmbedFn = Callable[[np.ndarray, int], np.ndarray]  # waves [B, S] at a rate -> unit vectors [B, D]


class Outputs(Protocol):
    """The network's outputs ``[J, N]``: an array, or anything read by slices ``[:, a:b]`` (a spool)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray: ...


ANALYSIS_BATCH = 64  # blocks embedded together (bounds memory on long files)
MAX_SPEAKERS = 32  # the most files a recording may be split into
CLUSTERED_VOICES = 4000  # a longer file's voices are clustered from this many, evenly spread (memory: n^2)


@dataclass(frozen=True)
class TrackerConfig:
    block_seconds: float = 0.5  # the assignment is decided this often
    voice_seconds: float = 1.0  # each output's voice is embedded over this much audio around the block
    talker_seconds: float = 1.6  # the mixture's voice, which defines the talkers, over this much
    loud_db: float = -20.0  # blocks within this of the loudest one define the talkers
    active_db: float = -20.0  # an output within this of the louder output is active ...
    silence_db: float = -40.0  # ... unless it is this far below the loudest block: a pause
    split_gain: float = 0.035  # one group or two: the second only if splitting raises the mean similarity this much
    # files: groups of voices less similar than this on average are two talkers (0.58 split one reverberant
    # or noisy talker in two; a meeting's talkers part at 0.54 and below on devmeet)
    talker_similarity: float = 0.55
    min_talker_seconds: float = 6.0  # files: a group of fewer voices than this (in blocks) is not a talker
    two_voices: float = 0.3  # outputs less coherent than this, both active: two talkers (their voices pooled)
    always_overlapping: float = 0.35  # median coherence below this where both are active: two talkers
    merge_coherence: float = 0.45  # summing is favoured above this coherence, disfavoured below ...
    merge_weight: float = 0.02  # ... by this much per 0.15 of coherence
    lone_bonus: float = 0.05  # summing is favoured this much where only one output is active
    silent_similarity: float = 0.6  # what an inactive output contributes to a state's score
    switch_cost: float = 0.3  # changing the assignment between two blocks where both outputs speak
    free_switch_cost: float = 0.2  # ... and next to a block where an output is silent
    new_talker: float = 0.6  # online: a voice less similar than this to every talker is a new one
    fade_seconds: float = 0.04  # cross-fade where the assignment changes
    speakers: int | None = None  # files written: None finds the number (files and arrays; streams: the outputs')
    max_speakers: int = 8  # the most talkers `speakers=None` finds

    def __post_init__(self) -> None:
        if self.speakers is not None and not 1 <= self.speakers <= MAX_SPEAKERS:
            raise ValueError(f"speakers must be between 1 and {MAX_SPEAKERS}, or auto; got {self.speakers}")


@dataclass
class Analysis:
    """Per block: levels and voices (rows in time order)."""

    mix_energy: np.ndarray  # [nb] mean square of the outputs' sum
    out_energy: np.ndarray  # [nb, J] mean square of each output
    mix_voice: np.ndarray  # [nb, D]
    out_voice: np.ndarray  # [nb, J, D]
    coherence: np.ndarray  # [nb] spectral correlation of the two loudest outputs (1 for a single output)

    def __len__(self) -> int:
        return len(self.mix_energy)

    @classmethod
    def concat(cls, parts: list[Analysis]) -> Analysis:
        return cls(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("mix_energy", "out_energy", "mix_voice", "out_voice", "coherence")
            )
        )


def context_samples(config: TrackerConfig, rate: int) -> int:
    """The widest voice context, in samples: how much audio around a block its analysis reads."""
    return max(round(config.talker_seconds * rate), round(config.voice_seconds * rate))


def normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def _context(signal: np.ndarray, centre: int, width: int) -> np.ndarray:
    """``signal[..., centre - width/2 : centre + width/2]``, zero-padded to ``width`` where it runs off."""
    lo, hi = centre - width // 2, centre - width // 2 + width
    piece = signal[..., max(lo, 0) : min(hi, signal.shape[-1])]
    pad = [(0, 0)] * (signal.ndim - 1) + [(max(0, -lo), max(0, hi - signal.shape[-1]))]
    return np.pad(piece, pad)


def coherence(outputs: np.ndarray, rate: int) -> float:
    """Correlation of the magnitude spectrograms (32-ms Hann frames, half overlapping) of the two
    loudest rows of ``outputs [J, n]``: near 1 when they hold the same voice split in two, near 0
    for two voices."""
    if outputs.shape[0] < 2:
        return 1.0
    loudest = np.argsort((outputs**2).sum(1))[-2:]
    size = 1 << max(4, round(np.log2(0.032 * rate)))
    if outputs.shape[1] < size:
        return 1.0
    window = np.hanning(size + 1)[:-1]
    starts = range(0, outputs.shape[1] - size + 1, size // 2)
    frames = np.stack([outputs[loudest][:, s : s + size] * window for s in starts], axis=1)  # [2, T, size]
    spectra = np.abs(np.fft.rfft(frames, axis=-1))
    a, b = (x - x.mean() for x in spectra)
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 1.0


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
    coherent = np.array([coherence(outputs[:, s : s + block], rate) for s in starts])
    return Analysis(mix_energy, out_energy, mix_voice, out_voice, coherent)


def analyse(outputs: Outputs, rate: int, config: TrackerConfig, embed: EmbedFn) -> Analysis:
    """Every block of ``outputs [J, N]`` (an array or a memory map), ``ANALYSIS_BATCH`` blocks at a time."""
    block = round(config.block_seconds * rate)
    total = -(-outputs.shape[1] // block)
    margin_blocks = -(-context_samples(config, rate) // block)
    parts = []
    for first in range(0, total, ANALYSIS_BATCH):
        count = min(ANALYSIS_BATCH, total - first)
        lo = max(0, first - margin_blocks)  # in blocks: the window starts on a block border
        window = np.asarray(outputs[:, lo * block : (first + count + margin_blocks) * block], dtype=np.float32)
        parts.append(analyse_blocks(window, first - lo, count, rate, config, embed))
    if not parts:
        num_out = outputs.shape[0]
        empty = np.zeros(0)
        return Analysis(empty, np.zeros((0, num_out)), np.zeros((0, 0)), np.zeros((0, num_out, 0)), empty)
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
        centroids = refine(vectors, np.stack(chosen), iterations)
        score = float((vectors @ centroids.T).max(1).sum())
        if score > best_score:
            best, best_score = centroids, score
    assert best is not None
    return best


def refine(vectors: np.ndarray, centroids: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Spherical k-means steps from ``centroids``: each vector to its nearest, each centroid to
    its vectors' mean direction (a centroid left without vectors stays)."""
    k = len(centroids)
    for _ in range(iterations):
        labels = (vectors @ centroids.T).argmax(1)
        updated = np.stack(
            [normalise(vectors[labels == j].mean(0)) if (labels == j).any() else centroids[j] for j in range(k)]
        )
        if np.allclose(updated, centroids):
            break
        centroids = updated
    return centroids


def activity(analysis: Analysis, config: TrackerConfig, loudest: float) -> np.ndarray:
    """``[nb, J]``: outputs within ``active_db`` of the louder one and above the pause level."""
    energy = analysis.out_energy
    louder = energy.max(axis=1, keepdims=True) * 10 ** (config.active_db / 10)
    return (energy >= louder) & (energy > loudest * 10 ** (config.silence_db / 10)) & (energy > 0)


def trusted_voices(analysis: Analysis, config: TrackerConfig, loudest: float) -> np.ndarray:
    """``[n, D]``: each loud block's voices that should be one talker each (see the module docstring)."""
    loud = analysis.mix_energy >= loudest * 10 ** (config.loud_db / 10)
    both = activity(analysis, config, loudest).all(axis=1)
    two = loud & both & (analysis.coherence < config.two_voices)
    one = loud & ~two
    return np.concatenate([analysis.mix_voice[one], analysis.out_voice[two].reshape(-1, analysis.out_voice.shape[-1])])


def split_voices(voices: np.ndarray, config: TrackerConfig, most: int, *, restarts: int = 8) -> np.ndarray:
    """Centroids ``[K, D]``, ``K <= most``, of ``voices [n, D]``: one more talker only while
    splitting raises the voices' mean similarity to their centroid by ``split_gain`` (streams,
    whose voices grow as they go, and a file's one-or-two decision)."""
    centroids = normalise(voices.mean(0))[None]
    for k in range(2, most + 1):
        if len(voices) < k:
            break
        split = spherical_kmeans(voices, k, restarts=restarts)
        gain = (voices @ split.T).max(1).mean() - (voices @ centroids.T).max(1).mean()
        if gain < config.split_gain:
            break
        centroids = split
    return centroids


def count_talkers(voices: np.ndarray, config: TrackerConfig) -> np.ndarray:
    """Centroids ``[K, D]``, ``1 <= K <= max_speakers``, of a whole recording's ``voices [n, D]``:
    average-linkage groups cut at ``talker_similarity``; groups of at least ``min_talker_seconds``
    are talkers (largest first), and every voice then goes to its nearest talker (k-means steps)."""
    if len(voices) > CLUSTERED_VOICES:
        sample = voices[np.linspace(0, len(voices) - 1, CLUSTERED_VOICES).round().astype(int)]
    else:
        sample = voices
    if len(sample) < 2:
        return normalise(voices.mean(0))[None]
    tree = linkage(sample.astype(np.float64), method="average", metric="cosine")
    labels = fcluster(tree, 1 - config.talker_similarity, criterion="distance")
    sizes = np.bincount(labels)
    smallest = max(config.min_talker_seconds / config.block_seconds * len(sample) / len(voices), 1.0)
    talkers = [c for c in np.argsort(-sizes, kind="stable") if sizes[c] >= smallest][: config.max_speakers]
    if len(talkers) <= 1:
        return normalise(voices.mean(0))[None]
    return refine(voices, normalise(np.stack([sample[labels == c].mean(0) for c in talkers])))


@dataclass(frozen=True)
class Talkers:
    """What a recording's voices say: the talkers written (centroids ``[K, D]`` in order of first
    appearance) and how many the voices suggested before ``speakers`` fixed the number."""

    centroids: np.ndarray
    suggested: int

    def __len__(self) -> int:
        return len(self.centroids)


def find_talkers(analysis: Analysis, config: TrackerConfig) -> Talkers:
    """The talkers of a whole recording (see the module docstring)."""
    none = Talkers(np.zeros((0, analysis.mix_voice.shape[-1])), 0)
    if len(analysis) == 0 or analysis.mix_energy.max() <= 0:
        return none
    loudest = float(analysis.mix_energy.max())
    voices = trusted_voices(analysis, config, loudest)
    voices = voices[np.linalg.norm(voices, axis=1) > 0.5]  # an embedding of silence is no voice
    if len(voices) == 0:
        return none
    centroids = count_talkers(voices, config)
    if len(centroids) == 1:  # one group, or too few voices for two (a short file): is a 2-means split worth it?
        centroids = split_voices(voices, config, 2)
    loud = analysis.mix_energy >= loudest * 10 ** (config.loud_db / 10)
    if len(centroids) == 1:  # talkers who always overlap share one voice mixed
        both = loud & activity(analysis, config, loudest).all(axis=1)
        if both.sum() >= 2 and np.median(analysis.coherence[both]) < config.always_overlapping:
            centroids = spherical_kmeans(analysis.out_voice[both].reshape(-1, analysis.out_voice.shape[-1]), 2)
    suggested = len(centroids)
    if config.speakers is not None and suggested > config.speakers:  # asked for fewer: the largest absorb the rest
        centroids = refine(voices, centroids[: config.speakers])
    order = first_appearance(analysis.out_voice[loud].reshape(-1, centroids.shape[-1]), centroids)
    return Talkers(centroids[order], suggested)


def files_for(config: TrackerConfig, talkers: int) -> int:
    """How many files a recording with ``talkers`` found is written to: ``speakers``, or one per
    talker (at least one)."""
    return config.speakers if config.speakers is not None else max(talkers, 1)


def first_appearance(voices: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The order of ``centroids`` by the first of ``voices [n, D]`` (in time order) nearest to each."""
    nearest = (voices @ centroids.T).argmax(1)
    first = [int(np.argmax(nearest == k)) if (nearest == k).any() else len(voices) for k in range(len(centroids))]
    return np.argsort(first, kind="stable")


def states(talkers: int, outputs: int, files: int) -> np.ndarray:
    """Every assignment ``[S, files, outputs]`` (0/1): each output to its own talker, for every
    ordered choice of talkers (when there are enough), then all outputs summed into each talker."""
    found = []
    if talkers >= outputs:
        for order in itertools.permutations(range(talkers), outputs):
            matrix = np.zeros((files, outputs))
            matrix[list(order), range(outputs)] = 1.0
            found.append(matrix)
    for k in range(talkers):
        matrix = np.zeros((files, outputs))
        matrix[k, :] = 1.0
        found.append(matrix)
    return np.stack(found)


def state_scores(
    analysis: Analysis,
    b: int,
    centroids: np.ndarray,
    candidates: np.ndarray,
    active: np.ndarray,
    config: TrackerConfig,
) -> np.ndarray:
    """``[S]``: how well each candidate assignment fits block ``b`` (0 for all in a pause)."""
    if not active.any():
        return np.zeros(len(candidates))
    sims = analysis.out_voice[b] @ centroids.T  # [J, K]
    owner = candidates[:, : len(centroids)].argmax(axis=1)  # [S, J]: each output's talker
    per_output = np.where(active, sims[np.arange(sims.shape[0]), owner], config.silent_similarity)
    scores = per_output.sum(axis=1)
    summed = candidates.sum(axis=2).max(axis=1) == candidates.shape[2]  # [S]: one talker has every output
    if active.all():
        scores += summed * config.merge_weight * (analysis.coherence[b] - config.merge_coherence) / 0.15
    else:
        scores += summed * config.lone_bonus
    return scores


def decide(analysis: Analysis, centroids: np.ndarray, config: TrackerConfig, num_out: int, files: int) -> np.ndarray:
    """Every block's assignment ``[nb, files, J]`` (the Viterbi path; see the module docstring)."""
    nb = len(analysis)
    if len(centroids) == 0 or nb == 0:  # silence: the network's order
        return one_pass(nb, 0, files, num_out)
    candidates = states(len(centroids), num_out, files)
    loudest = float(analysis.mix_energy.max())
    active = activity(analysis, config, loudest)
    scores = np.stack([state_scores(analysis, b, centroids, candidates, active[b], config) for b in range(nb)])
    n = len(candidates)
    total, back = scores[0].copy(), np.zeros((nb, n), dtype=int)
    for b in range(1, nb):
        cost = config.free_switch_cost if not (active[b].all() and active[b - 1].all()) else config.switch_cost
        moves = total[:, None] - cost * (1 - np.eye(n))
        back[b], total = moves.argmax(0), moves.max(0) + scores[b]
    path = [int(total.argmax())]
    for b in range(nb - 1, 0, -1):
        path.append(int(back[b][path[-1]]))
    return candidates[path[::-1]]


def one_pass(num_blocks: int, talkers: int, files: int, num_out: int) -> np.ndarray:
    """The assignment of a recording the network separated whole: the network's order (outputs
    beyond the files summed into the last file), or everything in the first file when there is one
    talker."""
    matrix = np.zeros((files, num_out))
    if talkers == 1:
        matrix[0, :] = 1.0
    else:
        for j in range(num_out):
            matrix[min(j, files - 1), j] = 1.0
    return np.repeat(matrix[None], num_blocks, axis=0)


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
    outputs: Outputs, matrices: np.ndarray, start: int, stop: int, rate: int, config: TrackerConfig
) -> np.ndarray:
    """Talkers ``[K, stop - start]`` from ``outputs [J, N]`` between two samples."""
    block, fade = round(config.block_seconds * rate), round(config.fade_seconds * rate)
    g = gains(matrices, start, stop, block, fade)
    piece = np.asarray(outputs[:, start:stop], dtype=np.float64)
    top = float(np.finfo(np.float32).max)  # a talker's summed outputs may pass it for float input near the top
    return np.clip(np.einsum("nkj,jn->kn", g, piece), -top, top).astype(np.float32)


Segment = tuple[int, float, float]  # (file index from 0, start, end in seconds)


def segments_of(speaks: np.ndarray, block_seconds: float, seconds: float) -> list[Segment]:
    """Who speaks when, from ``speaks [nb, K]`` (a file gets active speech in a block): each run of
    blocks as one segment, ordered by start, the last cut at ``seconds``."""
    found: list[Segment] = []
    for k in range(speaks.shape[1] if speaks.ndim == 2 else 0):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], speaks[:, k].astype(np.int8), [0]))))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            found.append((k, round(a * block_seconds, 3), round(min(b * block_seconds, seconds), 3)))
    return sorted(found, key=lambda seg: (seg[1], seg[0]))


@dataclass
class TalkerSummary:
    """What the tracker found in one recording."""

    talkers: int  # talkers found (and written)
    active_seconds: list[float] = field(default_factory=list)  # per file written: seconds assigned speech
    suggested: int | None = None  # talkers the voices suggest, where `speakers` fixed another number
    asked: int | None = None  # the fixed number of files (`speakers`), None for auto
    segments: list[Segment] = field(default_factory=list)  # who speaks when (block resolution)

    @property
    def files(self) -> int:
        return len(self.active_seconds)

    def describe(self) -> str:
        """One line for a person: how many talkers, and each file's share of the speech."""
        if self.talkers == 0:
            return "no talker found (silence): the files are silent" if self.files > 1 else "no talker (silence)"
        seconds = ", ".join(f"spk{j + 1} {s:.1f} s" for j, s in enumerate(self.active_seconds))
        if self.talkers == 1 and self.files > 1:
            return f"1 talker: everything is in spk1, the other files are silent (speech: {seconds})"
        return f"{self.talkers} talker{'s' if self.talkers > 1 else ''} (speech: {seconds})"

    @property
    def warning(self) -> str | None:
        """Where a fixed number of files disagrees with the voices: what they suggest."""
        if self.asked is None or self.suggested is None or self.suggested == self.asked:
            return None
        if self.suggested > self.asked:
            return f"the voices suggest {self.suggested} talkers; {self.asked} files as asked: some talkers share one"
        if self.suggested == 0:
            return None  # silence: nothing to suggest
        silent = ", ".join(f"spk{j + 1}" for j in range(self.suggested, self.asked))
        return f"the voices suggest {self.suggested} talker{'s' if self.suggested > 1 else ''}; {silent} silent"

    @classmethod
    def of(
        cls, analysis: Analysis, matrices: np.ndarray, talkers: Talkers, config: TrackerConfig, seconds: float
    ) -> TalkerSummary:
        active = activity(analysis, config, float(analysis.mix_energy.max(initial=0.0)))  # [nb, J]
        speaks = (matrices * active[:, None, :]).max(axis=2) > 0  # [nb, K]: a file gets an active output
        return cls(
            min(len(talkers), matrices.shape[1]),
            [float(s) for s in speaks.sum(0) * config.block_seconds],
            suggested=talkers.suggested,
            asked=config.speakers,
            segments=segments_of(speaks, config.block_seconds, seconds),
        )


def track_offline(
    outputs: Outputs, rate: int, config: TrackerConfig, embed: EmbedFn, *, single_pass: bool = False
) -> tuple[np.ndarray, TalkerSummary]:
    """The assignment matrices ``[nb, K, J]`` of a whole recording (``K`` files) and what was
    found; ``single_pass``: the network separated it whole (see the module docstring)."""
    analysis = analyse(outputs, rate, config, embed)
    talkers = find_talkers(analysis, config)
    files = files_for(config, len(talkers))
    if single_pass:
        matrices = one_pass(len(analysis), len(talkers), files, outputs.shape[0])
    else:
        matrices = decide(analysis, talkers.centroids, config, outputs.shape[0], files)
    return matrices, TalkerSummary.of(analysis, matrices, talkers, config, outputs.shape[1] / rate)


def rendered(
    outputs: Outputs, matrices: np.ndarray, rate: int, config: TrackerConfig, piece: int
) -> Iterator[np.ndarray]:
    """The talkers' tracks ``[K, n]`` of ``outputs [J, N]``, ``piece`` samples at a time."""
    for start in range(0, outputs.shape[1], piece):
        yield render(outputs, matrices, start, min(start + piece, outputs.shape[1]), rate, config)


ONLINE_VOICES = 1000  # trusted voices a stream keeps for its talkers (the latest; about 5-10 minutes)
ONLINE_REFIT_BLOCKS = 4  # a stream re-finds its talkers this often (blocks)
ONLINE_SPLIT_VOICES = 30  # a stream looks for a second talker only once it has this many voices


@dataclass
class OnlineTalkers:
    """Talkers found so far in a stream: every ``ONLINE_REFIT_BLOCKS`` blocks, the trusted voices
    so far (:func:`trusted_voices`) are split as a file's are (:func:`split_voices`), and the new
    centroids are matched to the old ones so that each talker keeps their file; a talker once found
    is kept. Each block then takes the best assignment given the last one (:meth:`decide`): a
    greedy step where files take the Viterbi path."""

    config: TrackerConfig
    files: int = 2  # files written: the most talkers a stream finds
    voices: list[np.ndarray] = field(default_factory=list)
    centroids: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    since_fit: int = 0
    loudest: float = 0.0
    last: np.ndarray | None = None  # the previous block's assignment
    both_before: bool = False  # both outputs were active in the previous block

    @property
    def found(self) -> int:
        return len(self.centroids)

    def decide(self, block: Analysis) -> np.ndarray:
        """The assignment ``[files, J]`` of the one block in ``block``."""
        num_out = block.out_energy.shape[1]
        self.loudest = max(self.loudest, float(block.mix_energy[0]))
        if self.loudest > 0:
            self.observe(trusted_voices(block, self.config, self.loudest))
        if self.last is None:
            self.last = one_pass(1, 0, self.files, num_out)[0]
        if not self.found:
            return self.last
        candidates = states(self.found, num_out, self.files)
        active = activity(block, self.config, self.loudest)[0]
        scores = state_scores(block, 0, self.centroids, candidates, active, self.config)
        if active.any():
            both = active.all() and self.both_before
            cost = self.config.switch_cost if both else self.config.free_switch_cost
            moved = np.array([not np.array_equal(c, self.last) for c in candidates])
            self.last = candidates[int(np.argmax(scores - cost * moved))]
        self.both_before = bool(active.all())
        return self.last

    def observe(self, voices: np.ndarray) -> None:
        self.voices.extend(voices)
        del self.voices[:-ONLINE_VOICES]
        self.since_fit += 1
        if self.voices and (self.since_fit >= ONLINE_REFIT_BLOCKS or not self.found):
            self.refit()

    def refit(self) -> None:
        self.since_fit = 0
        voices = np.stack(self.voices)
        if len(voices) < ONLINE_SPLIT_VOICES and self.found <= 1:
            new = normalise(voices.mean(0))[None]
        else:
            new = split_voices(voices, self.config, self.files, restarts=2)
        if len(new) < self.found:  # a talker once found stays: split into as many as before
            new = spherical_kmeans(voices, self.found, restarts=2)
        if self.found <= 1:  # the first talker heard is talker 1, as in a file (and as emitted so far)
            new = new[first_appearance(voices, new)]
        else:  # each old talker keeps their index: the best match of old and new centroids
            order = max(
                itertools.permutations(range(len(new)), self.found),
                key=lambda p: float(sum(self.centroids[k] @ new[p[k]] for k in range(self.found))),
            )
            new = new[list(order) + [k for k in range(len(new)) if k not in order]]
        self.centroids = new
