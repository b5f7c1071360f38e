"""Rebuild speech8k's pieces at 16 kHz from the public repositories its MANIFEST.tsv names.

speech8k (``../shared/data/speech8k``) holds real speech at 8 kHz; each MANIFEST.tsv row names its
source as ``owner/repo@commit:path#start-end s``. LibriSpeech and speechocean762 are 16 kHz at
the source, so the same pieces can be cut again at 16 kHz, for work on the band above the
model's (training or measuring the full-band stage, docs/full-band.md). The data stays outside
this repository:

    python benchmarks/wideband_data.py ../shared/data/speech8k/MANIFEST.tsv OUT --sources MIRRORS

- ``MIRRORS`` holds git clones of the source repositories (bare or not), found as
  ``MIRRORS/owner+repo[/repo]`` or ``MIRRORS/owner/repo``; ``--clone`` clones the missing ones
  from GitHub (bare, into ``MIRRORS/owner+repo``).
- Each source file is read from the git object store at the pinned commit (git checks the blob
  against its hash), mixed to mono, resampled to ``--rate`` (soxr, very high quality) when it
  is at another rate, and cut to the row's time range; pieces are written as 16-bit FLAC under
  the row's path (``train/SPEAKER/UTT.flac``), each written whole to a temporary name first.
- ``OUT/MANIFEST.tsv`` repeats the rows with ``rate`` and ``sha256`` columns (of the decoded
  samples, so that another soundfile build may write other bytes); ``OUT/SKIPPED.tsv`` lists the
  rows that cannot be rebuilt wide (FSDD is 8 kHz at the source) and why. A second run checks
  what is there against MANIFEST.tsv and writes only what is missing or differs; ``--check``
  only checks. ``--expect SUMS.tsv`` compares with a previous build's manifest.

Exit status: 0 when every buildable row is there and matches, 1 otherwise (each problem printed
on one line naming the row).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SOURCE = re.compile(
    r"^(?P<repo>[\w.-]+/[\w.-]+)@(?P<commit>[0-9a-f]{7,40}):(?P<path>[^#{}]+)#(?P<start>\d+(\.\d+)?)-(?P<end>\d+(\.\d+)?)s$"
)
COLUMNS = ("rate", "sha256")


class DataError(Exception):
    """A row or a source that cannot be rebuilt; the message names it."""


@dataclass(frozen=True)
class Piece:
    """One MANIFEST.tsv row: where the piece goes and where it comes from."""

    path: str  # relative to the output folder (as in speech8k)
    repo: str  # owner/name
    commit: str
    source: str  # path inside the repository
    start: float  # seconds into the source file
    end: float
    row: dict[str, str]


def parse_source(text: str) -> tuple[str, str, str, float, float] | None:
    """``owner/repo@commit:path#start-end s`` -> (repo, commit, path, start, end); None for any other
    form (FSDD's joined digit lists)."""
    match = SOURCE.match(text.strip())
    if match is None:
        return None
    start, end = float(match["start"]), float(match["end"])
    if end <= start:
        return None
    return match["repo"], match["commit"], match["path"], start, end


def read_manifest(path: Path) -> tuple[list[Piece], list[tuple[dict[str, str], str]]]:
    """The rows of a speech8k MANIFEST.tsv: (pieces that can be rebuilt, (row, reason) for the rest)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or not {"path", "source"} <= set(rows[0]):
        raise DataError(f"{path}: not a speech8k MANIFEST.tsv (needs path and source columns)")
    pieces, skipped = [], []
    for row in rows:
        parsed = parse_source(row["source"])
        if parsed is None:
            skipped.append((row, "the source is not one file with a time range (FSDD digits are 8 kHz at the source)"))
            continue
        pieces.append(Piece(row["path"], *parsed, row))
    return pieces, skipped


class Sources:
    """Git repositories by ``owner/name`` under a folder, cloned on demand with ``clone``."""

    def __init__(self, root: Path, *, clone: bool = False) -> None:
        self.root, self.clone = root, clone
        self.found: dict[str, Path] = {}

    def git_dir(self, repo: str) -> Path:
        if repo in self.found:
            return self.found[repo]
        owner, name = repo.split("/")
        for candidate in (
            self.root / f"{owner}+{name}" / "repo",
            self.root / f"{owner}+{name}",
            self.root / owner / name,
        ):
            if candidate.is_dir():
                done = subprocess.run(
                    ["git", "-C", str(candidate), "rev-parse", "--absolute-git-dir"], capture_output=True, text=True
                )
                if done.returncode == 0:
                    self.found[repo] = Path(done.stdout.strip())
                    return self.found[repo]
        if not self.clone:
            raise DataError(
                f"{repo}: no clone under {self.root} (run with --clone, or: git clone --bare "
                f"https://github.com/{repo} {self.root / f'{owner}+{name}'})"
            )
        target = self.root / f"{owner}+{name}"
        done = subprocess.run(
            ["git", "clone", "--bare", "--quiet", f"https://github.com/{repo}", str(target)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise DataError(f"{repo}: git clone failed: {' '.join(done.stderr.split())}")
        self.found[repo] = target
        return target

    def read(self, piece: Piece) -> bytes:
        git_dir = self.git_dir(piece.repo)
        done = subprocess.run(
            ["git", "--git-dir", str(git_dir), "cat-file", "blob", f"{piece.commit}:{piece.source}"],
            capture_output=True,
        )
        if done.returncode != 0:
            reason = " ".join(done.stderr.decode(errors="replace").split())
            raise DataError(f"{piece.path}: {piece.repo}@{piece.commit}:{piece.source}: {reason}")
        return done.stdout


def cut(data: bytes, piece: Piece, rate: int) -> np.ndarray:
    """The piece at ``rate``, mono float32: the source decoded, mixed down, resampled, cut to its range."""
    try:
        x, native = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DataError(f"{piece.path}: cannot decode {piece.source}: {exc}") from None
    mono = x.mean(axis=1)
    if native < rate:
        raise DataError(f"{piece.path}: {piece.source} is {native} Hz at the source, below {rate} Hz")
    if native != rate:
        mono = soxr.resample(mono, native, rate, quality="VHQ").astype(np.float32)
    first, last = round(piece.start * rate), round(piece.end * rate)
    if last > len(mono) + round(0.01 * rate):
        raise DataError(f"{piece.path}: {piece.source} ends at {len(mono) / rate:.2f} s, before {piece.end:.2f} s")
    return mono[first:last]


def samples_sha256(x: np.ndarray) -> str:
    """sha256 of the samples as 16-bit PCM (what the FLAC holds), independent of the encoder's bytes."""
    return hashlib.sha256(np.asarray(x, "<i2").tobytes()).hexdigest()


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float64) * 32768), -32768, 32767).astype("<i2")


