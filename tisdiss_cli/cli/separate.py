"""`tisdiss separate`: files, folders or globs in, one file per speaker out."""

from __future__ import annotations

import json
import logging
import time
from enum import Enum
from pathlib import Path

import numpy as np
import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import TaskID

from ..separation.audio import AudioError, probe
from ..separation.separator import (
    DEFAULT_FILENAME,
    DEFAULT_OVERLAP,
    DEFAULT_SEGMENT,
    FileResult,
    OutputExistsError,
    Separator,
    check_template,
)
from ..separation.wavstream import RAW_FORMATS
from ..util.fileio import unwritable_folder
from ..zoo.load import MODEL_ERRORS
from . import app, help
from .depth import NRE_OVERRIDE, NSEP_OVERRIDE
from .device import device_option
from .inputs import collect_inputs, distributed_rank, shard, split_outputs
from .messages import clip_warning
from .precision import HELP as PRECISION_HELP
from .precision import METAVAR, PrecisionName
from .progress import audio_progress
from .stdin import StdinOptions, separate_stdin

log = logging.getLogger(__name__)

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


def _duration(path: Path, stream: int | None = None) -> float:
    """Seconds of audio a header declares (0 for a file that will fail anyway)."""
    try:
        return probe(path, stream=stream).duration
    except AudioError:
        return 0.0


class Fmt(str, Enum):
    wav = "wav"
    flac = "flac"
    mp3 = "mp3"
    opus = "opus"


class Rate(str, Enum):
    input = "input"
    model = "model"


class Preset(str, Enum):
    fast = "fast"
    balanced = "balanced"
    best = "best"


