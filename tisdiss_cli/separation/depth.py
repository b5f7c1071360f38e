"""The one depth decision: which (N_sep, N_re) a run uses, why, and what to warn about.

Every command that takes a preset (separate, live, export) and eval's depth sweep ask
:func:`choose_depth` (or :meth:`Separator.choose_depth`); the command line prints the
:class:`DepthChoice` it gets back and decides nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..model.depth import Depth
from ..zoo.load import LoadedModel
from .calibration import Calibration

CalibrationFn = Callable[[int], Calibration]  # n_sep -> measured RTF per N_re on this device


@dataclass(frozen=True)
class DepthChoice:
    """A chosen depth and how it came about."""

    depth: Depth  # (n_sep, n_re) to run
    reason: str  # what chose it, as printed: "preset balanced", "--nsep/--nre", "--max-rtf 0.5 (measured ...)"
    warnings: tuple[str, ...] = ()  # one line each, for the caller to show
    calibration: Calibration | None = None  # the measurement behind a --max-rtf choice


def preset_depth(presets: Mapping[str, Depth], preset: str, n_sep: int | None, n_re: int | None) -> Depth:
    """(n_sep, n_re) of a model's preset, with explicit values overriding it; ValueError for an unknown preset."""
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; available: {', '.join(presets)}")
    base = presets[preset]
    return Depth(base.n_sep if n_sep is None else n_sep, base.n_re if n_re is None else n_re)


def beyond_documented(loaded: LoadedModel, n_re: int | None) -> str | None:
    """The warning for an asked-for N_re deeper than the model's card documents (None within it)."""
    documented = loaded.documented_n_re
    if n_re is None or n_re <= documented:
        return None
    return (
        f"--nre {n_re} is beyond the depths documented for {loaded.name} "
        f"(up to N_re = {documented}): time grows with N_re and better quality is not known"
    )


def choose_depth(
    loaded: LoadedModel,
    preset: str,
    n_sep: int | None = None,
    n_re: int | None = None,
    *,
    max_rtf: float | None = None,
    calibration: CalibrationFn | None = None,
    keep_up: float | None = None,
) -> DepthChoice:
    """The depth for ``preset`` with ``n_sep`` / ``n_re`` overriding it.

    max_rtf: the deepest N_re (up to the deepest preset) measured by ``calibration`` to run at
    this real-time factor or faster. keep_up (live capture): ``max_rtf`` is a budget per second of
    *new* audio, and a chunk of one segment brings ``keep_up`` (hop / segment) of it; the preset's
    N_re is then a ceiling, and an explicit ``n_re`` skips the measurement.
    """
    depth = preset_depth(loaded.presets, preset, n_sep, n_re)
    reason = "--nsep/--nre" if (n_sep is not None or n_re is not None) else f"preset {preset}"
    documented = [w for w in (beyond_documented(loaded, n_re),) if w is not None]
    if max_rtf is None or calibration is None or (keep_up is not None and n_re is not None):
        return DepthChoice(depth, reason, tuple(documented))
    warnings: list[str] = []
    measured = calibration(depth.n_sep)
    if keep_up is not None:
        budget = max_rtf * keep_up
        if not measured.meets(budget):
            warnings.append(
                f"no depth runs fast enough for live separation on {measured.device} "
                f"(needs RTF <= {budget:.2f}, fastest {min(measured.rtf.values()):.2f}); expect to fall behind"
            )
        chosen = Depth(depth.n_sep, min(depth.n_re, measured.choose_depth(budget).n_re))
        return DepthChoice(chosen, f"{reason}, --max-rtf {max_rtf:g}", (*warnings, *documented), measured)
    chosen = measured.choose_depth(max_rtf)
    rtf = measured.rtf.get(chosen.n_re)
    reason = f"--max-rtf {max_rtf:g}" + (f" (measured RTF {rtf:.3f} on {measured.device})" if rtf is not None else "")
    if not measured.meets(max_rtf):
        fastest = min(measured.rtf, key=measured.rtf.__getitem__)
        warnings.append(
            f"no depth runs at RTF <= {max_rtf:g} on {measured.device} (the fastest, n_re={fastest}, "
            f"measured RTF {measured.rtf[fastest]:.3f}); using n_re={chosen.n_re}"
        )
    return DepthChoice(chosen, reason, (*warnings, *documented), measured)
