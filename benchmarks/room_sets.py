"""Reverberant and noisy versions of devconv and dev2mix, rebuilt by anyone from fixed seeds.

For each set (``--devconv``: 16-kHz conversations; ``--dev2mix``: 8-kHz 4-s utterances), in the
same layout (``mix/``, ``s1/``, ``s2/``, ``metadata.tsv``), so that ``tisdiss eval`` reads them
as it reads the originals (conversation mode for devconv, by its metadata):

- ``NAME-reverb``: one simulated shoebox room per recording (pyroomacoustics, the ``rooms``
  extra), RT60 ``--rt60`` (measured, T30; default 0.3-0.6 s), the two talkers at two random
  places, one microphone. References are each talker's **reverberant image** (its own signal as
  it reaches the microphone), and ``mix = s1 + s2`` sample for sample;
- ``NAME-noisy``: the dry talkers plus noise from ``--noise`` (noise8k) at ``--snr`` dB (default
  5) against the talkers' sum over the whole file; references are the **clean** talkers. The
  noise is taken from the last fifth of each noise file (``--noise-span``): `tisdiss train`
  recipes that mix noise use the first four fifths (``data.mixing.noise_span``), so the set's
  noise is never trained on. Files shorter than 20 s are left out.

Each set gets ``rooms.tsv`` (what was drawn per recording) and ``md5sums.txt``; one sha256 per
set, over its md5sums.txt, is printed and written to ``OUT/checksums.txt``::

    python benchmarks/room_sets.py --out ../campaign/rooms/sets
    python -m tisdiss_cli eval ../campaign/rooms/sets/devconv-reverb -m tisdiss-small-8k --json r.json
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tisdiss_cli.audio import files as audio_io
from tisdiss_cli.training import rooms

SETS = {"devconv": 1, "dev2mix": 2}  # the set's number in every seed
KINDS = {"reverb": 1, "noisy": 2}
MIN_NOISE_SECONDS = 20.0


def _items(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "mix").iterdir() if audio_io.is_audio_file(p))


def _quantised(x: np.ndarray, subtype: str) -> np.ndarray:
    """``x`` on the grid of a PCM subtype, so that sums written to the file stay exact."""
    bits = {"PCM_16": 16, "PCM_24": 24}.get(subtype)
    if bits is None:
        return x
    step = 2.0 ** (1 - bits)
    return np.round(x / step) * step


def _write(path: Path, audio: np.ndarray, rate: int, subtype: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype)


def _reverb(
    name: str, refs: np.ndarray, rate: int, rng: np.random.Generator, rt60: tuple[float, float]
) -> tuple[np.ndarray, str]:
    """Reverberant images of both talkers in one room, levelled as the dry mixture was."""
    ranges = rooms.RoomRanges(rt60=rt60)
    spec, rirs, measured = rooms.measured_room(rng, ranges, len(refs), rate)
    images = np.stack([rooms.convolve(r.astype(np.float32), h) for r, h in zip(refs, rirs, strict=True)])
    images = images.astype(np.float64)
    dry_rms = np.sqrt(np.mean(refs.sum(0) ** 2))
    images *= dry_rms / (np.sqrt(np.mean(images.sum(0) ** 2)) or 1.0)
    peak = float(np.abs(images.sum(0)).max())
    if peak > 0.95:
        images *= 0.95 / peak
    distances = [float(np.linalg.norm(np.subtract(s, spec.mic))) for s in spec.sources]
    dims = "x".join(f"{d:.2f}" for d in spec.dims)
    row = f"{name}\t{measured:.3f}\t{dims}\t{distances[0]:.2f}\t{distances[1]:.2f}"
    return images, row


def _noisy(
    name: str,
    refs: np.ndarray,
    rate: int,
    rng: np.random.Generator,
    noises: list[tuple[Path, int, int]],
    snr_db: float,
    span: tuple[float, float],
) -> tuple[np.ndarray, str]:
    """The noise (resampled to the set's rate) at ``snr_db`` against the talkers' sum."""
    path, frames, noise_rate = noises[int(rng.integers(len(noises)))]
    need = int(np.ceil(refs.shape[1] * noise_rate / rate)) + 16
    from tisdiss_cli.training.data import read_noise  # the training mixer's reader, on the held-out span

    noise = audio_io.resample(read_noise(path, frames, need, span, rng).astype(np.float64), noise_rate, rate)
    noise = noise[: refs.shape[1]]
    speech = refs.sum(0)
    noise *= np.sqrt(np.mean(speech**2)) / (np.sqrt(np.mean(noise**2)) or 1.0) / 10 ** (snr_db / 20)
    return noise, f"{name}\t{path.name}\t{snr_db:.1f}"


def build(
    root: Path, out: Path, set_name: str, kind: str, args: argparse.Namespace, noises: list[tuple[Path, int, int]]
) -> Path:
    target = out / f"{set_name}-{kind}"
    tmp = out / f".{set_name}-{kind}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    header = "name\trt60_s\troom_m\tdistance_s1_m\tdistance_s2_m" if kind == "reverb" else "name\tnoise\tsnr_db"
    rows = [header]
    for k, name in enumerate(_items(root)):
        rng = np.random.default_rng([args.seed, SETS[set_name], KINDS[kind], k])
        info = sf.info(root / "mix" / name)
        refs = np.stack([sf.read(root / s / name, dtype="float64")[0] for s in ("s1", "s2")])
        if kind == "reverb":
            images, row = _reverb(name, refs, info.samplerate, rng, tuple(args.rt60))
            srcs = [_quantised(x, info.subtype) for x in images]
            mix = srcs[0] + srcs[1]
        else:
            noise, row = _noisy(name, refs, info.samplerate, rng, noises, args.snr, tuple(args.noise_span))
            srcs = list(refs)
            mix = _quantised(refs.sum(0) + noise, info.subtype)
        peak = float(np.abs(mix).max())
        if peak >= 1.0:
            raise SystemExit(f"{root / 'mix' / name}: the {kind} mixture clips (peak {peak:.2f})")
        for folder, audio in (("mix", mix), ("s1", srcs[0]), ("s2", srcs[1])):
            _write(tmp / folder / name, audio, info.samplerate, info.subtype)
        rows.append(row)
    shutil.copy2(root / "metadata.tsv", tmp / "metadata.tsv")
    (tmp / "rooms.tsv" if kind == "reverb" else tmp / "noise.tsv").write_text("\n".join(rows) + "\n")
    sums = [
        f"{hashlib.md5(p.read_bytes()).hexdigest()}  ./{p.relative_to(tmp).as_posix()}"
        for p in sorted(tmp.rglob("*"))
        if p.is_file()
    ]
    (tmp / "md5sums.txt").write_text("\n".join(sums) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devconv", type=Path, default=Path("../shared/data/devconv"))
    parser.add_argument("--dev2mix", type=Path, default=Path("../shared/data/dev2mix"))
    parser.add_argument("--noise", type=Path, default=Path("../shared/data/noise8k"))
    parser.add_argument("--out", type=Path, default=Path("../campaign/rooms/sets"))
    parser.add_argument("--seed", type=int, default=41)
    parser.add_argument("--rt60", type=float, nargs=2, default=[0.3, 0.6], metavar=("LO", "HI"))
    parser.add_argument("--snr", type=float, default=5.0)
    parser.add_argument("--noise-span", type=float, nargs=2, default=[0.8, 1.0], metavar=("START", "END"))
    parser.add_argument("--sets", default="devconv,dev2mix")
    parser.add_argument("--kinds", default="reverb,noisy")
    args = parser.parse_args()
    noises = []
    for p in sorted(args.noise.iterdir()):
        if audio_io.is_audio_file(p):
            info = audio_io.probe(p)
            if info.frames / info.sample_rate >= MIN_NOISE_SECONDS:
                noises.append((p, info.frames, info.sample_rate))
    args.out.mkdir(parents=True, exist_ok=True)
    lines = []
    for set_name in args.sets.split(","):
        root = getattr(args, set_name)
        for kind in args.kinds.split(","):
            start = time.perf_counter()
            target = build(root, args.out, set_name, kind, args, noises)
            digest = hashlib.sha256((target / "md5sums.txt").read_bytes()).hexdigest()
            lines.append(f"{digest}  {target.name}")
            print(f"{target}: sha256(md5sums.txt) {digest} ({time.perf_counter() - start:.0f} s)", flush=True)
    (args.out / "checksums.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
