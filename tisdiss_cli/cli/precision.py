"""The ``--precision`` option shared by ``separate``, ``eval`` and ``bench``."""

from __future__ import annotations

import typer

from ..util.precision import PRECISIONS
from .choices import one_of

HELP = (
    "auto: bf16 where it is measured faster than fp32: a bf16 GPU, or a CPU with native bf16 "
    "(avx512_bf16/amx_bf16) and a model of width C >= 48 (1.5x at the released size); else fp32. "
    "bf16 elsewhere is emulated and slower than fp32. int8: dynamic int8 FFN and attention weights, "
    "CPU only, lossy; it pays on large models with avx512_vnni (1.3-1.45x at the released size on an "
    "AMD EPYC), 7-11% on AVX2, and is slower on small models such as the bundled one (docs/speed.md)."
)

METAVAR = "|".join(PRECISIONS)
PRECISION_OPTION = typer.Option("auto", "--precision", metavar=METAVAR, help=HELP, callback=one_of(PRECISIONS))
