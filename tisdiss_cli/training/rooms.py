"""Simulated rooms for training and benchmarks: shoebox room impulse responses (RIRs).

A room is drawn from a random generator (size, RT60, one microphone, one position per talker)
and simulated with pyroomacoustics' image-source method, an optional dependency (the ``rooms``
extra) imported only when a room is made. Making a room costs 0.01-1 s of CPU, growing
steeply with RT60, so training draws its rooms from a :class:`RirBank`, made once into a cache
folder and kept there; its rooms are kept only when their measured RT60 (T30 of the Schroeder
decay) falls in the asked range, because the image-source decay of a shoebox room runs longer
than the Sabine formula the absorption is set from.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SPEED_OF_SOUND = 343.0  # m/s
WALL_MARGIN = 0.5  # m: talkers and microphone keep this far from every wall
MIN_DISTANCE = 0.5  # m: nearest a talker comes to the microphone
BANK_VALID_SHARE = 0.1  # the last tenth of a bank's rooms is for validation only
ROOM_TARGETS = ("reverberant", "early")


def _pra():  # type: ignore[no-untyped-def]
    try:
        import pyroomacoustics
    except ImportError:
        raise ImportError(
            "room simulation needs pyroomacoustics: pip install 'tisdiss[rooms]' (or pip install pyroomacoustics)"
        ) from None
    return pyroomacoustics


@dataclass(frozen=True)
class RoomSpec:
    """What a room needs: the draw's geometry and its Sabine RT60."""

    dims: tuple[float, float, float]  # m
    rt60: float  # the Sabine RT60 the absorption is set from, s
    mic: tuple[float, float, float]
    sources: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True)
class RoomRanges:
    """The distribution rooms are drawn from."""

    rt60: tuple[float, float] = (0.2, 0.8)  # s, measured (T30)
    length: tuple[float, float] = (3.0, 10.0)  # m, floor length and width
    height: tuple[float, float] = (2.5, 4.0)  # m


def draw_room(rng: np.random.Generator, ranges: RoomRanges, num_sources: int, rt60: float) -> RoomSpec:
    """A shoebox room of random size with a microphone and ``num_sources`` talkers at random
    places (away from the walls, at least MIN_DISTANCE from the microphone)."""
    dims = (float(rng.uniform(*ranges.length)), float(rng.uniform(*ranges.length)), float(rng.uniform(*ranges.height)))

    def place(z: tuple[float, float]) -> tuple[float, float, float]:
        x, y = (float(rng.uniform(WALL_MARGIN, d - WALL_MARGIN)) for d in dims[:2])
        return (x, y, float(rng.uniform(*z)))

    mic = place((0.7, 1.6))
    sources: list[tuple[float, float, float]] = []
    while len(sources) < num_sources:
        s = place((1.1, 1.9))
        if np.linalg.norm(np.subtract(s, mic)) >= MIN_DISTANCE:
            sources.append(s)
    return RoomSpec(dims, rt60, mic, tuple(sources))


def simulate(spec: RoomSpec, sample_rate: int) -> list[np.ndarray] | None:
    """One RIR per source (float32), or None when the RT60 cannot be reached in this room (the
    absorption Sabine asks for is over 1)."""
    pra = _pra()
    try:
        absorption, max_order = pra.inverse_sabine(spec.rt60, np.array(spec.dims))
    except ValueError:
        return None
    room = pra.ShoeBox(
        list(spec.dims), fs=sample_rate, materials=pra.Material(absorption), max_order=max_order, air_absorption=False
    )
    for s in spec.sources:
        room.add_source(list(s))
    room.add_microphone(list(spec.mic))
    room.compute_rir()
    return [np.asarray(room.rir[0][j], dtype=np.float32) for j in range(len(spec.sources))]


def schroeder_db(rir: np.ndarray) -> np.ndarray:
    """The energy decay curve in dB (0 at the start)."""
    energy = np.cumsum((rir.astype(np.float64) ** 2)[::-1])[::-1]
    return 10 * np.log10(np.maximum(energy / max(energy[0], 1e-30), 1e-30))


def measure_rt60(rir: np.ndarray, sample_rate: int) -> float:
    """RT60 from the Schroeder decay between -5 and -35 dB (T30), extrapolated to 60 dB."""
    edc = schroeder_db(rir)
    below5, below35 = np.nonzero(edc <= -5)[0], np.nonzero(edc <= -35)[0]
    if not len(below5) or not len(below35):
        return float("nan")
    return 2.0 * (below35[0] - below5[0]) / sample_rate


