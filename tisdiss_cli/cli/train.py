"""`tisdiss train`: run a recipe or config file, resume, fine-tune."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from . import app

_err = Console(stderr=True)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  tisdiss train --recipe speech8k --data shared/data/speech8k --run runs/small\n\n"
        "  tisdiss train --recipe wsj0-2mix-paper --data wsj0-2mix/min --run runs/paper\n\n"
        "  tisdiss train --recipe wsj0-2mix-paper --data wsj0-2mix/min --run runs/ft "
        "--init-from runs/paper --set model.n_re=8 --set optim.lr=1e-4\n\n"
        "  torchrun --nproc-per-node 4 -m tisdiss_cli train --recipe ... (multi-GPU)"
    )
)
def train(
    recipe: str | None = typer.Option(None, help="Shipped recipe: wsj0-2mix-paper, libri2mix, speech8k, tiny."),
    config: Path | None = typer.Option(
        None, "--config", help="Recipe file (TOML or JSON) instead of a shipped recipe."
    ),
    data: str | None = typer.Option(None, help="Data folder; the recipe's train/valid names are taken inside it."),
    run: Path = typer.Option(Path("runs/tisdiss"), help="Run folder (config, metrics.jsonl, checkpoints, model)."),
    set_: list[str] = typer.Option([], "--set", help="Override, e.g. --set optim.lr=1e-4 (repeatable)."),
    init_from: str | None = typer.Option(
        None, help="Start from these weights (model name, tisdiss checkpoint, run or ESPnet folder)."
    ),
    resume: bool = typer.Option(False, help="Continue the run in --run exactly where it stopped."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config and exit."),
    threads: int | None = typer.Option(None, help="CPU threads for torch (default: torch's choice)."),
    quiet: bool = typer.Option(False, help="No progress output."),
) -> None:
    """Train TISDiSS with the paper's multi-loss (one machine, or many under torchrun)."""
    from ..training.config import TrainConfig, config_from_dict, resolve_config
    from ..training.loop import train as run_training
    from ..zoo.load import MODEL_ERRORS

    try:
        if resume and recipe is None and config is None:
            cfg: TrainConfig = config_from_dict(json.loads((run / "config.json").read_text()), str(run / "config.json"))
        else:
            cfg = resolve_config(recipe, str(config) if config else None, data, set_, init_from)
    except (OSError, ValueError, KeyError) as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if print_config:
        typer.echo(json.dumps(cfg.to_dict(), indent=2))
        raise typer.Exit()

    if threads:
        import torch

        torch.set_num_threads(threads)

    def show(event: dict[str, Any]) -> None:
        if quiet:
            return
        kind = event.get("event")
        if kind == "train":
            _err.print(
                f"step {event['step']:>7}  epoch {event['epoch']:>3}  loss {event['loss']:8.3f}  "
                f"lr {event['lr']:.2e}  {event['sec_per_step']:.2f} s/step"
            )
        elif kind == "epoch":
            _err.print(
                f"[bold]epoch {event['epoch']}[/bold]  valid loss {event['valid_loss']:.3f}  "
                f"valid SI-SNRi {event['valid_si_snri']:.2f} dB"
            )
        elif kind == "skip":
            _err.print(
                f"[yellow]skipped step {event['step']}: non-finite loss/gradient ({event['skipped']} so far)[/yellow]"
            )
        elif kind == "done":
            _err.print(f"done ({event['reason']}): {event['model']}")

    try:
        run_training(cfg, run, resume=resume, log=show)
    except (OSError, ValueError, *MODEL_ERRORS) as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
