"""Prepare the bundled model's training for a lent GPU machine (issue 23, item 7).

The GPU machine receives only the working tree (at most 64 MiB with what ``carry`` names), has
no package registry and no ``../shared``. This script makes, here, the two things it lacks:

- ``pack``: a compact copy of the speech corpus, each FLAC re-encoded as Ogg Opus (about 29
  kbit/s at 8 kHz; the decoded waveform matches the original to about 21 dB SNR), in the same
  ``SPLIT/SPEAKER/UTT`` layout, so ``tisdiss train --data`` reads it unchanged. Mixtures and
  their references are both built from the decoded speech, so the targets stay exact;
- ``wheels``: the wheels of the runtime packages the GPU image lacks (soundfile, soxr,
  platformdirs, cffi, pycparser), at the versions installed here, for CPython 3.12 x86-64.

Then, on the GPU machine, ``benchmarks/gpu_campaign.sh`` trains (see its header)::

    python benchmarks/gpu_campaign.py pack --data ../shared/data/speech8k --out .train/speech8k
    python benchmarks/gpu_campaign.py wheels --out .whl
    # device run, carry [".train", ".whl"]: bash benchmarks/gpu_campaign.sh 7
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import soundfile as sf

CARRY_LIMIT = 64 * 2**20  # what may travel to the device machine, working tree included
MISSING_ON_GPU = ("soundfile", "soxr", "platformdirs", "cffi", "pycparser")


def pack(data: Path, out: Path, *, level: float, exclude: tuple[str, ...], limit: int | None) -> int:
    """Re-encode ``data/{train,valid}/SPEAKER/*.flac`` as Opus under ``out``; returns the bytes written."""
    total = 0
    for split in ("train", "valid"):
        speakers = sorted(p for p in (data / split).iterdir() if p.is_dir())
        for speaker in speakers:
            if any(fnmatch.fnmatch(speaker.name, pattern) for pattern in exclude):
                continue
            utterances = sorted(speaker.glob("*.flac"))[:limit]
            target = out / split / speaker.name
            target.mkdir(parents=True, exist_ok=True)
            for source in utterances:
                destination = target / (source.stem + ".opus")
                if not destination.exists():
                    audio, rate = sf.read(source, dtype="float32")
                    _write_atomically(destination, audio, rate, level)
                total += destination.stat().st_size
    return total


def _write_atomically(path: Path, audio: object, rate: int, level: float) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(fd)
    try:
        sf.write(tmp, audio, rate, format="OGG", subtype="OPUS", compression_level=level)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def tree_bytes(root: Path) -> int:
    """Bytes of the files git would send from ``root`` (tracked, and untracked but not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return sum((root / name).stat().st_size for name in listed.decode().split("\0") if name and (root / name).is_file())


def wheels(out: Path) -> None:
    """Download, for CPython 3.12 manylinux x86-64, the wheels of the packages the GPU image lacks."""
    out.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={metadata.version(name)}" for name in MISSING_ON_GPU]
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", "3.12", "--implementation", "cp", "-d", str(out)]
    for platform in platforms:
        command += ["--platform", platform]
    subprocess.run([*command, *pins], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="an Opus copy of the speech corpus, small enough to carry")
    p.add_argument("--data", type=Path, required=True, help="the corpus: train/ and valid/ of SPEAKER/UTT.flac")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--level", type=float, default=0.92, help="libsndfile's Opus compression level (0.92: ~29 kbit/s)")
    p.add_argument("--exclude", nargs="*", default=["fsdd-*"], help="speaker folders to leave out (the recipe's)")
    p.add_argument("--limit", type=int, default=None, help="at most this many utterances per speaker (tests)")
    w = sub.add_parser("wheels", help="wheels of the packages the GPU image lacks")
    w.add_argument("--out", type=Path, default=Path(".whl"))
    args = parser.parse_args()
    if args.command == "wheels":
        wheels(args.out)
        print(f"{len(list(args.out.glob('*.whl')))} wheels in {args.out}")
        return 0
    size = pack(args.data, args.out, level=args.level, exclude=tuple(args.exclude), limit=args.limit)
    print(f"{args.out}: {size / 2**20:.1f} MiB of Opus")
    repo = Path(__file__).resolve().parents[1]
    if args.out.resolve().is_relative_to(repo):
        travels = tree_bytes(repo) + size + sum(f.stat().st_size for f in (repo / ".whl").glob("*.whl"))
        print(f"working tree + corpus: {travels / 2**20:.1f} MiB of the {CARRY_LIMIT / 2**20:.0f} MiB that may travel")
        if travels > CARRY_LIMIT:
            print("too large to carry: raise --level or --limit", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
