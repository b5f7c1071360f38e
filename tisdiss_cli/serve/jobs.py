"""Jobs: a bounded queue, a few workers running the one engine, files kept for a while, then deleted.

Each job has a folder named by its random id under the server's data folder, holding the
upload, the outputs :meth:`Separator.process_file` writes (the same call, writers and options as
``tisdiss separate``) and what :mod:`.artifacts` derives from them. The :class:`DiskBudget` holds
every job's worst-case size from its admission on, so the folder never outgrows the limit. A job
that raises is marked failed with its one-line reason and the worker goes on.
"""

from __future__ import annotations

import enum
import logging
import math
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..audio import files as audio
from ..audio.info import AudioInfo
from ..separation.depth import DepthChoice
from ..separation.separator import Separator
from . import artifacts
from .config import Limits
from .errors import RequestError
from .options import JobOptions
from .uploads import Upload

log = logging.getLogger(__name__)

PICTURE_BYTES = 400_000  # upper bound of one PNG from artifacts.picture
MAX_FINISHED = 1000  # records of finished jobs kept at most (their files are bounded by the disk budget)
Clock = Callable[[], float]


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class Cancelled(Exception):
    """Raised inside a running job (from its progress callback) to stop it between chunks."""


@dataclass
class Job:
    """One recording to separate, from its admission until its files are deleted."""

    id: str  # secrets.token_urlsafe: unguessable, and the only name a request can give
    folder: Path
    upload: Upload
    info: AudioInfo
    options: JobOptions
    choice: DepthChoice
    chunks_total: int
    reserved: int = 0  # bytes held in the disk budget
    state: JobState = JobState.QUEUED
    chunks_done: int = 0
    created: float = 0.0  # clock times
    started: float | None = None
    finished: float | None = None
    outputs: list[Path] = field(default_factory=list)
    mixture: Path | None = None
    pictures: list[Path] = field(default_factory=list)  # one per speaker, then the mixture's
    archive: Path | None = None
    error: str | None = None
    client_error: bool = False  # the failure was the recording's (bad samples), not the server's
    warnings: list[str] = field(default_factory=list)
    clipped: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one conversion at a time

    def reason(self, exc: BaseException) -> str:
        """An error as one sentence about the client's file (see :meth:`scrub`)."""
        return self.scrub(str(exc)) or type(exc).__name__

    def scrub(self, text: str) -> str:
        """``text`` on one line with the server's paths replaced by the client's file name."""
        text = " ".join(text.split())
        for path in sorted({str(self.upload.path), str(self.folder)}, key=len, reverse=True):
            text = text.replace(f"{path}: ", "").replace(path, self.upload.name)
        return text.replace(str(self.folder.parent), "[server]")


