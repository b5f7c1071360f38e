"""Building blocks of the TF-Locoformer: norms, SwiGLU conv FFN, RoPE attention, sub-blocks.

Every sub-block works on a 4-D tensor ``[B', S1, S2, C]`` and treats ``S2`` as the sequence
and ``B' * S1`` as the batch, so one module serves the frequency, time and speaker paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig

# Every module below has a straightforward reference implementation (the spec, written
# plainly) and a fast one with the same numerics up to float rounding; tests compare them.
# The switch covers arithmetic (in-place ops, fused or reshaped kernels), not memory layout:
# the contiguous copies of the channels-last state (network.Encoder and Splitter,
# LocoformerPath here) move values without changing any, so the reference keeps them; running
# it over strided memory would only make reference runs slower, not more plain.
_FAST = True
# Real arithmetic only (no complex tensors), for exporters whose formats have no complex type
# (ONNX): RoPE takes its real form and the FFN its convolution form at every sequence length.
_REAL = False


def fast_paths_enabled() -> bool:
    """Whether the layers currently run their optimised implementations."""
    return _FAST


@contextmanager
def reference_paths() -> Iterator[None]:
    """Run the straightforward reference implementations inside this block (not thread-safe)."""
    global _FAST
    previous, _FAST = _FAST, False
    try:
        yield
    finally:
        _FAST = previous


@contextmanager
def real_arithmetic() -> Iterator[None]:
    """Run without complex tensors inside this block, same numerics up to rounding (not thread-safe)."""
    global _REAL
    previous, _REAL = _REAL, True
    try:
        yield
    finally:
        _REAL = previous


def _inplace_ok(*tensors: Tensor) -> bool:
    """In-place element-wise ops are safe only when autograd will not need the inputs (and not in
    real mode, which is for exporters: the ONNX exporter can lose the shape of a view written in place)."""
    return not (_REAL or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)))


class RMSGroupNorm(nn.Module):
    """RMS norm over contiguous channel groups of the last axis: ``x / (rms + eps) * gamma``."""

    def __init__(self, channels: int, groups: int, eps: float) -> None:
        super().__init__()
        self.groups = groups
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        g = x.unflatten(-1, (self.groups, -1))
        if not _FAST:
            rms = g.pow(2).mean(-1, keepdim=True).sqrt()
            return (g / (rms + self.eps)).flatten(-2) * self.gamma
        # One reduction pass and two multiplies instead of pow/mean/sqrt/div/mul temporaries.
        rms = torch.linalg.vector_norm(g, dim=-1, keepdim=True)
        if _inplace_ok(x, self.gamma):
            out = g * rms.mul_(g.shape[-1] ** -0.5).add_(self.eps).reciprocal_()
            return out.flatten(-2).mul_(self.gamma)
        return (g / (rms * g.shape[-1] ** -0.5 + self.eps)).flatten(-2) * self.gamma


def full_precision(x: Tensor) -> Tensor:
    """``x`` in float32 unless it is float32 or float64 already: complex numbers, the STFT and
    its inverse have no reduced-precision kernels, so outputs of autocast regions come back up."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def deconv2d_same(x: Tensor, deconv: nn.ConvTranspose2d) -> Tensor:
    """A stride-1 ``ConvTranspose2d`` as the plain convolution it equals: kernel flipped,
    channel axes swapped, padding ``K - 1 - p`` (oneDNN runs that faster)."""
    kh, kw = deconv.kernel_size
    plain = (deconv.stride, deconv.dilation, deconv.output_padding, deconv.groups) == ((1, 1), (1, 1), (0, 0), 1)
    if not (_FAST and plain and isinstance(deconv.padding, tuple)) or max(deconv.padding) > min(kh, kw) - 1:
        return deconv(x)
    weight = deconv.weight.transpose(0, 1).flip(2, 3)  # [in, out, kh, kw] -> [out, in, kh, kw]
    ph, pw = deconv.padding
    return F.conv2d(x, weight, deconv.bias, padding=(kh - 1 - ph, kw - 1 - pw))


def make_norm(config: ModelConfig) -> nn.Module:
    if config.norm_type == "rmsgroupnorm":
        return RMSGroupNorm(config.emb_dim, config.num_groups, config.eps)
    return nn.LayerNorm(config.emb_dim, eps=config.eps)


