"""A voice encoder: one fixed-size identity vector per stretch of speech (GE2E, Wan et al. 2018).

The shape is Resemblyzer's pretrained encoder (Apache-2.0; its weights ship in the
``resemblyzer`` wheel and are loaded by :mod:`tisdiss_cli.zoo.voice`): 40 mel bands of 25-ms
frames every 10 ms at 16 kHz, a 3-layer LSTM (40 -> 256) whose last hidden state goes through a
linear layer (256 -> 256), a ReLU and L2 normalisation. Utterances are embedded as the mean of
1.6-s partials, re-normalised, so the cosine similarity of two embeddings is their dot product.

The mel filterbank is the Slaney-style one (mel scale linear below 1 kHz, logarithmic above, each
triangle normalised to unit area) on the power spectrum of a Hann-windowed, zero-padded centred
STFT: the features the weights were trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class VoiceEncoderConfig:
    sample_rate: int = 16000  # Hz the features are computed at
    n_fft: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_mels: int = 40
    hidden_size: int = 256
    embedding_size: int = 256
    num_layers: int = 3
    partial_frames: int = 160  # 1.6 s per partial
    level_dbfs: float = -30.0  # quieter stretches are raised to this RMS level before the features


def _hz_to_mel(hz: Tensor) -> Tensor:
    """Slaney's mel scale: linear up to 1 kHz (3 mels per 200 Hz), logarithmic above."""
    linear = hz / (200.0 / 3.0)
    log_part = 15.0 + torch.log(hz.clamp_min(1e-9) / 1000.0) / (math.log(6.4) / 27.0)
    return torch.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: Tensor) -> Tensor:
    linear = mel * (200.0 / 3.0)
    log_part = 1000.0 * torch.exp((math.log(6.4) / 27.0) * (mel - 15.0))
    return torch.where(mel >= 15.0, log_part, linear)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> Tensor:
    """``[n_mels, n_fft // 2 + 1]`` triangles from 0 Hz to Nyquist, each of unit area (Slaney)."""
    fft_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = _mel_to_hz(
        torch.linspace(0.0, float(_hz_to_mel(torch.tensor(sample_rate / 2.0, dtype=torch.float64))), n_mels + 2)
    ).double()
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_hz - lower) / (centre - lower)
    falling = (upper - fft_hz) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return (weights * (2.0 / (upper - lower))).float()


class VoiceEncoder(nn.Module):
    """``embed(wave [B, S] at 16 kHz) -> [B, 256]`` unit vectors; ``forward(mels [B, T, 40])``."""

    def __init__(self, config: VoiceEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or VoiceEncoderConfig()
        self.lstm = nn.LSTM(config.n_mels, config.hidden_size, config.num_layers, batch_first=True)
        self.linear = nn.Linear(config.hidden_size, config.embedding_size)
        self.register_buffer("mel_basis", mel_filterbank(config.sample_rate, config.n_fft, config.n_mels), False)

    def forward(self, mels: Tensor) -> Tensor:
        """mels: ``[B, T, n_mels]`` -> ``[B, embedding_size]``, L2-normalised."""
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def features(self, wave: Tensor, sample_rate: int | None = None) -> Tensor:
        """wave: ``[B, S]`` -> mel power ``[B, T, n_mels]``, ``T = S // hop + 1``.

        ``sample_rate`` (default: the encoder's) may be the encoder's rate divided by a whole
        number: the frames keep their length in time and their 40-Hz bins, so the features are
        those of the same band-limited signal upsampled to the encoder's rate (the mel bands above
        the input's Nyquist stay empty), without resampling.
        """
        cfg = self.config
        rate = sample_rate or cfg.sample_rate
        factor, rest = divmod(cfg.sample_rate, rate)
        if rest or (cfg.n_fft % factor) or (cfg.hop_length % factor):
            raise ValueError(f"voice features need {cfg.sample_rate} Hz or a whole fraction of it, got {rate}")
        n_fft, hop = cfg.n_fft // factor, cfg.hop_length // factor
        mel_basis = cast(Tensor, self.mel_basis)
        basis = mel_basis[:, : n_fft // 2 + 1] * factor**2  # a window of 1/factor the samples
        window = torch.hann_window(n_fft, periodic=True, device=wave.device)
        rms = wave.pow(2).mean(-1, keepdim=True).sqrt()
        target = 10 ** (cfg.level_dbfs / 20)
        gain = torch.where(rms < target, target / rms.clamp_min(1e-9), torch.ones_like(rms))
        padded = nn.functional.pad((wave * gain).unsqueeze(1), (n_fft // 2, n_fft // 2)).squeeze(1)
        spec = torch.stft(padded, n_fft, hop, window=window, center=False, return_complex=True)
        return (basis @ spec.abs().pow(2)).transpose(1, 2)

    def embed(self, wave: Tensor, sample_rate: int | None = None) -> Tensor:
        """wave: ``[B, S]`` -> ``[B, embedding_size]``: the mean over 1.6-s partials (half-overlapping;
        a stretch shorter than one partial is embedded whole), re-normalised. ``sample_rate``: as
        :meth:`features`."""
        mels = self.features(wave, sample_rate)
        frames, size = mels.shape[1], self.config.partial_frames
        if frames <= size:
            return self(mels)
        starts = list(range(0, frames - size + 1, size // 2))
        if starts[-1] + size < frames:
            starts.append(frames - size)
        partials = torch.stack([mels[:, s : s + size] for s in starts], dim=1)  # [B, P, size, n_mels]
        batch = partials.shape[0]
        embeddings = self(partials.flatten(0, 1)).view(batch, len(starts), -1).mean(1)
        return embeddings / embeddings.norm(dim=-1, keepdim=True).clamp_min(1e-12)
