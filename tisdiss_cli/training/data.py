"""Training data: dynamic mixing from single-speaker folders, and pre-mixed sets.

Every example is a pure function of (seed, epoch, index), so a run is reproducible and a
resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import files as audio_io
from . import rooms


@dataclass(frozen=True)
class MixingConfig:
    """How a dynamic mixture is drawn."""

    segment_seconds: float = 4.0  # crop length (shorter utterances are zero-padded)
    num_spk: int = 2  # speakers per mixture
    gain_db: tuple[float, float] = (-5.0, 5.0)  # relative level of each source
    noise_snr_db: tuple[float, float] = (10.0, 30.0)  # mixture-to-noise ratio, when noise is used
    noise_prob: float = 0.0  # share of mixtures that get noise from the noise folder
    noise_span: tuple[float, float] = (0.0, 1.0)  # the part of each noise file used, as fractions of its length
    # Rooms (pyroomacoustics, the `rooms` extra): the share of mixtures whose talkers are heard
    # through a simulated shoebox room, one microphone; absorption follows from the RT60 drawn.
    room_prob: float = 0.0
    rt60_range: tuple[float, float] = (0.2, 0.8)  # s, measured on the RIRs (T30)
    room_length_range: tuple[float, float] = (3.0, 10.0)  # m, floor length and width
    room_height_range: tuple[float, float] = (2.5, 4.0)  # m
    # what the network is taught to give back: "reverberant" (each talker's image at the
    # microphone: separation only) or "early" (direct path + early_ms of reflections: dereverberation too)
    room_target: str = "reverberant"
    early_ms: float = 50.0
    room_bank: str = ""  # cache folder of rooms made once ("" = a new room for every mixture: slow)
    room_bank_size: int = 2000  # rooms in the bank (its last tenth is for validation only)
    speed_range: tuple[float, float] = (1.0, 1.0)  # speed perturbation factors (1, 1 = off)
    exclude: tuple[str, ...] = ()  # speaker-name glob patterns to leave out (e.g. "fsdd-*")

    def __post_init__(self) -> None:
        if self.room_target not in rooms.ROOM_TARGETS:
            raise ValueError(
                f"data.mixing.room_target: {self.room_target!r} is not one of {', '.join(rooms.ROOM_TARGETS)}"
            )
        lo, hi = self.noise_span
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"data.mixing.noise_span: need 0 <= start < end <= 1, got {self.noise_span}")

    @property
    def room_ranges(self) -> rooms.RoomRanges:
        return rooms.RoomRanges(self.rt60_range, self.room_length_range, self.room_height_range)


@dataclass
class SpeakerIndex:
    """Utterances grouped by speaker: ``SPEAKER/UTT.<audio suffix>`` under a root folder."""

    speakers: list[str]
    files: list[list[Path]]
    frames: list[list[int]]
    sample_rate: int

    @classmethod
    def scan(cls, root: str | Path, exclude: tuple[str, ...] = ()) -> SpeakerIndex:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: not a folder of SPEAKER/UTT audio files")
        speakers: list[str] = []
        files: list[list[Path]] = []
        frames: list[list[int]] = []
        rates: set[int] = set()
        for spk_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            if any(fnmatch.fnmatch(spk_dir.name, pat) for pat in exclude):
                continue
            utts = sorted(p for p in spk_dir.iterdir() if audio_io.is_audio_file(p))
            if not utts:
                continue
            infos = [audio_io.probe(p) for p in utts]
            rates.update(i.sample_rate for i in infos)
            speakers.append(spk_dir.name)
            files.append(utts)
            frames.append([i.frames for i in infos])
        if len(speakers) < 2:
            raise ValueError(f"{root}: need at least 2 speaker folders with audio, found {len(speakers)}")
        if len(rates) != 1:
            raise ValueError(f"{root}: mixed sample rates {sorted(rates)}; resample the corpus first")
        return cls(speakers, files, frames, rates.pop())


def _read_crop(path: Path, frames: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample crop (zero-padded at a random offset when shorter)."""
    if frames > length:
        start = int(rng.integers(0, frames - length + 1))
        return audio_io.read_mono(path, start=start, stop=start + length)
    audio = audio_io.read_mono(path)
    out = np.zeros(length, dtype=np.float32)
    offset = int(rng.integers(0, length - len(audio) + 1))
    out[offset : offset + len(audio)] = audio
    return out


def read_noise(path: Path, frames: int, length: int, span: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample stretch of ``span`` (fractions) of a noise file, repeated when
    the span is shorter."""
    first, last = int(span[0] * frames), int(span[1] * frames)
    if last - first > length:
        start = first + int(rng.integers(0, last - first - length + 1))
        return audio_io.read_mono(path, start=start, stop=start + length)
    part = audio_io.read_mono(path, start=first, stop=last)
    part = np.roll(part, int(rng.integers(len(part))))
    return np.tile(part, -(-length // len(part)))[:length]


@lru_cache(maxsize=4)
def _bank(folder: str, ranges: rooms.RoomRanges, size: int, num_spk: int, sample_rate: int) -> rooms.RirBank:
    """A bank read (or made) once per process: the training and validation sets share it."""
    return rooms.RirBank.load_or_build(folder, ranges, rooms=size, num_sources=num_spk, sample_rate=sample_rate)


def reverberate(
    sources: np.ndarray, rirs: list[np.ndarray], target: str, sample_rate: int, early_ms: float
) -> tuple[np.ndarray, np.ndarray]:
    """(images, targets): each source through its RIR, levelled to the source's own RMS (so the
    drawn gains still hold at the microphone); the targets are the images, or the sources through
    the RIRs' early parts at the same scale."""
    images, targets = [], []
    for src, rir in zip(sources, rirs, strict=True):
        wet = rooms.convolve(src, rir)
        scale = float(np.sqrt(np.mean(src**2))) / (float(np.sqrt(np.mean(wet**2))) or 1.0)
        images.append(wet * scale)
        if target == "early":
            targets.append(rooms.convolve(src, rooms.early_part(rir, sample_rate, early_ms)) * scale)
    image = np.stack(images)
    return image, (np.stack(targets) if targets else image)


