"""Python API for separation: ``Separator`` turns a mixture (array or file) into one track per speaker.

>>> sep = Separator("path/to/model.safetensors", preset="fast")   # doctest: +SKIP
>>> sources = sep.separate(wave, 16000)                           # [J, samples]
>>> sep.separate_file("meeting.wav", "separated/")                # [.../meeting_spk1.wav, ...]
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..audio import files as audio
from ..audio.arrays import as_mono_float32, check_sample_rate
from ..audio.denoise import Denoiser, rnnoise
from ..audio.files import OutputExistsError as OutputExistsError  # raised by process_file; defined with the writer
from ..model.depth import Depth
from ..model.network import TISDiSS
from ..model.precision import at_precision
from ..util.device import pick_device
from ..util.precision import PRECISIONS
from ..util.timing import Stopwatch
from ..zoo.load import LoadedModel, load_any
from .adaptive import separate_adaptive
from .calibration import Calibration, calibrate
from .chunking import ChunkPlan
from .depth import DepthChoice, choose_depth, preset_depth
from .fullband import OFFLINE_LOOKAHEAD, FullBandConfig, FullBandStage, check_band
from .outputs import DEFAULT_FILENAME as DEFAULT_FILENAME
from .outputs import FORMAT_SUFFIXES as FORMAT_SUFFIXES
from .outputs import OutputOptions, OutputRate, SpeakerFiles, claim
from .outputs import check_template as check_template
from .outputs import commit_all as commit_all
from .outputs import output_stem as output_stem
from .outputs import stays_inside as stays_inside
from .streaming import SeparationStream
from .talkers import OfflineTalkerStage, OnlineTalkerStage, TalkerStage, voice_embedder
from .tracking import MAX_SPEAKERS, TalkerSummary, TrackerConfig

TRACKERS = ("voice", "overlap")  # voice: talkers tracked by voice; overlap: chunks aligned on their overlap only
Speakers = int | str  # a number of files, or "auto": one per talker found

# Chosen by measurement (full-size sep1x2-re1x6 model, random weights, CPU, n_sep=2 n_re=1).
# One forward on a segment of 1 / 1.5 / 2 / 4 s: RTF 6.4 / - / 5.9 / 10.1 (one thread,
# shared machine), peak RSS 0.66 / 1.20 / 1.39 / 1.95 GB; the whole `separate` pipeline on a
# 16 kHz file with 2 s segments peaked at 1.52 GB. Activations grow by about 0.4 GB per second
# of segment, so 1.5 s is the longest round value that keeps a CPU run under 1.5 GB, and the
# cost per second of audio is flat between 1 and 2 s. A quarter overlap (0.375 s) gives the
# speaker re-alignment enough shared signal for a third more compute. Longer segments give
# the utterance-level normalisation more context; raise --segment on a GPU.
DEFAULT_SEGMENT = 1.5  # seconds per chunk
DEFAULT_OVERLAP = 0.25  # fraction of the segment shared by consecutive chunks

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (samples done, total samples) at the model's rate


@dataclass
class FileResult:
    """What :meth:`Separator.process_file` did for one input."""

    input: Path
    outputs: list[Path]
    duration: float  # seconds of input audio
    seconds: float  # wall time
    depth: Depth  # (n_sep, n_re) used
    clipped: int = 0  # output samples saturated at full scale (PCM only)
    chunks: int = 0
    warnings: list[str] = field(default_factory=list)
    talkers: TalkerSummary | None = None  # what the voice tracker found (None: tracker off)


def resolve_model(spec: object, device: torch.device) -> LoadedModel:
    """A LoadedModel from a LoadedModel, a TISDiSS network, or a spec the zoo resolves."""
    if isinstance(spec, LoadedModel):
        spec.model.to(device).eval()
        return spec
    if isinstance(spec, TISDiSS):
        return LoadedModel.in_memory(spec.to(device).eval())
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"model must be a name, a path, a LoadedModel or a TISDiSS, not {type(spec).__name__}")
    return load_any(spec, device=str(device))


def headroom(chunks: Tensor) -> Tensor:
    """``[B, 1]`` powers of two that bring each chunk's peak to at most 1 (1 for chunks already there).

    Float input may hold any finite level (a float WAV of 3e38): its energy, and the network's
    variance, overflow float32. Dividing by a power of two is exact, and so is multiplying the
    outputs back, so a chunk at a huge level gives exactly the outputs of the same chunk at full
    scale, scaled as the input was.
    """
    peak = chunks.abs().amax(dim=-1, keepdim=True).double()
    exponent = torch.where(peak > 1, torch.frexp(peak).exponent, 0)
    return torch.ldexp(torch.ones_like(peak), exponent)


def match_level(sources: Tensor, mixture: Tensor) -> Tensor:
    """Scale ``[B, J, S]`` sources so that their summed energy equals the ``[B, S]`` mixture's, with
    the mixture's polarity.

    The training losses are scale-invariant, and sign-invariant too, so a network's output level
    and sign are arbitrary (an undertrained one can be 20x too loud and clip; the bundled model
    returns every talker inverted). One gain per mixture, negative when the sources sum to the
    mixture upside down, keeps the speakers' relative levels and every SI-SNR and SDR unchanged,
    and makes the tracks add back up to the recording (a talker's file summed from both outputs
    too).
    """
    source_energy = sources.pow(2).sum(dim=(-2, -1))
    gain = (mixture.pow(2).sum(-1) / source_energy.clamp_min(torch.finfo(sources.dtype).tiny)).sqrt()
    polarity = torch.where((sources.sum(-2) * mixture).sum(-1) < 0, -1.0, 1.0)
    return sources * torch.where(source_energy > 0, gain * polarity, 1.0)[:, None, None]


class Separator:
    """Separates mixtures with a TISDiSS model, chunk by chunk for long inputs.

    model: registry name, checkpoint path, ESPnet folder, None (best available), a
    :class:`LoadedModel` or a :class:`TISDiSS`. preset: "fast" | "balanced" | "best", the
    default depth; segment (seconds; None: the model card's, else DEFAULT_SEGMENT) and overlap
    (fraction) set the chunking.
    adaptive_threshold (dB): stop each chunk's reconstruction loop once a step changes the
    output less than this (SI-SNR between successive steps), never deeper than the chosen
    N_re; the depth used per chunk is recorded in ``depths_used``.
    match_level: scale each chunk's outputs so their total energy equals the mixture's
    (:func:`match_level`); False keeps the network's own output level.
    precision: "auto" (the default, as on the command line: bf16 where it is measured faster
    than fp32 on this device for this model's width, else fp32; :mod:`tisdiss_cli.util.precision`)
    | "fp32" | "bf16" | "int8". What was chosen, and a warning for emulated
    bf16, is in ``self.precision``.
    tracker: "voice" (the default: talkers tracked by voice across the whole recording, so each
    talker's file holds that talker from start to end and a lone talker stays in one file;
    :mod:`~.tracking`) | "overlap" (chunks aligned on their overlap only, as before the tracker).
    speakers: "auto" (the default: one file per talker the voices show, any number from a
    two-output network, in order of first appearance; streams, whose length is unknown, write the
    network's number) | a number of files (more talkers share files, fewer leave files silent;
    ``last_talkers.warning`` says what the voices suggested). Other than the network's number
    needs the voice tracker.
    band: "full" (the default: when the input's rate is above the model's, each talker's file
    gets the input's band above the model's Nyquist, shared out from the mixture by the separated
    low band; :mod:`~.fullband`) | "model" (the model's band only, as before: nothing above its
    Nyquist).
    denoise: run RNNoise on the mixture before it is separated (:mod:`~tisdiss_cli.audio.denoise`,
    the ``denoise`` extra): on noisy recordings the talkers' files keep less of the noise.
    """

    def __init__(
        self,
        model: object = None,
        device: str | torch.device = "auto",
        preset: str = "balanced",
        *,
        segment: float | None = None,
        overlap: float = DEFAULT_OVERLAP,
        batch_size: int = 1,
        adaptive_threshold: float | None = None,
        match_level: bool = True,
        precision: str = "auto",
        tracker: str = "voice",
        speakers: Speakers = "auto",
        band: str = "full",
        denoise: bool = False,
    ) -> None:
        self.device = pick_device(device)
        self.band = check_band(band)
        if denoise:
            rnnoise()  # DenoiseUnavailable now, naming the extra, rather than at the first input
        self.denoise = denoise
        if tracker not in TRACKERS:
            raise ValueError(f"unknown tracker {tracker!r}; choose from {', '.join(TRACKERS)}")
        self.tracker = tracker
        self.speakers = check_speakers(speakers)
        self.last_talkers: TalkerSummary | None = None  # what the tracker found in the last separate()
        if precision not in PRECISIONS:  # before the model loads
            raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        self.match_level = match_level
        self.adaptive_threshold = adaptive_threshold
        self.depths_used: list[int] = []
        self.loaded = resolve_model(model, self.device)
        self.model, self.precision = at_precision(self.loaded.model, precision)
        if self.precision.warning:
            log.warning(self.precision.warning)
        self.sample_rate = self.model.config.sample_rate
        self.num_spk = self.model.config.num_spk
        if segment is None:
            segment = self.loaded.segment_seconds or DEFAULT_SEGMENT
        self.segment_seconds = segment  # the chunk length; self.plan has it in samples
        self.plan = ChunkPlan.from_seconds(segment, overlap, self.sample_rate, batch_size)
        self.tracker_config = TrackerConfig()
        self.files(self.speakers)  # refuses a number of files the tracker cannot write, before any input
        self.preset = preset
        self.depth()  # validates the preset name now

    @property
    def segment(self) -> float:
        """Deprecated: :attr:`segment_seconds` (``plan.segment_samples`` is the same length in samples)."""
        warnings.warn("Separator.segment is deprecated; use segment_seconds", DeprecationWarning, stacklevel=2)
        return self.segment_seconds

    def files(self, speakers: Speakers | None = None, *, stream: bool = False) -> int | None:
        """How many files an input is written to, when known before separating it: ``speakers``
        (default: the separator's) as a number, the network's outputs without the voice tracker or
        for a stream; None for a file or array with ``auto`` (one per talker found)."""
        speakers = self.speakers if speakers is None else check_speakers(speakers)
        if self.tracker != "voice":
            if speakers not in ("auto", self.num_spk):
                raise ValueError(
                    f"speakers {speakers}: a number of files other than the model's {self.num_spk} "
                    "needs the voice tracker"
                )
            return self.num_spk
        if speakers == "auto":
            return self.num_spk if stream else None
        return int(speakers)

    @property
    def presets(self) -> dict[str, Depth]:
        return dict(self.loaded.presets)

    def depth(self, preset: str | None = None, n_sep: int | None = None, n_re: int | None = None) -> Depth:
        """(n_sep, n_re) for a preset, with explicit values overriding it."""
        return preset_depth(self.loaded.presets, preset or self.preset, n_sep, n_re)

    def calibration(self, n_sep: int | None = None) -> Calibration:
        """Measured RTF per N_re on this device (cached per model and device)."""
        n_sep = self.depth(n_sep=n_sep).n_sep
        deepest = max(depth.n_re for depth in self.loaded.presets.values())
        name = self.precision.name
        model_id = self.loaded.name if name == "fp32" else f"{self.loaded.name}|{name}"  # each measured apart
        return calibrate(self.model, model_id, n_sep=n_sep, max_n_re=deepest)

    def choose_depth(
        self,
        preset: str | None = None,
        n_sep: int | None = None,
        n_re: int | None = None,
        max_rtf: float | None = None,
        *,
        live: bool = False,
    ) -> DepthChoice:
        """The depth a run uses and why (see :func:`~.depth.choose_depth`): the preset with
        ``n_sep`` / ``n_re`` overriding it, or with ``max_rtf`` the deepest N_re measured to run
        that fast here. ``live``: ``max_rtf`` budgets each second of new audio in a stream."""
        return choose_depth(
            self.loaded,
            preset or self.preset,
            n_sep,
            n_re,
            max_rtf=max_rtf,
            calibration=self.calibration,
            keep_up=self.plan.hop_samples / self.plan.segment_samples if live else None,
        )

    def depth_for_rtf(self, max_rtf: float, n_sep: int | None = None) -> Depth:
        """The deepest (n_sep, n_re), up to the deepest preset, measured to run at RTF <= max_rtf."""
        return self.calibration(n_sep).choose_depth(max_rtf)

    # -- core
    def _network(self, depth: Depth) -> Callable[[Tensor], Tensor]:
        """Chunks ``[B, S]`` -> sources ``[B, J, S]`` on CPU, float32."""
        n_sep, n_re = depth
        min_len = self.model.config.n_fft  # centred STFT reflect-pads n_fft/2 on each side

        @torch.inference_mode()
        def run(chunks: Tensor) -> Tensor:
            length = chunks.shape[-1]
            scale = headroom(chunks)
            scaled = not bool((scale == 1).all())
            if scaled:
                peak = float(chunks.abs().max())
                chunks = (chunks.double() / scale).float()
            x = chunks.to(self.device, torch.float32)
            if length < min_len:  # shorter than one STFT frame: pad, separate, trim
                x = torch.nn.functional.pad(x, (0, min_len - length))
            if self.adaptive_threshold is None:
                out = self.model(x, n_sep=n_sep, n_re=n_re)
            else:
                out, used = separate_adaptive(
                    self.model, x, n_sep=n_sep, max_n_re=n_re, threshold_db=self.adaptive_threshold
                )
                self.depths_used.append(used)
            out = out[..., :length].float().cpu()
            if self.match_level:
                out = match_level(out, chunks.float())
            silent = chunks.abs().amax(dim=-1) == 0
            out[silent] = 0.0  # silent in, silent out (not the network's residual bias)
            if not scaled:
                return out
            out = (out.double() * scale[:, :, None]).float()
            if not bool(torch.isfinite(out).all()):
                raise ValueError(f"the outputs exceed the float32 range (input peak {peak:.3g}); scale the input down")
            return out

        return run

    def _stream(
        self,
        depth: Depth,
        sample_rate: float,
        output_rate: float,
        *,
        channels: int = 1,
        channel: int | None = None,
        total: int | None = None,
        progress: ProgressFn | None = None,
        name: str | None = None,
        online: bool = False,
        speakers: Speakers | None = None,
        band: str | None = None,
        denoise: bool | None = None,
    ) -> SeparationStream:
        """The engine every front-end feeds; ``progress`` is told (model-rate samples done, ``total``).
        ``online``: the tracker decides as the input arrives (streams), else once it has all of it.
        ``band``, ``denoise``: this run's, if not the separator's."""
        on_chunk = None
        if progress is not None and total is not None:
            on_chunk = lambda end: progress(min(end, total), total)  # noqa: E731
        return SeparationStream(
            self._network,
            depth,
            self.plan,
            self.num_spk,
            self.sample_rate,
            sample_rate,
            channels=channels,
            channel=channel,
            output_rate=output_rate,
            on_chunk=on_chunk,
            name=name,
            device=self.device,
            talkers=self._talker_stage(online, speakers),
            fullband=self._fullband_stage(sample_rate, output_rate, online, band),
            denoiser=Denoiser(sample_rate) if self._denoise(denoise) else None,
        )

    def _denoise(self, denoise: bool | None) -> bool:
        """This run's choice (the separator's unless given); ``DenoiseUnavailable`` without the extra."""
        chosen = self.denoise if denoise is None else denoise
        if chosen:
            rnnoise()
        return chosen

    def full_band(self, sample_rate: float, output_rate: float | None = None, band: str | None = None) -> bool:
        """Whether outputs of an input at ``sample_rate`` (written at ``output_rate``, by default the
        same) get the band above the model's: band "full" (``band``, else the separator's) and both
        rates above the model's."""
        out = sample_rate if output_rate is None else output_rate
        return check_band(band or self.band) == "full" and min(sample_rate, out) > self.sample_rate

    def _fullband_stage(
        self, sample_rate: float, output_rate: float, online: bool, band: str | None
    ) -> FullBandStage | None:
        if not self.full_band(sample_rate, output_rate, band):
            return None
        # A file's talkers are decided over the whole recording: its highs may learn from 10 s on.
        # Streams, and the stitching alone (which every front-end shares), do not look ahead.
        lookahead = OFFLINE_LOOKAHEAD if self.tracker == "voice" and not online else 0.0
        config = FullBandConfig(lookahead_seconds=lookahead)
        return FullBandStage(None, output_rate, self.sample_rate, sample_rate, config)  # tracks: as many as arrive

    def _talker_stage(self, online: bool, speakers: Speakers | None) -> TalkerStage | None:
        if self.tracker != "voice":
            return None
        files = self.files(speakers, stream=online)
        config = dataclasses.replace(self.tracker_config, speakers=files)
        stage = OnlineTalkerStage if online else OfflineTalkerStage
        return stage(self.num_spk, self.sample_rate, config, voice_embedder())

    def separate(
        self,
        wave: np.ndarray | Tensor,
        sample_rate: int,
        *,
        preset: str | None = None,
        n_sep: int | None = None,
        n_re: int | None = None,
        progress: ProgressFn | None = None,
        speakers: Speakers | None = None,
        band: str | None = None,
        denoise: bool | None = None,
    ) -> np.ndarray:
        """Mixture ``[L]`` or ``[C, L]`` (numpy or torch) at ``sample_rate`` -> ``[K, L]`` float32
        at the same rate and level (channels are averaged; the input is not modified): ``K`` talkers
        with ``speakers`` auto (the separator's unless given), else that many; what the tracker
        found is in :attr:`last_talkers`. ``band`` ("full" | "model") and ``denoise`` override the
        separator's for this call.

        Float samples are taken at full scale 1.0, int8/int16/int32 and uint8 (8-bit WAV) PCM is
        scaled to it; any other shape or dtype (soundfile's ``[L, C]`` included: pass ``wave.T``),
        and a rate that is not a positive whole number of Hz, raise a ``ValueError`` naming it.
        See :mod:`tisdiss_cli.audio.arrays`.
        """
        x = as_mono_float32(wave)
        rate = check_sample_rate(sample_rate)
        total = audio.resampled_length(len(x), rate, self.sample_rate)
        depth = self.depth(preset, n_sep, n_re)
        stream = self._stream(
            depth, rate, rate, total=total, progress=progress, speakers=speakers, band=band, denoise=denoise
        )
        parts = [p for p in (stream.feed(x), *stream.close_blocks()) if p.shape[1]]  # empty ones may predate the count
        out = np.concatenate(parts, axis=1) if parts else np.zeros((stream.files, 0), np.float32)
        self.last_talkers = stream.talker_summary
        return out

    def stream(
        self,
        sample_rate: int,
        *,
        channels: int = 1,
        channel: int | None = None,
        preset: str | None = None,
        n_sep: int | None = None,
        n_re: int | None = None,
        output_rate: OutputRate = "input",
        name: str | None = None,
        speakers: Speakers | None = None,
        band: str | None = None,
        denoise: bool | None = None,
    ) -> SeparationStream:
        """A :class:`SeparationStream` for input at ``sample_rate`` with ``channels`` channels:
        ``feed(block [n] or [n, channels]) -> [J, m]`` as chunks complete, then ``close()`` for the
        rest; the outputs equal :meth:`process_file`'s for the same samples, however they are cut.
        ``name`` (a file's, say) starts the stream's error messages; ``band`` and ``denoise`` override
        the separator's.
        A stream writes the network's number of tracks unless ``speakers`` (or the separator's) is a
        number: its length, and so its talkers, are not known in advance."""
        rate = check_sample_rate(sample_rate)
        out_rate = rate if output_rate == "input" else self.sample_rate
        depth = self.depth(preset, n_sep, n_re)
        return self._stream(
            depth,
            rate,
            out_rate,
            channels=channels,
            channel=channel,
            name=name,
            online=True,
            speakers=speakers,
            band=band,
            denoise=denoise,
        )

    def output_paths(
        self,
        path: str | os.PathLike,
        out_dir: str | os.PathLike,
        *,
        fmt: audio.OutputFormat = "wav",
        filename: str = DEFAULT_FILENAME,
        count: int | None = None,
    ) -> list[Path]:
        """Where :meth:`separate_file` writes ``count`` files (default: :meth:`files`, or the
        network's number where ``auto`` counts talkers at the end); ``filename`` may use ``{stem}``,
        ``{spk}`` (1-based), ``{ext}`` and sub-folders, but must stay inside ``out_dir`` (no
        absolute path, no ``..``) and name files of format ``fmt`` (:func:`~.outputs.check_template`;
        ``ValueError`` otherwise)."""
        count = count or self.files() or self.num_spk
        return OutputOptions(fmt=fmt, filename=filename).paths(Path(path).stem, out_dir, count)

    def process_file(
        self,
        path: str | os.PathLike,
        out_dir: str | os.PathLike,
        *,
        preset: str | None = None,
        n_sep: int | None = None,
        n_re: int | None = None,
        fmt: audio.OutputFormat = "wav",
        float_output: bool = False,
        output_rate: OutputRate = "input",
        channel: int | None = None,
        stream: int | None = None,
        filename: str = DEFAULT_FILENAME,
        overwrite: bool = False,
        progress: ProgressFn | None = None,
        options: OutputOptions | None = None,
        speakers: Speakers | None = None,
        band: str | None = None,
        denoise: bool | None = None,
    ) -> FileResult:
        """Separate one file block by block into one file per speaker; see :meth:`separate_file`.
        ``options`` (checked once by whoever made it) replaces fmt ... overwrite."""
        watch = Stopwatch(self.device)
        depth = self.depth(preset, n_sep, n_re)
        if options is None:
            options = OutputOptions(fmt, float_output, output_rate, channel, filename, overwrite)
        info = audio.probe(path, stream=stream)
        stem = Path(path).stem
        known = self.files(speakers)
        claim(options.paths(stem, out_dir, known or 1), overwrite=options.overwrite)  # auto: the rest once counted
        if options.channel is not None and options.channel >= info.channels:
            raise audio.AudioError(f"{info.path}: has {info.channels} channel(s), no channel {options.channel + 1}")
        out_rate = audio.codec_rate(options.fmt, info.sample_rate if options.rate == "input" else self.sample_rate)
        engine = self._stream(
            depth,
            info.sample_rate,
            out_rate,
            channels=info.channels,
            channel=options.channel,
            total=audio.resampled_length(info.frames, info.sample_rate, self.sample_rate),
            progress=progress,
            name=str(info.path),
            speakers=speakers,
            band=band,
            denoise=denoise,
        )
        length = audio.resampled_length(info.frames, info.sample_rate, out_rate)
        targets = lambda count: options.paths(stem, out_dir, count)  # noqa: E731
        with SpeakerFiles(targets, out_rate, options, length=length, count=known) as files:
            for frames in audio.read_frames(info):
                files.write(engine.feed(frames))
            for block in engine.close_blocks():
                files.write(block)
            outputs = files.commit(engine.files)
        result = FileResult(
            info.path,
            outputs,
            info.duration,
            watch.seconds(),
            depth,
            files.clipped,
            engine.stats.chunks,
        )
        result.talkers = engine.talker_summary
        if result.talkers is not None and result.talkers.warning:
            result.warnings.append(result.talkers.warning)
        left = [p.name for p in options.paths(stem, out_dir, MAX_SPEAKERS)[len(outputs) :] if p.exists()]
        if left:  # an earlier run's files, most likely (it found more talkers): said, never removed
            kept = "it was" if len(left) == 1 else "they were"
            wrote = f"{len(outputs)} file{'s' if len(outputs) != 1 else ''}"
            result.warnings.append(f"{', '.join(left)}: not from this run, which wrote {wrote}; left as {kept}")
        truncated = info.header_warning()
        if truncated is not None:
            result.warnings.append(truncated)
        return result

    def separate_file(self, path: str | os.PathLike, out_dir: str | os.PathLike, **options: Any) -> list[Path]:
        """Separate ``path`` into ``out_dir/<stem>_spk<k>.<ext>``, one per talker, and return the paths.

        Reads and writes block by block (memory does not depend on the length), writes each
        output to a temporary file renamed at the end, never overwrites unless
        ``overwrite=True`` (else :class:`OutputExistsError`, also when another process writes the
        same outputs meanwhile: each is claimed exclusively). Samples clipped at full scale
        (PCM outputs) are counted in :meth:`process_file`'s ``FileResult.clipped``;
        ``float_output=True`` keeps them.
        Options: preset, n_sep, n_re,
        fmt ("wav" | "flac" | "mp3" | "opus"; MP3 and Opus at a rate their encoders refuse are
        written at the next one up, see :func:`~tisdiss_cli.audio.files.codec_rate`),
        float_output (32-bit float WAV instead of 24-bit PCM), output_rate ("input" | "model"),
        channel (0-based; None averages), stream (0-based audio stream of a container, e.g. a
        video; None: the first), filename, overwrite, progress, speakers ("auto": one file per
        talker found, ``<stem>_spk1`` ... ``_spkK`` in order of first appearance; or a number), band
        ("full" | "model") and denoise (this call's instead of the separator's).
        Raises :class:`tisdiss_cli.audio.files.AudioError` (``path: reason``) for bad input. What
        :meth:`process_file` returns as warnings (a header that misstates the file's length, a
        number of files the voices disagree with) is logged as ``path: warning``.
        """
        result = self.process_file(path, out_dir, **options)
        for warning in result.warnings:
            log.warning("%s: %s", result.input, warning)
        return result.outputs


def check_speakers(speakers: object) -> Speakers:
    """``"auto"`` or a whole number of files from 1 to ``MAX_SPEAKERS`` (a digit string too, as a
    form sends it); a ``ValueError`` naming the value otherwise."""
    if isinstance(speakers, str) and speakers.strip().isdigit():
        speakers = int(speakers)
    if speakers == "auto":
        return "auto"
    if isinstance(speakers, int) and not isinstance(speakers, bool) and 1 <= speakers <= MAX_SPEAKERS:
        return speakers
    raise ValueError(f"speakers {speakers!r}: use auto or a number of files from 1 to {MAX_SPEAKERS}")
