"""Progress bars in audio time: ``0:03 / 10:00``, the speed as a real-time factor, and the ETA.

Tasks count seconds of audio (``completed`` and ``total``), so rich's own speed and ETA
estimates are in audio seconds per wall second.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from one hour."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class AudioTimeColumn(ProgressColumn):
    """Audio done against the total: ``0:03 / 10:00``."""

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else clock(task.total)
        return Text(f"{clock(task.completed)} / {total}", style="progress.download")


class RealTimeFactorColumn(ProgressColumn):
    """Wall time per second of audio so far (below 1: faster than real time)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        if not task.completed or not elapsed:
            return Text("RTF -", style="progress.data.speed")
        return Text(f"RTF {elapsed / task.completed:.2f}", style="progress.data.speed")


def audio_progress(console: Console, *, disable: bool = False, extra: tuple[ProgressColumn, ...] = ()) -> Progress:
    """A transient bar: description, bar, audio time, RTF, ETA, then ``extra`` columns."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        AudioTimeColumn(),
        RealTimeFactorColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        *extra,
        console=console,
        disable=disable,
        transient=True,
    )