# Rows per block of the short-sequence path at inference.
_SHORT_ROWS = 2048


class SwiGLUConvFFN(nn.Module):
    """Conv1d -> SwiGLU gate -> ConvTranspose1d along the sequence; ``[N, S, C] -> [N, S, C]``.

    The sequence is zero-padded by ``K - S`` on the left (and enough on the right) so that the
    kept window ``[K - S, K - S + S2)`` is centred: 7 taps for K=4, S=1.
    """

    def __init__(self, channels: int, hidden: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.kernel = kernel
        self.stride = stride
        self.conv1d = nn.Conv1d(channels, 2 * hidden, kernel, stride=stride)
        self.deconv1d = nn.ConvTranspose1d(hidden, channels, kernel, stride=stride)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """x: [N, S, C] -> [N, S, C]; with ``residual`` (same shape) returns residual + FFN(x)."""
        if _FAST and self.stride == 1:
            return self._fast(x, residual)
        out = self._reference(x)
        return out if residual is None else residual + out

    def _reference(self, x: Tensor) -> Tensor:
        seq = x.shape[1]
        k, s = self.kernel, self.stride
        left = k - s
        total = -(-(seq + 2 * left - k) // s) * s + k  # ceil division
        u = F.pad(x.transpose(1, 2), (left, total - seq - left))
        u = self.conv1d(u)
        value, gate = u.split(self.hidden, dim=1)
        v = self.deconv1d(value * F.silu(gate))
        return v[:, :, left : left + seq].transpose(1, 2)

    def _fast(self, x: Tensor, residual: Tensor | None) -> Tensor:
        """Stride 1, no transposes: with padding K-1 on both sides the conv has S + K - 1
        outputs, and kept deconv output p (window [K-1, K-1+S)) reads conv outputs p-K+1 .. p."""
        # Not in real mode (export): a graph would rebuild the banded weight with dozens of writes
        # per call, and the test on the length would fix it in the graph.
        if not _REAL and x.shape[1] < self.kernel:
            return self._short(x, residual)
        left = self.kernel - 1
        # [N, S, C] seen as a channels-last [N, C, 1, S]: oneDNN convolves it in place and
        # keeps its outputs channels-last, so nothing is transposed or padded by hand.
        x4 = x.transpose(1, 2).unsqueeze(2)
        u = F.conv2d(x4, self.conv1d.weight.unsqueeze(2), self.conv1d.bias, padding=(0, left))
        value, gate = u.split(self.hidden, dim=1)
        g = F.silu(gate).mul_(value) if _inplace_ok(u) else F.silu(gate) * value
        # The deconv's kept window as a plain convolution with the kernel flipped: it computes
        # only the S kept outputs (a transposed conv would make S + 2(K-1) and discard 2(K-1)).
        w2 = self.deconv1d.weight.transpose(0, 1).flip(-1).unsqueeze(2)  # [C, H, 1, K]
        v = F.conv2d(g, w2, self.deconv1d.bias)[:, :, 0].transpose(1, 2)
        return v if residual is None else residual + v

    def _short(self, x: Tensor, residual: Tensor | None) -> Tensor:
        """Sequences shorter than the kernel (the speaker path, S = J = 2) are mostly zero
        padding. Each stage becomes one GEMM over the whole flattened sequence, ``[N, S*C]``,
        with a banded weight holding every (input, output, tap) triple exactly once."""
        n, seq, c = x.shape
        k, h = self.kernel, self.hidden
        n_conv = seq + k - 1
        # Conv: output o reads input s through tap s + K-1 - o.
        w1 = self.conv1d.weight  # [2H, C, K]
        band1 = w1.new_zeros(seq, c, n_conv, 2 * h)
        for s in range(seq):
            for tap in range(k):
                band1[s, :, s + k - 1 - tap] = w1[:, :, tap].T
        # Deconv, kept window: output p reads conv outputs p .. p+K-1 through taps K-1 .. 0.
        w2 = self.deconv1d.weight  # [H, C, K]
        band2 = w2.new_zeros(n_conv, h, seq, c)
        for p in range(seq):
            for tap in range(k):
                band2[p + k - 1 - tap, :, p] = w2[:, :, tap]
        b1, b2 = self.conv1d.bias, self.deconv1d.bias
        assert b1 is not None and b2 is not None  # both convolutions are built with a bias
        bias1, bias2 = b1.repeat(n_conv), b2.repeat(seq)
        band1, band2 = band1.view(seq * c, -1).to(x.dtype), band2.view(n_conv * h, -1).to(x.dtype)
        bias1, bias2 = bias1.to(x.dtype), bias2.to(x.dtype)  # under autocast x may be reduced precision
        x2 = x.reshape(n, seq * c)
        res2 = None if residual is None else residual.reshape(n, seq * c)

        def rows(x_rows: Tensor, res_rows: Tensor | None, out: Tensor | None = None) -> Tensor:
            u = torch.addmm(bias1, x_rows, band1)  # [R, n_conv * 2H]
            value, gate = u.view(-1, n_conv, 2, h).unbind(2)
            g = F.silu(gate).mul_(value) if _inplace_ok(u) else F.silu(gate) * value
            v = torch.addmm(bias2, g.reshape(len(x_rows), -1), band2, out=out)
            if res_rows is None:
                return v
            return v.add_(res_rows) if _inplace_ok(v, res_rows) else v + res_rows

        if torch.is_grad_enabled() or n <= _SHORT_ROWS:
            return rows(x2, res2).view(n, seq, c)
        # Inference: blocks of rows keep the wide [R, (S+K-1) * 2H] intermediate in cache
        # instead of allocating it whole (1.25 GB for a 10-s input at the released size).
        out = x2.new_empty(n, seq * c)
        for start in range(0, n, _SHORT_ROWS):
            stop = min(n, start + _SHORT_ROWS)
            rows(x2[start:stop], None if res2 is None else res2[start:stop], out=out[start:stop])
        return out.view(n, seq, c)


class RotaryEmbedding(nn.Module):
    """Interleaved (GPT-J style) rotary position embedding, positions counted from 0.

    ``freqs`` is a constant buffer (not in the state dict) computed in float32 exactly as the
    reference implementation does, so angles match its checkpoints bit for bit.
    """

    freqs: Tensor  # buffer [d/2]

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        exponents = torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim
        self.register_buffer("freqs", 1.0 / (theta**exponents), persistent=False)

    def angles(self, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
        positions = torch.arange(length, device=device, dtype=self.freqs.dtype)
        theta = (positions[:, None] * self.freqs[None, :]).repeat_interleave(2, dim=-1)
        return theta.cos(), theta.sin()

    def phasors(self, length: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """[S, d/2] complex ``exp(i * theta)``, the same angles as :meth:`angles`."""
        positions = torch.arange(length, device=device, dtype=self.freqs.dtype)
        theta = positions[:, None] * self.freqs[None, :]
        return torch.complex(theta.cos().to(dtype), theta.sin().to(dtype))

    @staticmethod
    def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """x: [..., S, d]; cos, sin: [S, d]."""
        pairs = x.unflatten(-1, (-1, 2))
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class MultiHeadSelfAttention(nn.Module):
    """Bias-free multi-head self-attention with RoPE on q and k; ``[N, S, C] -> [N, S, C]``."""

    def __init__(self, channels: int, attention_dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(channels, 3 * attention_dim, bias=False)
        self.out = nn.Linear(attention_dim, channels, bias=False)
        self.rope = RotaryEmbedding(attention_dim // n_heads)

    def forward(self, x: Tensor) -> Tensor:
        """x: [N, S, C] -> [N, S, C]."""
        n, seq, _ = x.shape
        qkv = self.qkv(x)  # channel (which * H + head) * d + e, which in (q, k, v)
        if _FAST and not _REAL and qkv.dtype in (torch.float32, torch.float64):
            # RoPE as one complex multiply on q and k together (pairs (x0, x1) -> x0 + i x1);
            # reduced precision takes the real form below (there is no complex bfloat16).
            width = qkv.shape[-1] // 3
            qk = torch.view_as_complex(qkv[..., : 2 * width].unflatten(-1, (2, self.n_heads, -1, 2)))
            qk = torch.view_as_real(qk * self.rope.phasors(seq, x.device, x.dtype)[:, None, None])
            q, k = qk.flatten(-2).permute(2, 0, 3, 1, 4)
            v = qkv[..., 2 * width :].unflatten(-1, (self.n_heads, -1)).transpose(1, 2)
        else:
            q, k, v = qkv.unflatten(-1, (3, self.n_heads, -1)).permute(2, 0, 3, 1, 4)
            cos, sin = self.rope.angles(seq, x.device)
            q = self.rope.rotate(q, cos, sin)
            k = self.rope.rotate(k, cos, sin)
        if q.is_cuda and n * self.n_heads > CUDA_ATTENTION_ROWS:
            o = batched_attention(q, k, v, max(1, CUDA_ATTENTION_ROWS // self.n_heads))
        else:
            o = F.scaled_dot_product_attention(q, k, v)  # [N, H, S, d]
        return self.out(o.transpose(1, 2).flatten(2))


# CUDA's attention kernels launch one block row per (sequence, head) and fail past 65,535 of them
# ("CUDA error: invalid argument"); the band-split speaker path reaches B * T * F sequences
# (128 * 251 * 33 on a lent H100). Larger batches are run in slices of this many rows.
CUDA_ATTENTION_ROWS = 32768


def batched_attention(q: Tensor, k: Tensor, v: Tensor, max_batch: int) -> Tensor:
    """``scaled_dot_product_attention`` over ``[N, H, S, d]`` in slices of at most ``max_batch``
    sequences (each sequence attends only to itself, so the slices are independent)."""
    return torch.cat(
        [F.scaled_dot_product_attention(q[i : i + max_batch], k[i : i + max_batch], v[i : i + max_batch])
         for i in range(0, q.shape[0], max_batch)]
    )  # fmt: skip


class LocoformerPath(nn.Module):
    """One Locoformer sub-block along the sequence axis S2 of ``[B', S1, S2, C]``.

    Macaron (separation and reconstruction TF paths): FFN -> attention -> FFN, pre-norm,
    residual around each. Non-macaron (speaker path): attention -> FFN.
    """

    def __init__(self, config: ModelConfig, *, macaron: bool) -> None:
        super().__init__()
        c, k, s = config.emb_dim, config.ffn_kernel, config.ffn_stride
        before, after = config.ffn_hidden_dim
        self.macaron = macaron
        if macaron:
            self.norm_pre = make_norm(config)
            self.ffn_pre = SwiGLUConvFFN(c, before, k, s)
        self.attn_norm = make_norm(config)
        self.attn = MultiHeadSelfAttention(c, config.attention_dim, config.n_heads)
        self.norm_post = make_norm(config)
        self.ffn_post = SwiGLUConvFFN(c, after, k, s)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        # The frame path arrives as a transposed view; one copy up front is far cheaper than
        # running every norm, conv and GEMM below over strided memory.
        x = x.reshape(-1, shape[-2], shape[-1]).contiguous()
        if self.macaron:
            x = self.ffn_pre(self.norm_pre(x), residual=x)
        x = x + self.attn(self.attn_norm(x))
        x = self.ffn_post(self.norm_post(x), residual=x)
        return x.reshape(shape)


class TFLocoformerBlock(nn.Module):
    """Separation block: frequency path then frame path; ``[B, T, F, C] -> [B, T, F, C]``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.freq_path = LocoformerPath(config, macaron=True)
        self.frame_path = LocoformerPath(config, macaron=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.freq_path(x)
        return self.frame_path(x.transpose(1, 2)).transpose(1, 2)


class TriplePathBlock(nn.Module):
    """Reconstruction block: frequency, frame and speaker paths; ``[B, J, T, F, C]`` in and out.

    Speakers are batch rows on the first two paths; on the third the sequence is the speaker
    axis (with RoPE over speaker slots, so slot order matters).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.freq_path = LocoformerPath(config, macaron=True)
        self.frame_path = LocoformerPath(config, macaron=True)
        self.spk_path = LocoformerPath(config, macaron=False) if config.spk_path else None

    def forward(self, y: Tensor) -> Tensor:
        b, j, t, f, c = y.shape
        y = self.freq_path(y.reshape(b * j, t, f, c))
        y = self.frame_path(y.transpose(1, 2)).transpose(1, 2)
        y = y.reshape(b, j, t * f, c)
        if self.spk_path is not None:
            y = self.spk_path(y.transpose(1, 2)).transpose(1, 2)
        return y.reshape(b, j, t, f, c)
