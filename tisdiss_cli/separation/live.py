"""Live separation: an audio source (a microphone) in, one file per speaker out as it goes.

The engine, :func:`run_live`, reads blocks from an :class:`AudioSource`, feeds a
:class:`~.streaming.SeparationStream`, writes each speaker's output to an atomic file (renamed
into place when the run ends) and can hand one speaker to an :class:`AudioSink` (playback). It
times every chunk: a chunk must run within the hop's worth of new audio it brings, and when
chunks keep taking longer the engine warns and steps N_re down.

Sources and sinks are in :mod:`tisdiss_cli.audio.devices`: :class:`MicrophoneSource`
(sounddevice, the ``tisdiss[live]`` extra, imported only when used) and :class:`FileSource`, a
file played at real-time pace (tests, demos).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio.devices import BLOCK_SECONDS as BLOCK_SECONDS
from ..audio.devices import AudioSink as AudioSink
from ..audio.devices import AudioSource as AudioSource
from ..audio.devices import FileSource as FileSource
from ..audio.devices import MicrophoneSource as MicrophoneSource
from ..audio.devices import MissingExtra as MissingExtra
from ..audio.devices import SpeakerSink as SpeakerSink
from ..audio.devices import import_sounddevice as import_sounddevice
from ..audio.files import OutputFormat
from ..model.depth import Depth
from ..util.timing import Stopwatch
from .outputs import OutputOptions, SpeakerFiles
from .separator import Separator
from .streaming import StreamStats

READ_TIMEOUT = 0.1  # seconds a read waits before the engine looks at its stop event again
BEHIND_CHUNKS = 2  # consecutive chunks slower than real time before the engine reacts


def level_db(block: np.ndarray) -> float:
    """RMS level in dBFS of a ``[n]`` block (-inf for silence or no samples)."""
    if not len(block):
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


@dataclass
class LiveStatus:
    """Shown after every block: what the meter displays."""

    seconds: float  # audio captured
    levels: list[float]  # dBFS per speaker, of the latest output block
    depth: Depth
    chunk_rtf: float  # latest chunk's compute time / the new audio it brought (above 1: falling behind)
    latency: float  # longest latency so far, seconds
    overflows: int


@dataclass
class LiveResult:
    outputs: list[Path]
    seconds: float  # audio captured
    wall: float
    depth: Depth  # at the end (lower than at the start if the engine stepped down)
    stats: StreamStats
    overflows: int
    warnings: list[str] = field(default_factory=list)


def run_live(
    separator: Separator,
    source: AudioSource,
    targets: list[Path],
    *,
    depth: Depth,
    fmt: OutputFormat = "wav",
    float_output: bool = False,
    stop: threading.Event | None = None,
    monitor: int | None = None,
    sink: AudioSink | None = None,
    on_status: Callable[[LiveStatus], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    adapt: bool = True,
    keep_up_rtf: float = 1.0,
    clock: Callable[[], float] = time.perf_counter,
    overwrite: bool = False,
) -> LiveResult:
    """Separate ``source`` until it ends or ``stop`` is set; returns when the files are committed.

    targets: one path per speaker. monitor: 0-based speaker sent to ``sink``. A chunk slower
    than ``keep_up_rtf`` times its new audio, :data:`BEHIND_CHUNKS` times in a row, gives a
    warning and (``adapt``) one step down in N_re. An exception (a second Ctrl-C included)
    discards the part files; a stop commits what was captured. ``clock`` times the latency
    (a fake clock's, with a fake-clock source); chunk compute is always timed on the wall clock.
    Without ``overwrite`` the targets are claimed exclusively when committed
    (:class:`~.audio.OutputExistsError` if another process wrote one meanwhile).
    """
    stop = stop if stop is not None else threading.Event()
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        if on_warning is not None:
            on_warning(message)

    watch = Stopwatch(separator.device)
    stream = separator.stream(
        source.sample_rate, channels=source.channels, n_sep=depth.n_sep, n_re=depth.n_re, name=source.name
    )
    stream.clock = clock
    options = OutputOptions(fmt, float_output, overwrite=overwrite)
    with SpeakerFiles(targets, int(stream.output_rate), options) as files:

        def emit(y: np.ndarray) -> None:
            files.write(y)
            if sink is not None and monitor is not None:
                sink.write(y[monitor])

        behind, chunks_seen, chunk_rtf = 0, 0, 0.0
        source.start()
        if sink is not None:
            sink.start()
        try:
            while not stop.is_set():
                block = source.read(READ_TIMEOUT)
                if block is None:
                    break
                y = stream.feed(block)
                emit(y)
                if stream.stats.chunks > chunks_seen:
                    chunks_seen = stream.stats.chunks
                    chunk_rtf = stream.stats.last_chunk_seconds / stream.hop_seconds
                    behind = behind + 1 if chunk_rtf > keep_up_rtf else 0
                    if behind >= BEHIND_CHUNKS:
                        behind = 0
                        what = (
                            f"cannot keep up: a chunk bringing {stream.hop_seconds:.2f} s of new audio took "
                            f"{stream.stats.last_chunk_seconds:.2f} s (RTF {chunk_rtf:.2f}) at n_re={stream.depth.n_re}"
                        )
                        if adapt and stream.depth.n_re > 0:
                            stream.set_depth(Depth(stream.depth.n_sep, stream.depth.n_re - 1))
                            what += f"; stepping down to n_re={stream.depth.n_re}"
                        warn(what)
                if on_status is not None and len(y):
                    on_status(
                        LiveStatus(
                            stream.stats.input_frames / source.sample_rate,
                            [level_db(ch) for ch in y],
                            stream.depth,
                            chunk_rtf,
                            stream.stats.latency_max,
                            source.overflows,
                        )
                    )
        finally:
            source.stop()
            if sink is not None:
                sink.stop()
        emit(stream.close())
        outputs = files.commit()
    if source.overflows:
        warn(f"the input device dropped {source.overflows} block(s): the machine did not read them in time")
    return LiveResult(
        outputs,
        stream.stats.input_frames / source.sample_rate,
        watch.seconds(),
        stream.depth,
        stream.stats,
        source.overflows,
        warnings,
    )
