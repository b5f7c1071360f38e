"""What ``tisdiss separate`` runs on: files, folders and globs expanded, shared across ranks."""

from __future__ import annotations

import glob
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from ..audio.files import is_audio_file
from ..separation.separator import output_stem


@dataclass(frozen=True)
class InputFile:
    """One input and the sub-folder (relative to the output folder) its outputs go to."""

    path: Path
    subdir: Path = Path()
    named: bool = False  # given by name on the command line, not found in a folder or by a glob


def collect_inputs(specs: list[str], *, recursive: bool = False) -> tuple[list[InputFile], list[str]]:
    """Expand files, folders (audio suffixes only; ``recursive`` descends) and globs.

    Returns (inputs, problems): a problem is a one-line ``spec: reason`` for a spec that
    matched nothing. Files found under a folder or glob keep their path relative to it as
    ``subdir``, so equal names in different sub-folders do not collide.
    """
    found: list[InputFile] = []
    problems: list[str] = []
    for spec in specs:
        path = Path(spec)
        if path.is_file():
            found.append(InputFile(path, named=True))
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if is_audio_file(p))
            found.extend(InputFile(p, p.parent.relative_to(path)) for p in files)
            if not files:
                problems.append(f"{spec}: no audio files" + ("" if recursive else " (use --recursive for sub-folders)"))
        elif glob.has_magic(spec):
            base = Path(*list(itertools.takewhile(lambda s: not glob.has_magic(s), path.parts)) or ["."])
            files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            found.extend(InputFile(p, p.parent.relative_to(base) if p.is_relative_to(base) else Path()) for p in files)
            if not files:
                problems.append(f"{spec}: matches no file")
        else:
            problems.append(f"{spec}: no such file or folder")
    unique: dict[Path, InputFile] = {}
    for item in found:
        unique.setdefault(item.path.resolve(), item)
    return list(unique.values()), problems


def split_outputs(
    items: list[InputFile], output: Path, filename: str, fmt: str
) -> tuple[list[InputFile], list[tuple[InputFile, InputFile]]]:
    """Inputs that are outputs of another input of the run (under ``-o output`` and ``filename``).

    Returns (inputs, clashes). A file found in a folder or by a glob that another input would
    write is a previous run's output (``-o`` is the input folder): it is left out. One named on
    the command line is a clash ``(it, the input writing it)``: separating would replace it.
    """
    by_place: dict[tuple[Path, str], InputFile] = {}
    for item in items:
        by_place.setdefault(((output / item.subdir).absolute(), item.path.stem), item)
    folders = {folder for folder, _ in by_place}
    kept: list[InputFile] = []
    clashes: list[tuple[InputFile, InputFile]] = []
    for item in items:
        writer = _writer_of(item, folders, by_place, filename, fmt)
        if writer is None:
            kept.append(item)
        elif item.named:
            clashes.append((item, writer))
    return kept, clashes


def _writer_of(
    item: InputFile, folders: set[Path], by_place: dict[tuple[Path, str], InputFile], filename: str, fmt: str
) -> InputFile | None:
    path = item.path.absolute()
    for folder in folders:
        if not path.is_relative_to(folder):
            continue
        stem = output_stem(path.relative_to(folder), filename, fmt)
        writer = by_place.get((folder, stem)) if stem is not None else None
        if writer is not None and writer.path.absolute() != path:
            return writer
    return None


def shard(items: list[InputFile], rank: int, world_size: int) -> list[InputFile]:
    """This rank's share, deterministic for any launch order: sorted by path, every world_size-th."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return sorted(items, key=lambda i: str(i.path))[rank::world_size]


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from the torchrun environment; (0, 1) outside it."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