def trim_tail(rir: np.ndarray, floor_db: float = -60.0) -> np.ndarray:
    """The RIR up to where its decay curve falls below ``floor_db`` (the rest is inaudible)."""
    below = np.nonzero(schroeder_db(rir) <= floor_db)[0]
    return rir[: below[0]] if len(below) else rir


def early_part(rir: np.ndarray, sample_rate: int, early_ms: float) -> np.ndarray:
    """The direct path and the reflections within ``early_ms`` of it (the strongest peak is
    taken for the direct path), with a 5-ms half-cosine fade instead of a hard cut."""
    direct = int(np.argmax(np.abs(rir)))
    end = min(len(rir), direct + int(round(early_ms * sample_rate / 1000)))
    fade = min(int(0.005 * sample_rate), len(rir) - end)
    out = np.zeros_like(rir)
    out[:end] = rir[:end]
    if fade > 0:
        out[end : end + fade] = rir[end : end + fade] * 0.5 * (1 + np.cos(np.linspace(0, np.pi, fade)))
    return out


def measured_room(
    rng: np.random.Generator, ranges: RoomRanges, num_sources: int, sample_rate: int, tries: int = 50
) -> tuple[RoomSpec, list[np.ndarray], float]:
    """A room whose measured RT60 (the mean of its RIRs' T30) falls in ``ranges.rt60``: drawn
    again until one does. The Sabine target is drawn below the range, since the image-source
    decay runs long."""
    lo, hi = ranges.rt60
    for _ in range(tries):
        target = float(rng.uniform(0.5 * lo, 0.75 * hi))
        spec = draw_room(rng, ranges, num_sources, target)
        rirs = simulate(spec, sample_rate)
        if rirs is None:
            continue
        rt60 = float(np.mean([measure_rt60(r, sample_rate) for r in rirs]))
        if lo <= rt60 <= hi:
            return spec, [trim_tail(r) for r in rirs], rt60
    raise RuntimeError(f"no room with RT60 in {lo}-{hi} s in {tries} draws; widen the room ranges")


@dataclass
class RirBank:
    """Rooms made once: ``num_sources`` RIRs per room, their measured RT60, in one .npz file."""

    rirs: list[list[np.ndarray]]
    rt60: np.ndarray
    sample_rate: int

    def __len__(self) -> int:
        return len(self.rirs)

    def part(self, valid: bool) -> range:
        """The rooms training draws from (valid=False) or validation does (the last tenth)."""
        cut = len(self) - max(1, int(len(self) * BANK_VALID_SHARE))
        return range(cut, len(self)) if valid else range(cut)

    @staticmethod
    def file_name(ranges: RoomRanges, rooms: int, num_sources: int, sample_rate: int, seed: int) -> str:
        key = json.dumps([asdict(ranges), rooms, num_sources, sample_rate, seed], sort_keys=True)
        return f"rirs-{rooms}x{num_sources}-{sample_rate}hz-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"

    @classmethod
    def load_or_build(
        cls,
        folder: str | Path,
        ranges: RoomRanges,
        *,
        rooms: int,
        num_sources: int,
        sample_rate: int,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> RirBank:
        """The bank of these settings in ``folder``, made (and written atomically) when absent.
        Room k is a pure function of (seed, k)."""
        path = Path(folder) / cls.file_name(ranges, rooms, num_sources, sample_rate, seed)
        if path.is_file():
            return cls.read(path)
        rirs, rt60 = [], []
        for k in range(rooms):
            _, room_rirs, t = measured_room(np.random.default_rng([seed, k]), ranges, num_sources, sample_rate)
            rirs.append(room_rirs)
            rt60.append(t)
            if progress is not None:
                progress(k + 1, rooms)
        bank = cls(rirs, np.array(rt60), sample_rate)
        bank.write(path)
        return bank

    def write(self, path: Path) -> None:
        flat = [r for room in self.rirs for r in room]
        offsets = np.cumsum([0] + [len(r) for r in flat])
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    data=np.concatenate(flat),
                    offsets=offsets,
                    num_sources=len(self.rirs[0]),
                    rt60=self.rt60,
                    sample_rate=self.sample_rate,
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def read(cls, path: Path) -> RirBank:
        try:
            with np.load(path) as z:
                data, offsets, n = z["data"], z["offsets"], int(z["num_sources"])
                flat = [data[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
                return cls([flat[i : i + n] for i in range(0, len(flat), n)], z["rt60"], int(z["sample_rate"]))
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a RIR bank ({exc}); delete it to have it made again") from None


def convolve(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``audio`` through ``rir``, cut to the input's length (float32)."""
    n = len(audio) + len(rir) - 1
    size = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(rir, size), size)
    return out[: len(audio)].astype(np.float32)
