"""What a server is started with: where it listens, who may use it, and its limits."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

MB = 1_000_000
TOKEN_CHARACTERS = re.compile(r"^[A-Za-z0-9._~+/=-]+$")  # what a bearer token and a cookie value can hold


@dataclass(frozen=True)
class Limits:
    """Every bound a server keeps; the command line has one flag per field (defaults documented there)."""

    max_upload_bytes: int = 200 * MB  # larger uploads get 413 before they are stored
    max_duration: float = 600.0  # seconds of audio per recording (longer: 422)
    workers: int = 1  # jobs separated at once
    queue: int = 8  # jobs waiting for a worker; beyond that 503 with Retry-After
    keep_seconds: float = 3600.0  # a finished job's files are deleted this long after it ends
    max_disk_bytes: int = 2000 * MB  # uploads, outputs and their conversions, all jobs together
    sync_max_duration: float = 30.0  # seconds of audio POST /v1/separate takes (longer: use a job)
    grace_seconds: float = 30.0  # on SIGTERM / Ctrl-C, running jobs get this long to finish

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "workers", "max_disk_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.queue < 0:
            raise ValueError(f"queue must be 0 or more, got {self.queue}")
        for name in ("max_duration", "keep_seconds", "sync_max_duration", "grace_seconds"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be 0 or more seconds, got {getattr(self, name)}")


@dataclass(frozen=True)
class ServeConfig:
    """A server: the model it loads once, where it listens, its token and its limits."""

    host: str = "127.0.0.1"
    port: int = 8000  # 0: any free port (the one taken is reported when ready)
    model: str | None = None  # as --model: a name, a checkpoint or a folder; None: the best available
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None  # PyTorch CPU threads (None: PyTorch's default)
    token: str | None = None  # bearer token every route requires; None: no authentication
    no_auth: bool = False  # bind beyond loopback without a token, knowingly
    data_dir: Path | None = None  # where job folders go (a fresh folder inside it); None: the system temp folder
    measure_speed: bool = True  # measure this machine's RTF per preset once, after start (cached)
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.token is not None and not TOKEN_CHARACTERS.match(self.token):
            raise ValueError("--token may hold letters, digits and -._~+/= only (e.g. python -m secrets)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def auth_warning(config: ServeConfig) -> str | None:
    """The auth rule: beyond loopback, a token or an explicit ``no_auth``. Returns the warning for
    ``no_auth`` there; raises ``ValueError`` (one line, what to pass) when neither was given."""
    if is_loopback(config.host):
        return None
    if config.token:
        return None
    if not config.no_auth:
        raise ValueError(
            f"--host {config.host} is reachable from other machines: pass --token TOKEN (bearer auth on every "
            "route; or TISDISS_SERVE_TOKEN) or, on a network you trust, --no-auth"
        )
    return f"serving on {config.host} without authentication (--no-auth): anyone who can reach it can use it"
