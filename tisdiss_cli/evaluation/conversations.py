"""The conversation benchmark: long recordings scored through the engine ``tisdiss separate`` uses.

Each mixture goes through :meth:`Separator.separate` with the separator's own settings (chunking,
stitching, voice tracking, depth, precision), as ``tisdiss separate`` would run it, and is scored
whole. Metrics per recording (docs/evaluation.md):

- ``si_snri`` / ``sdri``: whole-file improvement in the model's band (everything resampled to the
  model's rate) and ``*_full`` at the input's rate, under the best assignment of outputs to talkers;
  for an input above the model's rate also ``si_snri_high`` and ``si_snr_high``, the band above
  (each signal less its model-band part, resampled down and back: what the model's band leaves
  out), the improvement and the SI-SNR against each talker's own highs;
- ``wrong``: of the 1-s windows where exactly one talker speaks, those where that talker's output
  holds less of the window's energy than the other output (the talker is in the wrong file);
- ``leakage_db``: over those windows, the other output's energy relative to the talker's own (dB);
- ``swapped``: of the 1-s windows where both talk within ``OVERLAP_DB`` of each other, those whose
  best assignment (each output's projection on each talker, either sign) differs from the file's;
  ``merged``: those where one output holds both talkers (the other is 20 dB below it);
- ``absent_db``: for a recording with a silent reference (that talker is absent), the level of the
  absent talker's output relative to the present one's (``SILENT_DB`` when it is all zeros, or when
  no file was written for them), and ``present_si_snr``, the SI-SNR of the louder output against
  the talker (the mixture is the talker there, so an improvement would mean nothing);
- any number of talkers (a meeting: ``s1`` ... ``sK``): files are matched to talkers by
  :func:`~.talkers.match_talkers` (a talker without a file is missed), ``per_talker`` holds each
  talker's SI-SNRi in the model's band (``si_snri`` is their mean), ``talkers`` how many there
  are against ``talkers_found``, and ``missed_seconds`` / ``wrong_seconds`` / ``false_alarm_seconds``
  of ``speech_seconds`` who was heard when (:func:`~.talkers.speech_errors`).

A talker is active in a window above ``ACTIVE_SHARE`` of the louder talker's energy there (and
the window is not silence: above ``SILENCE_SHARE`` of the loudest window).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import soxr

from ..separation.separator import Separator
from .metrics import band_above, bss_sdr, mixture_baseline, si_snr_matrix
from .talkers import match_talkers, per_talker_si_snri, speech_errors
from .testset import TestSet, TestSetError, load_testset, metadata_genders, read_example

WINDOW_SECONDS = 1.0
ACTIVE_SHARE = 1e-3
SILENCE_SHARE = 1e-4
OVERLAP_DB = 10.0
MERGED_SHARE = 1e-2  # an output this far (20 dB) below the other in an overlapped window: talkers merged
SILENT_DB = -200.0  # the level reported for an output of zeros
PAIR_TYPES = ("FF", "FM", "MM", "solo", "meeting")  # meeting: three talkers or more


@dataclass
class ConversationResult:
    id: str
    pair: str  # FF / FM / MM (from metadata.tsv), solo (one reference silent), or "" when unknown
    seconds: float
    talkers_found: int | None
    si_snri: float | None  # model's band; None for a solo file (one talker: see absent_db)
    sdri: float | None
    si_snri_full: float | None  # input's rate
    sdri_full: float | None
    si_snri_high: float | None  # the band above the model's (None at or below the model's rate)
    si_snr_high: float | None  # the same band, SI-SNR against each talker's own highs (mean over talkers)
    single_windows: int
    wrong_windows: int
    leakage_db: float | None
    overlap_windows: int
    swapped_windows: int
    merged_windows: int  # overlapped windows where one output holds both talkers (counted apart from swaps)
    absent_db: float | None  # solo: the absent talker's output against the present one's
    present_si_snr: float | None = None  # solo: SI-SNR of the louder output against the talker, model's band
    talkers: int = 0  # talkers in the references (a silent reference is no talker)
    files: int = 0  # files written
    per_talker: list[float | None] = field(default_factory=list)  # SI-SNRi per talker, model's band (None: no file)
    per_talker_full: list[float | None] = field(default_factory=list)  # ... at the input's rate
    speech_seconds: float = 0.0  # who was heard when (model's band, summed over talkers)
    missed_seconds: float = 0.0
    wrong_seconds: float = 0.0
    false_alarm_seconds: float = 0.0


@dataclass
class PairSummary:
    pair: str
    recordings: int
    si_snri: float | None
    wrong_share: float | None
    leakage_db: float | None
    absent_db: float | None


@dataclass
class ConversationReport:
    model: str
    testset: str
    sample_rate: int
    model_rate: int
    preset: str
    depth: tuple[int, int]
    segment_seconds: float
    overlap: float
    precision: str
    tracker: str
    speakers: str = "auto"  # files per recording: auto (one per talker found) or a number
    band: str = "model"  # full: the outputs hold the input's band above the model's
    denoise: bool = False  # the mixtures went through RNNoise first (--denoise)
    rows: list[ConversationResult] = field(default_factory=list)
    pairs: list[PairSummary] = field(default_factory=list)

    @property
    def conversations(self) -> list[ConversationResult]:
        return [r for r in self.rows if r.si_snri is not None]

    @property
    def mean_si_snri(self) -> float | None:
        values = [r.si_snri for r in self.conversations if r.si_snri is not None]
        return float(np.mean(values)) if values else None

    def mean(self, name: str) -> float | None:
        """The mean of a ConversationResult field over the conversations that have it."""
        values = [getattr(r, name) for r in self.conversations if getattr(r, name) is not None]
        return float(np.mean(values)) if values else None

    @property
    def wrong_share(self) -> float | None:
        single = sum(r.single_windows for r in self.rows)
        return sum(r.wrong_windows for r in self.rows) / single if single else None

    @property
    def missed_or_wrong_share(self) -> float | None:
        """Missed plus wrong-talker speech over every recording, as a share of the speech time."""
        speech = sum(r.speech_seconds for r in self.rows)
        return sum(r.missed_seconds + r.wrong_seconds for r in self.rows) / speech if speech else None

    @property
    def talkers_counted(self) -> int:
        """Recordings whose number of talkers was found exactly."""
        return sum(r.talkers_found == r.talkers for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            mean_si_snri=self.mean_si_snri,
            wrong_share=self.wrong_share,
            missed_or_wrong_share=self.missed_or_wrong_share,
            talkers_counted=self.talkers_counted,
        )
        out.update({f"mean_{name}": self.mean(name) for name in ("si_snri_full", "si_snri_high", "si_snr_high")})
        return out


def is_conversation_set(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a devconv-style set: a ``metadata.tsv`` whose header names
    ``overlap_of_speech`` (what ``tisdiss eval`` scores as conversations by default)."""
    metadata = os.path.join(path, "metadata.tsv")
    try:
        with open(metadata, encoding="utf-8") as f:
            return "overlap_of_speech" in f.readline().rstrip("\n").split("\t")
    except (OSError, UnicodeDecodeError):
        return False