def stored_sha256(path: Path) -> str | None:
    """sha256 of a written piece's samples, None when it is missing or unreadable."""
    try:
        x, _ = sf.read(path, dtype="int16")
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None
    return samples_sha256(x)


def write_piece(path: Path, pcm: np.ndarray, rate: int) -> None:
    """Write whole to a temporary name in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        sf.write(tmp, pcm, rate, format="FLAC", subtype="PCM_16")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_built(path: Path) -> dict[str, dict[str, str]]:
    """path -> row of a manifest this script wrote (empty when there is none)."""
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        return {row["path"]: row for row in csv.DictReader(f, delimiter="\t") if row.get("sha256")}


def read_sums(path: Path) -> dict[str, str]:
    """path -> sha256 from a manifest this script wrote."""
    return {name: row["sha256"] for name, row in read_built(path).items()}


def write_tsv(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, delimiter="\t", lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


@dataclass
class Outcome:
    written: int = 0
    kept: int = 0
    problems: int = 0


def build(
    pieces: list[Piece],
    out: Path,
    sources: Sources,
    rate: int,
    *,
    check_only: bool = False,
    expect: dict[str, str] | None = None,
) -> Iterator[tuple[Piece, str, str | None]]:
    """For each piece: (piece, what happened, its sha256 or None); writes what is missing or differs
    unless ``check_only``. ``expect``: path -> sha256 of a previous build, compared with each."""
    recorded = read_sums(out / "MANIFEST.tsv")
    data_cache: dict[tuple[str, str, str], bytes] = {}
    for piece in pieces:
        target = out / piece.path
        have = stored_sha256(target)
        if have is not None and have == recorded.get(piece.path):
            state = "kept"
        elif check_only:
            yield piece, "missing" if have is None else "differs from MANIFEST.tsv", None
            continue
        else:
            key = (piece.repo, piece.commit, piece.source)
            try:
                if key not in data_cache:
                    data_cache.clear()  # one source file at a time: consecutive rows share it
                    data_cache[key] = sources.read(piece)
                pcm = to_pcm16(cut(data_cache[key], piece, rate))
            except DataError as exc:
                yield piece, f"error: {exc}", None
                continue
            write_piece(target, pcm, rate)
            have = samples_sha256(pcm)
            state = "written"
        if expect is not None and piece.path in expect and expect[piece.path] != have:
            state = f"differs from the expected sha256 ({state})"
        yield piece, state, have


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="speech8k's MANIFEST.tsv")
    parser.add_argument("out", type=Path, help="output folder (outside the repository)")
    parser.add_argument("--sources", type=Path, required=True, help="folder of git clones of the source repositories")
    parser.add_argument("--clone", action="store_true", help="clone missing repositories from GitHub")
    parser.add_argument("--rate", type=int, default=16000, help="output rate in Hz (default 16000)")
    parser.add_argument("--check", action="store_true", help="only check what is there against OUT/MANIFEST.tsv")
    parser.add_argument("--expect", type=Path, help="a previous build's MANIFEST.tsv to compare checksums with")
    parser.add_argument("--limit", type=int, help="only the first N rows (a smoke test)")
    parser.add_argument("--only", help="only rows whose source repository contains this text")
    args = parser.parse_args(argv)
    try:
        pieces, skipped = read_manifest(args.manifest)
    except (DataError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.only:
        pieces = [p for p in pieces if args.only in p.repo]
    if args.limit:
        pieces = pieces[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    expect = read_sums(args.expect) if args.expect else None
    sources = Sources(args.sources, clone=args.clone)
    outcome = Outcome()
    built = read_built(args.out / "MANIFEST.tsv")  # rows of earlier runs (--limit, --only) stay
    for piece, state, digest in build(pieces, args.out, sources, args.rate, check_only=args.check, expect=expect):
        if state == "written":
            outcome.written += 1
        elif state == "kept":
            outcome.kept += 1
        else:
            outcome.problems += 1
            print(f"{piece.path}: {state}", file=sys.stderr)
        if digest is not None:
            built[piece.path] = {**piece.row, "rate": str(args.rate), "sha256": digest}
    if not args.check:
        order = {p.path: i for i, p in enumerate(pieces)}
        rows = sorted(built.values(), key=lambda r: (order.get(r["path"], len(order)), r["path"]))
        fields = [*pieces[0].row, *COLUMNS] if pieces else ["path", "source", *COLUMNS]
        write_tsv(args.out / "MANIFEST.tsv", fields, rows)
        write_tsv(args.out / "SKIPPED.tsv", ["path", "source", "reason"], [{**r, "reason": why} for r, why in skipped])
    print(
        f"{outcome.written} written, {outcome.kept} already there, {outcome.problems} problems, "
        f"{len(skipped)} rows not buildable at {args.rate} Hz (SKIPPED.tsv)"
    )
    return 1 if outcome.problems else 0


if __name__ == "__main__":
    sys.exit(main())
