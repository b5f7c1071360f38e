"""`tisdiss separate -`: a WAV or raw PCM stream from standard input, separated as it arrives.

Outputs go to one file per speaker (written as chunks complete, renamed into place at the end),
or with ``--stdout`` to one interleaved J-channel WAV stream; then nothing else goes to stdout.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from rich.console import Console
from rich.markup import escape

from ..model.depth import Depth
from ..separation.audio import AtomicWriter, AudioError, OutputFormat
from ..separation.separator import OutputExistsError, OutputRate, Separator, commit_all
from ..separation.wavstream import PcmReader, StreamFormat, WavStreamWriter, raw_format, read_wav_header
from ..util.fileio import WriteError, remove_stale_parts
from .messages import clip_warning

NAME = "stdin"  # how errors name the input, and the default output stem


@dataclass(frozen=True)
class StdinOptions:
    output: Path
    name: str = NAME
    raw_rate: int | None = None
    raw_format: str = "s16le"
    raw_channels: int = 1
    to_stdout: bool = False
    fmt: OutputFormat = "wav"
    float_output: bool = False
    output_rate: OutputRate = "input"
    channel: int | None = None  # 0-based
    filename: str = "{stem}_spk{spk}.{ext}"
    overwrite: bool = False
    as_json: bool = False


class _Files:
    """One AtomicWriter per speaker, length unknown until the end."""

    def __init__(self, paths: list[Path], rate: int, opts: StdinOptions) -> None:
        self.writers: list[AtomicWriter] = []
        try:
            for p in paths:
                self.writers.append(
                    AtomicWriter(
                        p, rate, length=None, fmt=opts.fmt, float_output=opts.float_output, overwrite=opts.overwrite
                    )
                )
        except BaseException:
            self.discard()  # the part files of the speakers opened before the one that failed
            raise

    def write(self, y: np.ndarray) -> None:
        for j, w in enumerate(self.writers):
            w.write(y[j])

    def commit(self) -> list[Path]:
        return commit_all(self.writers)

    def discard(self) -> None:
        for w in self.writers:
            w.discard()

    @property
    def clipped(self) -> int:
        return sum(w.clipped for w in self.writers)


def _input_format(source: BinaryIO, opts: StdinOptions) -> StreamFormat:
    if opts.raw_rate is not None:
        return raw_format(opts.raw_rate, opts.raw_format, opts.raw_channels)
    return read_wav_header(source, NAME)


def separate_stdin(
    separator: Separator,
    depth: Depth,
    opts: StdinOptions,
    out: Console,
    err: Console,
    *,
    source: BinaryIO | None = None,
    sink: BinaryIO | None = None,
) -> int:
    """Separate standard input (or ``source``); returns the exit code. ``out`` must be stderr with --stdout."""
    source = source if source is not None else sys.stdin.buffer
    t0 = time.perf_counter()
    if source.isatty():
        err.print(f"{NAME}: is a terminal; pipe audio in, e.g. ffmpeg -i IN -f wav - | tisdiss separate -")
        return 1
    files: _Files | None = None
    pipe: WavStreamWriter | None = None
    try:
        fmt = _input_format(source, opts)
        stream = separator.stream(
            fmt.sample_rate,
            channels=fmt.channels,
            channel=opts.channel,
            n_sep=depth[0],
            n_re=depth[1],
            output_rate=opts.output_rate,
        )
        if opts.to_stdout:
            pipe = WavStreamWriter(
                sink if sink is not None else sys.stdout.buffer,
                stream.output_rate,
                separator.num_spk,
                float_output=opts.float_output,
            )
        else:
            targets = separator.output_paths(
                Path(f"{opts.name}.wav"), opts.output, fmt=opts.fmt, filename=opts.filename
            )
            for folder in dict.fromkeys(t.parent for t in targets):
                remove_stale_parts(folder)
            existing = [t for t in targets if t.exists()]
            if existing and not opts.overwrite:
                raise OutputExistsError(f"{existing[0]}: exists (use --overwrite to replace it)")
            files = _Files(targets, stream.output_rate, opts)
        reader = PcmReader(source, fmt, NAME)

        def emit(y: np.ndarray) -> None:
            if pipe is not None:
                pipe.write(y.T)
            elif files is not None:
                files.write(y)

        for block in reader.blocks():
            emit(stream.feed(block))
        if stream.stats.input_frames == 0:
            raise AudioError(f"{NAME}: no audio samples")
        emit(stream.close())
        outputs: list[str] = []
        if pipe is not None:
            pipe.close()
            outputs.append("stdout")
        elif files is not None:
            outputs = [str(p) for p in files.commit()]
    except (AudioError, OutputExistsError, ValueError, WriteError) as exc:
        err.print(escape(" ".join(str(exc).split()) if str(exc).startswith(NAME) else f"{NAME}: {exc}"))
        return 1
    except BrokenPipeError:
        err.print("tisdiss: standard output closed before the end of the stream")
        return 1
    finally:
        if files is not None:
            files.discard()  # no-op once committed
    wall = time.perf_counter() - t0
    stats = stream.stats
    seconds = stats.input_frames / fmt.sample_rate
    clipped = files.clipped if files is not None else pipe.clipped if pipe is not None else 0
    warnings = reader.warnings + clip_warning(clipped)
    for warning in warnings:
        err.print(f"{NAME}: warning: {escape(warning)}")
    summary = {
        "input": NAME,
        "model": separator.loaded.name,
        "n_sep": depth[0],
        "n_re": depth[1],
        "device": str(separator.device),
        "sample_rate": fmt.sample_rate,
        "channels": fmt.channels,
        "audio_seconds": round(seconds, 3),
        "wall_seconds": round(wall, 3),
        "rtf": round(wall / seconds, 4) if seconds else None,
        "chunks": stats.chunks,
        "segment_seconds": round(separator.plan.segment / separator.sample_rate, 3),
        "latency_max_seconds": round(stats.latency_max, 3),
        "latency_mean_seconds": round(stats.latency_mean, 3),
        "outputs": outputs,
        "warnings": warnings,
    }
    if opts.as_json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(f"{NAME} -> {', '.join(escape(o) for o in outputs)}")
        out.print(
            f"{seconds:.1f} s of audio in {wall:.1f} s, RTF {summary['rtf']}; latency max {stats.latency_max:.2f} s, "
            f"mean {stats.latency_mean:.2f} s (segment {summary['segment_seconds']:g} s + compute; "
            "measured from arrival on stdin)"
        )
    return 0
