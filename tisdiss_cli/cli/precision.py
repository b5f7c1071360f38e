"""The ``--precision`` option shared by ``separate``, ``eval`` and ``bench``."""

from __future__ import annotations

from enum import Enum


class PrecisionName(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    int8 = "int8"


HELP = (
    "auto: bf16 where the CPU (avx512_bf16/amx_bf16) or GPU computes it natively, else fp32. "
    "bf16 elsewhere is emulated and slower than fp32. int8: dynamic int8 FFN and attention weights, "
    "CPU only, lossy; on an AVX2 CPU 7-11% faster than fp32 at the released size, slower on small "
    "models (README, Precision)."
)

METAVAR = "auto|fp32|bf16|int8"
