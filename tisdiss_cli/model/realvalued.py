"""The network in real arithmetic at a fixed depth, for formats without complex numbers (ONNX).

:class:`RealValuedTISDiSS` runs the weights of a :class:`TISDiSS` unchanged, waveform in and
waveform out, with every complex quantity as a pair of real tensors:

- the STFT is a strided convolution with a windowed DFT basis (after the same reflect padding),
  its inverse a transposed convolution with the inverse basis divided by the summed squared
  window; ONNX has an STFT operator but no inverse, so both directions take this form;
- a masking decoder's complex product is written out in real and imaginary parts;
- the layers run under :func:`~.layers.real_arithmetic` (RoPE in its real form).

The loops of the Separator and Reconstructor are unrolled at the depth given, so an exported
graph has one (N_sep, N_re); its time axis stays free.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .depth import Depth
from .layers import real_arithmetic
from .network import TISDiSS, _last


class RealSTFT(nn.Module):
    """The STFT of :func:`.network.stft` and its inverse, as (re, im) pairs of ``[B, T, F]``."""

    analysis: Tensor  # [2F, 1, n_fft]: window * cos, -window * sin
    synthesis: Tensor  # [2F, 1, n_fft]: the one-sided inverse DFT, times the window
    window_sq: Tensor  # [1, 1, n_fft]

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        if hop > n_fft // 2:
            raise ValueError(f"hop {hop} > n_fft / 2: the inverse would need zero padding past the last frame")
        self.n_fft, self.hop = n_fft, hop
        n_freq = n_fft // 2 + 1
        # Built in float64 and cast on use, so float64 runs are exact to float64 rounding.
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(n_freq, dtype=torch.float64)
        angle = 2 * math.pi * k[:, None] * n[None, :] / n_fft  # [F, n_fft]
        window = torch.hann_window(n_fft, dtype=torch.float64)  # periodic, as the network's
        analysis = torch.cat((angle.cos() * window, -angle.sin() * window))
        # irfft: the DC and Nyquist bins count once, the others twice (their mirrored halves).
        weight = torch.full((n_freq, 1), 2.0 / n_fft, dtype=torch.float64)
        weight[0] = weight[-1] = 1.0 / n_fft
        synthesis = torch.cat((weight * angle.cos() * window, -weight * angle.sin() * window))
        self.register_buffer("analysis", analysis[:, None], persistent=False)
        self.register_buffer("synthesis", synthesis[:, None], persistent=False)
        self.register_buffer("window_sq", (window**2)[None, None], persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """[B, L] -> (re, im), each [B, T, F] with T = 1 + L // hop; needs L > n_fft / 2."""
        pad = self.n_fft // 2
        framed = F.conv1d(F.pad(x[:, None], (pad, pad), mode="reflect"), self.analysis.to(x.dtype), stride=self.hop)
        re, im = framed.transpose(1, 2).chunk(2, dim=-1)
        return re, im

    def inverse(self, re: Tensor, im: Tensor, length: int) -> Tensor:
        """(re, im) [B, T, F] -> [B, length]: overlap-add divided by the summed squared window."""
        spec = torch.cat((re, im), dim=-1).transpose(1, 2)  # [B, 2F, T]
        frames = F.conv_transpose1d(spec, self.synthesis.to(re.dtype), stride=self.hop)  # [B, 1, n_fft + hop (T-1)]
        ones = torch.ones_like(spec[:1, :1])  # [1, 1, T]: the envelope follows the frame count
        envelope = F.conv_transpose1d(ones, self.window_sq.to(re.dtype), stride=self.hop)
        start = self.n_fft // 2
        return (frames / envelope)[:, 0, start : start + length]


