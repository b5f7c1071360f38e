"""Dynamic int8 quantisation of the layers that hold the FLOPs (CPU only).

88-92 % of the network's arithmetic is the two convolutions of each SwiGLU conv FFN. Here
each becomes one GEMM over a window matrix (the K taps of every output side by side, built
by ``unfold``) against int8 weights, quantised per output channel; activations are quantised
per tensor at run time (``quantized::linear_dynamic``). The attention projections get the
same treatment. Norms, attention scores, the splitter and the band-split layers stay float32.

The window matrix costs a K-fold copy of each FFN input; rows are processed in blocks so that
copy stays in cache-sized pieces instead of growing with the input length.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import MultiHeadSelfAttention, SwiGLUConvFFN

_BLOCK_ROWS = 8192  # window-matrix rows per GEMM block


def _reduce_range() -> bool:
    # Without VNNI, fbgemm multiplies u8 x s8 pairs into saturating int16 sums (vpmaddubsw);
    # 7-bit activations keep those in range. qnnpack has no such limit.
    return torch.backends.quantized.engine in ("x86", "fbgemm")


def _pack(weight: Tensor, bias: Tensor | None) -> torch.ScriptObject:
    """Prepacked int8 weights ``[out, in]``, symmetric per output channel, with a float bias."""
    weight = weight.detach().float()
    scale = (weight.abs().amax(dim=1) / 127).clamp_min(1e-12).double()
    zero = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch marks quantized tensors as deprecated (still supported)
        q = torch.quantize_per_channel(weight, scale, zero, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(q, None if bias is None else bias.detach().float())


class Int8Linear(nn.Module):
    """``x [..., in] -> [..., out]`` with int8 weights and dynamically quantised activations."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.in_features = weight.shape[1]
        self.packed = _pack(weight, bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        return cls(linear.weight, linear.bias)

    def forward(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        rows = x.reshape(-1, self.in_features).float()
        y = torch.ops.quantized.linear_dynamic(rows, self.packed, _reduce_range())
        if out is not None:
            return out.copy_(y.view_as(out))
        return y.view(*x.shape[:-1], -1)


def _windows(x: Tensor, kernel: int) -> Tensor:
    """``[N, S, C] -> [N * (S - K + 1), K * C]``: row o holds inputs o .. o+K-1, tap-major."""
    n, seq, c = x.shape
    return x.unfold(1, kernel, 1).transpose(2, 3).reshape(n * (seq - kernel + 1), kernel * c)


class Int8SwiGLUConvFFN(nn.Module):
    """:class:`SwiGLUConvFFN` (stride 1) with both convolutions as int8 GEMMs; same interface."""

    def __init__(self, ffn: SwiGLUConvFFN) -> None:
        super().__init__()
        if ffn.stride != 1:
            raise ValueError("int8 FFN supports stride 1 only")
        self.kernel, self.hidden = ffn.kernel, ffn.hidden
        w1 = ffn.conv1d.weight  # [2H, C, K]
        self.conv = Int8Linear(w1.permute(0, 2, 1).reshape(w1.shape[0], -1), ffn.conv1d.bias)
        # Kept deconv window = plain conv with the kernel flipped (as SwiGLUConvFFN._fast).
        w2 = ffn.deconv1d.weight  # [H, C, K]
        self.deconv = Int8Linear(w2.flip(-1).permute(1, 2, 0).reshape(w2.shape[1], -1), ffn.deconv1d.bias)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """x: [N, S, C] -> [N, S, C]; with ``residual`` returns residual + FFN(x)."""
        n, seq, c = x.shape
        out = x.new_empty(n, seq, c, dtype=torch.float32)
        step = max(1, _BLOCK_ROWS // (seq + self.kernel - 1))
        for start in range(0, n, step):
            stop = min(n, start + step)
            self._rows(x[start:stop], out[start:stop])
        return out if residual is None else out.add_(residual)

    def _rows(self, x: Tensor, out: Tensor) -> None:
        n, seq, _ = x.shape
        k, h = self.kernel, self.hidden
        padded = F.pad(x.float(), (0, 0, k - 1, k - 1))  # conv outputs 0 .. S+K-2
        u = self.conv(_windows(padded, k)).view(n, seq + k - 1, 2 * h)
        value, gate = u.split(h, dim=-1)
        g = F.silu(gate).mul_(value)
        self.deconv(_windows(g, k), out=out)  # kept window: output p reads conv outputs p .. p+K-1


def quantize_int8(model: nn.Module) -> int:
    """Swap, in place, every stride-1 SwiGLU conv FFN and attention projection of ``model`` for
    its int8 form; returns how many modules were swapped. Inference only (no gradients)."""
    swapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, SwiGLUConvFFN) and child.stride == 1:
                setattr(module, name, Int8SwiGLUConvFFN(child))
            elif isinstance(module, MultiHeadSelfAttention) and isinstance(child, nn.Linear):
                setattr(module, name, Int8Linear.from_linear(child))
            else:
                continue
            swapped += 1
    return swapped
