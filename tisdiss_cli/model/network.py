"""The TISDiSS network (arXiv 2509.15666): Encoder, Separator, Splitter, Reconstructor, Decoder.

Shapes: B batch, L samples, T frames (1 + L // hop), F bins (n_fft/2 + 1), C channels,
J speakers. Inside the stages the state is kept channels-last, ``[B, T, F, C]`` and
``[B, J, T, F, C]``, so the Locoformer paths need no permute on the frequency axis.

The Separator and Reconstructor are loops over shared blocks: ``n_sep`` and ``n_re`` are read
on every call and change no parameter, so one set of weights runs shallower or deeper.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .bandsplit import BandRestore, BandSplit
from .config import DecodeFlags, ModelConfig
from .depth import Depth
from .layers import TFLocoformerBlock, TriplePathBlock, deconv2d_same, fast_paths_enabled, full_precision


def stft(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """[B, L] real -> [B, T, F] complex; periodic Hann, centred (reflect), unnormalised."""
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(x, n_fft, hop, window=window, center=True, pad_mode="reflect", return_complex=True)
    return spec.transpose(1, 2)


def istft(spec: Tensor, n_fft: int, hop: int, length: int) -> Tensor:
    """[B, T, F] complex -> [B, length] real; inverse of :func:`stft`."""
    window = torch.hann_window(n_fft, dtype=spec.real.dtype, device=spec.device)
    return torch.istft(spec.transpose(1, 2), n_fft, hop, window=window, center=True, length=length)


class Encoder(nn.Module):
    """Variance normalisation, STFT and input projection.

    ``mix [B, L] -> (E [B, T, F, C], scale [B, 1], X [B, T, n_freq])``; ``scale`` is the
    unbiased std of each mixture, undone by the decoder; X is the spectrum of the normalised
    mixture (a masking decoder multiplies it). With band split, F is the number of bands.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_fft, self.hop = config.n_fft, config.hop_length
        if config.band_split != "none":
            self.band_split = BandSplit(config)
        else:
            self.conv = nn.Conv2d(2, config.emb_dim, 3, padding=1)
            self.norm = nn.GroupNorm(1, config.emb_dim, eps=1e-5)  # utterance-level statistics

    def forward(self, mix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        scale = mix.std(dim=-1, keepdim=True).nan_to_num(0.0).clamp_min(1e-10)
        spec = stft(mix / scale, self.n_fft, self.hop)
        if hasattr(self, "band_split"):
            return self.band_split(spec), scale, spec  # no norm after the bands (as the reference)
        x = torch.stack((spec.real, spec.imag), dim=1)  # [B, 2, T, F]
        # A contiguous [B, T, F, C] state: every later op then runs over contiguous memory
        # instead of striding by T * F. (A channels-last conv would save this copy, but
        # GroupNorm's channels-last kernel loses float32 precision: up to 20x the golden error.)
        return self.norm(self.conv(x)).permute(0, 2, 3, 1).contiguous(), scale, spec


class MixingBlock(nn.Module):
    """Residual mixing before a repeated block: ``PReLU(a_c * (E + h) + b_c)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.act = nn.PReLU()  # one shared slope

    def forward(self, e: Tensor, h: Tensor) -> Tensor:
        return self.act(torch.addcmul(self.bias, e + h, self.weight))


def _call(block: nn.Module, x: Tensor, checkpointing: bool) -> Tensor:
    """Run a block; with checkpointing (training only) its activations are recomputed in the
    backward pass instead of stored, trading about one extra forward for much less memory."""
    if checkpointing and torch.is_grad_enabled():
        return checkpoint(block, x, use_reentrant=False)
    return block(x)


class SeparationStage(nn.Module):
    """M_sep shared TF-Locoformer blocks run N_sep times: ``E [B, T, F, C]`` -> states.

    The paper's Separator; named apart from the API class :class:`tisdiss_cli.Separator`. Its
    parameters stay under ``separator.`` in a checkpoint."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TFLocoformerBlock(config) for _ in range(config.m_sep))
        self.checkpointing = False  # activation checkpointing per block call (training memory)

    def steps(self, e: Tensor, n_sep: int, mixer: MixingBlock | None) -> Iterator[Tensor]:
        """Yield the state after each block call (M_sep * n_sep of them)."""
        h = e
        for i in range(len(self.blocks) * n_sep):
            if i > 0 and mixer is not None:
                h = mixer(e, h)
            h = _call(self.blocks[i % len(self.blocks)], h, self.checkpointing)
            yield h


class Splitter(nn.Module):
    """One embedding to J speaker embeddings: ``[B, T, F, C] -> [B, J, T, F, C]``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c, j = config.emb_dim, config.num_spk
        self.num_spk = j
        self.gated = config.splitter == "swiglu_conv_deconv2d"
        if self.gated:
            self.middle = 2 * c * j
            self.conv2d = nn.Conv2d(c, 2 * self.middle, 3, padding=1)
            self.deconv2d = nn.ConvTranspose2d(self.middle, c * j, 3, padding=1)
        else:
            self.conv2d = nn.Conv2d(c, c * j, 3, padding=1)

    def forward(self, h: Tensor) -> Tensor:
        u = self.conv2d(h.permute(0, 3, 1, 2))
        if self.gated:
            value, gate = u.split(self.middle, dim=1)
            g = (
                F.silu(gate).mul_(value)
                if fast_paths_enabled() and not torch.is_grad_enabled()
                else F.silu(gate) * value
            )
            u = deconv2d_same(g, self.deconv2d)
        b, _, t, f = u.shape
        # channel j*C+c -> speaker j; contiguous [B, J, T, F, C] for the reconstructor's paths
        return u.unflatten(1, (self.num_spk, -1)).permute(0, 1, 3, 4, 2).contiguous()


class Reconstructor(nn.Module):
    """M_re shared triple-path blocks run N_re times on ``[B, J, T, F, C]``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TriplePathBlock(config) for _ in range(config.m_re))
        self.residual = config.re_residual
        self.checkpointing = False  # activation checkpointing per block call (training memory)

    def steps(self, y: Tensor, n_re: int, e: Tensor, mixer: MixingBlock | None) -> Iterator[Tensor]:
        """Yield the state after each block call (M_re * n_re of them)."""
        for i in range(len(self.blocks) * n_re):
            if self.residual and mixer is not None:
                y = mixer(e.unsqueeze(1), y)
            y = _call(self.blocks[i % len(self.blocks)], y, self.checkpointing)
            yield y


