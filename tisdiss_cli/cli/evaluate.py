"""`tisdiss eval`: score a model on a test set at one or many reconstruction depths."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import TextColumn
from rich.table import Table

from ..util.fileio import unwritable_folder
from . import help
from .band import band_option
from .denoise import denoise_option
from .depth import NRE_SWEEP, NSEP_OVERRIDE
from .device import device_option
from .precision import PRECISION_OPTION
from .progress import audio_progress
from .root import app
from .tracker import speakers_option, tracker_option

if TYPE_CHECKING:
    from ..evaluation.evaluate import EvalReport, SettingResult
    from ..evaluation.metrics import SdrBackend

err = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _check_outputs(**targets: Path | None) -> None:
    """Report an unusable place for a report or the estimates before the scoring starts."""
    for option, path in targets.items():
        if path is None:
            continue
        folder = path if option == "--save-estimates" else path.parent
        problem = unwritable_folder(folder)
        if problem is None and option != "--save-estimates" and path.is_dir():
            problem = f"{path} is a folder; name a file"
        if problem is not None:
            raise typer.BadParameter(problem, param_hint=option)


def _depths(text: str | None) -> list[int] | None:
    if text is None:
        return None
    from ..evaluation.evaluate import parse_depths

    try:
        return parse_depths(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--nre") from None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


TESTSET = typer.Argument(
    ...,
    help="Test set: folder with mix/ s1/ s2/ (wsj0-2mix), mix_clean|mix_both|mix_single/ s1/ s2/ (LibriMix), "
    "or a TSV list mix, s1, s2[, id].",
)
MODEL_OPTION = typer.Option(
    None,
    "--model",
    "-m",
    metavar="NAME|PATH",
    help="Registry name, checkpoint file or ESPnet folder (default: best available).",
)
LIMIT_OPTION = typer.Option(None, "--limit", min=1, metavar="N", help="Score only the first N utterances.")
DEVICE_OPTION = device_option("cpu", "torch device, e.g. cpu or cuda:0.")
JSON_OUT = typer.Option(None, "--json", metavar="FILE", help="Write the summary and per-setting means as JSON.")
CSV_OUT = typer.Option(None, "--csv", metavar="FILE", help="Write per-utterance scores as CSV.")
PLOT_OPTION = typer.Option(
    None,
    "--plot",
    metavar="FILE",
    help="Plot SI-SNRi and real-time factor against N_re (PNG; needs matplotlib).",
)
SAVE_ESTIMATES = typer.Option(
    None,
    "--save-estimates",
    metavar="DIR",
    help="Write the scored estimates to DIR/nsepS-nreK/s1|s2/NAME.wav.",
)
RTF_UTTERANCES = typer.Option(
    2,
    "--rtf-utterances",
    min=0,
    metavar="N",
    help="Utterances timed per setting for the real-time factor (0: skip).",
)
ADAPTIVE = typer.Option(
    None,
    "--adaptive",
    metavar="DB",
    help="Also score adaptive depth with this stopping threshold (dB SI-SNR between successive steps), "
    "up to the deepest --nre; from the same pass.",
)
SDR = typer.Option(True, "--sdr/--no-sdr", help="Compute BSS Eval v3 SDR(i).")
SDR_BACKEND = typer.Option(
    "fast",
    "--sdr-backend",
    metavar="fast|mir_eval",
    help="SDR implementation: fast (built in) or mir_eval (the original, a cross-check; the eval extra).",
)
EXTRA_METRICS = typer.Option(
    None,
    "--metrics",
    metavar="stoi,pesq",
    help="Also score STOI and/or PESQ (narrow-band at 8 kHz, wide-band at 16 kHz; the metrics extra).",
)


CONVERSATIONS = typer.Option(
    None,
    "--conversations/--utterances",
    help="Score long recordings through the engine `tisdiss separate` uses, with its defaults (whole-file "
    "SI-SNRi / SDRi, single-talker seconds in the wrong file, leakage, swaps, absent talkers), or each "
    "utterance whole at every N_re [default: conversations for a devconv-style set, whose metadata.tsv has "
    "an overlap_of_speech column].",
    show_default=False,
)
TRACKER = tracker_option("With --conversations: how talkers are followed across chunks (as `separate`).")
SPEAKERS_EVAL = speakers_option("With --conversations: files per recording, auto or a number (as `separate`).")
BAND = band_option(
    "For a set above the model's rate: full: the outputs get the input's band above the model's (as "
    "`separate`); model: the model's band only. Either way also scored at the set's rate and in the band above."
)
DENOISE = denoise_option()
SEGMENT_EVAL = typer.Option(
    None, "--segment", min=0.05, metavar="SECONDS", help="With --conversations: chunk length (as `separate`)."
)
OVERLAP_EVAL = typer.Option(
    None, "--overlap", min=0.0, max=0.9, metavar="FRACTION", help="With --conversations: chunk overlap (as `separate`)."
)
PRESET_EVAL = typer.Option(
    "balanced", "--preset", metavar="fast|balanced|best", help="With --conversations: the preset (as `separate`)."
)


@app.command(name="eval", cls=help.Command)
def eval_command(
    testset: Path = TESTSET,
    model: str | None = MODEL_OPTION,
    nre: str | None = NRE_SWEEP,
    nsep: int | None = NSEP_OVERRIDE,
    limit: int | None = LIMIT_OPTION,
    device: str = DEVICE_OPTION,
    precision: str = PRECISION_OPTION,
    json_out: Path | None = JSON_OUT,
    csv_out: Path | None = CSV_OUT,
    plot: Path | None = PLOT_OPTION,
    save_estimates: Path | None = SAVE_ESTIMATES,
    rtf_utterances: int = RTF_UTTERANCES,
    adaptive: float | None = ADAPTIVE,
    sdr: bool = SDR,
    sdr_backend: str = SDR_BACKEND,
    extra_metrics: str | None = EXTRA_METRICS,
    conversations: bool | None = CONVERSATIONS,
    tracker: str = TRACKER,
    speakers: str = SPEAKERS_EVAL,
    band: str = BAND,
    denoise: bool = DENOISE,
    preset: str = PRESET_EVAL,
    segment: float | None = SEGMENT_EVAL,
    overlap: float | None = OVERLAP_EVAL,
) -> None:
    """Score separation quality (SI-SNR(i), SDR(i), optionally STOI and PESQ) and speed against N_re,
    from one pass per utterance."""
    if conversations is None:
        from ..evaluation.conversations import is_conversation_set

        conversations = is_conversation_set(testset)
    if conversations:
        chunks = {"segment": segment, **({"overlap": overlap} if overlap is not None else {})}
        chunks_and_band = {**chunks, "band": band, "denoise": denoise}
        _eval_conversations(
            testset, model, limit, device, precision, json_out, sdr, tracker, speakers, preset, chunks_and_band
        )
        return
    from ..evaluation.evaluate import EvalProgress, evaluate, write_csv, write_json, write_plot
    from ..evaluation.metrics import MetricError
    from ..evaluation.testset import TestSetError, load_testset
    from ..model.checkpoint import CheckpointError
    from ..separation.depth import beyond_documented
    from ..zoo.load import MODEL_ERRORS, load_any

    depths = _depths(nre)
    backend, extra = _check_scoring(sdr, sdr_backend, extra_metrics, plot)
    _check_outputs(**{"--json": json_out, "--csv": csv_out, "--plot": plot, "--save-estimates": save_estimates})
    start = time.perf_counter()
    try:
        tset = load_testset(testset)
        loaded = load_any(model, device=device)
    except (TestSetError, *MODEL_ERRORS) as exc:
        _fail(str(exc))
    except RuntimeError as exc:  # e.g. an unavailable torch device
        _fail(f"cannot use device {device!r}: {str(exc).splitlines()[0]}")
    except ValueError as exc:
        _fail(str(exc))
    total = min(len(tset), limit) if limit else len(tset)
    deepest = max(depths) if depths else None
    too_deep = beyond_documented(loaded, deepest)
    if too_deep is not None:
        err.print(f"warning: {escape(too_deep)}", highlight=False, soft_wrap=True)

    with audio_progress(err, extra=(TextColumn("{task.fields[status]}"),)) as bar:
        task = bar.add_task(f"scoring {total} utterances", total=None, status="")

        def on_progress(p: EvalProgress) -> None:
            if p.stage == "score":
                key = deepest if deepest is not None else max(p.running_si_snri)
                status = f"mean SI-SNRi {p.running_si_snri[key]:.2f} dB at N_re={key}"
                bar.update(task, completed=p.audio_seconds, total=p.audio_total, status=status)
            else:
                bar.update(task, description=f"timing RTF {p.done}/{p.total}")

        try:
            report = evaluate(
                loaded,
                tset,
                n_sep=nsep,
                n_re_values=depths,
                limit=limit,
                progress=on_progress,
                save_estimates=save_estimates,
                with_sdr=sdr,
                rtf_utterances=rtf_utterances,
                adaptive_threshold=adaptive,
                precision=precision,
                sdr_backend=backend,
                extra_metrics=extra,
                band=band,
                denoise=denoise,
            )
        except (TestSetError, MetricError, CheckpointError, ValueError, ImportError, OSError) as exc:
            bar.stop()
            _fail(str(exc))

    console = Console()
    _print_report(console, report, total, time.perf_counter() - start)
    try:
        for path, writer in ((json_out, write_json), (csv_out, write_csv), (plot, write_plot)):
            if path is not None:
                writer(report, path)
                console.print(f"wrote {escape(str(path))}", highlight=False)
    except (OSError, ImportError) as exc:
        _fail(str(exc))
    if save_estimates is not None:
        console.print(f"wrote estimates under {escape(str(save_estimates))}", highlight=False)


def _check_scoring(
    sdr: bool, sdr_backend: str, extra_metrics: str | None, plot: Path | None
) -> tuple[SdrBackend, tuple[str, ...]]:
    """(SDR backend, extra metrics), or a usage error / missing-extra message before any work."""
    from ..evaluation.metrics import check_sdr_backend
    from ..evaluation.perceptual import missing_package, parse_metrics

    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        _fail("--plot needs matplotlib: pip install 'tisdiss[plot]'")
    try:
        backend = check_sdr_backend(sdr_backend)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--sdr-backend") from None
    try:
        extra = parse_metrics(extra_metrics) if extra_metrics is not None else ()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--metrics") from None
    if sdr and backend == "mir_eval" and importlib.util.find_spec("mir_eval") is None:
        _fail("--sdr-backend mir_eval needs mir_eval: pip install 'tisdiss[eval]' (or use --sdr-backend fast)")
    missing = missing_package(extra)
    if missing is not None:
        _fail(missing)
    return backend, extra


def _print_report(console: Console, report: EvalReport, total: int, elapsed: float) -> None:
    """The scores per setting as a table, the gender groups, and where the time went."""
    # a line of its own, not the table's title: a title is folded to the table's width, which
    # breaks long paths where a reader would copy them
    console.print(
        escape(
            f"{report.model} on {report.testset} ({report.layout}, {total} utterances, {report.sample_rate} Hz, "
            f"{report.precision}" + (", denoised (RNNoise)" if report.denoise else "") + ")"
        ),
        highlight=False,
        soft_wrap=True,
    )
    table = Table()
    pesq_title = f"PESQ-{report.pesq_mode.upper()}" if report.pesq_mode else "PESQ"
    titles = {"stoi": "STOI", "pesq": pesq_title}
    wide = report.input_rate is not None
    kilo = f"{report.input_rate / 1000:g} kHz" if report.input_rate else ""
    above = (f"SI-SNRi\n{kilo}", "SI-SNRi\nabove", "SI-SNR\nabove") if wide else ()
    for name in ("N_sep", "N_re", "SI-SNR", "SI-SNRi", "SDR", "SDRi", *(titles[m] for m in report.metrics)):
        table.add_column(name, justify="right")
    for name in (*above, "RTF"):
        table.add_column(name, justify="right")

    def cells(s: SettingResult) -> list[str]:
        scores = [_fmt(s.si_snr), _fmt(s.si_snri), _fmt(s.sdr), _fmt(s.sdri)]
        scores += [_fmt(getattr(s, m), 3 if m == "stoi" else 2) for m in report.metrics]
        return scores + ([_fmt(s.si_snri_full), _fmt(s.si_snri_high), _fmt(s.si_snr_high)] if wide else [])

    for s in report.settings:
        table.add_row(str(s.n_sep), str(s.n_re), *cells(s), _fmt(s.rtf, 3))
    if report.adaptive is not None:
        a = report.adaptive
        table.add_row(str(a.n_sep), f"adaptive ≤{a.n_re} (mean {report.adaptive_mean_n_re:.2f})", *cells(a), "–")
    console.print(table)
    if wide:
        console.print(
            f"scores in the model's band ({report.sample_rate} Hz), at the set's {report.input_rate} Hz with "
            f"--band {report.band}, and above {report.sample_rate // 2} Hz alone",
            highlight=False,
        )
    for group in dict.fromkeys(g.group for g in report.groups):
        mine = [g for g in report.groups if g.group == group]
        scores = ", ".join(f"{g.si_snri:.2f} dB at N_re {g.n_re}" for g in mine)
        console.print(f"{group} pairs ({mine[0].utterances}): SI-SNRi {scores}", highlight=False)
    per_metric = report.metric_seconds / max(total, 1)
    console.print(
        f"{report.audio_seconds:.1f} s of audio on {report.device}: one-pass sweep {report.forward_seconds:.1f} s, "
        f"scoring {report.metric_seconds:.1f} s{f' (SDR: {report.sdr_backend})' if report.sdr_backend else ''} "
        f"({per_metric:.2f} s per utterance for {len(report.settings)} setting(s) + mixture), "
        f"RTF over {report.rtf_utterances} utterance(s); total {elapsed:.1f} s",
        highlight=False,
        soft_wrap=True,
    )


def _eval_conversations(
    testset: Path,
    model: str | None,
    limit: int | None,
    device: str,
    precision: str,
    json_out: Path | None,
    sdr: bool,
    tracker: str,
    speakers: str,
    preset: str,
    chunks: dict[str, float | str | None],
) -> None:
    """`tisdiss eval --conversations`: the conversation benchmark, printed as tables (``chunks``:
    the separator's segment, overlap and band)."""
    import json

    from ..evaluation.conversations import SILENT_DB, evaluate_conversations
    from ..evaluation.testset import TestSetError
    from ..separation.separator import Separator
    from ..zoo.load import MODEL_ERRORS

    _check_outputs(**{"--json": json_out})
    start = time.perf_counter()
    try:
        separator = Separator(
            model,
            device=device,
            preset=preset,
            precision=precision,
            tracker=tracker,
            speakers=speakers,  # "auto" or a number, as the Separator takes it
            **chunks,  # type: ignore[arg-type]
        )
        report = evaluate_conversations(separator, testset, limit=limit, with_sdr=sdr)
    except (TestSetError, *MODEL_ERRORS, ValueError, OSError, ImportError) as exc:
        _fail(str(exc))
    console = Console()
    console.print(
        escape(
            f"{report.model} on {report.testset} ({len(report.rows)} recordings, {report.sample_rate} Hz), "
            f"preset {report.preset} {report.depth}, segment {report.segment_seconds:g} s, "
            f"overlap {report.overlap:g}, {report.precision}, tracker {report.tracker}, speakers {report.speakers}, "
            f"band {report.band}" + (", denoised (RNNoise)" if report.denoise else "")
        ),
        highlight=False,
        soft_wrap=True,
    )
    table = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False)  # ten columns in 80 characters
    table.add_column("recording", no_wrap=True)
    table.add_column("pair", no_wrap=True)
    headers = ("found", "SI-SNRi\nband", "\nfull", "\nhigh", "wrong\nfile", "leak\ndB", "swaps\n+mrg", "absent\ndB")
    for name in headers:
        table.add_column(name, justify="right", no_wrap=True, min_width=6)

    def level(value: float | None) -> str:
        return "silent" if value is not None and value <= SILENT_DB else _fmt(value, 1)

    for r in report.rows:
        table.add_row(
            r.id,
            r.pair,
            f"{'–' if r.talkers_found is None else r.talkers_found}/{r.talkers}",
            _fmt(r.si_snri),
            _fmt(r.si_snri_full),
            _fmt(r.si_snri_high),
            f"{r.wrong_windows}/{r.single_windows}",
            level(r.leakage_db),
            f"{r.swapped_windows}+{r.merged_windows}/{r.overlap_windows}",
            level(r.absent_db),
        )
    console.print(table)
    for p in report.pairs:
        wrong = "–" if p.wrong_share is None else f"{100 * p.wrong_share:.1f} %"
        console.print(
            f"{p.pair} ({p.recordings}): SI-SNRi {_fmt(p.si_snri)} dB, wrong file {wrong}, "
            f"leakage {level(p.leakage_db)}"
            + ("" if p.leakage_db is None or p.leakage_db <= SILENT_DB else " dB")
            + (f", absent talker {level(p.absent_db)}" if p.absent_db is not None else ""),
            highlight=False,
        )
    for r in report.rows:
        if r.talkers > 2:  # a meeting: each talker's own figure
            band = " / ".join(_fmt(v, 1) for v in r.per_talker)
            full = " / ".join(_fmt(v, 1) for v in r.per_talker_full)
            console.print(f"{escape(r.id)}: per-talker SI-SNRi {band} dB in band, {full} dB full", highlight=False)
    share, errors = report.wrong_share, report.missed_or_wrong_share
    if report.mean("si_snri_full") is not None:
        high = report.mean("si_snr_high")
        console.print(
            f"mean SI-SNRi at {report.sample_rate} Hz {_fmt(report.mean('si_snri_full'))} dB; band above "
            f"{report.model_rate // 2} Hz: SI-SNRi {_fmt(report.mean('si_snri_high'))} dB, "
            f"SI-SNR {_fmt(high)} dB against each talker's own",
            highlight=False,
        )
    console.print(
        f"mean SI-SNRi over {len(report.conversations)} recordings of two or more talkers "
        f"{_fmt(report.mean_si_snri)} dB, single-talker seconds in the wrong file "
        f"{'–' if share is None else f'{100 * share:.1f} %'}; talkers counted right in "
        f"{report.talkers_counted}/{len(report.rows)}; missed + wrong-talker speech "
        f"{'–' if errors is None else f'{100 * errors:.1f} %'} of the speech time; "
        f"total {time.perf_counter() - start:.1f} s",
        highlight=False,
    )
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=2))
        console.print(f"wrote {escape(str(json_out))}", highlight=False)
