"""`tisdiss serve`: a local web page and HTTP API for separating recordings (the ``serve`` extra).

The command checks the extra and the auth rule, calls :func:`tisdiss_cli.serve.server.serve` and
prints what it reports. Ctrl-C and SIGTERM stop the server in order (running jobs get
``--grace`` seconds, files are removed); the exit code is 0 after Ctrl-C and 128 + the signal
after SIGTERM / SIGHUP, as for ``tisdiss live``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from ..serve import missing_extra
from ..serve.config import MB, Limits, ServeConfig, auth_warning
from ..zoo.load import MODEL_ERRORS
from . import help
from .device import device_option
from .precision import PRECISION_OPTION
from .root import app

EXAMPLES = """
Examples:

  tisdiss serve                                   (then open http://127.0.0.1:8000/)
  tisdiss serve --model tisdiss-small-8k --port 8080 --workers 2
  TISDISS_SERVE_TOKEN=s3cret tisdiss serve --host 0.0.0.0   (bearer auth on every route)
  curl -F file=@meeting.wav -F preset=fast http://127.0.0.1:8000/v1/jobs
"""
DEFAULTS = Limits()


@app.command(epilog=EXAMPLES, cls=help.Command)
def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", metavar="HOST", help="Address to listen on; beyond loopback needs --token or --no-auth."
    ),
    port: int = typer.Option(8000, "--port", min=0, max=65535, metavar="PORT", help="Port (0: any free one)."),
    model: str | None = typer.Option(
        None,
        "-m",
        "--model",
        metavar="NAME|PATH",
        help="Model name, checkpoint or folder (default: best available).",
    ),
    device: str = device_option("auto", "auto, cpu, cuda, cuda:N or mps."),
    precision: str = PRECISION_OPTION,
    threads: int | None = typer.Option(None, "--threads", min=1, metavar="N", help="CPU threads for PyTorch."),
    token: str | None = typer.Option(
        None, "--token", envvar="TISDISS_SERVE_TOKEN", metavar="TOKEN", help="Require 'Authorization: Bearer TOKEN'."
    ),
    no_auth: bool = typer.Option(False, "--no-auth", help="Allow a non-loopback --host without a token."),
    max_upload_mb: float = typer.Option(
        DEFAULTS.max_upload_bytes / MB, "--max-upload-mb", min=0.001, metavar="MB", help="Largest upload (else 413)."
    ),
    max_duration: float = typer.Option(
        DEFAULTS.max_duration, "--max-duration", min=0.0, metavar="SECONDS", help="Longest recording (else 422)."
    ),
    workers: int = typer.Option(DEFAULTS.workers, "--workers", min=1, metavar="N", help="Jobs separated at once."),
    queue: int = typer.Option(
        DEFAULTS.queue, "--queue", min=0, metavar="N", help="Jobs waiting beyond the workers (else 503 + Retry-After)."
    ),
    keep: float = typer.Option(
        DEFAULTS.keep_seconds, "--keep", min=0.0, metavar="SECONDS", help="How long finished jobs' files are kept."
    ),
    max_disk_mb: float = typer.Option(
        DEFAULTS.max_disk_bytes / MB, "--max-disk-mb", min=1.0, metavar="MB", help="Disk for all jobs' files together."
    ),
    sync_max_duration: float = typer.Option(
        DEFAULTS.sync_max_duration,
        "--sync-max-duration",
        min=0.0,
        metavar="SECONDS",
        help="Longest recording POST /v1/separate takes.",
    ),
    grace: float = typer.Option(
        DEFAULTS.grace_seconds,
        "--grace",
        min=0.0,
        metavar="SECONDS",
        help="On SIGTERM / Ctrl-C, time running jobs get.",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", metavar="DIR", help="Folder for uploads and results [default: the system temp folder]."
    ),
) -> None:
    """Serve a web page and an HTTP API that separate uploaded recordings (pip install 'tisdiss[serve]')."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    missing = missing_extra()
    if missing is not None:
        err.print(f"error: {escape(missing)}")
        raise typer.Exit(1)
    # the extra's imports, once it is known to be there
    from ..serve.server import Ready
    from ..serve.server import serve as run_server

    try:
        limits = Limits(
            max_upload_bytes=round(max_upload_mb * MB),
            max_duration=max_duration,
            workers=workers,
            queue=queue,
            keep_seconds=keep,
            max_disk_bytes=round(max_disk_mb * MB),
            sync_max_duration=sync_max_duration,
            grace_seconds=grace,
        )
        config = ServeConfig(host, port, model, device, precision, threads, token, no_auth, data_dir, limits=limits)
        warning = auth_warning(config)
    except ValueError as exc:
        hint = next((option for option in ("--host", "--token") if str(exc).startswith(option)), None)
        raise typer.BadParameter(str(exc), param_hint=hint) from None
    if warning is not None:
        err.print(f"warning: {escape(warning)}")

    def ready(started: Ready) -> None:
        separator = started.separator
        err.print(
            f"model {escape(separator.loaded.name)} on {separator.device} in {escape(separator.precision.describe())}; "
            f"ready {_process_age(started.seconds):.1f} s after start"
        )
        link = f"{started.url}?access_token=TOKEN" if config.token else started.url
        err.print(f"serving on {link} (API reference: {started.url}docs); Ctrl-C stops", highlight=False)

    try:
        stopped = run_server(config, on_ready=ready)
    except (*MODEL_ERRORS, ValueError) as exc:
        err.print(f"error: {escape(str(exc))}")
        raise typer.Exit(1) from None
    except OSError as exc:
        err.print(f"error: cannot listen on {escape(host)}:{port}: {escape(exc.strerror or str(exc))}")
        raise typer.Exit(1) from None
    err.print(
        f"stopped{f' by {stopped.signal}' if stopped.signal else ''}: {stopped.finished} running job(s) finished, "
        f"{stopped.cancelled} cancelled; files removed"
    )
    if stopped.signal not in (None, "SIGINT"):
        raise typer.Exit(128 + signal.Signals[stopped.signal].value)


def _process_age(fallback: float) -> float:
    """Seconds since this process started (Linux's /proc), imports included; ``fallback`` elsewhere."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return fallback