def pair_types(testset: TestSet) -> dict[str, str]:
    """Recording id -> FF / FM / MM from ``metadata.tsv`` (:func:`metadata_genders`); a row with one
    gender only is ``solo``, with three or more ``meeting``."""
    types = {}
    for utt, genders in metadata_genders(testset).items():
        known = sorted(g for g in genders if g)
        types[utt] = "".join(known) if len(known) == 2 else "solo" if len(known) < 2 else "meeting"
    return types


def _energy_db(x: np.ndarray) -> float:
    energy = float(np.sum(np.asarray(x, np.float64) ** 2))
    return 10 * np.log10(energy) if energy > 0 else SILENT_DB


def window_counts(est: np.ndarray, ref: np.ndarray, owner: Sequence[int | None], rate: int) -> dict[str, Any]:
    """The 1-s window metrics of one recording (model's band): see the module docstring.
    ``owner[k]``: the output that is talker ``k``'s (None: no file is theirs)."""
    width = round(WINDOW_SECONDS * rate)
    n = est.shape[1] // width
    ref_e = (ref[:, : n * width].reshape(ref.shape[0], n, width) ** 2).sum(-1)  # [K, n]
    est_e = (est[:, : n * width].reshape(est.shape[0], n, width) ** 2).sum(-1)
    loud = ref_e.max(0)
    speech = loud > SILENCE_SHARE * loud.max(initial=0.0)
    active = (ref_e > ACTIVE_SHARE * loud) & speech
    single = active.sum(0) == 1
    near = ref_e > 10 ** (-OVERLAP_DB / 10) * loud  # [K, n]: within OVERLAP_DB of the loudest talker
    both = (near.sum(0) == 2) & speech
    wrong = 0
    own_total = other_total = 0.0
    for w in np.flatnonzero(single):
        k = int(np.flatnonzero(active[:, w])[0])
        j = owner[k]
        own = est_e[j, w] if j is not None else 0.0
        other = sum(est_e[i, w] for i in range(est.shape[0]) if i != j)
        wrong += int(other > own)
        own_total, other_total = own_total + own, other_total + other
    leak = None
    if own_total > 0:
        leak = 10 * np.log10(other_total / own_total) if other_total > 0 else SILENT_DB
    swapped = merged = 0
    for w in np.flatnonzero(both):
        pair = [int(k) for k in np.flatnonzero(near[:, w])]
        files = [owner[k] for k in pair]
        if est.shape[0] < 2 or None in files:
            continue  # a talker without a file is counted by the speech errors, not here
        sl = slice(w * width, (w + 1) * width)
        if est_e[files, w].min() < MERGED_SHARE * est_e[files, w].max():  # both talkers in one file: not a swap
            merged += 1
            continue
        corr = ref[pair, sl] @ est[:, sl].T  # [2, J]
        share = corr**2 / np.maximum(est_e[:, w], 1e-30)  # energy of each output along each talker (any sign)
        local = max(itertools.permutations(range(est.shape[0]), 2), key=lambda p: share[0, p[0]] + share[1, p[1]])
        swapped += int(list(local) != files)
    return {
        "single_windows": int(single.sum()),
        "wrong_windows": wrong,
        "leakage_db": leak,
        "overlap_windows": int(both.sum()),
        "swapped_windows": swapped,
        "merged_windows": merged,
    }


