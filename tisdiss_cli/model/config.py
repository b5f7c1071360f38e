"""Model configuration: one frozen dataclass, plus the paper's named architectures."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .depth import Depth

NormType = Literal["rmsgroupnorm", "layernorm"]
SplitterKind = Literal["swiglu_conv_deconv2d", "conv2d"]
BandSplitKind = Literal["none", "bandsplit", "mel"]
BandNormKind = Literal["band", "utterance"]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a TISDiSS network. Loop counts (n_sep, n_re) are defaults only:
    they change no parameter shape and can be overridden on every forward call."""

    num_spk: int = 2  # J: speakers produced
    emb_dim: int = 128  # C: channels of the TF embedding
    attention_dim: int = 128  # A: width of q/k/v (all heads together)
    n_heads: int = 4  # H: attention heads (head width A/H)
    ffn_hidden_dim: tuple[int, int] = (384, 384)  # macaron FFN widths (before, after attention)
    ffn_kernel: int = 4  # K: kernel of the SwiGLU conv/deconv FFN
    ffn_stride: int = 1  # S: stride of that FFN
    norm_type: NormType = "rmsgroupnorm"  # norm inside the Locoformer sub-blocks
    num_groups: int = 4  # G: groups of RMSGroupNorm
    eps: float = 1e-5  # epsilon of the sub-block norms
    m_sep: int = 1  # distinct blocks in the separation stage
    m_re: int = 1  # distinct blocks in the reconstruction stage (0: separation-only model)
    n_sep: int = 2  # default repetitions of the separation stage
    n_re: int = 6  # default repetitions of the reconstruction stage
    splitter: SplitterKind = "swiglu_conv_deconv2d"  # speaker splitter kind
    spk_path: bool = True  # attention across speakers in the reconstruction blocks
    sep_residual: bool = True  # mixing block (E + h) before every separation block but the first
    re_residual: bool = False  # mixing block before every reconstruction block (unused upstream)
    n_fft: int = 128  # STFT size (periodic Hann window of the same length)
    hop_length: int = 64  # STFT hop
    sample_rate: int = 8000  # rate the model was trained at
    # Band-split Encoder / band-restoration Decoder (paper section 3.5) instead of Conv2D / DeConv2D:
    band_split: BandSplitKind = "none"  # "bandsplit": TIGER widths (65 -> 33); "mel": mel bands (65 -> 32)
    num_bands: int = 32  # bands of the "mel" layout
    band_widths: tuple[int, ...] = ()  # "bandsplit" with own widths (bins per band); () = TIGER's
    band_mlp_expansion: int = 4  # hidden width of each band's output MLP, in multiples of C
    band_mask: bool = False  # tisdiss option: band outputs are a complex mask on the mixture spectrum
    band_norm: BandNormKind = "band"  # "band": per-band RMS norm (reference); "utterance": tisdiss option

    def __post_init__(self) -> None:
        object.__setattr__(self, "ffn_hidden_dim", tuple(int(h) for h in self.ffn_hidden_dim))
        object.__setattr__(self, "band_widths", tuple(int(w) for w in self.band_widths))
        if self.attention_dim % self.n_heads:
            raise ValueError(f"attention_dim {self.attention_dim} is not divisible by n_heads {self.n_heads}")
        if (self.attention_dim // self.n_heads) % 2:
            raise ValueError("head width attention_dim / n_heads must be even for RoPE")
        if self.norm_type == "rmsgroupnorm" and self.emb_dim % self.num_groups:
            raise ValueError(f"emb_dim {self.emb_dim} is not divisible by num_groups {self.num_groups}")
        if self.norm_type not in ("rmsgroupnorm", "layernorm"):
            raise ValueError(f"unknown norm_type {self.norm_type!r}")
        if self.splitter not in ("swiglu_conv_deconv2d", "conv2d"):
            raise ValueError(f"unknown splitter {self.splitter!r}")
        if self.band_split not in ("none", "bandsplit", "mel"):
            raise ValueError(f"unknown band_split {self.band_split!r} (none, bandsplit or mel)")
        if self.band_norm not in ("band", "utterance"):
            raise ValueError(f"unknown band_norm {self.band_norm!r} (band or utterance)")
        if self.band_mask and self.band_split == "none":
            raise ValueError("band_mask needs a band-split configuration")
        if self.band_widths and (self.band_split != "bandsplit" or min(self.band_widths) < 1):
            raise ValueError("band_widths needs band_split='bandsplit' and positive widths")
        if len(self.ffn_hidden_dim) != 2:
            raise ValueError("ffn_hidden_dim needs two widths (macaron FFN)")
        if self.m_sep < 1 or self.m_re < 0:
            raise ValueError(f"need m_sep >= 1 and m_re >= 0, got m_sep={self.m_sep}, m_re={self.m_re}")
        Depth(self.n_sep, self.n_re)  # raises for an invalid default depth

    @property
    def depth(self) -> Depth:
        """The default (n_sep, n_re): the depth the model was configured (trained) at."""
        return Depth(self.n_sep, self.n_re)

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ffn_hidden_dim"] = list(self.ffn_hidden_dim)
        d["band_widths"] = list(self.band_widths)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**dict(d))

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


def _paper(m_sep: int, n_sep: int, m_re: int, n_re: int) -> ModelConfig:
    return ModelConfig(m_sep=m_sep, n_sep=n_sep, m_re=m_re, n_re=n_re)


# The paper's architectures ("sep{M}x{N}-re{M}x{N}"), all at the released widths. (Not to be
# confused with the presets fast / balanced / best, which are depths: see .depth.)
ARCHITECTURES: dict[str, ModelConfig] = {
    "sep1x2-re1x6": _paper(1, 2, 1, 6),
    "sep1x2-re1x3": _paper(1, 2, 1, 3),
    "sep1x2-re2x2": _paper(1, 2, 2, 2),
    "sep2x1-re3x1": _paper(2, 1, 3, 1),
    "sep6x1": _paper(6, 1, 0, 0),
    "sep2x3": _paper(2, 3, 0, 0),
    "sep1x6": _paper(1, 6, 0, 0),
    # Small structure-preserving configuration for tests and smoke runs.
    "tiny": ModelConfig(emb_dim=16, attention_dim=16, n_heads=2, ffn_hidden_dim=(24, 24), n_sep=2, n_re=3),
}


def architecture(name: str) -> ModelConfig:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; available: {', '.join(ARCHITECTURES)}") from None


_RENAMED = {"PRESETS": "ARCHITECTURES", "preset": "architecture"}


def __getattr__(name: str) -> Any:
    """The names the architectures had before 0.1 (``PRESETS``, ``preset``), with a warning."""
    if name in _RENAMED:
        warnings.warn(f"{__name__}.{name} is deprecated; use {_RENAMED[name]}", DeprecationWarning, stacklevel=2)
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class DecodeFlags:
    """Which intermediate states a training forward decodes (spec section 3.11)."""

    splitter: bool = True  # decode the splitter output (the paper's L_split)
    separation: bool = False  # decode after separation steps (L_sep; splitter applied per step)
    reconstruction: bool = True  # decode after reconstruction steps (L_re)
    every_layer: bool = True  # with M > 1: every layer, not only the last of each repetition