class Decoder(nn.Module):
    """Output head and iSTFT: ``[B, J, T, F, C] -> [B, J, L]``, times the encoder's scale.
    With band split, F is the number of bands and band restoration is the head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_fft, self.hop = config.n_fft, config.hop_length
        self.mask = config.band_mask
        if config.band_split != "none":
            self.band_restore = BandRestore(config)
        else:
            self.deconv = nn.ConvTranspose2d(config.emb_dim, 2, 3, padding=1)

    def forward(self, y: Tensor, scale: Tensor, length: int, mix_spec: Tensor) -> Tensor:
        b, j, t, f, c = y.shape
        if hasattr(self, "band_restore"):
            spec = self.band_restore(y.reshape(b * j, t, f, c))  # [B*J, T, F] complex
            if self.mask:  # the estimate is a complex mask on the mixture's spectrum
                spec = (spec.view(b, j, t, -1) * mix_spec.unsqueeze(1)).view(b * j, t, -1)
        else:
            out = self.deconv(y.reshape(b * j, t, f, c).permute(0, 3, 1, 2))  # [B*J, 2, T, F]
            out = full_precision(out)
            spec = torch.complex(out[:, 0], out[:, 1])
        wave = istft(spec, self.n_fft, self.hop, length)
        return wave.view(b, j, length) * scale.unsqueeze(1)


@dataclass(frozen=True)
class DecodedOutput:
    """One decoded output of a training forward."""

    stage: str  # "sep" (separation step + splitter), "split", "re" (reconstruction step), "final"
    wave: Tensor  # [B, J, L]


def _last(states: Iterator[Tensor], initial: Tensor) -> Tensor:
    """Run a stage's loop to its end and return the final state (``initial`` if it ran 0 times)."""
    last = deque(states, maxlen=1)
    return last[0] if last else initial


def _keep(step: int, layers: int, repetitions: int, every_rep: bool, every_layer: bool) -> bool:
    """Whether block call ``step`` (0-based) is decoded (spec section 3.11 table)."""
    layer, rep = step % layers, step // layers
    if every_rep and every_layer:
        return True
    if every_rep:
        return layer == layers - 1
    if every_layer:
        return rep == repetitions - 1
    return False


