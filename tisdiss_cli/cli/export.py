"""`tisdiss export`: a model at one depth as an ONNX file (waveform in, waveform out) and its card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
import typer
from rich.console import Console
from rich.markup import escape

from ..audio.files import AudioError, read_blocks
from ..export.onnx import ExportError, card_path, export_onnx, require_onnx
from ..util.fileio import unwritable_folder
from ..zoo.load import MODEL_ERRORS, load_any
from . import help
from .depth import NRE_OVERRIDE, NSEP_OVERRIDE, preset_option
from .root import app

EXAMPLES = """
Examples:

  tisdiss export tisdiss-small-8k --preset fast -o small-fast.onnx
  tisdiss export wsj0-2mix --nsep 2 --nre 3 -o wsj0-2mix.onnx
  tisdiss export run/model.safetensors --check-input meeting.wav
"""


@app.command(epilog=EXAMPLES, cls=help.Command)
def export(
    model: str = typer.Argument(
        ..., metavar="MODEL", help="Model name, checkpoint file or ESPnet folder.", show_default=False
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", metavar="FILE", help="The .onnx file to write [default: MODEL's name .onnx]."
    ),
    preset: str = preset_option("The model's preset depth to export."),
    nsep: int | None = NSEP_OVERRIDE,
    nre: int | None = NRE_OVERRIDE,
    check_input: Path | None = typer.Option(
        None,
        "--check-input",
        metavar="AUDIO",
        help="Recording for the onnxruntime parity check [default: a synthetic 2.5-s mixture].",
    ),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare onnxruntime with PyTorch before writing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file and card."),
    threads: int | None = typer.Option(None, "--threads", min=1, metavar="N", help="CPU threads for PyTorch."),
    as_json: bool = typer.Option(False, "--json", help="Print the card as JSON on stdout."),
) -> None:
    """Export MODEL at one (N_sep, N_re) to ONNX, check it with onnxruntime, write a JSON card beside it."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    def fail(message: str) -> NoReturn:
        err.print(f"error: {escape(' '.join(message.split()))}")
        raise typer.Exit(1)

    target = output if output is not None else Path(f"{Path(model).expanduser().stem}.onnx")
    problem = unwritable_folder(target.parent)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="-o / --output")
    existing = [p for p in (target, card_path(target)) if p.exists()]
    if existing and not overwrite:
        fail(f"{existing[0]}: exists (use --overwrite to replace it)")
    if threads:
        torch.set_num_threads(threads)
    try:
        require_onnx()  # before loading anything
        loaded = load_any(model)
    except (ExportError, *MODEL_ERRORS) as exc:
        fail(str(exc))
    mixture: np.ndarray | None = None
    if check_input is not None:
        try:  # mono at the model's rate, NaN and Inf refused naming the file, as separate reads it
            blocks = list(read_blocks(check_input, loaded.model.config.sample_rate))
            mixture = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        except AudioError as exc:
            fail(str(exc))
    try:
        result = export_onnx(
            loaded,
            target,
            preset=preset,
            n_sep=nsep,
            n_re=nre,
            check_input=mixture,
            check=check,
            overwrite=overwrite,
        )
    except FileExistsError:  # written meanwhile by another process
        fail(f"{target}: exists (use --overwrite to replace it)")
    except (ExportError, ValueError, OSError) as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result.card, indent=2))
        return
    out = Console(highlight=False, soft_wrap=True)
    depth = result.card["depth"]
    size = result.path.stat().st_size / 1e6
    out.print(
        f"{escape(loaded.name)} at n_sep={depth['n_sep']}, n_re={depth['n_re']} -> "
        f"{escape(str(result.path))} ({size:.1f} MB), card {escape(str(result.card_path))}"
    )
    if result.parity is None:
        out.print("parity check skipped (--no-check)")
    else:
        p = result.parity
        out.print(
            f"onnxruntime vs PyTorch: max error {p.max_abs_error:.2e} ({p.relative_error:.1e} of the peak, "
            f"tolerance {result.card['parity']['tolerance']:.0e})"
        )