class DiskBudget:
    """Bytes reserved on disk by all jobs together, against the limit."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._lock = threading.Lock()

    def reserve(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.used = max(0, self.used - size)


def estimate_bytes(info: AudioInfo, options: JobOptions, model_rate: int, num_spk: int) -> int:
    """Worst-case size of a job's files besides its upload: outputs, the zip of them, the mixture WAV
    and the pictures."""
    out = options.output
    rate = audio.codec_rate(out.fmt, info.sample_rate if out.rate == "input" else model_rate)
    frames = audio.resampled_length(info.frames, info.sample_rate, rate)
    per_sample = 4 if out.float_output else 3 if out.fmt in ("wav", "flac") else 1  # lossy: far below 8 bit/sample
    speakers = num_spk * (frames * per_sample + 4096)
    return 2 * speakers + info.frames * 3 + 4096 + (num_spk + 1) * PICTURE_BYTES


class JobManager:
    """Admits jobs into a bounded queue, runs them on ``limits.workers`` threads, deletes their files
    ``limits.keep_seconds`` after they finish, and stops in order (:meth:`shutdown`)."""

    def __init__(self, separator: Separator, limits: Limits, root: Path, *, clock: Clock = time.monotonic) -> None:
        self.separator, self.limits, self.root, self.clock = separator, limits, root, clock
        self.disk = DiskBudget(limits.max_disk_bytes)
        self.jobs: dict[str, Job] = {}
        self.queue: deque[Job] = deque()
        self.rtf: dict[tuple[int, int], float] = {}  # (n_sep, n_re) -> measured RTF, for time estimates
        self.closing = False
        self._cond = threading.Condition()
        self._workers = [
            threading.Thread(target=self._work, name=f"tisdiss-job-{i + 1}", daemon=True) for i in range(limits.workers)
        ]
        self._sweeper = threading.Thread(target=self._sweep_loop, name="tisdiss-sweep", daemon=True)
        self._stop_sweeping = threading.Event()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for worker in self._workers:
            worker.start()
        self._sweeper.start()

    # -- admission
    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its (new, empty) folder."""
        job_id = secrets.token_urlsafe(16)
        folder = self.root / job_id
        folder.mkdir()
        return job_id, folder

    def check_open(self) -> None:
        """503 before an upload is read when the queue is full, or when stopping."""
        with self._cond:
            self._refuse_when_full(0)

    def admit(self, job: Job) -> None:
        """Queue ``job``, holding its disk reservation; 503 (Retry-After) when the queue or the disk is full."""
        files = self.separator.files(job.options.speakers) or self.separator.tracker_config.max_speakers
        size = job.upload.size + estimate_bytes(job.info, job.options, self.separator.sample_rate, files)
        with self._cond:
            self._refuse_when_full(size)
            if not self.disk.reserve(size):
                raise RequestError(503, self._disk_full(), retry_after=self._retry_after(disk=True))
            job.reserved, job.created = size, self.clock()
            self.jobs[job.id] = job
            self.queue.append(job)
            self._cond.notify()

    def _refuse_when_full(self, size: int) -> None:
        if self.closing:
            raise RequestError(503, "the server is shutting down", retry_after=30)
        if self._running() + len(self.queue) >= self.limits.workers + self.limits.queue:
            raise RequestError(
                503,
                f"the server is busy ({self._running()} running, {len(self.queue)} waiting); try again shortly",
                retry_after=self._retry_after(),
            )
        if self.disk.used + size > self.disk.limit:
            raise RequestError(503, self._disk_full(), retry_after=self._retry_after(disk=True))

    def _disk_full(self) -> str:
        return "the server's storage for recordings is full; try again when older results expire"

    def _running(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state is JobState.RUNNING)

    def _retry_after(self, *, disk: bool = False) -> int:
        """Seconds until a worker (or, for the disk, the first expiry) is likely free."""
        now = self.clock()
        waits = [r for j in self.jobs.values() if j.state is JobState.RUNNING and (r := self.remaining(j)) is not None]
        if disk:
            waits += [j.finished + self.limits.keep_seconds - now for j in self.jobs.values() if j.finished is not None]
        return max(1, min(3600, math.ceil(min(waits, default=5.0))))

    # -- looking up
    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise RequestError(404, "no such job (it may have expired or been deleted)")
        return job

    def position(self, job: Job) -> int | None:
        """1-based place of a queued job in the queue."""
        with self._cond:
            return next((i + 1 for i, j in enumerate(self.queue) if j is job), None)

    def remaining(self, job: Job) -> float | None:
        """Estimated seconds until ``job`` is separated: from its own chunks once one ran, else from
        the measured RTF of its depth."""
        if job.state is JobState.RUNNING and job.started is not None and job.chunks_done:
            per_chunk = (self.clock() - job.started) / job.chunks_done
            return per_chunk * max(0, job.chunks_total - job.chunks_done)
        rtf = self.rtf.get((job.choice.depth.n_sep, job.choice.depth.n_re))
        if job.state in (JobState.QUEUED, JobState.RUNNING) and rtf is not None:
            return rtf * job.info.duration
        return None

    def expires_in(self, job: Job) -> float | None:
        return None if job.finished is None else max(0.0, job.finished + self.limits.keep_seconds - self.clock())

    def reserve_upload(self, size: int) -> None:
        """Hold room for an upload while it arrives; 503 when the disk budget cannot take it."""
        if not self.disk.reserve(size):
            raise RequestError(503, self._disk_full(), retry_after=self._retry_after(disk=True))

    def release_upload(self, size: int) -> None:
        if size:
            self.disk.release(size)

    def reserve_extra(self, job: Job, size: int) -> None:
        """Hold ``size`` more bytes for a conversion of ``job``'s outputs; 503 when the disk is full."""
        if not self.disk.reserve(size):
            raise RequestError(503, self._disk_full(), retry_after=self._retry_after(disk=True))
        job.reserved += size

    # -- removal
    def delete(self, job_id: str) -> None:
        """Cancel ``job_id`` if it has not finished and delete its files (at once, or when its worker stops)."""
        job = self.get(job_id)
        with self._cond:
            job.cancel.set()
            if job in self.queue:
                self.queue.remove(job)
                self._finish(job, JobState.CANCELLED)
            running = job.state is JobState.RUNNING
            del self.jobs[job_id]
        if not running:
            self._remove_files(job)  # a running job's worker removes them when it stops

    def _remove_files(self, job: Job) -> None:
        shutil.rmtree(job.folder, ignore_errors=True)
        self.disk.release(job.reserved)
        job.reserved = 0

    def sweep(self) -> int:
        """Delete the jobs whose files have been kept long enough; returns how many."""
        now = self.clock()
        with self._cond:
            finished = sorted((j for j in self.jobs.values() if j.finished is not None), key=lambda j: j.finished or 0)
            old = [j for j in finished if now - (j.finished or now) >= self.limits.keep_seconds]
            old += finished[len(old) : max(len(old), len(finished) - MAX_FINISHED)]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            self._remove_files(job)
        return len(old)

    def _sweep_loop(self) -> None:
        interval = min(30.0, max(0.05, self.limits.keep_seconds / 4))
        while not self._stop_sweeping.wait(interval):
            try:
                self.sweep()
            except Exception:  # a sweep that fails is retried at the next interval
                log.exception("removing expired jobs failed")

    def shutdown(self, deadline: float) -> tuple[int, int]:
        """Stop: refuse new jobs, cancel queued ones, let running ones finish until ``deadline`` (a clock
        time), cancel those still running, then delete every job's files and the data folder.
        Returns (jobs that finished in the grace period, jobs cancelled)."""
        with self._cond:
            self.closing = True
            cancelled = len(self.queue)
            for job in list(self.queue):
                self._finish(job, JobState.CANCELLED)
            self.queue.clear()
            running = [j for j in self.jobs.values() if j.state is JobState.RUNNING]
            self._cond.notify_all()
        late = running
        try:  # a second Ctrl-C ends the waiting, not the clean-up
            for job in running:
                job.ended.wait(max(0.0, deadline - self.clock()))
            late = [j for j in running if not j.ended.is_set()]
            for job in late:
                job.cancel.set()
            for job in late:  # stops at its next chunk
                job.ended.wait(60.0)
            self._stop_sweeping.set()
            with self._cond:
                self._cond.notify_all()
            for worker in self._workers:
                worker.join(5.0)
        finally:
            for job in running:
                job.cancel.set()
            shutil.rmtree(self.root, ignore_errors=True)
        return len(running) - len(late), cancelled + len(late)

    # -- running
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self.queue and not self.closing:
                    self._cond.wait()
                if self.closing:
                    return
                job = self.queue.popleft()
                job.state, job.started = JobState.RUNNING, self.clock()
            try:
                self._run(job)
                state = JobState.DONE
            except Cancelled:
                state = JobState.CANCELLED
            except Exception as exc:  # one job's crash is that job's failure, never the server's
                job.error, job.client_error = job.reason(exc), isinstance(exc, ValueError)
                log.warning("job %s failed: %s", job.id, job.error, exc_info=not isinstance(exc, ValueError))
                state = JobState.FAILED
            with self._cond:
                self._finish(job, state)
                deleted = job.id not in self.jobs
            if state is not JobState.DONE or deleted:  # a failed job's record (its reason) stays until it expires
                self._remove_files(job)

    def _finish(self, job: Job, state: JobState) -> None:
        job.state, job.finished = state, self.clock()
        job.ended.set()

    def _run(self, job: Job) -> None:
        def progress(done: int, total: int) -> None:
            if job.cancel.is_set():
                raise Cancelled
            job.chunks_done = min(job.chunks_total, job.chunks_done + 1)

        depth = job.choice.depth
        result = self.separator.process_file(
            job.upload.path,
            job.folder / "out",
            n_sep=depth.n_sep,
            n_re=depth.n_re,
            options=job.options.output,
            progress=progress,
            speakers=job.options.speakers,
            band=job.options.band,
            denoise=job.options.denoise,
        )
        job.outputs, job.clipped = result.outputs, result.clipped
        job.warnings += [job.scrub(w) for w in result.warnings]
        rate = self.separator.sample_rate
        channel = job.options.output.channel
        job.mixture = artifacts.transcode(job.upload.path, job.folder / "mixture.wav", "wav", channel=channel)
        for k, path in enumerate([*job.outputs, job.mixture]):
            if job.cancel.is_set():
                raise Cancelled
            job.pictures.append(artifacts.picture(path, job.folder / f"picture{k + 1}.png", rate))
        names = [download_name(job, k + 1, job.options.output.fmt) for k in range(len(job.outputs))]
        job.archive = artifacts.zip_files(job.outputs, names, job.folder / "speakers.zip")


def download_name(job: Job, speaker: int, fmt: str) -> str:
    """``<the client's stem>_spk<k>.<ext>``, as ``tisdiss separate`` names outputs."""
    return f"{job.upload.stem}_spk{speaker}.{fmt}"