class TISDiSS(nn.Module):
    """Time-frequency separation with inference-time scalable depth.

    ``model(mix [B, L], n_sep=None, n_re=None) -> [B, J, L]``. With ``compute_dtype`` set
    (bfloat16: :func:`tisdiss_cli.model.precision.apply_precision`), ``forward`` and
    ``iter_depths`` run under autocast to it; outputs stay float32.
    """

    compute_dtype: torch.dtype | None = None

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.separator = SeparationStage(config)
        self.mixer = MixingBlock(config.emb_dim) if (config.sep_residual or config.re_residual) else None
        self.splitter = Splitter(config)
        self.reconstructor = Reconstructor(config) if config.m_re > 0 else None
        self.decoder = Decoder(config)

    def set_checkpointing(self, enabled: bool) -> None:
        """Recompute block activations in backward instead of storing them (training)."""
        self.separator.checkpointing = enabled
        if self.reconstructor is not None:
            self.reconstructor.checkpointing = enabled

    def _depths(self, n_sep: int | None, n_re: int | None) -> Depth:
        """The depth of one call: the config's default where None is given."""
        return Depth(self.config.n_sep if n_sep is None else n_sep, self.config.n_re if n_re is None else n_re)

    def _encode(self, mix: Tensor, n_sep: int) -> tuple[Tensor, Tensor, Tensor, Iterator[Tensor]]:
        """Encoder, then the separation stage as a lazy loop:
        (E, scale, mixture spectrum, state after each block call)."""
        e, scale, spec = self.encoder(mix)
        return e, scale, spec, self.separator.steps(e, n_sep, self.mixer if self.config.sep_residual else None)

    def _separate(self, mix: Tensor, n_sep: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encoder + separation stage: (E, last state, scale, mixture spectrum)."""
        e, scale, spec, states = self._encode(mix, n_sep)
        return e, _last(states, e), scale, spec

    def _autocast(self, mix: Tensor) -> contextlib.AbstractContextManager[object]:
        """Autocast to ``compute_dtype`` on the input's device, when one is set."""
        if self.compute_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(mix.device.type, dtype=self.compute_dtype)

    def forward(self, mix: Tensor, *, n_sep: int | None = None, n_re: int | None = None) -> Tensor:
        """mix: [B, L] -> [B, J, L] at (n_sep, n_re); None takes the config's default."""
        n_sep, n_re = self._depths(n_sep, n_re)
        with self._autocast(mix):
            e, h, scale, spec = self._separate(mix, n_sep)
            y = self.splitter(h)
            if self.reconstructor is not None:
                y = _last(self.reconstructor.steps(y, n_re, e, self.mixer), y)
            return self.decoder(y, scale, mix.shape[-1], spec)

    def iter_depths(
        self, mix: Tensor, *, n_sep: int | None = None, max_n_re: int | None = None
    ) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(n_re, [B, J, L])`` for n_re = 0 .. max_n_re from one forward pass.

        Output k equals ``model(mix, n_sep=n_sep, n_re=k)``: the loop state after k
        repetitions, decoded. Stop iterating early to save the remaining compute.
        """
        n_sep, max_n_re = self._depths(n_sep, max_n_re)
        length = mix.shape[-1]
        # Autocast is entered per step, never across a yield: the caller's code between
        # outputs must not run under it.
        with self._autocast(mix):
            e, h, scale, spec = self._separate(mix, n_sep)
            y = self.splitter(h)
            first = self.decoder(y, scale, length, spec)
        yield 0, first
        if self.reconstructor is None:
            return
        m_re = len(self.reconstructor.blocks)
        steps = self.reconstructor.steps(y, max_n_re, e, self.mixer)
        for i in range(m_re * max_n_re):
            with self._autocast(mix):
                state = next(steps)
                out = self.decoder(state, scale, length, spec) if (i + 1) % m_re == 0 else None
            if out is not None:
                yield (i + 1) // m_re, out

    def forward_train(
        self,
        mix: Tensor,
        *,
        n_sep: int | None = None,
        n_re: int | None = None,
        flags: DecodeFlags = DecodeFlags(),
    ) -> list[DecodedOutput]:
        """Every decoded output the multi-loss needs, in the reference order:
        separation steps (if enabled), splitter (if enabled), reconstruction steps, final.
        The final output is always last and never repeated."""
        n_sep, n_re = self._depths(n_sep, n_re)
        length = mix.shape[-1]
        e, scale, spec, states = self._encode(mix, n_sep)

        def decode(y: Tensor) -> Tensor:
            return self.decoder(y, scale, length, spec)

        outputs: list[DecodedOutput] = []

        m_sep = len(self.separator.blocks)
        h = e
        for i, h in enumerate(states):
            last = i == m_sep * n_sep - 1
            if not last and flags.separation and _keep(i, m_sep, n_sep, True, flags.every_layer):
                outputs.append(DecodedOutput("sep", decode(self.splitter(h))))
        y = self.splitter(h)
        if self.reconstructor is None or n_re == 0:
            outputs.append(DecodedOutput("final", decode(y)))
            return outputs
        if flags.splitter:
            outputs.append(DecodedOutput("split", decode(y)))

        m_re = len(self.reconstructor.blocks)
        state = y
        for i, state in enumerate(self.reconstructor.steps(y, n_re, e, self.mixer)):
            if i < m_re * n_re - 1 and _keep(i, m_re, n_re, flags.reconstruction, flags.every_layer):
                outputs.append(DecodedOutput("re", decode(state)))
        outputs.append(DecodedOutput("final", decode(state)))
        return outputs


@torch.no_grad()
def init_weights(model: nn.Module) -> None:
    """The reference initialisation: Xavier-uniform for every weight with more than one
    dimension, zero biases; norm gains and the PReLU slope keep their construction values."""
    for name, p in model.named_parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
    for m in model.modules():
        if isinstance(m, nn.GroupNorm):
            m.reset_parameters()
        elif isinstance(m, MixingBlock):
            # The reference stores this as a depthwise 1x1 conv weight [C, 1, 1, 1]:
            # Xavier-uniform with fan_in 1 and fan_out C.
            bound = (6.0 / (1 + m.weight.numel())) ** 0.5
            nn.init.uniform_(m.weight, -bound, bound)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the constant RoPE frequencies are buffers, never counted)."""
    return sum(p.numel() for p in model.parameters())


def __getattr__(name: str) -> Any:
    """``Separator``, the network stage's name before 0.1, with a warning."""
    if name == "Separator":
        warnings.warn(f"{__name__}.Separator is deprecated; use SeparationStage", DeprecationWarning, stacklevel=2)
        return SeparationStage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
