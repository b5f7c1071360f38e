"""`tisdiss models`: list, inspect, download, import and remove models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from ..model.depth import Depth, iter_presets
from ..zoo import load, registry
from ..zoo.download import cache_dir, read_marker
from . import help
from .root import app

models_app = typer.Typer(help="List, download and import models.", no_args_is_help=True, cls=help.Group)
app.add_typer(models_app, name="models")


def _out() -> Console:
    # made when a command runs, not at import: the app driven in-process (tests, notebooks) may
    # see another terminal width (COLUMNS) by then
    return Console()


def _err() -> Console:
    return Console(stderr=True)


def _fail(exc: Exception | str) -> NoReturn:
    _err().print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _human(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _expected_quality(entry: registry.ModelEntry | None, preset: Depth) -> str:
    if entry is None or not entry.quality:
        return ""
    by_n_re = entry.quality.get("by_n_re", {})
    if entry.quality.get("n_sep", preset[0]) != preset[0] or str(preset[1]) not in by_n_re:
        return ""
    return f" {float(by_n_re[str(preset[1])]):.1f} dB"


def _preset_lines(entry: registry.ModelEntry | None) -> Iterator[str]:
    if entry is None:
        return
    for key, depth in iter_presets(entry.presets):
        yield f"{key} {depth.n_sep}/{depth.n_re}{_expected_quality(entry, depth)}"


def _state(status: registry.ModelStatus) -> str:
    if status.available:
        return {"bundled": "bundled", "imported": "imported"}.get(status.kind, "cached")
    return {"bundled": "not installed", "imported": "damaged"}.get(status.kind, "not downloaded")


@models_app.command("list", cls=help.Command)
def list_models() -> None:
    """List the models: parameters, sample rate, presets with expected SI-SNR, cache state."""
    try:
        statuses = registry.model_status()
        default = registry.load_registry().default
    except load.MODEL_ERRORS as exc:
        _fail(exc)
    table = Table(title=escape(f"tisdiss models (cache: {cache_dir()})"), title_justify="left")
    for column in ("name", "params", "rate", "presets (N_sep/N_re, SI-SNR)", "status", "size"):
        table.add_column(column, justify="right" if column in ("params", "size") else "left")
    for s in statuses:
        entry = s.entry
        params = f"{entry.params / 1e6:.1f} M" if entry and entry.params else "-"
        rate = f"{entry.sample_rate // 1000} kHz" if entry and entry.sample_rate else "-"
        name = s.name + (" (default)" if s.name == default else "")
        presets = "\n".join(_preset_lines(entry)) or "-"
        table.add_row(escape(name), params, rate, escape(presets), _state(s), _human(s.size))
    _out().print(table)


@models_app.command("info", cls=help.Command)
def info(name: str = typer.Argument(..., help="Model name.")) -> None:
    """Show a model's registry entry, cache state and card."""
    try:
        statuses = {s.name: s for s in registry.model_status()}
        if name not in statuses:
            raise registry.ModelNotFoundError(f"unknown model {name!r}; available: {', '.join(statuses)}")
        status = statuses[name]
    except load.MODEL_ERRORS as exc:
        _fail(exc)
    entry = status.entry
    rows: list[tuple[str, str]] = [("name", name), ("status", _state(status))]
    if status.path is not None:
        rows.append(("checkpoint", str(status.path)))
    if entry is not None:
        rows += [
            ("summary", entry.summary),
            ("format", entry.format),
            ("parameters", f"{entry.params:,}" if entry.params else "-"),
            ("sample rate", f"{entry.sample_rate} Hz" if entry.sample_rate else "-"),
            ("speakers", str(entry.num_spk or "-")),
            ("presets", ", ".join(_preset_lines(entry)) or "-"),
            ("training data", entry.training_data or "-"),
            ("licence", entry.licence or "-"),
            ("url", entry.url or "-"),
            ("git blob id", entry.git_blob or "-"),
            ("sha256", entry.sha256 or "unknown"),
            ("size", f"{entry.size:,} bytes" if entry.size else "unknown"),
        ]
        if entry.url:
            measured = read_marker(registry.models_dir() / name / entry.download_name)
            if measured:
                rows.append(("downloaded file", f"{measured.get('size'):,} bytes, sha256 {measured.get('sha256')}"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, escape(value))
    _out().print(grid)
    text = registry.card_text(entry) if entry is not None else None
    if text:
        _out().print(Markdown(text))


@models_app.command("download", cls=help.Command)
def download(name: str = typer.Argument(..., help="Registry model name.")) -> None:
    """Download and verify a model so that it works offline."""
    with Progress(
        TextColumn(f"[bold]{escape(name)}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=_err(),
        transient=True,
    ) as progress:
        task = progress.add_task("download", total=None)

        def report(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        try:
            path = load.download_model(name, progress=report)
        except load.MODEL_ERRORS as exc:
            progress.stop()
            _fail(exc)
    _out().print(escape(f"{name}: ready at {path}"), highlight=False, soft_wrap=True)


@models_app.command("import", cls=help.Command)
def import_(
    path: Path = typer.Argument(..., help="tisdiss checkpoint, ESPnet experiment folder or training run folder."),
    name: str = typer.Option(..., "--name", "-n", metavar="NAME", help="Name to load it by (e.g. --model NAME)."),
    force: bool = typer.Option(False, "--force", help="Replace a model imported under the same name."),
) -> None:
    """Store a checkpoint in the cache under NAME (converted to the tisdiss format once)."""
    try:
        stored = load.import_model(path, name, overwrite=force)
    except registry.ModelExistsError as exc:
        _fail(f"a model named {exc.name!r} is already imported; use --force to replace it")
    except load.MODEL_ERRORS as exc:
        _fail(exc)
    _out().print(escape(f"imported {path} as {name!r} ({stored})"), highlight=False, soft_wrap=True)


@models_app.command("remove", cls=help.Command)
def remove(name: str = typer.Argument(..., help="Model name.")) -> None:
    """Delete a downloaded or imported model from the cache."""
    try:
        removed = registry.remove_model(name)
    except load.MODEL_ERRORS as exc:
        _fail(exc)
    message = f"{name}: removed {len(removed)} file(s)" if removed else f"{name}: nothing cached"
    _out().print(escape(message), highlight=False)


@models_app.command("path", cls=help.Command)
def path(name: str | None = typer.Argument(None, help="Model name; without it, the cache folder.")) -> None:
    """Print the cache folder, or where a model's checkpoint is (or where to put its download)."""
    if name is None:
        _out().print(escape(str(cache_dir())), highlight=False, soft_wrap=True)
        return
    try:
        statuses = {s.name: s for s in registry.model_status()}
        if name not in statuses:
            raise registry.ModelNotFoundError(f"unknown model {name!r}; available: {', '.join(statuses)}")
    except load.MODEL_ERRORS as exc:
        _fail(exc)
    status = statuses[name]
    entry = status.entry
    if status.path is not None:
        target = status.path
    elif entry is not None and entry.url:
        target = registry.models_dir() / name / entry.download_name
    elif entry is not None and (bundled := entry.bundled_path()) is not None:
        target = bundled
    else:
        target = registry.checkpoint_path(name)
    _out().print(escape(str(target)), highlight=False, soft_wrap=True)
