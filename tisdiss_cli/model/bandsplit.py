"""The paper's lightweight band-split front and back ends (section 3.5).

The band-split Encoder replaces the standard Conv2D + GroupNorm: the STFT bins are grouped
into bands, each band's (re, im) values are RMS-normalised and projected to C channels, so the
Separator runs on ``nband`` band positions instead of F bins. The band-restoration Decoder
replaces the DeConv2D: one MLP per band maps each band embedding back to its (re, im) values.

Two band layouts come from the authors' code: ``"bandsplit"`` (TIGER's widths, disjoint) and
``"mel"`` (Slaney mel filters, overlapping; overlapping estimates are summed).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .layers import fast_paths_enabled, full_precision

# --------------------------------------------------------------------------- band tables


def tiger_widths(n_freq: int, sample_rate: int) -> list[int]:
    """TIGER's band widths: one DC band, then 16 bands of 62.5 Hz, 8 of 125 Hz, 8 of 250 Hz
    (rounded down to whole bins), plus one band for any remaining bins."""

    def width(hz: float) -> int:
        return int(math.floor(hz / (sample_rate / 2) * n_freq))

    widths = [1] + [width(62.5)] * 16 + [width(125.0)] * 8 + [width(250.0)] * 8
    if min(widths) < 1:
        raise ValueError(f"TIGER band layout needs at least one bin per 62.5 Hz (n_freq {n_freq}, {sample_rate} Hz)")
    if sum(widths) > n_freq:
        raise ValueError(f"TIGER band widths cover {sum(widths)} bins, more than the {n_freq} available")
    if sum(widths) < n_freq:
        widths.append(n_freq - sum(widths))
    return widths


def _hz_to_mel(hz: float) -> float:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    if hz < 1000.0:
        return 3.0 * hz / 200.0
    return 15.0 + 27.0 * math.log(hz / 1000.0) / math.log(6.4)


def _mel_to_hz(mel: float) -> float:
    if mel < 15.0:
        return 200.0 * mel / 3.0
    return 1000.0 * math.exp((mel - 15.0) * math.log(6.4) / 27.0)


def mel_bands(n_freq: int, sample_rate: int, num_bands: int) -> list[list[int]]:
    """Bins of each mel band: bin f is in band m where the Slaney triangle m is positive at
    f's frequency; the first and last bins are forced into the first and last bands."""
    top = _hz_to_mel(sample_rate / 2)
    edges = [_mel_to_hz(top * i / (num_bands + 1)) for i in range(num_bands + 2)]
    bin_hz = (sample_rate / 2) / (n_freq - 1)
    bands = []
    for m in range(num_bands):
        low, centre, high = edges[m], edges[m + 1], edges[m + 2]
        bins = [
            f
            for f in range(n_freq)
            if min((f * bin_hz - low) / (centre - low), (high - f * bin_hz) / (high - centre)) > 0
        ]
        bands.append(bins)
    bands[0] = sorted(set(bands[0]) | {0})
    bands[-1] = sorted(set(bands[-1]) | {n_freq - 1})
    covered = set().union(*map(set, bands))
    if covered != set(range(n_freq)) or any(not b for b in bands):
        raise ValueError(f"{num_bands} mel bands do not cover all {n_freq} bins; use fewer bands or a larger n_fft")
    return bands


def band_table(config: ModelConfig) -> list[list[int]]:
    """The STFT bins of each band, in band order, for a band-split configuration."""
    n_freq = config.n_freq
    if config.band_split == "mel":
        return mel_bands(n_freq, config.sample_rate, config.num_bands)
    if config.band_split == "bandsplit":
        widths = list(config.band_widths) or tiger_widths(n_freq, config.sample_rate)
        if sum(widths) != n_freq:
            raise ValueError(f"band_widths sum to {sum(widths)}, not the {n_freq} STFT bins")
        starts = [sum(widths[:i]) for i in range(len(widths))]
        return [list(range(s, s + w)) for s, w in zip(starts, widths, strict=True)]
    raise ValueError(f"not a band-split configuration (band_split={config.band_split!r})")


def _interleaved(bins: list[int]) -> list[int]:
    """Positions of a band's values in the (re, im)-interleaved spectrum ``[..., 2F]``."""
    return [2 * f + part for f in bins for part in (0, 1)]


def _groups(sizes: list[int]) -> dict[int, list[int]]:
    """Band indices grouped by band size, so equal-sized bands run as one batched matmul."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, size in enumerate(sizes):
        groups[size].append(i)
    return dict(groups)


# --------------------------------------------------------------------------- modules


class BandNorm(nn.Module):
    """``x / max(||x||, 1e-12) * sqrt(D) * gamma`` over a band's D values (an all-zero band stays 0)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) * (x.shape[-1] ** 0.5) * self.gamma


def utterance_rms(spectrum: Tensor) -> Tensor:
    """RMS over all frames and values of each item: ``[B, T, S] -> [B, 1, 1]`` (tiny floor)."""
    return spectrum.pow(2).mean(dim=(1, 2), keepdim=True).add(1e-12).sqrt()


class BandProjection(nn.Module):
    """One band's input: BandNorm, then a Linear to C channels."""

    def __init__(self, dim: int, channels: int) -> None:
        super().__init__()
        self.norm = BandNorm(dim)
        self.proj = nn.Linear(dim, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.norm(x))


