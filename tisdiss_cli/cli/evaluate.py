"""`tisdiss eval`: score a model on a test set at one or many reconstruction depths."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import app

err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _depths(text: str | None) -> list[int] | None:
    if text is None:
        return None
    from ..evaluation.evaluate import parse_depths

    try:
        return parse_depths(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


@app.command(name="eval")
def eval_command(
    testset: Path = typer.Argument(
        ...,
        help="Test set: folder with mix/ s1/ s2/ (wsj0-2mix), mix_clean|mix_both|mix_single/ s1/ s2/ (LibriMix), "
        "or a TSV list mix, s1, s2[, id].",
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Registry name, checkpoint file or ESPnet folder (default: best available)."
    ),
    nre: str | None = typer.Option(
        None,
        "--nre",
        help="Reconstruction depths to score from one pass: 3, 1-8 or 1,3,6 (default: the model's best preset).",
    ),
    nsep: int | None = typer.Option(
        None, "--nsep", min=1, help="Separation repetitions (default: the model's best preset)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Score only the first N utterances."),
    device: str = typer.Option("cpu", "--device", help="torch device, e.g. cpu or cuda:0."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the summary and per-setting means as JSON."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write per-utterance scores as CSV."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Plot SI-SNRi and real-time factor against N_re (PNG; needs matplotlib)."
    ),
    save_estimates: Path | None = typer.Option(
        None, "--save-estimates", help="Write the scored estimates to DIR/nsepS-nreK/s1|s2/NAME.wav."
    ),
    rtf_utterances: int = typer.Option(
        2, "--rtf-utterances", min=0, help="Utterances timed per setting for the real-time factor (0: skip)."
    ),
    adaptive: float | None = typer.Option(
        None,
        "--adaptive",
        help="Also score adaptive depth with this stopping threshold (dB SI-SNR between successive steps), "
        "up to the deepest --nre; from the same pass.",
    ),
    sdr: bool = typer.Option(
        True, "--sdr/--no-sdr", help="Compute BSS Eval SDR (mir_eval; about 0.1-0.3 s per utterance and setting)."
    ),
) -> None:
    """Score separation quality (SI-SNR(i), SDR(i)) and speed against N_re, from one pass per utterance."""
    from ..evaluation.evaluate import EvalProgress, evaluate, write_csv, write_json, write_plot
    from ..evaluation.metrics import MetricError
    from ..evaluation.testset import TestSetError, load_testset
    from ..model.checkpoint import CheckpointError
    from ..zoo.load import MODEL_ERRORS, load_any

    depths = _depths(nre)
    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        _fail("--plot needs matplotlib: pip install 'tisdiss[plot]'")
    if sdr and importlib.util.find_spec("mir_eval") is None:
        _fail("SDR needs mir_eval: pip install 'tisdiss[eval]' (or pass --no-sdr)")
    start = time.perf_counter()
    try:
        tset = load_testset(testset)
        loaded = load_any(model, device=device)
    except (TestSetError, *MODEL_ERRORS) as exc:
        _fail(str(exc))
    except RuntimeError as exc:  # e.g. an unavailable torch device
        _fail(f"cannot use device {device!r}: {str(exc).splitlines()[0]}")
    total = min(len(tset), limit) if limit else len(tset)
    deepest = max(depths) if depths else None

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("scoring", total=total, status="")

        def on_progress(p: EvalProgress) -> None:
            if p.stage == "score":
                key = deepest if deepest is not None else max(p.running_si_snri)
                bar.update(task, completed=p.done, status=f"mean SI-SNRi {p.running_si_snri[key]:.2f} dB at N_re={key}")
            else:
                bar.update(task, description="timing RTF", completed=p.done, total=p.total, status="")

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
            )
        except (TestSetError, MetricError, CheckpointError, ValueError, ImportError) as exc:
            bar.stop()
            _fail(str(exc))

    console = Console()
    table = Table(
        title=f"{report.model} on {report.testset} ({report.layout}, {total} utterances, {report.sample_rate} Hz)"
    )
    for name in ("N_sep", "N_re", "SI-SNR", "SI-SNRi", "SDR", "SDRi", "RTF"):
        table.add_column(name, justify="right")
    for s in report.settings:
        table.add_row(
            str(s.n_sep), str(s.n_re), _fmt(s.si_snr), _fmt(s.si_snri), _fmt(s.sdr), _fmt(s.sdri), _fmt(s.rtf, 3)
        )
    if report.adaptive is not None:
        a = report.adaptive
        table.add_row(
            str(a.n_sep),
            f"adaptive ≤{a.n_re} (mean {report.adaptive_mean_n_re:.2f})",
            _fmt(a.si_snr),
            _fmt(a.si_snri),
            _fmt(a.sdr),
            _fmt(a.sdri),
            "–",
        )
    console.print(table)
    per_metric = report.metric_seconds / max(total, 1)
    console.print(
        f"{report.audio_seconds:.1f} s of audio on {report.device}: one-pass sweep {report.forward_seconds:.1f} s, "
        f"scoring {report.metric_seconds:.1f} s "
        f"({per_metric:.2f} s per utterance for {len(report.settings)} setting(s) + mixture), "
        f"RTF over {report.rtf_utterances} utterance(s); total {time.perf_counter() - start:.1f} s",
        highlight=False,
    )

    try:
        for path, writer in ((json_out, write_json), (csv_out, write_csv), (plot, write_plot)):
            if path is not None:
                writer(report, path)
                console.print(f"wrote {path}", highlight=False)
    except (OSError, ImportError) as exc:
        _fail(str(exc))
    if save_estimates is not None:
        console.print(f"wrote estimates under {save_estimates}", highlight=False)