def two_pass_group_norm(x: Tensor, norm: nn.GroupNorm) -> Tensor:
    """``norm(x)`` for ``x [B, C, T, F]``, written out with its means taken one axis at a time.

    onnxruntime sums a float32 ReduceMean (and InstanceNormalization, nn.GroupNorm's export) in
    one pass; over the millions of elements of an utterance that costs precision. On the released
    configuration it put the whole graph 5.4e-4 of the output peak off PyTorch, where every other
    operator stays within 1.2e-6. Means over F, then T, then the group's channels are short sums.
    """
    b, c, t, f = x.shape
    groups = x.reshape(b, norm.num_groups, c // norm.num_groups, t, f)

    def mean(v: Tensor) -> Tensor:
        return v.mean(-1, keepdim=True).mean(-2, keepdim=True).mean(-3, keepdim=True)

    centred = groups - mean(groups)
    y = (centred * torch.rsqrt(mean(centred.square()) + norm.eps)).reshape_as(x)
    if not norm.affine:
        return y
    return y * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)


class RealValuedTISDiSS(nn.Module):
    """``mix [B, L] -> [B, J, L]``, equal to ``model(mix, n_sep=depth.n_sep, n_re=depth.n_re)``
    up to float rounding, with no complex tensor anywhere (see the module docstring)."""

    def __init__(self, model: TISDiSS, depth: Depth) -> None:
        super().__init__()
        self.model = model
        self.depth = Depth(*depth)
        self.stft = RealSTFT(model.config.n_fft, model.config.hop_length)

    def forward(self, mix: Tensor) -> Tensor:
        m, (n_sep, n_re) = self.model, self.depth
        length = mix.shape[-1]
        with real_arithmetic():
            scale = mix.std(dim=-1, keepdim=True).nan_to_num(0.0).clamp_min(1e-10)
            re, im = self.stft(mix / scale)
            e = self._encode(re, im)
            h = _last(m.separator.steps(e, n_sep, m.mixer if m.config.sep_residual else None), e)
            y = m.splitter(h)
            if m.reconstructor is not None:
                y = _last(m.reconstructor.steps(y, n_re, e, m.mixer), y)
            out_re, out_im = self._decode(y, re, im)
            wave = self.stft.inverse(out_re, out_im, length)
        return wave.view(mix.shape[0], m.config.num_spk, length) * scale.unsqueeze(1)

    def _encode(self, re: Tensor, im: Tensor) -> Tensor:
        """The Encoder after its STFT (network.Encoder.forward): (re, im) [B, T, F] -> [B, T, F', C]."""
        enc = self.model.encoder
        if hasattr(enc, "band_split"):
            return enc.band_split.embed(torch.stack((re, im), dim=-1).flatten(-2))
        x = torch.stack((re, im), dim=1)  # [B, 2, T, F]
        return two_pass_group_norm(enc.conv(x), enc.norm).permute(0, 2, 3, 1).contiguous()

    def _decode(self, y: Tensor, mix_re: Tensor, mix_im: Tensor) -> tuple[Tensor, Tensor]:
        """The Decoder before its iSTFT (network.Decoder.forward): [B, J, T, F', C] -> (re, im) [B*J, T, F]."""
        dec = self.model.decoder
        b, j, t, f, c = y.shape
        if hasattr(dec, "band_restore"):
            est_re, est_im = dec.band_restore.bin_values(y.reshape(b * j, t, f, c)).unflatten(-1, (-1, 2)).unbind(-1)
            if not dec.mask:
                return est_re, est_im
            # (a + ib)(c + id) per speaker, the mixture's spectrum broadcast over J
            a, bi = est_re.unflatten(0, (b, j)), est_im.unflatten(0, (b, j))
            cr, ci = mix_re.unsqueeze(1), mix_im.unsqueeze(1)
            return (a * cr - bi * ci).flatten(0, 1), (a * ci + bi * cr).flatten(0, 1)
        out = dec.deconv(y.reshape(b * j, t, f, c).permute(0, 3, 1, 2))  # [B*J, 2, T, F]
        return out[:, 0], out[:, 1]