def _to_rate(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return x
    return np.asarray(soxr.resample(np.ascontiguousarray(x.T), rate, target), np.float64).T.reshape(x.shape[0], -1)


def score_recording(
    est: np.ndarray, refs: np.ndarray, mix: np.ndarray, rate: int, model_rate: int, *, with_sdr: bool = True
) -> dict[str, Any]:
    """Every metric of one recording: ``est [J, L]``, ``refs [K, L]``, ``mix [L]`` at ``rate``
    (``J`` and ``K`` may differ: files are matched to talkers)."""
    present = [k for k in range(refs.shape[0]) if np.any(refs[k])]
    band = {name: _to_rate(x, rate, model_rate) for name, x in (("est", est), ("refs", refs), ("mix", mix[None]))}
    length = min(band["est"].shape[1], band["refs"].shape[1], band["mix"].shape[1])
    b_est, b_refs, b_mix = (band[k][:, :length] for k in ("est", "refs", "mix"))
    keys = (
        "si_snri",
        "sdri",
        "si_snri_full",
        "sdri_full",
        "si_snri_high",
        "si_snr_high",
        "absent_db",
        "present_si_snr",
    )
    out: dict[str, Any] = dict.fromkeys(keys)
    out.update(talkers=len(present), files=est.shape[0], per_talker=[], per_talker_full=[])
    owner: list[int | None]
    if len(present) == 1 and refs.shape[0] > 1:  # one talker only: how quiet are the other files?
        levels = [_energy_db(e) for e in b_est]
        loud = int(np.argmax(levels))
        others = [levels[j] for j in range(len(levels)) if j != loud]
        absent = float(max(others) - levels[loud]) if others else SILENT_DB  # no file for them: silent
        out["absent_db"] = absent if levels[loud] > SILENT_DB else 0.0
        k = present[0]
        out["present_si_snr"] = float(si_snr_matrix(b_est[loud][None], b_refs[k][None])[0, 0])
        owner = [None] * refs.shape[0]
        owner[k] = loud
        for other in (i for i in range(refs.shape[0]) if i != k):  # an absent talker's file: the next one, if any
            owner[other] = next((j for j in range(est.shape[0]) if j not in owner), None)
    else:
        owner = [None] * refs.shape[0]  # a silent reference (an absent talker) gets no file
        for k, j in zip(present, match_talkers(b_est, b_refs[present]), strict=True):
            owner[k] = j
        out["per_talker"] = per_talker_si_snri(b_est, b_refs[present], b_mix[0], [owner[k] for k in present])
        out["per_talker_full"] = per_talker_si_snri(est, refs[present], mix, [owner[k] for k in present])
        matched = [k for k in present if owner[k] is not None]
        for suffix, (e, r, m) in (("", (b_est, b_refs, b_mix[0])), ("_full", (est, refs, mix))):
            aligned = np.asarray(e)[[j for k in matched if (j := owner[k]) is not None]]
            snr = np.diag(si_snr_matrix(aligned, r[matched]))
            baseline = mixture_baseline(m, r[matched], with_sdr=with_sdr)
            out["si_snri" + suffix] = float(snr.mean() - baseline.si_snr)
            # both talkers in one file, the other silent: SDR is undefined there, SI-SNR is not
            if with_sdr and baseline.sdr is not None and all(np.any(x) for x in aligned):
                sdr, _ = bss_sdr(aligned, r[matched], compute_permutation=False, prepared=baseline.prepared)
                out["sdri" + suffix] = float(sdr.mean() - baseline.sdr)
        if rate > model_rate:
            files = [j for k in matched if (j := owner[k]) is not None]
            e, r, m = (band_above(x, rate, model_rate) for x in (np.asarray(est)[files], refs[matched], mix[None]))
            snr = np.diag(si_snr_matrix(e, r))
            out["si_snr_high"] = float(snr.mean())
            out["si_snri_high"] = float(snr.mean() - mixture_baseline(m[0], r, with_sdr=False).si_snr)
    out.update(window_counts(b_est, b_refs, owner, model_rate))
    errors = speech_errors(b_est, b_refs[present], [owner[k] for k in present], model_rate)
    out.update(
        speech_seconds=errors.speech_seconds,
        missed_seconds=errors.missed_seconds,
        wrong_seconds=errors.wrong_seconds,
        false_alarm_seconds=errors.false_alarm_seconds,
    )
    return out


def summarise_pairs(rows: Sequence[ConversationResult]) -> list[PairSummary]:
    summaries = []
    for pair in (*PAIR_TYPES, ""):
        mine = [r for r in rows if r.pair == pair]
        if not mine:
            continue
        snr = [r.si_snri for r in mine if r.si_snri is not None]
        single = sum(r.single_windows for r in mine)
        leaks = [r.leakage_db for r in mine if r.leakage_db is not None and r.leakage_db > SILENT_DB]
        absent = [r.absent_db for r in mine if r.absent_db is not None]
        summaries.append(
            PairSummary(
                pair or "unknown",
                len(mine),
                float(np.mean(snr)) if snr else None,
                sum(r.wrong_windows for r in mine) / single if single else None,
                float(np.mean(leaks)) if leaks else (SILENT_DB if mine else None),
                max(absent) if absent else None,
            )
        )
    return summaries


def evaluate_conversations(
    separator: Separator,
    testset: TestSet | str | os.PathLike,
    *,
    limit: int | None = None,
    with_sdr: bool = True,
    progress: Callable[[int, int, ConversationResult], None] | None = None,
) -> ConversationReport:
    """Separate every recording of ``testset`` as ``tisdiss separate`` would with ``separator``'s
    settings, and score it (see the module docstring)."""
    tset = testset if isinstance(testset, TestSet) else load_testset(testset)
    if limit:
        tset = tset.head(limit)
    if tset.num_refs < 2:
        raise TestSetError(f"{tset.root}: a conversation set needs s1 and s2 references")
    pairs = pair_types(tset)
    depth = separator.depth()
    report = ConversationReport(
        model=separator.loaded.name,
        testset=str(tset.root),
        sample_rate=0,
        model_rate=separator.sample_rate,
        preset=separator.preset,
        depth=(depth.n_sep, depth.n_re),
        segment_seconds=separator.segment_seconds,
        overlap=separator.plan.overlap_samples / separator.plan.segment_samples,
        precision=separator.precision.name,
        tracker=separator.tracker,
        speakers=str(separator.speakers),
        band=separator.band,
        denoise=separator.denoise,
    )
    for i, utt in enumerate(tset.utterances):
        example = read_example(utt)
        report.sample_rate = example.sample_rate
        est = separator.separate(example.mix.astype(np.float32), example.sample_rate)
        found = separator.last_talkers
        scores = score_recording(
            est.astype(np.float64),
            example.refs,
            example.mix,
            example.sample_rate,
            separator.sample_rate,
            with_sdr=with_sdr,
        )
        pair = pairs.get(utt.id, "solo" if scores["absent_db"] is not None else "")
        row = ConversationResult(
            id=utt.id,
            pair=pair,
            seconds=len(example.mix) / example.sample_rate,
            talkers_found=found.talkers if found is not None else None,
            **scores,
        )
        report.rows.append(row)
        if progress is not None:
            progress(i + 1, len(tset), row)
    report.pairs = summarise_pairs(report.rows)
    return report