class BandMLP(nn.Module):
    """One band's output: C -> H -> H (tanh) -> 2D, then a GLU (value, gate) to D values."""

    def __init__(self, channels: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 2 * dim)
        )

    def forward(self, y: Tensor) -> Tensor:
        return F.glu(self.mlp(y), dim=-1)


class BandSplit(nn.Module):
    """Spectrum to band embeddings: ``[B, T, F]`` complex -> ``[B, T, nband, C]``."""

    index: Tensor  # buffer: positions of every band's values in the interleaved spectrum

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.table = band_table(config)
        sizes = [2 * len(b) for b in self.table]
        self.bands = nn.ModuleList(BandProjection(d, config.emb_dim) for d in sizes)
        index = [p for bins in self.table for p in _interleaved(bins)]
        self.register_buffer("index", torch.tensor(index), persistent=False)
        self.sizes = sizes
        self.utterance_norm = config.band_norm == "utterance"
        self.groups = _groups(sizes)
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes))]

    def forward(self, spec: Tensor) -> Tensor:
        return self.embed(torch.view_as_real(spec).flatten(-2))

    def embed(self, x: Tensor) -> Tensor:
        """The real form of :meth:`forward`: ``[B, T, 2F]`` ((re, im) interleaved per bin) -> ``[B, T, nband, C]``."""
        values = x.index_select(-1, self.index)  # [B, T, S]: each band's values in table order
        bands = [cast(BandProjection, band) for band in self.bands]
        if self.utterance_norm:
            # tisdiss option: one RMS for the whole utterance, so each band keeps its energy
            # (the per-band norm leaves a one-bin band only its phase); gamma still scales.
            values = values / utterance_rms(values)
        if not fast_paths_enabled():  # the plain form: one module call per band
            layout = zip(bands, self.offsets, self.sizes, strict=True)
            if self.utterance_norm:
                parts = [band.proj(values[..., o : o + d] * band.norm.gamma) for band, o, d in layout]
            else:
                parts = [band(values[..., o : o + d]) for band, o, d in layout]
            return torch.stack(parts, dim=-2)
        out = values.new_empty(*values.shape[:-1], len(bands), bands[0].proj.out_features)
        for size, members in self.groups.items():
            v = torch.stack(
                [values[..., self.offsets[i] : self.offsets[i] + size] for i in members], dim=-2
            )  # [B, T, G, D]
            gamma = torch.stack([bands[i].norm.gamma for i in members])  # [G, D]
            weight = torch.stack([bands[i].proj.weight for i in members])  # [G, C, D]
            bias = torch.stack([bands[i].proj.bias for i in members])  # [G, C]
            u = (v if self.utterance_norm else F.normalize(v, dim=-1) * (size**0.5)) * gamma
            out[..., members, :] = torch.einsum("btgd,gcd->btgc", u, weight) + bias
        return out


class BandRestore(nn.Module):
    """Band embeddings back to a spectrum: ``[N, T, nband, C]`` -> ``[N, T, F]`` complex;
    overlapping bands' estimates of a bin are summed."""

    index: Tensor  # buffer: where every band's (re, im) estimates go in the interleaved spectrum

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.table = band_table(config)
        self.n_freq = config.n_freq
        sizes = [2 * len(b) for b in self.table]
        hidden = config.band_mlp_expansion * config.emb_dim
        self.bands = nn.ModuleList(BandMLP(config.emb_dim, hidden, d) for d in sizes)
        index = [p for bins in self.table for p in _interleaved(bins)]
        self.register_buffer("index", torch.tensor(index), persistent=False)
        self.disjoint = len(index) == 2 * self.n_freq
        self.groups = _groups(sizes)
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes))]

    def _band_values(self, y: Tensor) -> Tensor:
        """[N, T, nband, C] -> [N, T, S]: every band's (re, im) estimates in table order."""
        if not fast_paths_enabled():  # the plain form: one module call per band
            return torch.cat([band(y[..., i, :]) for i, band in enumerate(self.bands)], dim=-1)
        mlps = [cast(BandMLP, band).mlp for band in self.bands]
        out = y.new_empty(*y.shape[:-2], self.index.numel())
        for size, members in self.groups.items():
            h = y[..., members, :]  # [N, T, G, C]
            for layer in (0, 2, 4):
                linears = [cast(nn.Linear, mlps[i][layer]) for i in members]
                weight = torch.stack([linear.weight for linear in linears])  # [G, out, in]
                bias = torch.stack([linear.bias for linear in linears])
                h = torch.einsum("ntgi,goi->ntgo", h, weight) + bias
                if layer < 4:
                    h = torch.tanh(h)
            z = F.glu(h, dim=-1)  # [N, T, G, D]
            for k, i in enumerate(members):
                out[..., self.offsets[i] : self.offsets[i] + size] = z[..., k, :]
        return out

    def forward(self, y: Tensor) -> Tensor:
        return torch.view_as_complex(self.bin_values(y).unflatten(-1, (self.n_freq, 2)).contiguous())

    def bin_values(self, y: Tensor) -> Tensor:
        """The real form of :meth:`forward`: ``[N, T, nband, C]`` -> ``[N, T, 2F]``, (re, im) interleaved per bin."""
        values = full_precision(self._band_values(y))
        if self.disjoint:
            flat = values.new_empty(*values.shape[:-1], 2 * self.n_freq)
            flat[..., self.index] = values
            return flat
        return values.new_zeros(*values.shape[:-1], 2 * self.n_freq).index_add_(-1, self.index, values)
