"""A failed download of the default model, remembered for a while.

With no model named, tisdiss fetches the registry's default model. Offline or behind a broken
proxy, every run would wait for that attempt to fail before falling back to the bundled model.
A failure is recorded in ``<cache>/unavailable/<name>.json``; for :data:`RETRY_AFTER_S` the
fallback is taken at once. ``tisdiss models download NAME`` always tries, and a success clears
the record.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..util.fileio import atomic_write_text
from .download import cache_dir

RETRY_AFTER_S = 3600.0


@dataclass(frozen=True)
class Failure:
    reason: str  # a few words: "[Errno -2] Name or service not known", "HTTP 404 Not Found"
    age_s: float  # seconds since it happened

    @property
    def retry_in_s(self) -> float:
        return max(0.0, RETRY_AFTER_S - self.age_s)


def _record(name: str) -> Path:
    return cache_dir() / "unavailable" / f"{name}.json"


def remember_failure(name: str, reason: str) -> None:
    """Record that ``name`` could not be downloaded just now (best effort: a read-only cache is fine)."""
    with contextlib.suppress(OSError):
        atomic_write_text(_record(name), json.dumps({"time": time.time(), "reason": reason}))


def recent_failure(name: str) -> Failure | None:
    """The failure recorded for ``name`` within the last :data:`RETRY_AFTER_S`, if any."""
    try:
        data = json.loads(_record(name).read_text())
        age = time.time() - float(data["time"])
        reason = str(data.get("reason", "download failed"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Failure(reason, age) if 0 <= age < RETRY_AFTER_S else None


def forget_failure(name: str) -> None:
    _record(name).unlink(missing_ok=True)
