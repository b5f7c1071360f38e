"""The tracker as a stage of the engine: network outputs in, one track per talker out.

:class:`OfflineTalkerStage` (files and arrays) keeps the stitched outputs (:class:`Spool`: in
memory for the first ``SPOOL_MEMORY_SECONDS``, then in a temporary file), tracks the whole
recording at once (:func:`~.tracking.track_offline`) and renders it piece by piece: two passes
over the network's outputs, not over the network; memory grows only by the voices kept for the
whole-file decision (about 1 MB a minute of audio). :class:`OnlineTalkerStage` (standard input,
live capture) decides each block as soon as its voices are known, with the talkers found so far,
and trails its input by ``latency_seconds``. Both analyse the same blocks with the same contexts; they differ only in
the talkers (the whole recording's, or those found so far) and in the loudest block (the file's,
or the loudest so far).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Protocol

import numpy as np
import soxr
import torch

from ..util.fileio import WriteError
from ..zoo.voice import load_voice_encoder
from .tracking import (
    Analysis,
    EmbedFn,
    OnlineTalkers,
    TalkerSummary,
    TrackerConfig,
    activity,
    analyse_blocks,
    context_samples,
    files_for,
    render,
    rendered,
    segments_of,
    track_offline,
)

RENDER_PIECE_SECONDS = 10.0  # the offline stage renders this much at a time
SPOOL_MEMORY_SECONDS = 120.0  # outputs up to this long stay in memory; longer ones go to a temporary file


class SpoolReader:
    """``reader[:, a:b]`` -> ``[J, b - a]`` float32 read from a spool file. Plain reads, not a
    memory map: the pages a map touches count as the process's memory until it ends, so a long
    file's second pass would grow it."""

    def __init__(self, fd: int, num_out: int, frames: int) -> None:
        self.fd, self.shape = fd, (num_out, frames)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = key
        if rows != slice(None):
            raise IndexError("a spool is read whole outputs at a time: reader[:, a:b]")
        start, stop, step = cols.indices(self.shape[1])
        if step != 1:
            raise IndexError("a spool is read in contiguous slices")
        width = self.shape[0] * 4
        count = max(0, stop - start)
        data = os.pread(self.fd, count * width, start * width)
        return np.frombuffer(data, np.float32).reshape(-1, self.shape[0]).T


class Spool:
    """The network's outputs ``[J, n]`` blocks kept for a second pass: in memory up to
    ``memory_frames``, then in a temporary file (memory stays flat in the recording's length).
    A failed write raises :class:`~tisdiss_cli.util.fileio.WriteError` naming the file."""

    def __init__(self, num_out: int, memory_frames: int) -> None:
        self.num_out, self.memory_frames = num_out, memory_frames
        self.blocks: list[np.ndarray] = []
        self.frames = 0
        self.file: IO[bytes] | None = None

    def append(self, outputs: np.ndarray) -> None:
        frames = np.ascontiguousarray(outputs.T, dtype=np.float32)  # [n, J]
        if self.file is None and self.frames + len(frames) > self.memory_frames:
            self.file = tempfile.TemporaryFile(prefix="tisdiss-spool-")  # noqa: SIM115 (closed by close())
            for block in self.blocks:
                self._write(block)
            self.blocks = []
        if self.file is None:
            self.blocks.append(frames)
        else:
            self._write(frames)
        self.frames += len(frames)

    def _write(self, frames: np.ndarray) -> None:
        assert self.file is not None
        try:
            self.file.write(frames.tobytes())
        except OSError as exc:
            raise self._failed(exc) from None

    @staticmethod
    def _failed(exc: OSError) -> WriteError:
        return WriteError(f"the voice tracker's temporary file in {tempfile.gettempdir()}", exc)

    def outputs(self) -> np.ndarray | SpoolReader:
        """``[J, N]``: an array, or a reader of the file that reads what each slice asks for."""
        if self.file is None:
            if not self.blocks:
                return np.zeros((self.num_out, 0), np.float32)
            return np.concatenate(self.blocks).T
        try:
            self.file.flush()
        except OSError as exc:
            raise self._failed(exc) from None
        return SpoolReader(self.file.fileno(), self.num_out, self.frames)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def voice_embedder() -> EmbedFn:
    """The pretrained voice encoder as an :data:`~.tracking.EmbedFn` (loaded once per process)."""
    encoder = load_voice_encoder()
    native = encoder.config.sample_rate

    def embed(waves: np.ndarray, rate: int) -> np.ndarray:
        x = np.asarray(waves, dtype=np.float64)
        peak = np.abs(x).max(axis=-1, keepdims=True)
        x = np.ascontiguousarray(x / np.maximum(peak, 1.0), dtype=np.float32)  # float input may be at any level
        if native % rate:  # not a whole fraction of the encoder's rate: resample to it
            x = np.stack([soxr.resample(w, rate, native) for w in x]).astype(np.float32)
            rate = native
        with torch.inference_mode():
            return encoder.embed(torch.from_numpy(x), rate).numpy()

    return embed


class TalkerStage(Protocol):
    summary: TalkerSummary | None

    @property
    def files(self) -> int | None:
        """How many tracks the stage yields: None until a file's talkers are counted."""
        ...

    def push(self, outputs: np.ndarray) -> list[np.ndarray]: ...

    def finish(self, last: np.ndarray | None, *, single_pass: bool) -> Iterator[np.ndarray]:
        """The rest, after the network's ``last`` outputs; ``single_pass``: the network ran once,
        over the whole input."""
        ...


