"""`tisdiss train`: run a recipe or config file, resume, fine-tune."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from ..training.config import TrainConfig, config_changes, describe_changes, resolve_config, resume_config
from ..util.fileio import unwritable_folder
from ..util.signals import StopOnFirstSignal
from . import help
from .root import app

_err = Console(stderr=True)


def _resume_conflict(
    resumed: TrainConfig,
    recipe: str | None,
    config: Path | None,
    data: str | None,
    overrides: list[str],
    init_from: str | None,
) -> str | None:
    """Why --recipe / --config / --data / --init-from given with --resume would change the run; None if not."""
    if recipe is not None or config is not None:
        asked = resolve_config(recipe, str(config) if config else None, data, overrides, init_from)
        changes = config_changes(resumed, asked)
        if changes:
            given = "--recipe" if recipe is not None else "--config"
            return f"{given} would change the run's settings ({describe_changes(changes)})"
        return None
    if data is not None:
        folder = Path(data)
        own = (Path(resumed.data.train), Path(resumed.data.valid))
        if not all(p == folder or p.parent == folder for p in own):
            return f"--data {data} is not the run's data (train {own[0]}, valid {own[1]})"
    if init_from is not None and init_from != resumed.init_from:
        return f"--init-from {init_from} does not apply: a resumed run continues from its own checkpoint"
    return None


@app.command(
    cls=help.Command,
    epilog=(
        "Examples:\n\n"
        "  tisdiss train --recipe speech8k --data shared/data/speech8k --run runs/small\n\n"
        "  tisdiss train --recipe wsj0-2mix-paper --data wsj0-2mix/min --run runs/paper\n\n"
        "  tisdiss train --recipe wsj0-2mix-paper --data wsj0-2mix/min --run runs/ft "
        "--init-from runs/paper --set model.n_re=8 --set optim.lr=1e-4\n\n"
        "  tisdiss train --resume --run runs/paper --set optim.lr=5e-4   (continue, with a lower rate)\n\n"
        "  torchrun --nproc-per-node 4 -m tisdiss_cli train --recipe ... (multi-GPU)"
    ),
)
def train(
    recipe: str | None = typer.Option(
        None, metavar="NAME", help="Shipped recipe: wsj0-2mix-paper, libri2mix, speech8k, tiny."
    ),
    config: Path | None = typer.Option(
        None, "--config", metavar="FILE", help="Recipe file (TOML or JSON) instead of a shipped recipe."
    ),
    data: str | None = typer.Option(
        None, metavar="DIR", help="Data folder; the recipe's train/valid names are taken inside it."
    ),
    run: Path = typer.Option(
        Path("runs/tisdiss"), metavar="DIR", help="Run folder (config, metrics.jsonl, checkpoints, model)."
    ),
    set_: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override, e.g. --set optim.lr=1e-4 (repeatable)."
    ),
    init_from: str | None = typer.Option(
        None, metavar="MODEL", help="Start from these weights (model name, tisdiss checkpoint, run or ESPnet folder)."
    ),
    resume: bool = typer.Option(
        False,
        help="Continue the run in --run with its own config.json; --set changes are shown and recorded.",
    ),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config and exit."),
    threads: int | None = typer.Option(None, metavar="N", help="CPU threads for torch (default: torch's choice)."),
    quiet: bool = typer.Option(False, help="No progress output."),
) -> None:
    """Train TISDiSS with the paper's multi-loss (one machine, or many under torchrun).

    Ctrl-C or SIGTERM stops after the step in progress, saves the run (resume continues from
    exactly there) and writes its model; a second signal aborts at once.
    """
    from ..training.loop import train as run_training
    from ..zoo.load import MODEL_ERRORS

    if not print_config and (problem := unwritable_folder(run)) is not None:
        raise typer.BadParameter(problem, param_hint="--run")
    try:
        if resume:
            cfg: TrainConfig = resume_config(run, set_)
            conflict = _resume_conflict(cfg, recipe, config, data, set_, init_from)
            if conflict is not None:
                _err.print(
                    f"[red]error:[/red] {escape(conflict)}; --resume continues {escape(str(run))} with its "
                    "config.json: leave that option out, and use --set KEY=VALUE for a deliberate change",
                    soft_wrap=True,
                )
                raise typer.Exit(2)
        else:
            cfg = resolve_config(recipe, str(config) if config else None, data, set_, init_from)
    except (OSError, ValueError, KeyError) as exc:
        _err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    if print_config:
        typer.echo(json.dumps(cfg.to_dict(), indent=2))
        raise typer.Exit()

    if threads:
        import torch

        torch.set_num_threads(threads)

    show = _event_printer(run, quiet)

    stop = threading.Event()
    try:
        with StopOnFirstSignal(stop) as stopper:
            result = run_training(cfg, run, resume=resume, log=show, stop=stop)
    except (OSError, ValueError, *MODEL_ERRORS) as exc:
        _err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    if result.limit is not None:
        _err.print(
            f"nothing to do: {escape(str(run))} already finished ({escape(result.stop_reason)}) at step "
            f"{result.step}; to train on, raise the limit: --resume --set {result.limit}=N",
            soft_wrap=True,
            highlight=False,
        )
        return
    if stopper.signum is not None:
        _err.print(
            f"stopped by {stopper.signal_name} at step {result.step}: the run is saved; continue with "
            f"tisdiss train --resume --run {escape(str(run))}",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(128 + stopper.signum)


def _event_printer(run: Path, quiet: bool) -> Callable[[dict[str, Any]], None]:
    """How training events are shown on stderr (a resumed run's changed settings even with --quiet)."""

    def show(event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "config":  # shown even with --quiet: the run now trains with other settings
            changes = {k: tuple(v) for k, v in event["changes"].items()}
            _err.print(
                f"resuming {escape(str(run))} at step {event['step']} with changed settings: "
                f"{escape(describe_changes(changes))} (recorded in config.json and metrics.jsonl)",
                soft_wrap=True,
                highlight=False,
            )
        if quiet:
            return
        if kind == "train":
            _err.print(
                f"step {event['step']:>7}  epoch {event['epoch']:>3}  loss {event['loss']:8.3f}  "
                f"lr {event['lr']:.2e}  {event['sec_per_step']:.2f} s/step"
            )
        elif kind == "epoch":
            _err.print(
                f"[bold]epoch {event['epoch']}[/bold]  valid loss {event['valid_loss']:.3f}  "
                f"valid SI-SNRi {event['valid_si_snri']:.2f} dB"
                + "".join(f"  {name} {v['si_snri']:.2f}" for name, v in event.get("valid_conditions", {}).items())
            )
        elif kind == "skip":
            _err.print(
                f"[yellow]skipped step {event['step']}: non-finite loss/gradient ({event['skipped']} so far)[/yellow]"
            )
        elif kind == "done":
            _err.print(escape(f"done ({event['reason']}): {event['model']}"))

    return show
