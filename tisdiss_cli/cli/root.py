"""The ``tisdiss`` Typer app and its own option, ``--version``; the commands register on :data:`app`."""

from __future__ import annotations

import typer

from ..util.version import __version__
from . import help

app = typer.Typer(
    cls=help.Group,
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