class OfflineTalkerStage:
    """Spool ``[J, n]`` blocks; at :meth:`finish`, track the whole recording and yield ``[K, m]``."""

    def __init__(self, num_out: int, rate: int, config: TrackerConfig, embed: EmbedFn) -> None:
        self.num_out, self.rate, self.config, self.embed = num_out, rate, config, embed
        self._spool = Spool(num_out, round(SPOOL_MEMORY_SECONDS * rate))
        self.summary: TalkerSummary | None = None

    @property
    def frames(self) -> int:
        return self._spool.frames

    @property
    def files(self) -> int | None:
        if self.summary is not None:
            return self.summary.files
        return self.config.speakers

    def push(self, outputs: np.ndarray) -> list[np.ndarray]:
        self._spool.append(outputs)
        return []

    def finish(self, last: np.ndarray | None, *, single_pass: bool) -> Iterator[np.ndarray]:
        try:
            if last is not None:
                self.push(last)
            if self.frames == 0:
                self.summary = TalkerSummary(0, [0.0] * files_for(self.config, 0), asked=self.config.speakers)
                return
            outputs = self._spool.outputs()
            matrices, summary = track_offline(outputs, self.rate, self.config, self.embed, single_pass=single_pass)
            self.summary = summary
            yield from rendered(outputs, matrices, self.rate, self.config, round(RENDER_PIECE_SECONDS * self.rate))
        finally:
            self._spool.close()


class OnlineTalkerStage:
    """Decide each block once its contexts have arrived; emit what no later block can change."""

    def __init__(self, num_out: int, rate: int, config: TrackerConfig, embed: EmbedFn) -> None:
        self.num_out, self.rate, self.config, self.embed = num_out, rate, config, embed
        self.block = round(config.block_seconds * rate)
        self.fade = round(config.fade_seconds * rate)
        context = context_samples(config, rate)
        self.keep_blocks = -(-context // self.block) + 1  # blocks of history a context or a fade may read
        self.lookahead = context - context // 2  # samples after a block's centre its contexts read
        self.buffer = np.zeros((num_out, 0), np.float32)
        self.buffer_start = 0  # absolute sample of buffer[:, 0] (a block border)
        self.available = 0
        self.emitted = 0
        self.talkers = OnlineTalkers(config, files_for(config, num_out))
        self.matrices: list[np.ndarray] = []  # decided blocks from matrices_start on
        self.matrices_start = 0
        self.speaks: list[np.ndarray] = []  # per decided block: which files get speech
        self.summary: TalkerSummary | None = None

    @property
    def files(self) -> int:
        return self.talkers.files

    @property
    def latency_seconds(self) -> float:
        """How far the output trails the stage's input: a block, its contexts, half a fade."""
        return (self.block // 2 + self.lookahead + self.fade) / self.rate

    def push(self, outputs: np.ndarray) -> list[np.ndarray]:
        self.buffer = np.concatenate((self.buffer, outputs.astype(np.float32)), axis=1)
        self.available += outputs.shape[1]
        decided = self.matrices_start + len(self.matrices)
        while decided * self.block + self.block // 2 + self.lookahead <= self.available:
            self._decide(decided)
            decided += 1
        return self._emit(decided * self.block - (self.fade - self.fade // 2))

    def finish(self, last: np.ndarray | None, *, single_pass: bool) -> Iterator[np.ndarray]:
        if single_pass and self.available == 0 and last is not None:  # one network pass: as a file is
            fixed = dataclasses.replace(self.config, speakers=self.files)  # a stream's files are known from its start
            matrices, summary = track_offline(last, self.rate, fixed, self.embed, single_pass=True)
            self.summary = dataclasses.replace(summary, asked=self.config.speakers)
            self.available = self.emitted = last.shape[1]
            yield render(last, matrices, 0, last.shape[1], self.rate, self.config)
            return
        if last is not None:
            yield from self.push(last)
        total = -(-self.available // self.block)
        for b in range(self.matrices_start + len(self.matrices), total):
            self._decide(b)
        yield from self._emit(self.available)
        speaks = np.stack(self.speaks) if self.speaks else np.zeros((0, self.files), bool)
        self.summary = TalkerSummary(
            min(self.talkers.found, self.files),
            [float(s) for s in speaks.sum(0) * self.config.block_seconds],
            asked=self.config.speakers,
            segments=segments_of(speaks, self.config.block_seconds, self.available / self.rate),
        )

    def _decide(self, b: int) -> None:
        first = b - self.buffer_start // self.block
        part: Analysis = analyse_blocks(self.buffer, first, 1, self.rate, self.config, self.embed)
        matrix = self.talkers.decide(part)
        active = activity(part, self.config, self.talkers.loudest)[0]
        self.speaks.append((matrix * active[None, :]).max(axis=1) > 0)
        self.matrices.append(matrix)

    def _emit(self, upto: int) -> list[np.ndarray]:
        upto = min(upto, self.available)
        if upto <= self.emitted:
            return []
        matrices = np.stack(self.matrices)
        offset = self.matrices_start * self.block  # render() counts samples from the first matrix
        local = self.buffer[:, offset - self.buffer_start :]
        piece = render(local, matrices, self.emitted - offset, upto - offset, self.rate, self.config)
        self.emitted = upto
        self._forget()
        return [piece]

    def _forget(self) -> None:
        """Drop history no context, fade or unemitted sample can read any more."""
        keep_from = max(0, (self.emitted // self.block - self.keep_blocks) * self.block)
        drop = keep_from - self.buffer_start
        if drop > 0:
            self.buffer = self.buffer[:, drop:]
            self.buffer_start = keep_from
        drop_matrices = keep_from // self.block - self.matrices_start
        if drop_matrices > 0:
            self.matrices = self.matrices[drop_matrices:]
            self.matrices_start += drop_matrices
