"""Inference depth: how often the shared blocks run, (N_sep, N_re), and the named depths
("presets": fast, balanced, best) a model offers.

The bounds (1 <= N_sep <= MAX_REPEATS, 0 <= N_re <= MAX_REPEATS) are checked once, when a
:class:`Depth` is made; everything below the command line and the Separator passes Depth values on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NamedTuple

PRESET_NAMES = ("fast", "balanced", "best")
# Time grows linearly with depth and the paper's curves flatten by N_re ~ 8: far beyond that a
# value is a typo (--nre 1000 ran 2 s of audio for 3 minutes), not a setting.
MAX_REPEATS = 32


class _Pair(NamedTuple):
    n_sep: int  # repetitions of the separation stage
    n_re: int  # repetitions of the reconstruction stage


class Depth(_Pair):
    """``(n_sep, n_re)``, validated: a tuple, so it unpacks, compares and serialises as one."""

    __slots__ = ()

    def __new__(cls, n_sep: int, n_re: int) -> Depth:
        n_sep, n_re = int(n_sep), int(n_re)
        if n_sep < 1 or n_re < 0:
            raise ValueError(f"need n_sep >= 1 and n_re >= 0, got n_sep={n_sep}, n_re={n_re}")
        if max(n_sep, n_re) > MAX_REPEATS:
            raise ValueError(f"n_sep={n_sep}, n_re={n_re}: at most {MAX_REPEATS} repetitions of a block")
        return super().__new__(cls, n_sep, n_re)


def default_presets(trained: Depth) -> dict[str, Depth]:
    """Presets of a model that records none: ``fast`` runs one reconstruction step (none for a
    separation-only model), ``balanced`` and ``best`` the depth it was trained at."""
    return {"fast": Depth(trained.n_sep, min(1, trained.n_re)), "balanced": trained, "best": trained}


def iter_presets(presets: Mapping[str, Depth]) -> Iterator[tuple[str, Depth]]:
    """Presets in the order fast, balanced, best, then any others."""
    for key in PRESET_NAMES:
        if key in presets:
            yield key, presets[key]
    for key, value in presets.items():
        if key not in PRESET_NAMES:
            yield key, value


def presets_as_lists(presets: Mapping[str, Depth]) -> dict[str, list[int]]:
    """The JSON form written into checkpoint metadata: name -> [n_sep, n_re]."""
    return {name: list(depth) for name, depth in presets.items()}
