"""`tisdiss live`: separate the microphone in real time, one file per speaker, with a level meter.

Ctrl-C is how a live run ends, so it is not an interruption here: SIGINT, SIGTERM and SIGHUP
stop the capture, the last chunks are separated and the files committed. The exit code is 0
after Ctrl-C, 128 + the signal after SIGTERM/SIGHUP (so a supervisor sees how it ended). A
second signal while finishing aborts as everywhere else: part files removed, 128 + signal.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from pathlib import Path

import torch
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..audio.denoise import DenoiseUnavailable
from ..audio.devices import AudioSink, AudioSource, FileSource, MicrophoneSource, MissingExtra, SpeakerSink
from ..audio.files import AudioError, OutputExistsError
from ..separation.chunking import check_segment
from ..separation.live import LiveStatus, run_live
from ..separation.outputs import claim
from ..separation.separator import DEFAULT_OVERLAP, Separator
from ..util.fileio import WriteError, unwritable_folder
from ..util.signals import StopOnFirstSignal
from ..zoo.load import MODEL_ERRORS
from . import help
from .band import band_option
from .choices import checked_by
from .denoise import denoise_option
from .depth import NRE_OVERRIDE, NSEP_OVERRIDE, preset_option
from .device import device_option
from .messages import exists_message
from .progress import clock
from .root import app
from .tracker import tracker_option

EXAMPLES = """
Examples:

  tisdiss live -o recordings/                     (Ctrl-C stops and keeps the files)
  tisdiss live --monitor 1 --preset fast          (hear speaker 1 while recording)
  tisdiss live --from-file meeting.wav            (a file at real-time pace instead of the microphone)
