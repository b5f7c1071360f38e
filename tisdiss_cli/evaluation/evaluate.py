"""Evaluation on a test set: paper-comparable metrics and the depth–quality curve.

Each utterance goes through the model whole (as in the paper) ONCE: ``iter_depths`` yields the
decoded output after every reconstruction repetition, so scoring N_re = 1..8 costs what the
deepest setting costs. The main scores are in the model's band (the set resampled to the model's
rate); a set above the model's rate is also scored at its own rate (``si_snri_full``: the outputs
as ``tisdiss separate`` writes them, with the band above the model's unless ``band="model"``)
and in the band above alone (``si_snri_high``, ``si_snr_high``). The real-time factor of each
setting is timed separately, on the same device, with plain ``model(mix, n_sep=, n_re=)`` calls
on the first few utterances.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio import files as audio
from ..audio.denoise import denoised, rnnoise
from ..model.depth import MAX_REPEATS, Depth
from ..model.network import TISDiSS
from ..model.precision import at_precision
from ..separation.adaptive import converged
from ..separation.fullband import check_band, separated_at_rate
from ..util.fileio import atomic_write as _atomic_write
from ..util.timing import Stopwatch
from ..zoo.load import LoadedModel
from . import metrics, perceptual
from .testset import (
    AudioExample,
    TestSet,
    Utterance,
    check_headers,
    gender_pairs,
    load_testset,
    read_example,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalProgress:
    """Reported after each scored utterance (stage "score") and each timed setting ("rtf")."""

    stage: str  # "score" or "rtf"
    done: int  # utterances scored / settings timed so far
    total: int
    utterance: str  # id of the utterance just scored ("" for "rtf")
    running_si_snri: dict[int, float]  # n_re -> mean SI-SNRi so far
    audio_seconds: float = 0.0  # mixture audio scored so far
    audio_total: float = 0.0  # mixture audio of the whole (limited) test set


ProgressFn = Callable[[EvalProgress], None]


@dataclass(frozen=True)
class UtteranceResult:
    """Scores of one utterance at one setting (dB)."""

    id: str
    n_sep: int
    n_re: int
    si_snr: float
    si_snri: float
    sdr: float | None
    sdri: float | None
    perm: tuple[int, ...]  # estimate perm[j] was matched to reference s{j+1}
    stoi: float | None = None  # mean STOI over speakers (None unless requested)
    pesq: float | None = None  # mean PESQ (MOS-LQO) over speakers (None unless requested)
    adaptive: bool = False  # the adaptive-depth row (n_re = the depth it stopped at)
    si_snri_full: float | None = None  # at the set's rate, when above the model's
    si_snri_high: float | None = None  # the band above the model's alone
    si_snr_high: float | None = None  # that band, SI-SNR against each talker's own


@dataclass(frozen=True)
class SettingResult:
    """Mean scores over the evaluated utterances at one (n_sep, n_re), plus its speed."""

    n_sep: int
    n_re: int
    utterances: int
    si_snr: float
    si_snri: float
    sdr: float | None
    sdri: float | None
    rtf: float | None  # compute seconds per audio second (None when not timed)
    stoi: float | None = None  # None unless requested
    pesq: float | None = None
    si_snri_full: float | None = None  # at the set's rate (None when the set is at the model's)
    si_snri_high: float | None = None
    si_snr_high: float | None = None


@dataclass(frozen=True)
class GroupResult:
    """Mean scores of one group of utterances (e.g. same-gender pairs) at one N_re."""

    group: str
    n_re: int
    utterances: int
    si_snri: float
    sdri: float | None


@dataclass
class EvalReport:
    """Everything ``tisdiss eval`` prints or writes."""

    model: str
    testset: str
    layout: str
    sample_rate: int  # rate the scores were computed at (the model's)
    device: str
    settings: list[SettingResult]
    utterances: list[UtteranceResult] = field(default_factory=list)
    audio_seconds: float = 0.0  # total duration of the scored mixtures
    forward_seconds: float = 0.0  # wall time of the one-pass sweeps
    metric_seconds: float = 0.0  # wall time of scoring (SI-SNR, SDR and any perceptual metric)
    sdr_backend: str | None = "fast"  # None when SDR was not computed
    metrics: tuple[str, ...] = ()  # perceptual metrics scored ("stoi", "pesq")
    pesq_mode: str | None = None  # "nb" or "wb" when PESQ was scored
    rtf_utterances: int = 0  # utterances behind each RTF figure
    adaptive: SettingResult | None = None  # adaptive depth: n_re is the deepest allowed
    adaptive_threshold: float | None = None  # its stopping threshold (dB)
    adaptive_mean_n_re: float | None = None  # mean depth it stopped at
    precision: str = "fp32"  # what the network computed in (see tisdiss_cli.util.precision)
    groups: list[GroupResult] = field(default_factory=list)  # same-/cross-gender means, where known
    input_rate: int | None = None  # the set's rate, when above the model's (the *_full and *_high scores)
    band: str = "full"  # what the outputs hold above the model's band at the set's rate
    denoise: bool = False  # the mixtures went through RNNoise first (--denoise)

    def setting(self, n_re: int) -> SettingResult:
        return next(s for s in self.settings if s.n_re == n_re)

    def to_dict(self) -> dict[str, Any]:
        """Summary and per-setting means (no per-utterance rows: see :func:`write_csv`)."""
        d = dataclasses.asdict(self)
        d.pop("utterances")
        d["num_utterances"] = len({u.id for u in self.utterances})
        return d


def parse_depths(text: str) -> list[int]:
    """Parse an N_re selection: "3", "1-8", "1,3,6", "0-2,5" -> sorted distinct ints in [0, MAX_REPEATS]."""
    values: set[int] = set()
    for part in text.replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(f"bad depth list {text!r}: use e.g. 3, 1-8 or 1,3,6") from None
        if a < 0 or b < a:
            raise ValueError(f"bad depth range {part!r} in {text!r}: need 0 <= start <= end")
        if b > MAX_REPEATS:
            raise ValueError(f"N_re {b} in {text!r} is beyond the limit of {MAX_REPEATS}")
        values.update(range(a, b + 1))
    return sorted(values)


def write_json(report: EvalReport, path: str | os.PathLike) -> Path:
    """Write the summary and per-setting means as JSON, atomically."""
    text = json.dumps(report.to_dict(), indent=2) + "\n"
    _atomic_write(Path(path), lambda tmp: tmp.write_text(text))
    return Path(path)


def write_csv(report: EvalReport, path: str | os.PathLike) -> Path:
    """Write one row per utterance and setting, atomically."""
    buf = io.StringIO()
    skipped = {"stoi", "pesq"} - set(report.metrics)  # columns of perceptual metrics only when scored
    names = [f.name for f in dataclasses.fields(UtteranceResult) if f.name not in skipped]
    writer = csv.DictWriter(buf, fieldnames=names, extrasaction="ignore")
    writer.writeheader()
    for row in report.utterances:
        d = dataclasses.asdict(row)
        d["perm"] = " ".join(str(i) for i in row.perm)
        writer.writerow(d)
    _atomic_write(Path(path), lambda tmp: tmp.write_text(buf.getvalue()))
    return Path(path)


def write_plot(report: EvalReport, path: str | os.PathLike) -> Path:
    """SI-SNRi against N_re with the real-time factor on a second axis (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'tisdiss[plot]'") from None
    depths = [s.n_re for s in report.settings]
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        ax.plot(depths, [s.si_snri for s in report.settings], "o-", color="tab:blue", label="SI-SNRi")
        ax.set_xlabel("N_re (reconstruction repetitions)")
        ax.set_ylabel("SI-SNRi (dB)", color="tab:blue")
        ax.set_xticks(depths)
        ax.grid(alpha=0.3)
        rtfs = [s.rtf for s in report.settings if s.rtf is not None]
        if len(rtfs) == len(depths):  # timed at every depth (not with --rtf-utterances 0)
            ax2 = ax.twinx()
            ax2.plot(depths, rtfs, "s--", color="tab:red")
            ax2.set_ylabel(f"real-time factor ({report.device})", color="tab:red")
        n_sep = report.settings[0].n_sep
        count = len({u.id for u in report.utterances})
        ax.set_title(f"{Path(report.model).name}, N_sep={n_sep}, {count} utterances", fontsize=9)
        fig.tight_layout()
        _atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    finally:
        plt.close(fig)
    return Path(path)


def _write_estimates(folder: Path, utt_id: str, est: np.ndarray, rate: int) -> None:
    """est [J, L], already permutation-aligned: speaker j goes to ``folder/s{j+1}/ID.wav``."""
    for j, wave in enumerate(est):
        audio.write(folder / f"s{j + 1}" / f"{utt_id}.wav", wave, rate, float_output=True)


def _mix_at(example: AudioExample, rate: int) -> np.ndarray:
    return audio.resample(example.mix, example.sample_rate, rate)


def _resample(example: AudioExample, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(mix [L], refs [J, L]) at ``rate``."""
    if example.sample_rate == rate:
        return example.mix, example.refs
    mix = _mix_at(example, rate)
    refs = audio.resample(example.refs.T, example.sample_rate, rate).T  # soxr wants [L, channels]
    return mix, np.ascontiguousarray(refs)


def _time_settings(
    model: TISDiSS,
    mixes: list[torch.Tensor],
    n_sep: int,
    n_re_values: Sequence[int],
    rate: int,
    device: torch.device,
    progress: ProgressFn | None,
    running: dict[int, float],
) -> dict[int, float]:
    """Real-time factor of ``model(mix, n_sep, n_re)`` per n_re, one warm-up call first."""
    audio = sum(m.shape[-1] for m in mixes) / rate
    model(mixes[0], n_sep=n_sep, n_re=max(n_re_values))  # warm-up (allocator, kernels)
    rtf = {}
    for i, k in enumerate(n_re_values):
        watch = Stopwatch(device)
        for mix in mixes:
            model(mix, n_sep=n_sep, n_re=k)
        rtf[k] = watch.seconds() / audio
        if progress is not None:
            progress(EvalProgress("rtf", i + 1, len(n_re_values), "", dict(running)))
    return rtf


def _sweep(
    model: TISDiSS, mix: torch.Tensor, n_sep: int, values: Sequence[int], adaptive_threshold: float | None = None
) -> tuple[dict[int, np.ndarray], tuple[int, np.ndarray] | None]:
    """One forward pass: ``mix [1, L]`` -> ({n_re: estimate [J, L] float64} for n_re in values,
    and with a threshold the (depth, estimate) adaptive depth would have stopped at)."""
    wanted = set(values)
    outputs: dict[int, np.ndarray] = {}
    adaptive = None
    previous = None
    for k, est in model.iter_depths(mix, n_sep=n_sep, max_n_re=max(values)):
        if k in wanted:
            outputs[k] = est[0].double().cpu().numpy()
        if adaptive_threshold is not None and adaptive is None:
            if (previous is not None and converged(est, previous, adaptive_threshold)) or k == max(values):
                adaptive = (k, est[0].double().cpu().numpy())
            previous = est
    return outputs, adaptive


@dataclass(frozen=True)
class _Scoring:
    """What to score besides SI-SNR, fixed for the whole run."""

    with_sdr: bool
    sdr_backend: metrics.SdrBackend
    extra: tuple[str, ...]  # perceptual metrics
    rate: int


def _score_utterance(
    utt: Utterance,
    n_sep: int,
    outputs: dict[int, np.ndarray],
    refs: np.ndarray,
    base: metrics.Baseline,
    how: _Scoring,
) -> dict[int, tuple[UtteranceResult, np.ndarray]]:
    """Scores per n_re, and the estimate reordered to match the references."""
    try:
        result = {}
        for k, est in outputs.items():
            s = metrics.score(est, refs, base, with_sdr=how.with_sdr, sdr_backend=how.sdr_backend)
            aligned = est[list(s.perm)]
            extra = perceptual.compute(how.extra, aligned, refs, how.rate) if how.extra else {}
            row = UtteranceResult(
                utt.id, n_sep, k, s.si_snr, s.si_snri, s.sdr, s.sdri, s.perm, extra.get("stoi"), extra.get("pesq")
            )
            result[k] = row, aligned
        return result
    except (metrics.MetricError, perceptual.PerceptualError) as exc:
        raise metrics.MetricError(f"{utt.mix}: cannot score ({exc})") from None


def _wide_scores(
    row: UtteranceResult,
    est: np.ndarray,
    example: AudioExample,
    narrow: np.ndarray,
    model_rate: int,
    band: str,
    recorded: np.ndarray,
) -> UtteranceResult:
    """``row`` with the scores at the set's rate and in the band above: ``est [J, m]`` at the model's
    rate (from ``narrow``, the separated mixture there) brought to the set's rate as the engine
    would; the improvements are over ``recorded``, the mixture as it came."""
    rate = example.sample_rate
    wide = separated_at_rate(est, example.mix, narrow, model_rate, rate, band=band)[list(row.perm)]
    refs, mix = example.refs, recorded
    full = (
        np.diag(metrics.si_snr_matrix(wide, refs)).mean() - metrics.mixture_baseline(mix, refs, with_sdr=False).si_snr
    )
    e, r, m = (metrics.band_above(x, rate, model_rate) for x in (wide, refs, mix[None]))
    high = float(np.diag(metrics.si_snr_matrix(e, r)).mean())
    high_i = high - metrics.mixture_baseline(m[0], r, with_sdr=False).si_snr
    return dataclasses.replace(row, si_snri_full=float(full), si_snri_high=high_i, si_snr_high=high)


def _denoised(example: AudioExample) -> AudioExample:
    return dataclasses.replace(example, mix=denoised(example.mix, example.sample_rate).astype(example.mix.dtype))


def _baseline(utt: Utterance, mix: np.ndarray, refs: np.ndarray, how: _Scoring) -> metrics.Baseline:
    try:
        return metrics.mixture_baseline(mix, refs, with_sdr=how.with_sdr, sdr_backend=how.sdr_backend)
    except metrics.MetricError as exc:
        raise metrics.MetricError(f"{utt.mix}: cannot score ({exc})") from None


def _defaults(source: LoadedModel | TISDiSS) -> tuple[TISDiSS, str, Depth]:
    """The model, its name and the depth scored when none is given (the "best" preset)."""
    if isinstance(source, LoadedModel):
        return source.model, source.name, source.presets.get("best", source.model.config.depth)
    if isinstance(source, TISDiSS):
        return source, "TISDiSS", source.config.depth
    raise TypeError(f"expected a LoadedModel or a TISDiSS model, got {type(source).__name__}")


def evaluate(
    source: LoadedModel | TISDiSS,
    testset: TestSet | str | os.PathLike,
    *,
    n_sep: int | None = None,
    n_re_values: Sequence[int] | None = None,
    limit: int | None = None,
    device: str | torch.device | None = None,
    progress: ProgressFn | None = None,
    save_estimates: str | os.PathLike | None = None,
    with_sdr: bool = True,
    rtf_utterances: int = 2,
    adaptive_threshold: float | None = None,
    precision: str = "auto",
    sdr_backend: metrics.SdrBackend = "fast",
    extra_metrics: Sequence[str] = (),
    band: str = "full",
    denoise: bool = False,
) -> EvalReport:
    """Score ``source`` on ``testset`` at one n_sep and every n_re in ``n_re_values``.

    n_sep / n_re_values default to the "best" preset of a LoadedModel, else the config's.
    ``device`` None keeps the model where it is; otherwise the model is moved there (in place).
    ``save_estimates`` writes ``DIR/nsep{S}-nre{K}/s{j}/ID.wav`` (model rate, float WAV,
    permutation-aligned to the references). ``rtf_utterances`` = 0 skips the speed timing.
    ``adaptive_threshold`` (dB) also scores adaptive depth (see :mod:`tisdiss_cli.separation.adaptive`),
    up to the deepest requested n_re, from the same pass. ``precision``: auto (the default, as for
    ``tisdiss eval``), fp32, bf16 or int8
    (:func:`~tisdiss_cli.util.precision.choose_precision`), for the scores and the timings.
    ``sdr_backend`` "fast" (default, no extra dependency) or "mir_eval" (the original, needs the
    ``eval`` extra) compute the same BSS Eval v3 SDR. ``extra_metrics`` adds perceptual metrics
    ("stoi", "pesq"; the ``metrics`` extra) on the permutation-aligned estimates. A set above the
    model's rate is also scored at its rate and above the model's band, with the outputs as
    ``tisdiss separate --band band`` writes them ("full" | "model"). ``denoise``: each mixture goes
    through RNNoise at the set's rate first, as ``tisdiss separate --denoise`` does (the ``denoise``
    extra); the improvements stay over the mixture as recorded, and the RTF is the network's alone.
    Raises :class:`~tisdiss_cli.evaluation.testset.TestSetError` for a bad test set, ``ValueError`` for
    settings the model cannot run.
    """
    model, name, default = _defaults(source)
    check_band(band)
    values = sorted({int(k) for k in (n_re_values if n_re_values is not None else [default.n_re])})
    if not values:
        raise ValueError("no n_re value to evaluate")
    n_sep = Depth(default.n_sep if n_sep is None else n_sep, values[0]).n_sep  # checks n_sep and the bounds
    Depth(n_sep, values[-1])  # of every n_re
    if model.reconstructor is None and values != [0]:
        raise ValueError("this model has no reconstruction stage: only n_re = 0 can be evaluated")
    if device is not None:
        model.to(device)
    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    rate = model.config.sample_rate
    model, chosen = at_precision(model, precision)
    if chosen.warning:
        log.warning(chosen.warning)
    extra = perceptual.parse_metrics(",".join(extra_metrics))
    how = _Scoring(with_sdr, metrics.check_sdr_backend(sdr_backend), extra, rate)
    problem = perceptual.missing_package(extra)
    if problem is not None:
        raise ImportError(problem)
    if with_sdr and sdr_backend == "mir_eval":
        metrics.require_mir_eval()
    if denoise:
        rnnoise()  # not installed: say so before any work

    tset = testset if isinstance(testset, TestSet) else load_testset(testset)
    tset = tset.head(limit)
    if len(tset) == 0:
        raise ValueError(f"{tset.root}: no utterances to evaluate")
    if tset.num_refs != model.config.num_spk:
        raise ValueError(
            f"{tset.root}: {tset.num_refs} reference(s) per mixture, "
            f"the model separates {model.config.num_spk} speakers"
        )
    audio_total = check_headers(tset)  # fail on a bad file before spending minutes on the good ones

    out_dir = Path(save_estimates) if save_estimates is not None else None
    sums: dict[int, list[float]] = {k: [] for k in values}
    rows: list[UtteranceResult] = []
    adaptive_rows: list[UtteranceResult] = []
    timed_mixes: list[torch.Tensor] = []
    audio = forward_s = metric_s = 0.0
    input_rate: int | None = None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for i, utt in enumerate(tset.utterances):
                recorded = read_example(utt)
                example = _denoised(recorded) if denoise else recorded
                mix_np, refs = _resample(example, rate)
                recorded_mix = _mix_at(recorded, rate) if denoise else mix_np
                wide_example = example if example.sample_rate > rate else None
                mix = torch.from_numpy(mix_np).to(device=dev, dtype=dtype)[None]
                audio += mix_np.shape[-1] / rate
                if len(timed_mixes) < rtf_utterances:
                    timed_mixes.append(mix)
                watch = Stopwatch(dev)
                outputs, adaptive = _sweep(model, mix, n_sep, values, adaptive_threshold)
                forward_s += watch.seconds()
                watch = Stopwatch(dev)
                base = _baseline(utt, recorded_mix, refs, how)
                scored = _score_utterance(utt, n_sep, outputs, refs, base, how)
                if wide_example is not None:
                    input_rate = wide_example.sample_rate
                    for k, (row, aligned) in scored.items():
                        scored[k] = (
                            _wide_scores(row, outputs[k], wide_example, mix_np, rate, band, recorded.mix),
                            aligned,
                        )
                if adaptive is not None:
                    depth, est = adaptive
                    row, _ = _score_utterance(utt, n_sep, {depth: est}, refs, base, how)[depth]
                    if wide_example is not None:
                        row = _wide_scores(row, est, wide_example, mix_np, rate, band, recorded.mix)
                    adaptive_rows.append(dataclasses.replace(row, adaptive=True))
                metric_s += watch.seconds()
                for k, (row, aligned) in scored.items():
                    rows.append(row)
                    sums[k].append(row.si_snri)
                    if out_dir is not None:
                        _write_estimates(out_dir / f"nsep{n_sep}-nre{k}", utt.id, aligned, rate)
                if progress is not None:
                    running = {k: float(np.mean(v)) for k, v in sums.items()}
                    progress(EvalProgress("score", i + 1, len(tset), utt.id, running, audio, audio_total))
            running = {k: float(np.mean(v)) for k, v in sums.items()}
            rtf = _time_settings(model, timed_mixes, n_sep, values, rate, dev, progress, running) if timed_mixes else {}
    finally:
        model.train(was_training)

    settings = [_summarise([r for r in rows if r.n_re == k], n_sep, k, rtf.get(k)) for k in values]
    report = EvalReport(
        model=name,
        testset=str(tset.root),
        layout=tset.layout,
        sample_rate=rate,
        device=str(dev),
        settings=settings,
        utterances=rows + adaptive_rows,
        audio_seconds=audio,
        forward_seconds=forward_s,
        metric_seconds=metric_s,
        sdr_backend=sdr_backend if with_sdr else None,
        metrics=extra,
        pesq_mode=perceptual.pesq_rate(rate)[1] if "pesq" in extra else None,
        rtf_utterances=len(timed_mixes),
        precision=chosen.name,
        input_rate=input_rate,
        band=band,
        denoise=denoise,
    )
    report.groups = group_means(rows, gender_pairs(tset))
    if adaptive_rows:
        report.adaptive = _summarise(adaptive_rows, n_sep, max(values), None)
        report.adaptive_threshold = adaptive_threshold
        report.adaptive_mean_n_re = float(np.mean([r.n_re for r in adaptive_rows]))
    return report


def group_means(rows: Sequence[UtteranceResult], groups: Mapping[str, str]) -> list[GroupResult]:
    """Per group and N_re, the mean SI-SNRi (and SDRi) of the rows whose id has a group."""
    out = []
    for group in sorted(set(groups.values())):
        for n_re in sorted({r.n_re for r in rows}):
            mine = [r for r in rows if r.n_re == n_re and groups.get(r.id) == group]
            if mine:
                sdri = [r.sdri for r in mine if r.sdri is not None]
                out.append(
                    GroupResult(
                        group,
                        n_re,
                        len(mine),
                        float(np.mean([r.si_snri for r in mine])),
                        float(np.mean(sdri)) if len(sdri) == len(mine) else None,
                    )
                )
    return out


def _summarise(mine: list[UtteranceResult], n_sep: int, n_re: int, rtf: float | None) -> SettingResult:
    def mean(key: str) -> float | None:
        vals = [getattr(r, key) for r in mine]
        return None if any(v is None for v in vals) else float(np.mean(vals))

    si_snr = float(np.mean([r.si_snr for r in mine]))
    si_snri = float(np.mean([r.si_snri for r in mine]))
    wide = (mean("si_snri_full"), mean("si_snri_high"), mean("si_snr_high"))
    return SettingResult(
        n_sep, n_re, len(mine), si_snr, si_snri, mean("sdr"), mean("sdri"), rtf, mean("stoi"), mean("pesq"), *wide
    )
