"""What the zoo knows about a model, as typed fields: :class:`ModelCard`.

A card is built once, when a model is loaded, from its registry entry or its checkpoint's
metadata; everything downstream reads attributes with declared defaults, never string keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..model.depth import Depth
from .registry import ModelEntry


@dataclass(frozen=True)
class Quality:
    """Measured quality per reconstruction depth, as a card or registry entry records it."""

    by_n_re: dict[int, float]  # N_re -> score (the metric below)
    metric: str = ""  # e.g. "SI-SNRi (dB), dev2mix"
    dataset: str = ""
    n_sep: int | None = None  # the N_sep the figures were measured at

    @classmethod
    def parse(cls, raw: object) -> Quality | None:
        """A Quality from a registry/metadata table; None when it holds no usable figure."""
        if not isinstance(raw, Mapping):
            return None
        table = raw.get("by_n_re")
        by_n_re: dict[int, float] = {}
        if isinstance(table, Mapping):
            for key, value in table.items():
                if str(key).isdigit() and isinstance(value, (int, float)) and math.isfinite(value):
                    by_n_re[int(key)] = float(value)
        if not by_n_re:
            return None
        n_sep = raw.get("n_sep")
        return cls(
            by_n_re=dict(sorted(by_n_re.items())),
            metric=str(raw.get("metric", "")),
            dataset=str(raw.get("dataset", "")),
            n_sep=n_sep if isinstance(n_sep, int) and not isinstance(n_sep, bool) else None,
        )


@dataclass(frozen=True)
class ModelCard:
    """A loaded model's presets, chunk length, measured quality and provenance."""

    presets: dict[str, Depth]  # "fast" / "balanced" / "best" -> (n_sep, n_re)
    trained: Depth  # the depth its config was trained at
    sample_rate: int
    num_spk: int
    segment_seconds: float | None = None  # chunk length it separates best with (None: the separator's default)
    quality: Quality | None = None
    summary: str = ""
    licence: str = ""
    training_data: str = ""
    source: str | None = None  # where the weights came from: a URL, a file, or the folder it was imported from
    sha256: str | None = None  # of the file at ``source``, where known
    params: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)  # the checkpoint's free-form metadata, verbatim

    def __post_init__(self) -> None:
        # plain (n_sep, n_re) pairs are accepted; frozen, so set through object.__setattr__
        object.__setattr__(self, "presets", {name: Depth(*depth) for name, depth in self.presets.items()})

    @property
    def documented_n_re(self) -> int:
        """The deepest N_re the card vouches for: measured quality, presets, or the trained depth."""
        depths = [self.trained.n_re, *(depth.n_re for depth in self.presets.values())]
        if self.quality is not None:
            depths += list(self.quality.by_n_re)
        return max(depths)

    @classmethod
    def from_entry(
        cls,
        entry: ModelEntry,
        presets: Mapping[str, Depth],
        trained: Depth,
        metadata: Mapping[str, Any],
        *,
        sample_rate: int,
        num_spk: int,
    ) -> ModelCard:
        """The card of a registry model; ``metadata`` is its checkpoint's.

        The rate and speaker count come from the network's config, which is what separates; the
        registry's copies only describe a model before it is downloaded.
        """
        bundled = entry.bundled_path()
        return cls(
            presets=dict(presets),
            trained=trained,
            sample_rate=sample_rate,
            num_spk=num_spk,
            segment_seconds=_seconds(entry.segment),
            quality=Quality.parse(entry.quality),
            summary=entry.summary,
            licence=entry.licence,
            training_data=entry.training_data,
            source=entry.url or (str(bundled) if bundled else None),
            sha256=entry.sha256,
            params=entry.params,
            metadata=dict(metadata),
        )

    @classmethod
    def from_metadata(
        cls,
        metadata: Mapping[str, Any],
        presets: Mapping[str, Depth],
        trained: Depth,
        *,
        sample_rate: int,
        num_spk: int,
        source: str | None = None,
    ) -> ModelCard:
        """The card of a checkpoint loaded from a file or folder, from its metadata."""
        return cls(
            presets=dict(presets),
            trained=trained,
            sample_rate=sample_rate,
            num_spk=num_spk,
            segment_seconds=_seconds(metadata.get("segment")),
            quality=Quality.parse(metadata.get("quality")),
            summary=str(metadata.get("description", "")),
            licence=str(metadata.get("licence", "")),
            training_data=str(metadata.get("training_data", "")),
            source=source,
            sha256=_str(metadata.get("source_sha256")),
            params=_int(metadata.get("params")),
            metadata=dict(metadata),
        )


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
