"""The ``tisdiss`` command line: a thin Typer layer over the Python API.

Each sub-command lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

import typer

from .. import __version__

app = typer.Typer(
    name="tisdiss",
    help="Separate overlapping talkers into one clean track per speaker.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tisdiss {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Separate overlapping talkers into one clean track per speaker."""


def _register_commands() -> None:
    from . import bench, evaluate, models, separate, train  # noqa: F401  (each registers on app)


def main() -> None:
    from ..util.runtime import tune_allocator

    tune_allocator()  # reuse freed heap memory for activations (see runtime.py); whole process
    _register_commands()
    app()
