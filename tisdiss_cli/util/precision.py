"""Which numeric precision a run computes in: ``auto``, ``fp32``, ``bf16`` or ``int8``.

``auto`` takes bfloat16 only where it is measured faster than float32, float32 everywhere else:

- CPU: bf16 needs native hardware, the ``avx512_bf16`` or ``amx_bf16`` flag in ``/proc/cpuinfo``
  (oneDNN then runs bf16 GEMMs and convolutions in hardware); without them bf16 is emulated by
  conversions around float32 arithmetic, slower than float32 itself. Even native bf16 pays only
  on wide enough models: autocast converts every activation, and on small matrices that costs
  more than the faster products save. ``benchmarks/bf16_crossover.py`` on an AMD EPYC with
  avx512_bf16 (2 threads, 4 s, depth (2, 2)) measured fp32/bf16 speed-ups of 0.55x at C = 16,
  0.90-0.93x at C = 32, 1.12-1.34x at C = 48 and 1.75-1.8x at C = 128, for both the standard
  and the band-split layouts. So ``auto`` picks bf16 on such a CPU from C = 48
  (:data:`BF16_MIN_CPU_WIDTH`). No flags file (macOS, Windows) counts as no native bf16.
- CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and later).
- anything else (MPS): float32.

``TISDISS_AUTO_PRECISION=fp32|bf16`` pins what ``auto`` resolves to (CI uses it to run the
precision tests as on a CPU where ``auto`` is bf16). ``int8`` (dynamic quantisation,
:mod:`tisdiss_cli.model.int8`) is never chosen by ``auto``: it is lossy (docs/speed.md, Precision).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "int8")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")
BF16_MIN_CPU_WIDTH = 48  # emb_dim from which native CPU bf16 was measured faster (module docstring)
AUTO_ENV = "TISDISS_AUTO_PRECISION"  # pins what auto resolves to: fp32 or bf16


@dataclass(frozen=True)
class PrecisionChoice:
    """What runs, and why."""

    name: Precision  # the precision the network computes in
    requested: str  # what was asked for ("auto", "fp32", ...)
    reason: str  # one phrase, e.g. "auto: no avx512_bf16/amx_bf16 on this CPU"
    warning: str | None = None  # set when the choice runs but slowly (emulated bf16)

    def describe(self) -> str:
        return self.name if self.requested == self.name else f"{self.name} ({self.reason})"


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The x86 feature flags of the first CPU in ``cpuinfo`` text (default: /proc/cpuinfo; empty if unreadable)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return set(value.split())
    return set()


def native_cpu_bf16(cpuinfo: str | None = None) -> str | None:
    """The flag that gives this CPU native bf16 arithmetic, or None."""
    flags = cpu_flags(cpuinfo)
    return next((flag for flag in NATIVE_BF16_FLAGS if flag in flags), None)


def choose_precision(
    requested: str,
    device: torch.device,
    *,
    emb_dim: int | None = None,
    cpuinfo: str | None = None,
    cuda_bf16: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> PrecisionChoice:
    """Resolve ``requested`` (one of :data:`PRECISIONS`) for ``device`` and a model of width ``emb_dim``.

    ``emb_dim`` None: the width is unknown, and ``auto`` takes native bf16 at any width.
    ``cpuinfo`` (text of /proc/cpuinfo), ``cuda_bf16`` and ``env`` (default: os.environ) replace
    what this machine reports (tests). Raises ValueError for an unknown name, or int8 off the CPU.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; choose from {', '.join(PRECISIONS)}")
    native, where = _native_bf16(device, cpuinfo, cuda_bf16)
    if requested == "auto":
        return _auto(device, native, where, emb_dim, os.environ if env is None else env)
    if requested == "int8":
        if device.type != "cpu":
            raise ValueError(f"precision int8 runs on the CPU only (dynamic quantisation), not on {device.type}")
        engines = torch.backends.quantized.supported_engines
        if not any(engine in engines for engine in ("x86", "fbgemm", "qnnpack")):
            raise ValueError("precision int8 needs a PyTorch build with quantized CPU kernels (fbgemm or qnnpack)")
        return PrecisionChoice("int8", requested, "dynamic int8")
    if requested == "bf16":
        warning = None
        if device.type == "cpu" and not native:
            warning = f"bf16 is emulated on this CPU ({where}): slower than fp32, use it only to check quality"
        return PrecisionChoice("bf16", requested, f"native ({where})" if native else f"emulated ({where})", warning)
    return PrecisionChoice("fp32", requested, "float32")


def _auto(
    device: torch.device, native: bool, where: str, emb_dim: int | None, env: Mapping[str, str]
) -> PrecisionChoice:
    pinned = env.get(AUTO_ENV, "").strip()
    if pinned:
        if pinned not in ("fp32", "bf16"):
            raise ValueError(f"{AUTO_ENV}={pinned!r}: expected fp32 or bf16")
        return PrecisionChoice(pinned, "auto", f"auto: {AUTO_ENV}={pinned}")  # type: ignore[arg-type]
    if not native:
        return PrecisionChoice("fp32", "auto", f"auto: no native bf16 ({where})")
    if device.type == "cpu" and emb_dim is not None and emb_dim < BF16_MIN_CPU_WIDTH:
        return PrecisionChoice(
            "fp32", "auto", f"auto: fp32 is faster than native bf16 below C = {BF16_MIN_CPU_WIDTH} (C = {emb_dim})"
        )
    return PrecisionChoice("bf16", "auto", f"auto: native bf16 ({where})")


def _native_bf16(device: torch.device, cpuinfo: str | None, cuda_bf16: bool | None) -> tuple[bool, str]:
    if device.type == "cpu":
        flag = native_cpu_bf16(cpuinfo)
        if flag is not None:
            return True, f"CPU has {flag}"
        return False, f"no {'/'.join(NATIVE_BF16_FLAGS)} on this CPU"
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16
        return supported, "CUDA bf16 supported" if supported else "this GPU has no bf16"
    return False, f"not detected on {device.type}"


def autocast_dtype(precision: Precision) -> torch.dtype | None:
    """The autocast dtype a precision runs under (None: none; int8 weights compute in float32)."""
    return torch.bfloat16 if precision == "bf16" else None