def _speed(audio: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1.0:
        return audio
    return audio_io.resample(audio, factor, 1.0).astype(np.float32)  # played back faster by `factor`


class DynamicMixDataset(Dataset):
    """Random mixtures of different speakers: item -> (mix [L], sources [J, L])."""

    def __init__(
        self,
        root: str | Path,
        config: MixingConfig,
        *,
        epoch_size: int,
        seed: int,
        noise_dir: str | Path | None = None,
        valid: bool = False,
    ) -> None:
        self.index = SpeakerIndex.scan(root, config.exclude)
        self.config = config
        self.epoch_size = epoch_size
        self.seed = seed
        self.epoch = 0
        self.length = int(round(config.segment_seconds * self.index.sample_rate))
        self.noises: list[tuple[Path, int]] = []
        if noise_dir is not None and config.noise_prob > 0:
            self.noises = [
                (p, audio_io.probe(p).frames) for p in sorted(Path(noise_dir).rglob("*")) if audio_io.is_audio_file(p)
            ]
            if not self.noises:
                raise ValueError(f"{noise_dir}: no audio files for data.noise")
        self.bank: rooms.RirBank | None = None
        self.bank_rooms: range = range(0)
        if config.room_prob > 0 and config.room_bank:
            self.bank = _bank(
                config.room_bank, config.room_ranges, config.room_bank_size, config.num_spk, self.sample_rate
            )
            self.bank_rooms = self.bank.part(valid)

    @property
    def sample_rate(self) -> int:
        return self.index.sample_rate

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.epoch_size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, idx = self.config, self.index
        rng = np.random.default_rng([self.seed, self.epoch, i])
        speakers = rng.choice(len(idx.speakers), size=cfg.num_spk, replace=False)
        sources = []
        for s in speakers:
            u = int(rng.integers(len(idx.files[s])))
            factor = float(rng.uniform(*cfg.speed_range))
            # Read enough to fill the segment after the speed change.
            need = int(np.ceil(self.length * factor))
            audio = _speed(_read_crop(idx.files[s][u], idx.frames[s][u], need, rng), factor)[: self.length]
            audio = np.pad(audio, (0, self.length - len(audio)))
            rms = float(np.sqrt(np.mean(audio**2))) or 1.0
            sources.append(audio / rms * 10 ** (rng.uniform(*cfg.gain_db) / 20))
        src = np.stack(sources)
        mix = src.sum(0)
        if cfg.room_prob > 0 and rng.random() < cfg.room_prob:
            image, src = reverberate(src, self._room(rng), cfg.room_target, self.sample_rate, cfg.early_ms)
            mix = image.sum(0)
        if self.noises and rng.random() < cfg.noise_prob:
            path, frames = self.noises[int(rng.integers(len(self.noises)))]
            noise = read_noise(path, frames, self.length, cfg.noise_span, rng)
            noise_rms = float(np.sqrt(np.mean(noise**2)))
            if noise_rms > 0:
                target = np.sqrt(np.mean(mix**2)) / 10 ** (rng.uniform(*cfg.noise_snr_db) / 20)
                mix = mix + noise * (target / noise_rms)
        peak = float(np.abs(mix).max())
        scale = 0.9 / peak if peak > 0.9 else 1.0  # keep mixtures in range, sources consistent
        return torch.from_numpy((mix * scale).astype(np.float32)), torch.from_numpy((src * scale).astype(np.float32))

    def _room(self, rng: np.random.Generator) -> list[np.ndarray]:
        """One RIR per talker: a room of the bank (talkers in a random order), or a new one."""
        cfg = self.config
        if self.bank is not None:
            rirs = self.bank.rirs[self.bank_rooms[int(rng.integers(len(self.bank_rooms)))]]
            return [rirs[j] for j in rng.permutation(len(rirs))]
        return rooms.measured_room(rng, cfg.room_ranges, cfg.num_spk, self.sample_rate)[1]


@dataclass
class PremixedDataset(Dataset):
    """A pre-mixed set (wsj0-2mix / LibriMix layout, or a TSV list), optionally cropped."""

    items: list[tuple[Path, list[Path]]]
    segment: int | None = None  # crop length in samples; None = whole utterances
    seed: int = 0
    epoch: int = field(default=0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        mix_path, src_paths = self.items[i]
        mix = audio_io.read_mono(mix_path)
        src = np.stack([audio_io.read_mono(p) for p in src_paths])
        if self.segment is not None and len(mix) > self.segment:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            start = int(rng.integers(0, len(mix) - self.segment + 1))
            mix, src = mix[start : start + self.segment], src[:, start : start + self.segment]
        return torch.from_numpy(np.ascontiguousarray(mix)), torch.from_numpy(np.ascontiguousarray(src))


TrainingSet = DynamicMixDataset | PremixedDataset  # item i -> (mix [L], sources [J, L]); set_epoch(epoch)


def collate_padded(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack examples, zero-padding to the longest: ([B, L], [B, J, L])."""
    length = max(m.shape[-1] for m, _ in batch)
    mix = torch.zeros(len(batch), length)
    src = torch.zeros(len(batch), batch[0][1].shape[0], length)
    for b, (m, s) in enumerate(batch):
        mix[b, : m.shape[-1]] = m
        src[b, :, : s.shape[-1]] = s
    return mix, src