@app.command(epilog=EXAMPLES, cls=help.Command)
def separate(
    inputs: list[str] = typer.Argument(
        ...,
        help="Audio files, folders or glob patterns (quote globs); - reads a stream from stdin.",
        show_default=False,
    ),
    output: Path = typer.Option(
        Path("separated"), "-o", "--output", metavar="DIR", help="Output folder; sub-folders of inputs are kept."
    ),
    recursive: bool = typer.Option(False, "-r", "--recursive", help="Descend into sub-folders of folder inputs."),
    model: str | None = typer.Option(
        None,
        "-m",
        "--model",
        metavar="NAME|PATH",
        help="Model name, checkpoint file or ESPnet folder (default: best available).",
    ),
    preset: Preset = typer.Option(
        Preset.balanced, "-p", "--preset", metavar="fast|balanced|best", help="Speed/quality preset."
    ),
    nsep: int | None = NSEP_OVERRIDE,
    nre: int | None = NRE_OVERRIDE,
    max_rtf: float | None = typer.Option(
        None,
        "--max-rtf",
        min=0.0,
        metavar="RTF",
        help="Deepest N_re measured to run at this real-time factor or faster here (measured once, cached).",
    ),
    adaptive: bool = typer.Option(
        False,
        "--adaptive",
        help="Stop each chunk's reconstruction once the output stops changing (up to the chosen N_re).",
    ),
    adaptive_threshold: float = typer.Option(
        30.0,
        "--adaptive-threshold",
        metavar="DB",
        help="With --adaptive: stop when successive outputs agree to this SI-SNR (dB).",
    ),
    segment: float | None = typer.Option(
        None,
        "--segment",
        min=0.05,
        metavar="SECONDS",
        help=f"Chunk length in seconds for long inputs [default: the model card's, else {DEFAULT_SEGMENT:g}].",
    ),
    overlap: float = typer.Option(
        DEFAULT_OVERLAP,
        "--overlap",
        min=0.0,
        max=0.9,
        metavar="FRACTION",
        help="Overlap of consecutive chunks, fraction of --segment.",
    ),
    batch_size: int = typer.Option(1, "--batch-size", min=1, metavar="N", help="Chunks run together (useful on GPU)."),
    fmt: Fmt = typer.Option(
        Fmt.wav,
        "--format",
        metavar="wav|flac|mp3|opus",
        help="Output format: 24-bit PCM WAV or FLAC (unless --float), or lossy MP3 / Opus.",
    ),
    float_output: bool = typer.Option(False, "--float", help="Write 32-bit float WAV: no quantisation, no clipping."),
    output_rate: Rate = typer.Option(
        Rate.input, "--output-rate", metavar="input|model", help="Write at the input's rate or the model's."
    ),
    match_level: bool = typer.Option(
        True,
        "--match-level/--model-level",
        help="Scale each chunk's outputs to the input's energy, or keep the network's own level.",
    ),
    channel: int | None = typer.Option(
        None, "--channel", min=1, metavar="N", help="Use this channel (1-based) instead of the average."
    ),
    stream: int | None = typer.Option(
        None, "--stream", min=1, metavar="N", help="Audio stream of a video or container (1-based; default: the first)."
    ),
    filename: str = typer.Option(
        DEFAULT_FILENAME,
        "--filename",
        metavar="TEMPLATE",
        help="Output name template with {stem}, {spk}, {ext}; may hold sub-folders, not leave -o.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs (default: skip the file)."),
    device: str = device_option("auto", "auto, cpu, cuda, cuda:N or mps."),
    threads: int | None = typer.Option(None, "--threads", min=1, metavar="N", help="CPU threads for PyTorch."),
    precision: PrecisionName = typer.Option(PrecisionName.auto, "--precision", metavar=METAVAR, help=PRECISION_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    raw_rate: int | None = typer.Option(
        None, "--raw-rate", min=1, metavar="HZ", help="With -: stdin is headerless PCM at this rate, not WAV."
    ),
    raw_format: str = typer.Option(
        "s16le", "--raw-format", metavar="s16le|s24le|s32le|f32le", help="With --raw-rate: the sample encoding."
    ),
    raw_channels: int = typer.Option(
        1, "--raw-channels", min=1, metavar="N", help="With --raw-rate: interleaved channels."
    ),
    name: str = typer.Option("stdin", "--name", metavar="STEM", help="With -: the {stem} of the output names."),
    to_stdout: bool = typer.Option(
        False, "--stdout", help="With -: write one interleaved WAV stream (a channel per speaker) to stdout."
    ),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress or per-file lines; errors only."),
) -> None:
    """Separate each input into one file per speaker (STEM_spk1.wav, STEM_spk2.wav, ...)."""
    streaming = "-" in inputs
    if streaming and inputs != ["-"]:
        raise typer.BadParameter("- (standard input) cannot be combined with other inputs", param_hint="INPUTS")
    if not streaming and (to_stdout or raw_rate is not None):
        raise typer.BadParameter("--stdout and --raw-rate need - (standard input) as the input", param_hint="INPUTS")
    if to_stdout and as_json:
        raise typer.BadParameter("--json and --stdout would both write to stdout", param_hint="--json")
    if to_stdout and fmt is not Fmt.wav:
        raise typer.BadParameter(
            f"--stdout writes a WAV stream; --format {fmt.value} is for files", param_hint="--format"
        )
    if raw_format not in RAW_FORMATS:
        raise typer.BadParameter(f"{raw_format!r} is not one of {', '.join(RAW_FORMATS)}", param_hint="--raw-format")
    out = Console(stderr=as_json or to_stdout, quiet=quiet, highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if threads:
        torch.set_num_threads(threads)
    if fmt is not Fmt.wav and float_output:
        raise typer.BadParameter(
            f"{fmt.value.upper()} cannot hold float samples; use --format wav with --float", param_hint="--float"
        )
    try:
        check_template(filename, fmt.value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--filename") from None
    problem = None if to_stdout else unwritable_folder(output)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="-o / --output")

    items, problems = ([], []) if streaming else collect_inputs(inputs, recursive=recursive)
    items, clashes = split_outputs(items, output, filename, fmt.value)
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
            preset=preset.value,
            segment=segment,
            overlap=overlap,
            batch_size=batch_size,
            adaptive_threshold=adaptive_threshold if adaptive else None,
            match_level=match_level,
            precision=precision.value,
        )
        depth = separator.depth(preset.value, nsep, nre)
        if max_rtf is not None:
            calibration = separator.calibration(depth[0])
            depth = calibration.choose_depth(max_rtf)
    except (*MODEL_ERRORS, ValueError, OSError) as exc:
        err.print(f"error: {escape(str(exc))}")
        raise typer.Exit(1) from None
    source = "--nsep/--nre" if (nsep is not None or nre is not None) else f"preset {preset.value}"
    if max_rtf is not None:
        measured = calibration.rtf.get(depth[1])
        source = (
            f"--max-rtf {max_rtf:g} (measured RTF {measured:.3f} on {calibration.device})"
            if measured is not None
            else f"--max-rtf {max_rtf:g}"
        )
        if not calibration.meets(max_rtf):
            fastest = min(calibration.rtf.values())
            err.print(
                f"warning: no depth runs at RTF <= {max_rtf:g} on {calibration.device} (the fastest, "
                f"n_re={min(calibration.rtf, key=calibration.rtf.__getitem__)}, measured RTF {fastest:.3f}); "
                f"using n_re={depth[1]}"
            )
    documented = separator.loaded.documented_n_re
    if nre is not None and nre > documented:
        err.print(
            f"warning: --nre {nre} is beyond the depths documented for {escape(separator.loaded.name)} "
            f"(up to N_re = {documented}): time grows with N_re and better quality is not known"
        )
    if adaptive:
        source += f", adaptive up to n_re={depth[1]} (threshold {adaptive_threshold:g} dB)"
    out.print(
        f"model {escape(separator.loaded.name)} on {separator.device} in {escape(separator.precision.describe())}, "
        f"{source}: n_sep={depth[0]}, n_re={depth[1]}"
    )

    if streaming:
        opts = StdinOptions(
            output=output,
            name=name,
            raw_rate=raw_rate,
            raw_format=raw_format,
            raw_channels=raw_channels,
            to_stdout=to_stdout,
            fmt=fmt.value,
            float_output=float_output,
            output_rate=output_rate.value,
            channel=None if channel is None else channel - 1,
            filename=filename,
            overwrite=overwrite,
            as_json=as_json,
        )
        raise typer.Exit(separate_stdin(separator, depth, opts, out, err))

    results: list[FileResult] = []
    skipped: list[Path] = []
    failed: list[str] = list(problems)
    claimed: dict[Path, Path] = {}
    t0 = time.perf_counter()
    show_progress = not (quiet or as_json or not out.is_terminal)
    stream_index = None if stream is None else stream - 1
    durations = {item.path: _duration(item.path, stream_index) for item in items} if show_progress else {}
    progress = audio_progress(out, disable=not show_progress)
    with progress:
        files_task = progress.add_task(f"{len(items)} files", total=sum(durations.values()))
        finished = 0.0
        for item in items:
            target_dir = output / item.subdir
            chunk_task = progress.add_task(escape(item.path.name), total=durations.get(item.path))

            def on_progress(done: int, total: int, task: TaskID = chunk_task, before: float = finished) -> None:
                rate = separator.sample_rate
                progress.update(task, completed=done / rate, total=total / rate)
                progress.update(files_task, completed=before + done / rate)

            try:
                targets = separator.output_paths(item.path, target_dir, fmt=fmt.value, filename=filename)
                clash = next((claimed[t] for t in targets if t in claimed), None)
                if clash is not None:
                    raise ValueError(f"outputs would overwrite those of {clash}; use --filename or separate folders")
                res = separator.process_file(
                    item.path,
                    target_dir,
                    n_sep=depth[0],
                    n_re=depth[1],
                    fmt=fmt.value,
                    float_output=float_output,
                    output_rate=output_rate.value,
                    channel=None if channel is None else channel - 1,
                    stream=stream_index,
                    filename=filename,
                    overwrite=overwrite,
                    progress=on_progress,
                )
            except OutputExistsError as exc:
                skipped.append(item.path)
                why = "outputs exist (use --overwrite)" if str(exc).endswith(": exists") else str(exc)
                out.print(f"skipped {escape(str(item.path))}: {escape(why)}")
            except (AudioError, ValueError, OSError, RuntimeError) as exc:
                reason = str(exc).removeprefix(f"{item.path}: ")
                failed.append(f"{item.path}: {reason}")
                err.print(escape(f"{item.path}: {' '.join(reason.split())}"))
                log.debug("separating %s failed", item.path, exc_info=True)
            else:
                results.append(res)
                claimed.update(dict.fromkeys(res.outputs, item.path))
                out.print(f"{escape(str(item.path))} -> {', '.join(escape(str(p)) for p in res.outputs)}")
                for warning in res.warnings + clip_warning(res.clipped):
                    err.print(f"{escape(str(item.path))}: warning: {escape(warning)}")
            finally:
                progress.remove_task(chunk_task)
                finished += durations.get(item.path, 0.0)
                progress.update(files_task, completed=finished)

    wall = time.perf_counter() - t0
    audio_s = sum(r.duration for r in results)
    summary = {
        "model": separator.loaded.name,
        "n_sep": depth[0],
        "n_re": depth[1],
        "device": str(separator.device),
        "precision": separator.precision.name,
        "files": len(results),
        "skipped": len(skipped),
        "failed": len(failed),
        "audio_seconds": round(audio_s, 3),
        "wall_seconds": round(wall, 3),
        "rtf": round(wall / audio_s, 4) if audio_s else None,
        "adaptive_mean_n_re": round(float(np.mean(separator.depths_used)), 3) if separator.depths_used else None,
        "outputs": [str(p) for r in results for p in r.outputs],
        "errors": failed,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        rtf = f", RTF {summary['rtf']}" if summary["rtf"] is not None else ""
        if summary["adaptive_mean_n_re"] is not None:
            rtf += f", mean adaptive depth n_re={summary['adaptive_mean_n_re']}"
        out.print(
            f"{len(results)} separated, {len(skipped)} skipped, {len(failed)} failed; "
            f"{audio_s:.1f} s of audio in {wall:.1f} s{rtf}"
        )
    if failed:
        raise typer.Exit(1)