"""

METER_DB = 60.0  # the meter spans -60 dBFS to 0


def _meter(status: LiveStatus) -> Group:
    table = Table.grid(padding=(0, 1))
    for j, level in enumerate(status.levels):
        fill = 0.0 if math.isinf(level) else min(1.0, max(0.0, (level + METER_DB) / METER_DB))
        bar = "█" * int(round(30 * fill))
        shown = "  -inf" if math.isinf(level) else f"{level:6.1f}"
        table.add_row(f"spk{j + 1}", Text(bar.ljust(30, "░"), style="green"), f"{shown} dBFS")
    line = Text(
        f"{clock(status.seconds)} captured · n_re={status.depth.n_re} · chunk RTF {status.chunk_rtf:.2f} · "
        f"latency {status.latency:.2f} s" + (f" · {status.overflows} dropped" if status.overflows else "")
    )
    return Group(table, line)


@app.command(epilog=EXAMPLES, cls=help.Command)
def live(
    output: Path = typer.Option(Path("separated"), "-o", "--output", metavar="DIR", help="Output folder."),
    name: str | None = typer.Option(
        None, "--name", metavar="STEM", help="Output stem: STEM_spk1.wav, ... [default: live-DATE-TIME]."
    ),
    model: str | None = typer.Option(None, "-m", "--model", metavar="NAME|PATH", help="Model name or checkpoint."),
    preset: str = preset_option("Deepest depth used."),
    nsep: int | None = NSEP_OVERRIDE,
    nre: int | None = NRE_OVERRIDE,
    max_rtf: float = typer.Option(
        0.8,
        "--max-rtf",
        min=0.01,
        metavar="RTF",
        help="Compute budget per second of new audio: the deepest N_re measured to fit is used.",
    ),
    adapt: bool = typer.Option(True, "--adapt/--no-adapt", help="Step N_re down when chunks fall behind."),
    segment: float | None = typer.Option(
        None,
        "--segment",
        min=0.05,
        metavar="SECONDS",
        help="Chunk length; the latency is about one segment (plus the voice tracker's 1.1 s).",
        callback=checked_by(check_segment),
    ),
    overlap: float = typer.Option(DEFAULT_OVERLAP, "--overlap", min=0.0, max=0.9, metavar="FRACTION"),
    tracker: str = tracker_option(
        "voice: each talker in one file, decided as the audio comes (about 1.1 s more latency); "
        "overlap: chunks aligned on their overlap only."
    ),
    band: str = band_option(
        "full: with --rate above the model's, each talker gets the band above the model's Nyquist "
        "(about 0.07 s more latency); model: the model's band only."
    ),
    denoise: bool = denoise_option(),
    rate: int | None = typer.Option(None, "--rate", min=1, metavar="HZ", help="Capture rate [default: the model's]."),
    channels: int = typer.Option(1, "--channels", min=1, metavar="N", help="Capture channels (averaged)."),
    input_device: str | None = typer.Option(None, "--input-device", metavar="ID|NAME", help="sounddevice input."),
    monitor: int | None = typer.Option(None, "--monitor", min=1, metavar="N", help="Play speaker N while recording."),
    output_device: str | None = typer.Option(None, "--output-device", metavar="ID|NAME", help="For --monitor."),
    from_file: Path | None = typer.Option(
        None, "--from-file", metavar="PATH", help="Play this file at real-time pace instead of the microphone."
    ),
    float_output: bool = typer.Option(False, "--float", help="Write 32-bit float WAV."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    device: str = device_option("auto", "auto, cpu, cuda, cuda:N or mps."),
    threads: int | None = typer.Option(None, "--threads", min=1, metavar="N", help="CPU threads for PyTorch."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No meter; warnings and errors only."),
) -> None:
    """Separate the microphone as you speak; Ctrl-C stops and keeps the files."""
    out = Console(stderr=True, quiet=quiet, highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if threads:
        torch.set_num_threads(threads)
    problem = unwritable_folder(output)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="-o / --output")

    def fail(message: str) -> typer.Exit:
        err.print(escape(message))
        return typer.Exit(1)

    try:
        separator = Separator(
            model,
            device=device,
            preset=preset,
            segment=segment,
            overlap=overlap,
            tracker=tracker,
            band=band,
            denoise=denoise,
        )
        if monitor is not None and monitor > separator.num_spk:
            raise typer.BadParameter(f"the model has {separator.num_spk} speakers", param_hint="--monitor")
        source: AudioSource
        if from_file is not None:
            source = FileSource(from_file)
        else:
            source = MicrophoneSource(rate or separator.sample_rate, channels, device=_device_id(input_device))
        sink: AudioSink | None = None
        if monitor is not None:
            sink = SpeakerSink(source.sample_rate, device=_device_id(output_device))
        choice = separator.choose_depth(preset, nsep, nre, max_rtf, live=True)
    except (MissingExtra, DenoiseUnavailable) as exc:
        raise fail(str(exc)) from None
    except AudioError as exc:
        raise fail(str(exc)) from None
    except (*MODEL_ERRORS, ValueError, OSError) as exc:
        raise fail(f"error: {exc}") from None

    for warning in choice.warnings:
        err.print(f"warning: {escape(warning)}")
    depth = choice.depth
    stem = name or time.strftime("live-%Y%m%d-%H%M%S")
    try:
        targets = separator.output_paths(Path(f"{stem}.wav"), output)  # the stem stays whole: --name a.b
    except ValueError as exc:
        raise fail(f"error: {exc}") from None
    try:
        claim(targets, overwrite=overwrite)
    except OutputExistsError as exc:
        raise fail(exists_message(exc)) from None
    what = f"{from_file} (real-time pace)" if from_file is not None else "the microphone"
    out.print(
        f"model {escape(separator.loaded.name)} on {separator.device}: n_sep={depth.n_sep}, n_re={depth.n_re}; "
        f"separating {escape(what)} at {source.sample_rate} Hz, latency about "
        f"{separator.plan.segment_samples / separator.sample_rate:.2f} s + compute; Ctrl-C stops"
    )
    stop = threading.Event()
    show_meter = not quiet and err.is_terminal
    screen = Live(console=err, auto_refresh=False, transient=True) if show_meter else None
    with StopOnFirstSignal(stop) as stopper, screen if screen is not None else contextlib.nullcontext():
        last_draw = 0.0

        def on_status(status: LiveStatus) -> None:
            nonlocal last_draw
            now = time.monotonic()
            if screen is not None and now - last_draw >= 0.1:
                last_draw = now
                screen.update(_meter(status), refresh=True)

        def on_warning(message: str) -> None:
            err.print(f"warning: {escape(message)}")

        try:
            result = run_live(
                separator,
                source,
                targets,
                depth=depth,
                float_output=float_output,
                stop=stop,
                monitor=None if monitor is None else monitor - 1,
                sink=sink,
                on_status=on_status,
                on_warning=on_warning,
                adapt=adapt,
                overwrite=overwrite,
            )
        except (ValueError, WriteError, OSError) as exc:
            raise fail(f"error: {exc}") from None
    ended = f"stopped by {stopper.signal_name}" if stopper.signum else "input ended"
    out.print(f"{ended}: {', '.join(escape(str(p)) for p in result.outputs)}")
    stats = result.stats
    out.print(
        f"{result.seconds:.1f} s captured in {result.wall:.1f} s at n_re={result.depth.n_re}; "
        f"latency max {stats.latency_max:.2f} s, mean {stats.latency_mean:.2f} s; "
        f"{stats.chunks} chunks, {stats.compute_seconds / max(result.seconds, 1e-9):.2f} s compute per audio second"
    )
    if stopper.signum is not None and stopper.signum != signal.SIGINT:
        raise typer.Exit(128 + stopper.signum)


def _device_id(spec: str | None) -> int | str | None:
    return int(spec) if spec is not None and spec.isdigit() else spec
