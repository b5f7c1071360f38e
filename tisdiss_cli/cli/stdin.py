"""`tisdiss separate -`: runs :func:`~tisdiss_cli.separation.pipe.separate_pipe` on standard input
and prints what it did. With ``--stdout`` nothing but the WAV stream goes to stdout."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.markup import escape

from ..audio.files import AudioError, OutputExistsError
from ..model.depth import Depth
from ..separation.outputs import OutputOptions
from ..separation.pipe import PipeInput, PipeResult, separate_pipe
from ..separation.separator import Separator
from ..util.fileio import WriteError
from .messages import clip_warning, exists_message

NAME = "stdin"  # how errors name the input, and the default output stem


def separate_stdin(
    separator: Separator,
    depth: Depth,
    encoding: PipeInput,
    options: OutputOptions,
    *,
    out_dir: Path,
    stem: str,
    to_stdout: bool,
    as_json: bool,
    out: Console,
    err: Console,
) -> int:
    """Separate standard input; returns the exit code. ``out`` must be stderr with ``to_stdout``."""
    source: BinaryIO = sys.stdin.buffer
    if source.isatty():
        err.print(f"{NAME}: is a terminal; pipe audio in, e.g. ffmpeg -i IN -f wav - | tisdiss separate -")
        return 1
    try:
        result = separate_pipe(
            separator,
            source,
            depth=depth,
            encoding=encoding,
            options=options,
            out_dir=out_dir,
            stem=stem,
            sink=sys.stdout.buffer if to_stdout else None,
        )
    except (AudioError, OutputExistsError, ValueError, WriteError) as exc:
        message = exists_message(exc) if isinstance(exc, OutputExistsError) else str(exc)
        err.print(escape(" ".join(message.split()) if message.startswith(NAME) else f"{NAME}: {message}"))
        return 1
    except BrokenPipeError:
        err.print("tisdiss: standard output closed before the end of the stream")
        return 1
    _report(separator, depth, result, as_json=as_json, out=out, err=err)
    return 0


def _report(
    separator: Separator, depth: Depth, result: PipeResult, *, as_json: bool, out: Console, err: Console
) -> None:
    stats, seconds, wall = result.stats, result.seconds, result.wall
    warnings = result.warnings + clip_warning(result.clipped)
    for warning in warnings:
        err.print(f"{NAME}: warning: {escape(warning)}")
    summary = {
        "input": NAME,
        "model": separator.loaded.name,
        "n_sep": depth.n_sep,
        "n_re": depth.n_re,
        "device": str(separator.device),
        "sample_rate": result.format.sample_rate,
        "channels": result.format.channels,
        "audio_seconds": round(seconds, 3),
        "wall_seconds": round(wall, 3),
        "rtf": round(wall / seconds, 4) if seconds else None,
        "chunks": stats.chunks,
        "segment_seconds": round(separator.plan.segment_samples / separator.sample_rate, 3),
        "latency_max_seconds": round(stats.latency_max, 3),
        "latency_mean_seconds": round(stats.latency_mean, 3),
        "outputs": result.outputs,
        "warnings": warnings,
    }
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    out.print(f"{NAME} -> {', '.join(escape(o) for o in result.outputs)}")
    out.print(
        f"{seconds:.1f} s of audio in {wall:.1f} s, RTF {summary['rtf']}; latency max {stats.latency_max:.2f} s, "
        f"mean {stats.latency_mean:.2f} s (segment {summary['segment_seconds']:g} s + compute; "
        "measured from arrival on stdin)"
    )
