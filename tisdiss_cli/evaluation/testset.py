"""Test sets for evaluation: wsj0-2mix and LibriMix folders, or a TSV list.

Layouts:
- wsj0-2mix: ``ROOT/mix/NAME.wav`` with ``ROOT/s1/NAME.wav``, ``ROOT/s2/NAME.wav`` (s3... if present);
- LibriMix: ``ROOT/mix_clean|mix_both|mix_single/NAME.wav`` with ``ROOT/s1``, ``ROOT/s2``
  (``mix_single`` pairs with ``s1`` only); ROOT may also be the mix folder itself;
- TSV list: one utterance a line, ``mix<TAB>s1<TAB>s2[<TAB>id]``, paths relative to the list's
  folder; lines starting with ``#`` and a header line starting with ``mix`` are skipped.

Every problem (missing reference, different length or rate, not mono, NaN or Inf samples) raises
:class:`TestSetError` whose one-line message names the files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.files import AUDIO_SUFFIXES, AudioError, AudioInfo, check_finite, is_audio_file, probe, read

MIX_DIRS = ("mix", "mix_clean", "mix_both", "mix_single")
log = logging.getLogger(__name__)


class TestSetError(ValueError):
    """An unusable test set; the message names the files at fault."""

    __test__ = False  # not a pytest test class despite the name


@dataclass(frozen=True)
class Utterance:
    """One test mixture and its references."""

    id: str  # name used in reports and for saved estimates
    mix: Path
    refs: tuple[Path, ...]  # s1, s2, ...


@dataclass(frozen=True)
class AudioExample:
    """Loaded audio of one utterance at its file rate."""

    utterance: Utterance
    mix: np.ndarray  # [L] float64
    refs: np.ndarray  # [J, L] float64
    sample_rate: int


@dataclass(frozen=True)
class TestSet:
    """An indexed test set (nothing read yet beyond file names)."""

    __test__ = False

    root: Path  # folder or list file given by the user
    layout: str  # "wsj0-2mix", "librimix:<mix dir>" or "list"
    utterances: tuple[Utterance, ...]

    @property
    def num_refs(self) -> int:
        return len(self.utterances[0].refs)

    def __len__(self) -> int:
        return len(self.utterances)

    def head(self, limit: int | None) -> TestSet:
        """The first ``limit`` utterances (all for None)."""
        if limit is None:
            return self
        return TestSet(self.root, self.layout, self.utterances[: max(int(limit), 0)])


def _audio_files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if is_audio_file(p)}


def _source_dirs(root: Path) -> list[Path]:
    dirs: list[Path] = []
    while (root / f"s{len(dirs) + 1}").is_dir():
        dirs.append(root / f"s{len(dirs) + 1}")
    return dirs


def _missing_message(missing: list[tuple[Path, Path]]) -> str:
    shown = ", ".join(str(ref) for _, ref in missing[:3])
    more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
    return f"{len(missing)} reference file(s) missing: {shown}{more}"


def _from_folders(root: Path, mix_dir: Path, layout: str) -> TestSet:
    src = _source_dirs(root)
    if mix_dir.name == "mix_single":
        src = src[:1]
    if not src:
        raise TestSetError(f"{root}: no reference folder s1/ next to {mix_dir.name}/")
    mixes = _audio_files(mix_dir)
    if not mixes:
        raise TestSetError(f"{mix_dir}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    utts, missing = [], []
    for name, mix in mixes.items():
        refs = tuple(d / name for d in src)
        missing += [(mix, r) for r in refs if not r.is_file()]
        utts.append(Utterance(id=Path(name).stem, mix=mix, refs=refs))
    if missing:
        raise TestSetError(_missing_message(missing))
    return TestSet(root, layout, tuple(utts))


def _from_list(path: Path) -> TestSet:
    base = path.parent
    utts: list[Utterance] = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TestSetError(f"{path}: cannot read list ({exc})") from None
    for lineno, line in enumerate(lines, 1):
        fields = [f.strip() for f in line.split("\t")]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if lineno == 1 and fields[0].lower() == "mix":
            continue  # header
        has_id = len(fields) >= 2 and Path(fields[-1]).suffix.lower() not in AUDIO_SUFFIXES
        paths = fields[:-1] if has_id else fields
        if len(paths) < 2:
            raise TestSetError(f"{path}:{lineno}: expected mix<TAB>s1<TAB>s2[<TAB>id], got {len(fields)} field(s)")
        resolved = [p if p.is_absolute() else base / p for p in map(Path, paths)]
        utt_id = fields[-1] if has_id else resolved[0].stem
        if utts and len(resolved) - 1 != len(utts[0].refs):
            raise TestSetError(
                f"{path}:{lineno}: {len(resolved) - 1} references, earlier lines have {len(utts[0].refs)}"
            )
        utts.append(Utterance(id=utt_id, mix=resolved[0], refs=tuple(resolved[1:])))
    if not utts:
        raise TestSetError(f"{path}: list has no utterances")
    missing = [(u.mix, p) for u in utts for p in (u.mix, *u.refs) if not p.is_file()]
    if missing:
        raise TestSetError(f"{path}: " + _missing_message(missing).replace("reference file(s)", "listed file(s)"))
    ids = [u.id for u in utts]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise TestSetError(f"{path}: utterance id {dup!r} appears more than once")
    return TestSet(path, "list", tuple(utts))


GENDER_GROUPS = ("same-gender", "cross-gender")


def metadata_genders(testset: TestSet) -> dict[str, tuple[str, ...]]:
    """Utterance id -> each talker's gender, upper-cased ("" when blank), from a ``metadata.tsv``
    beside the mixture folder with columns ``name`` and ``s1_gender``, ``s2_gender`` (dev2mix and
    devconv have them) or ``genders``, comma-separated (devmeet). Test sets without such a file get
    none; an unreadable file is skipped with a warning (the scores do not depend on it)."""
    path = testset.root / "metadata.tsv"
    if testset.layout == "list" or not path.is_file():
        return {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("%s: not read, no gender groups (%s)", path, exc)
        return {}
    header = lines[0].split("\t") if lines else []
    if "name" not in header:
        return {}
    if {"s1_gender", "s2_gender"} <= set(header):
        columns = [header.index("s1_gender"), header.index("s2_gender")]
        split = lambda fields: tuple(fields[c] for c in columns)  # noqa: E731
    elif "genders" in header:
        column = header.index("genders")
        split = lambda fields: tuple(fields[column].split(","))  # noqa: E731
    else:
        return {}
    name = header.index("name")
    ids = {u.id for u in testset.utterances}
    genders = {}
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) == len(header) and fields[name] in ids:
            genders[fields[name]] = tuple(g.strip().upper() for g in split(fields))
    return genders


def gender_pairs(testset: TestSet) -> dict[str, str]:
    """Utterance id -> "same-gender" or "cross-gender" (:func:`metadata_genders`); utterances with
    an unknown gender get none."""
    return {
        utt: GENDER_GROUPS[0] if genders[0] == genders[1] else GENDER_GROUPS[1]
        for utt, genders in metadata_genders(testset).items()
        if len(genders) == 2 and all(g in ("F", "M") for g in genders)
    }


def load_testset(path: str | os.PathLike, *, mix_dir: str | None = None) -> TestSet:
    """Index a test set folder or list file (see module docstring for layouts).

    ``mix_dir`` picks the LibriMix mixture folder when several exist (default: the first of
    mix_clean, mix_both, mix_single present).
    """
    root = Path(path)
    if root.is_file():
        return _from_list(root)
    if not root.is_dir():
        raise TestSetError(f"{root}: no such file or folder")
    if root.name in MIX_DIRS and (root.parent / "s1").is_dir():
        mix_dir, root = root.name, root.parent  # pointed at the mix folder itself
    if mix_dir is not None:
        if not (root / mix_dir).is_dir():
            raise TestSetError(f"{root}: no mixture folder {mix_dir}/")
        chosen = root / mix_dir
    else:
        present = [root / d for d in MIX_DIRS if (root / d).is_dir()]
        if not present:
            raise TestSetError(
                f"{root}: not a test set (expected mix/ or mix_clean/ with s1/, s2/, or a TSV list file)"
            )
        chosen = present[0]
    layout = "wsj0-2mix" if chosen.name == "mix" else f"librimix:{chosen.name}"
    return _from_folders(root, chosen, layout)


def check_headers(testset: TestSet) -> float:
    """Check every file's rate, channels and length from headers only (cheap, no decoding);
    returns the total duration of the mixtures in seconds."""
    total = 0.0
    for utt in testset.utterances:
        infos = [_info(p) for p in (utt.mix, *utt.refs)]
        _compare(utt, [(i.sample_rate, i.frames, i.channels) for i in infos])
        total += infos[0].duration
    return total


def _info(path: Path) -> AudioInfo:
    try:
        return probe(path)
    except AudioError as exc:
        raise TestSetError(str(exc)) from None


def _compare(utt: Utterance, props: Sequence[tuple[int, int, int]]) -> None:
    paths = (utt.mix, *utt.refs)
    for path, (_, _, channels) in zip(paths, props, strict=True):
        if channels != 1:
            raise TestSetError(f"{path}: {channels} channels, expected mono")
    rate, length, _ = props[0]
    for path, (r, n, _) in zip(paths[1:], props[1:], strict=True):
        if r != rate:
            raise TestSetError(f"{path}: sample rate {r} Hz differs from mixture {utt.mix} ({rate} Hz)")
        if n != length:
            raise TestSetError(f"{path}: {n} samples differ from mixture {utt.mix} ({length} samples)")


def read_example(utt: Utterance) -> AudioExample:
    """Decode one utterance, checking rate, channels and length, and that every sample is finite
    (a NaN would make every score NaN, as separation refuses it). A file whose header misstates its
    length is logged with both lengths."""
    waves, props = [], []
    for path in (utt.mix, *utt.refs):
        try:
            note = probe(path).header_warning()
            if note is not None:  # read as separate reads it, to the end of the file
                log.warning("%s: %s", path, note)
            data, rate = read(path, dtype="float64")
            check_finite(data, 0, rate, str(path))
        except AudioError as exc:
            raise TestSetError(str(exc)) from None
        waves.append(data[:, 0])
        props.append((rate, data.shape[0], data.shape[1]))
    _compare(utt, props)
    return AudioExample(utt, waves[0], np.stack(waves[1:]), props[0][0])
