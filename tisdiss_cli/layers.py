"""Building blocks of the TF-Locoformer: norms, SwiGLU conv FFN, RoPE attention, sub-blocks.

Every sub-block works on a 4-D tensor ``[B', S1, S2, C]`` and treats ``S2`` as the sequence
and ``B' * S1`` as the batch, so one module serves the frequency, time and speaker paths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig


class RMSGroupNorm(nn.Module):
    """RMS norm over contiguous channel groups of the last axis: ``x / (rms + eps) * gamma``."""

    def __init__(self, channels: int, groups: int, eps: float) -> None:
        super().__init__()
        self.groups = groups
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        g = x.unflatten(-1, (self.groups, -1))
        rms = g.pow(2).mean(-1, keepdim=True).sqrt()
        return (g / (rms + self.eps)).flatten(-2) * self.gamma


def make_norm(config: ModelConfig) -> nn.Module:
    if config.norm_type == "rmsgroupnorm":
        return RMSGroupNorm(config.emb_dim, config.num_groups, config.eps)
    return nn.LayerNorm(config.emb_dim, eps=config.eps)


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

    def forward(self, x: Tensor) -> Tensor:
        seq = x.shape[1]
        k, s = self.kernel, self.stride
        left = k - s
        total = -(-(seq + 2 * left - k) // s) * s + k  # ceil division
        u = F.pad(x.transpose(1, 2), (left, total - seq - left))
        u = self.conv1d(u)
        value, gate = u.split(self.hidden, dim=1)
        v = self.deconv1d(value * F.silu(gate))
        return v[:, :, left : left + seq].transpose(1, 2)


class RotaryEmbedding(nn.Module):
    """Interleaved (GPT-J style) rotary position embedding, positions counted from 0.

    ``freqs`` is a constant buffer (not in the state dict) computed in float32 exactly as the
    reference implementation does, so angles match its checkpoints bit for bit.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        exponents = torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim
        self.register_buffer("freqs", 1.0 / (theta**exponents), persistent=False)

    def angles(self, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
        positions = torch.arange(length, device=device, dtype=self.freqs.dtype)
        theta = (positions[:, None] * self.freqs[None, :]).repeat_interleave(2, dim=-1)
        return theta.cos(), theta.sin()

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
        n, seq, _ = x.shape
        # Channel (which * H + head) * d + e, which in (q, k, v).
        q, k, v = self.qkv(x).unflatten(-1, (3, self.n_heads, -1)).permute(2, 0, 3, 1, 4)
        cos, sin = self.rope.angles(seq, x.device)
        q = self.rope.rotate(q, cos, sin)
        k = self.rope.rotate(k, cos, sin)
        o = F.scaled_dot_product_attention(q, k, v)  # [N, H, S, d]
        return self.out(o.transpose(1, 2).flatten(2))


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
        x = x.reshape(-1, shape[-2], shape[-1])
        if self.macaron:
            x = x + self.ffn_pre(self.norm_pre(x))
        x = x + self.attn(self.attn_norm(x))
        x = x + self.ffn_post(self.norm_post(x))
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
