"""`tisdiss separate`: files, folders or globs in, one file per speaker out.

The command parses, checks what it can before loading a model, then calls
:func:`~tisdiss_cli.separation.batch.separate_files` (or the pipe front-end for ``-``) and prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import TaskID

from ..audio.denoise import DenoiseUnavailable
from ..audio.files import OUTPUT_FORMATS, AudioError, OutputFormat, probe
from ..audio.pcm import RAW_FORMATS
from ..separation.batch import BatchReport, separate_files
from ..separation.chunking import check_segment
from ..separation.outputs import DEFAULT_FILENAME, OUTPUT_RATES, OutputOptionError, OutputOptions, OutputRate
from ..separation.pipe import PipeInput
from ..separation.separator import DEFAULT_OVERLAP, DEFAULT_SEGMENT, FileResult, ProgressFn, Separator
from ..separation.timeline import Timeline, timeline_format, write_timeline
from ..util.fileio import unwritable_folder
from ..zoo.load import MODEL_ERRORS
from . import help
from .band import band_option
from .choices import checked_by, one_of
from .denoise import denoise_option
from .depth import NRE_OVERRIDE, NSEP_OVERRIDE, preset_option
from .device import device_option
from .inputs import collect_inputs, distributed_rank, shard, split_outputs
from .messages import clip_warning
from .precision import PRECISION_OPTION
from .progress import audio_progress
from .root import app
from .stdin import separate_stdin
from .tracker import speakers_option, tracker_option

EXAMPLES = """
Examples:

  tisdiss separate meeting.wav --preset fast
  tisdiss separate recordings/ -o separated/ --recursive
  tisdiss separate "calls/**/*.flac" --nsep 2 --nre 3 --format flac
  tisdiss separate talk.wav --float --filename "{stem}/{spk}.{ext}"
  tisdiss separate zoom.mp4 voice-note.opus --format opus   (needs: pip install 'tisdiss[av]')
  ffmpeg -i talk.m4a -f wav - | tisdiss separate - -o separated/ --name talk
  arecord -f S16_LE -r 16000 -t raw | tisdiss separate - --raw-rate 16000 --stdout > both.wav
  torchrun --nproc-per-node 4 "$(which tisdiss)" separate corpus/ -r   (one share per rank)
