"""`tisdiss bench`: real-time factor, throughput and peak memory per depth on this machine."""

from __future__ import annotations

import json

import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..model.depth import MAX_REPEATS
from . import help
from .depth import NRE_BENCH, NSEP_BENCH
from .device import device_option
from .precision import PRECISION_OPTION
from .root import app


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=option) from None
    if not values or min(values) < 0:
        raise typer.BadParameter("need at least one value, none negative", param_hint=option)
    if max(values) > MAX_REPEATS:
        raise typer.BadParameter(f"{max(values)} is beyond the limit of {MAX_REPEATS}", param_hint=option)
    return values


@app.command(cls=help.Command)
def bench(
    model: str = typer.Option(
        "random-released",
        "-m",
        "--model",
        metavar="NAME|PATH",
        help="random-released / random-tiny (random weights, no download), or a model name or path.",
    ),
    device: str = device_option("cpu", "cpu, cuda or cuda:N."),
    seconds: float = typer.Option(4.0, "--seconds", min=0.1, metavar="SECONDS", help="Input length in seconds."),
    batch_size: int = typer.Option(1, "--batch-size", min=1, metavar="N", help="Inputs per forward."),
    threads: int | None = typer.Option(None, "--threads", min=1, metavar="N", help="CPU threads for PyTorch."),
    nsep: int = NSEP_BENCH,
    nre: str = NRE_BENCH,
    runs: int = typer.Option(3, "--runs", min=1, metavar="N", help="Timed runs per setting (median reported)."),
    precision: str = PRECISION_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Time whole-input separation per depth; report RTF, throughput and the deepest real-time one."""
    from ..evaluation.bench import RANDOM_MODELS, deepest_realtime, random_model, time_forward
    from ..model.precision import at_precision

    depths = _int_list(nre, "--nre")
    if threads:
        torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise typer.BadParameter("CUDA is not available on this machine", param_hint="--device")
    if model in RANDOM_MODELS:
        net = random_model(model)
    else:
        from ..zoo.load import MODEL_ERRORS, load_any

        try:
            net = load_any(model).model
        except MODEL_ERRORS as exc:
            Console(stderr=True).print(f"error: {escape(str(exc))}")
            raise typer.Exit(1) from None
    try:
        net, chosen = at_precision(net.to(device), precision)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--precision") from None
    if chosen.warning:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"warning: {escape(chosen.warning)}")
    results = [time_forward(net, n_sep=nsep, n_re=k, seconds=seconds, batch_size=batch_size, runs=runs) for k in depths]
    best = deepest_realtime(results)
    if as_json:
        rows = [
            {
                "n_sep": r.n_sep,
                "n_re": r.n_re,
                "median_s": r.median_s,
                "rtf": r.rtf,
                "throughput": r.throughput,
                "peak_memory_mb": r.peak_memory_mb,
            }
            for r in results
        ]
        typer.echo(
            json.dumps(
                {
                    "model": model,
                    "device": device,
                    "precision": chosen.name,
                    "threads": torch.get_num_threads(),
                    "seconds": seconds,
                    "batch_size": batch_size,
                    "results": rows,
                    "deepest_realtime": None if best is None else [best.n_sep, best.n_re],
                }
            )
        )
        return
    table = Table(
        title=escape(
            f"{model} on {device} in {chosen.describe()}, {torch.get_num_threads()} threads, "
            f"{seconds:g} s x {batch_size}"
        )
    )
    for col in ("N_sep", "N_re", "median s", "RTF", "audio s / s", "peak MB"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            str(r.n_sep),
            str(r.n_re),
            f"{r.median_s:.3f}",
            f"{r.rtf:.3f}",
            f"{r.throughput:.2f}",
            f"{r.peak_memory_mb:.0f}",
        )
    console = Console()
    console.print(table)
    if best is None:
        console.print("no setting ran faster than real time")
    else:
        console.print(f"deepest faster than real time: n_sep={best.n_sep}, n_re={best.n_re} (RTF {best.rtf:.3f})")
