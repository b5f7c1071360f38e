"""Many files, one after the other: the batch loop of ``tisdiss separate`` and its report.

:func:`separate_files` runs :meth:`Separator.process_file` on each input, keeps going past bad
ones and tells a :class:`BatchObserver` (the command line's printer and progress bar) what
happens; the :class:`BatchReport` it returns holds the summary the command prints.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..audio.files import AudioError, OutputExistsError
from ..model.depth import Depth
from ..util.timing import Stopwatch
from .outputs import OutputOptions
from .separator import FileResult, ProgressFn, Separator

log = logging.getLogger(__name__)


class BatchInput(Protocol):
    """One input and the sub-folder of the output folder its outputs go to."""

    @property
    def path(self) -> Path: ...

    @property
    def subdir(self) -> Path: ...


class BatchObserver(Protocol):
    """What a batch tells whoever runs it, file by file."""

    def started(self, path: Path) -> ProgressFn | None:
        """A file starts; the callback returned (if any) follows its chunks."""
        ...

    def separated(self, result: FileResult) -> None: ...

    def skipped(self, path: Path, reason: str) -> None:
        """Its outputs exist or another run is writing them (``reason``: the OutputExistsError line)."""
        ...

    def failed(self, path: Path, reason: str) -> None: ...

    def finished(self, path: Path) -> None:
        """After any of the three above."""
        ...


@dataclass
class BatchReport:
    """What a batch did; :meth:`summary` is the JSON the command line prints."""

    results: list[FileResult] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "path: reason"
    wall: float = 0.0  # seconds

    @property
    def audio_seconds(self) -> float:
        return sum(r.duration for r in self.results)

    def summary(self, separator: Separator, depth: Depth) -> dict[str, object]:
        audio_s = self.audio_seconds
        used = separator.depths_used
        return {
            "model": separator.loaded.name,
            "n_sep": depth.n_sep,
            "n_re": depth.n_re,
            "device": str(separator.device),
            "precision": separator.precision.name,
            "files": len(self.results),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "audio_seconds": round(audio_s, 3),
            "wall_seconds": round(self.wall, 3),
            "rtf": round(self.wall / audio_s, 4) if audio_s else None,
            "adaptive_mean_n_re": round(float(np.mean(used)), 3) if used else None,
            "outputs": [str(p) for r in self.results for p in r.outputs],
            "tracker": separator.tracker,
            "speakers": separator.speakers,
            "talkers": [
                {
                    "input": str(r.input),
                    "talkers": r.talkers.talkers,
                    "suggested": r.talkers.suggested,
                    "active_seconds": r.talkers.active_seconds,
                }
                for r in self.results
                if r.talkers is not None
            ],
            "errors": self.failed,
        }


def separate_files(
    separator: Separator,
    items: Sequence[BatchInput],
    out_dir: Path,
    observer: BatchObserver,
    *,
    depth: Depth,
    options: OutputOptions,
    stream: int | None = None,
    problems: Sequence[str] = (),
) -> BatchReport:
    """Separate each input into ``out_dir / item.subdir`` at ``depth``; a bad file is reported and
    skipped, never fatal. ``problems``: inputs already known bad (counted as failed). ``stream``:
    0-based audio stream of containers."""
    report = BatchReport(failed=list(problems))
    claimed: dict[Path, Path] = {}  # output -> the input that wrote it in this batch
    watch = Stopwatch(separator.device)
    for item in items:
        progress = observer.started(item.path)
        try:
            targets = options.paths(item.path.stem, out_dir / item.subdir, separator.files() or 1)
            clash = next((claimed[t] for t in targets if t in claimed), None)
            if clash is not None:
                raise ValueError(f"outputs would overwrite those of {clash}; use --filename or separate folders")
            result = separator.process_file(
                item.path,
                out_dir / item.subdir,
                n_sep=depth.n_sep,
                n_re=depth.n_re,
                stream=stream,
                progress=progress,
                options=options,
            )
        except OutputExistsError as exc:
            report.skipped.append(item.path)
            observer.skipped(item.path, str(exc))
        except (AudioError, ValueError, OSError, RuntimeError) as exc:
            reason = str(exc).removeprefix(f"{item.path}: ")
            report.failed.append(f"{item.path}: {reason}")
            observer.failed(item.path, reason)
            log.debug("separating %s failed", item.path, exc_info=True)
        else:
            report.results.append(result)
            claimed.update(dict.fromkeys(result.outputs, item.path))
            observer.separated(result)
        finally:
            observer.finished(item.path)
    report.wall = watch.seconds()
    return report