"""

INPUTS = typer.Argument(
    ..., help="Audio files, folders or glob patterns (quote globs); - reads a stream from stdin.", show_default=False
)
OUTPUT = typer.Option(
    Path("separated"), "-o", "--output", metavar="DIR", help="Output folder; sub-folders of inputs are kept."
)
RECURSIVE = typer.Option(False, "-r", "--recursive", help="Descend into sub-folders of folder inputs.")
MODEL = typer.Option(
    None,
    "-m",
    "--model",
    metavar="NAME|PATH",
    help="Model name, checkpoint file or ESPnet folder (default: best available).",
)
PRESET = preset_option("Speed/quality preset.")
MAX_RTF = typer.Option(
    None,
    "--max-rtf",
    min=0.0,
    metavar="RTF",
    help="Deepest N_re measured to run at this real-time factor or faster here (measured once, cached).",
)
ADAPTIVE = typer.Option(
    False, "--adaptive", help="Stop each chunk's reconstruction once the output stops changing (up to the chosen N_re)."
)
ADAPTIVE_THRESHOLD = typer.Option(
    30.0,
    "--adaptive-threshold",
    metavar="DB",
    help="With --adaptive: stop when successive outputs agree to this SI-SNR (dB).",
)
SEGMENT = typer.Option(
    None,
    "--segment",
    min=0.05,
    metavar="SECONDS",
    help=f"Chunk length in seconds for long inputs [default: the model card's, else {DEFAULT_SEGMENT:g}].",
    callback=checked_by(check_segment),
)
OVERLAP = typer.Option(
    DEFAULT_OVERLAP,
    "--overlap",
    min=0.0,
    max=0.9,
    metavar="FRACTION",
    help="Overlap of consecutive chunks, fraction of --segment.",
)
TRACKER = tracker_option()
SPEAKERS = speakers_option()
TIMELINE = typer.Option(
    None,
    "--timeline",
    metavar="FILE",
    help="Write who spoke when for every input: FILE.rttm (RTTM, as diarisation scorers read) or FILE.json; "
    "repeat for both.",
)
BAND = band_option()
DENOISE = denoise_option()
BATCH_SIZE = typer.Option(1, "--batch-size", min=1, metavar="N", help="Chunks run together (useful on GPU).")
FORMAT = typer.Option(
    "wav",
    "--format",
    metavar="|".join(OUTPUT_FORMATS),
    help="Output format: 24-bit PCM WAV or FLAC (unless --float), or lossy MP3 / Opus.",
    callback=one_of(OUTPUT_FORMATS),
)
FLOAT = typer.Option(False, "--float", help="Write 32-bit float WAV: no quantisation, no clipping.")
OUTPUT_RATE = typer.Option(
    "input",
    "--output-rate",
    metavar="|".join(OUTPUT_RATES),
    help="Write at the input's rate or the model's.",
    callback=one_of(OUTPUT_RATES),
)
MATCH_LEVEL = typer.Option(
    True,
    "--match-level/--model-level",
    help="Scale each chunk's outputs to the input's energy, or keep the network's own level.",
)
CHANNEL = typer.Option(None, "--channel", min=1, metavar="N", help="Use this channel (1-based) instead of the average.")
STREAM = typer.Option(
    None, "--stream", min=1, metavar="N", help="Audio stream of a video or container (1-based; default: the first)."
)
FILENAME = typer.Option(
    DEFAULT_FILENAME,
    "--filename",
    metavar="TEMPLATE",
    help="Output name template with {stem}, {spk}, {ext}; may hold sub-folders, not leave -o.",
)
OVERWRITE = typer.Option(False, "--overwrite", help="Replace existing outputs (default: skip the file).")
THREADS = typer.Option(None, "--threads", min=1, metavar="N", help="CPU threads for PyTorch.")
JSON = typer.Option(False, "--json", help="Print the summary as JSON on stdout.")
RAW_RATE = typer.Option(
    None, "--raw-rate", min=1, metavar="HZ", help="With -: stdin is headerless PCM at this rate, not WAV."
)
RAW_FORMAT = typer.Option(
    "s16le",
    "--raw-format",
    metavar="|".join(RAW_FORMATS),
    help="With --raw-rate: the sample encoding.",
    callback=one_of(RAW_FORMATS),
)
RAW_CHANNELS = typer.Option(1, "--raw-channels", min=1, metavar="N", help="With --raw-rate: interleaved channels.")
NAME = typer.Option("stdin", "--name", metavar="STEM", help="With -: the {stem} of the output names.")
TO_STDOUT = typer.Option(
    False, "--stdout", help="With -: write one interleaved WAV stream (a channel per speaker) to stdout."
)
QUIET = typer.Option(False, "-q", "--quiet", help="No progress or per-file lines; errors only.")
OPTION_HINTS = {"fmt": "--format", "float_output": "--float", "rate": "--output-rate", "channel": "--channel"}


@app.command(epilog=EXAMPLES, cls=help.Command)
def separate(
    inputs: list[str] = INPUTS,
    output: Path = OUTPUT,
    recursive: bool = RECURSIVE,
    model: str | None = MODEL,
    preset: str = PRESET,
    nsep: int | None = NSEP_OVERRIDE,
    nre: int | None = NRE_OVERRIDE,
    max_rtf: float | None = MAX_RTF,
    adaptive: bool = ADAPTIVE,
    adaptive_threshold: float = ADAPTIVE_THRESHOLD,
    segment: float | None = SEGMENT,
    overlap: float = OVERLAP,
    tracker: str = TRACKER,
    speakers: str = SPEAKERS,
    timeline: list[Path] | None = TIMELINE,
    band: str = BAND,
    denoise: bool = DENOISE,
    batch_size: int = BATCH_SIZE,
    fmt: str = FORMAT,
    float_output: bool = FLOAT,
    output_rate: str = OUTPUT_RATE,
    match_level: bool = MATCH_LEVEL,
    channel: int | None = CHANNEL,
    stream: int | None = STREAM,
    filename: str = FILENAME,
    overwrite: bool = OVERWRITE,
    device: str = device_option("auto", "auto, cpu, cuda, cuda:N or mps."),
    threads: int | None = THREADS,
    precision: str = PRECISION_OPTION,
    as_json: bool = JSON,
    raw_rate: int | None = RAW_RATE,
    raw_format: str = RAW_FORMAT,
    raw_channels: int = RAW_CHANNELS,
    name: str = NAME,
    to_stdout: bool = TO_STDOUT,
    quiet: bool = QUIET,
) -> None:
    """Separate each input into one file per speaker (STEM_spk1.wav, STEM_spk2.wav, ...)."""
    streaming = _check_stdin_usage(inputs, to_stdout=to_stdout, raw_rate=raw_rate, as_json=as_json, fmt=fmt)
    timelines = _check_timelines(timeline or [], streaming=streaming, tracker=tracker)
    options = _output_options(fmt, float_output, output_rate, channel, filename, overwrite)
    out = Console(stderr=as_json or to_stdout, quiet=quiet, highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if threads:
        torch.set_num_threads(threads)
    problem = None if to_stdout else unwritable_folder(output)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="-o / --output")

    items, problems = ([], []) if streaming else collect_inputs(inputs, recursive=recursive)
    items, clashes = split_outputs(items, output, filename, fmt)
    if clashes:
        named, writer = clashes[0]
        raise typer.BadParameter(
            f"{named.path} is an input and also an output of {writer.path}; separating would replace it",
            param_hint="INPUTS",
        )
    for line in problems:
        err.print(escape(line))
    rank, world = distributed_rank()
    if world > 1:
        total = len(items)
        items = shard(items, rank, world)
        out.print(f"rank {rank} of {world}: {len(items)} of {total} files")
    if not items and not problems and not streaming:
        out.print("nothing to do")
        raise typer.Exit(0)

    try:
        separator = Separator(
            model,
            device=device,
            preset=preset,
            segment=segment,
            overlap=overlap,
            batch_size=batch_size,
            adaptive_threshold=adaptive_threshold if adaptive else None,
            match_level=match_level,
            precision=precision,
            tracker=tracker,
            speakers=speakers,  # "auto" or a number, as the Separator takes it
            band=band,
            denoise=denoise,
        )
        choice = separator.choose_depth(preset, nsep, nre, max_rtf)
    except (*MODEL_ERRORS, ValueError, OSError, DenoiseUnavailable) as exc:
        err.print(f"error: {escape(str(exc))}")
        raise typer.Exit(1) from None
    depth, source = choice.depth, choice.reason
    for warning in choice.warnings:
        err.print(f"warning: {escape(warning)}")
    if adaptive:
        source += f", adaptive up to n_re={depth.n_re} (threshold {adaptive_threshold:g} dB)"
    out.print(
        f"model {escape(separator.loaded.name)} on {separator.device} in {escape(separator.precision.describe())}, "
        f"{source}: n_sep={depth.n_sep}, n_re={depth.n_re}"
    )

    if streaming:
        encoding = PipeInput(raw_rate, raw_format, raw_channels)
        code = separate_stdin(
            separator,
            depth,
            encoding,
            options,
            out_dir=output,
            stem=name,
            to_stdout=to_stdout,
            as_json=as_json,
            out=out,
            err=err,
        )
        raise typer.Exit(code)
    stream_index = None if stream is None else stream - 1
    with _Printer(out, err, separator, [item.path for item in items], stream_index, quiet or as_json) as printer:
        report = separate_files(
            separator, items, output, printer, depth=depth, options=options, stream=stream_index, problems=problems
        )
    _summarise(report, report.summary(separator, depth), as_json, out)
    code = 1 if report.failed else 0
    for path in timelines:
        try:
            write_timeline(path, [Timeline(r.input, r.outputs, r.talkers) for r in report.results if r.talkers])
            out.print(f"timeline: {escape(str(path))}")
        except OSError as exc:
            err.print(f"error: {escape(str(path))}: cannot write the timeline ({escape(exc.strerror or str(exc))})")
            code = 1
    if code:
        raise typer.Exit(code)


def _check_timelines(paths: list[Path], *, streaming: bool, tracker: str) -> list[Path]:
    """``--timeline`` files, checked before any work: a usage error naming the option otherwise."""
    if paths and streaming:
        raise typer.BadParameter("a timeline is written for files; standard input has none", param_hint="--timeline")
    if paths and tracker != "voice":
        raise typer.BadParameter("who spoke when comes from --tracker voice", param_hint="--timeline")
    for path in paths:
        try:
            timeline_format(path)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--timeline") from None
        problem = unwritable_folder(path.parent if str(path.parent) else Path("."))
        if problem is not None:
            raise typer.BadParameter(problem, param_hint="--timeline")
    return paths


def _check_stdin_usage(inputs: list[str], *, to_stdout: bool, raw_rate: int | None, as_json: bool, fmt: str) -> bool:
    """Whether the input is standard input; a usage error for options that do not go with it."""
    streaming = "-" in inputs
    if streaming and inputs != ["-"]:
        raise typer.BadParameter("- (standard input) cannot be combined with other inputs", param_hint="INPUTS")
    if not streaming and (to_stdout or raw_rate is not None):
        raise typer.BadParameter("--stdout and --raw-rate need - (standard input) as the input", param_hint="INPUTS")
    if to_stdout and as_json:
        raise typer.BadParameter("--json and --stdout would both write to stdout", param_hint="--json")
    if to_stdout and fmt != "wav":
        raise typer.BadParameter(f"--stdout writes a WAV stream; --format {fmt} is for files", param_hint="--format")
    return streaming


def _output_options(
    fmt: str, float_output: bool, output_rate: str, channel: int | None, filename: str, overwrite: bool
) -> OutputOptions:
    """The output options, checked once, before any work; a bad one is a usage error naming its option."""
    try:
        return OutputOptions(
            cast(OutputFormat, fmt),
            float_output,
            cast(OutputRate, output_rate),
            None if channel is None else channel - 1,
            filename,
            overwrite,
        )
    except OutputOptionError as exc:
        raise typer.BadParameter(str(exc), param_hint=OPTION_HINTS.get(exc.option, "--filename")) from None


class _Printer:
    """The command line's :class:`~tisdiss_cli.separation.batch.BatchObserver`: a line per file and,
    on a terminal, a progress bar over the batch and one over the current file."""

    def __init__(
        self, out: Console, err: Console, separator: Separator, paths: list[Path], stream: int | None, quiet: bool
    ) -> None:
        self.out, self.err, self.rate = out, err, separator.sample_rate
        show = not (quiet or not out.is_terminal)
        self.durations = {p: _duration(p, stream) for p in paths} if show else {}
        self.progress = audio_progress(out, disable=not show)
        self.files_task = self.progress.add_task(f"{len(paths)} files", total=sum(self.durations.values()))
        self.finished_seconds = 0.0
        self.task: TaskID | None = None

    def __enter__(self) -> _Printer:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def started(self, path: Path) -> ProgressFn:
        task = self.task = self.progress.add_task(escape(path.name), total=self.durations.get(path))
        before = self.finished_seconds

        def on_progress(done: int, total: int) -> None:
            self.progress.update(task, completed=done / self.rate, total=total / self.rate)
            self.progress.update(self.files_task, completed=before + done / self.rate)

        return on_progress

    def separated(self, result: FileResult) -> None:
        shown = escape(str(result.input))
        self.out.print(f"{shown} -> {', '.join(escape(str(p)) for p in result.outputs)}")
        if result.talkers is not None:
            self.out.print(f"  {escape(result.talkers.describe())}")
        for warning in result.warnings + clip_warning(result.clipped):
            self.err.print(f"{shown}: warning: {escape(warning)}")

    def skipped(self, path: Path, reason: str) -> None:
        why = "outputs exist (use --overwrite)" if reason.endswith(": exists") else reason
        self.out.print(f"skipped {escape(str(path))}: {escape(why)}")

    def failed(self, path: Path, reason: str) -> None:
        self.err.print(escape(f"{path}: {' '.join(reason.split())}"))

    def finished(self, path: Path) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        self.finished_seconds += self.durations.get(path, 0.0)
        self.progress.update(self.files_task, completed=self.finished_seconds)


def _duration(path: Path, stream: int | None = None) -> float:
    """Seconds of audio a header declares (0 for a file that will fail anyway)."""
    try:
        return probe(path, stream=stream).duration
    except AudioError:
        return 0.0


def _summarise(report: BatchReport, summary: dict[str, object], as_json: bool, out: Console) -> None:
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    rtf = f", RTF {summary['rtf']}" if summary["rtf"] is not None else ""
    if summary["adaptive_mean_n_re"] is not None:
        rtf += f", mean adaptive depth n_re={summary['adaptive_mean_n_re']}"
    out.print(
        f"{len(report.results)} separated, {len(report.skipped)} skipped, {len(report.failed)} failed; "
        f"{report.audio_seconds:.1f} s of audio in {report.wall:.1f} s{rtf}"
    )
