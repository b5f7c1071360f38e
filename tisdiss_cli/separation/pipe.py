"""A WAV or raw PCM stream (standard input) separated as it arrives: the pipe front-end of the engine.

Outputs go to one file per speaker (written as chunks complete, renamed into place at the end),
or to one interleaved J-channel WAV stream (``sink``, e.g. standard output).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..audio.files import AudioError
from ..audio.pcm import PcmReader, StreamFormat, WavStreamWriter, raw_format, read_wav_header
from ..model.depth import Depth
from ..util.timing import Stopwatch
from .outputs import OutputOptions, SpeakerFiles, claim
from .separator import Separator
from .streaming import StreamStats


@dataclass(frozen=True)
class PipeInput:
    """How the stream is encoded: a WAV header (the default) or headerless PCM."""

    raw_rate: int | None = None  # Hz of headerless PCM; None: the stream starts with a WAV header
    raw_format: str = "s16le"  # with raw_rate: s16le | s24le | s32le | f32le
    raw_channels: int = 1  # with raw_rate: interleaved channels
    name: str = "stdin"  # how messages name the stream

    def read_format(self, source: BinaryIO) -> StreamFormat:
        if self.raw_rate is not None:
            return raw_format(self.raw_rate, self.raw_format, self.raw_channels)
        return read_wav_header(source, self.name)


@dataclass
class PipeResult:
    """What :func:`separate_pipe` did."""

    outputs: list[str]  # the speakers' files, or ["stdout"] for a WAV stream
    format: StreamFormat  # the input's
    seconds: float  # audio read
    wall: float  # seconds from the first read to the last write
    stats: StreamStats  # chunks run and the measured latency
    clipped: int = 0  # output samples saturated at full scale
    warnings: list[str] = field(default_factory=list)


def separate_pipe(
    separator: Separator,
    source: BinaryIO,
    *,
    depth: Depth,
    encoding: PipeInput | None = None,
    options: OutputOptions | None = None,
    out_dir: Path = Path("separated"),
    stem: str = "stdin",
    sink: BinaryIO | None = None,
) -> PipeResult:
    """Separate ``source`` at ``depth``: into ``out_dir`` under ``options.filename`` (``stem``), or,
    with ``sink``, one interleaved WAV stream written to it. Raises :class:`~.audio.AudioError`,
    :class:`~.audio.OutputExistsError`, ``ValueError``, :class:`~tisdiss_cli.util.fileio.WriteError`
    or ``BrokenPipeError`` (the sink closed); part files are removed then."""
    watch = Stopwatch(separator.device)
    encoding = encoding if encoding is not None else PipeInput()
    options = options if options is not None else OutputOptions()
    fmt = encoding.read_format(source)
    stream = separator.stream(
        fmt.sample_rate,
        channels=fmt.channels,
        channel=options.channel,
        n_sep=depth.n_sep,
        n_re=depth.n_re,
        output_rate=options.rate,
    )
    rate = int(stream.output_rate)
    reader = PcmReader(source, fmt, encoding.name)
    if sink is not None:
        pipe = WavStreamWriter(sink, rate, stream.files, float_output=options.float_output)
        for block in reader.blocks():
            pipe.write(stream.feed(block).T)
        if stream.stats.input_frames == 0:
            raise AudioError(f"{encoding.name}: no audio samples")
        pipe.write(stream.close().T)
        pipe.close()
        outputs, clipped = ["stdout"], pipe.clipped
    else:
        targets = options.paths(Path(f"{stem}.wav").stem, out_dir, stream.files)  # the stem stays whole: a.b
        claim(targets, overwrite=options.overwrite)
        with SpeakerFiles(targets, rate, options) as files:
            for block in reader.blocks():
                files.write(stream.feed(block))
            if stream.stats.input_frames == 0:
                raise AudioError(f"{encoding.name}: no audio samples")
            files.write(stream.close())
            outputs, clipped = [str(p) for p in files.commit()], files.clipped
    seconds = stream.stats.input_frames / fmt.sample_rate
    return PipeResult(outputs, fmt, seconds, watch.seconds(), stream.stats, clipped, list(reader.warnings))
