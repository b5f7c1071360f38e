"""Where the separated speakers go: output options checked once, their names, claiming them,
and one writer per speaker. Files, standard input and live capture all write through here.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from ..audio import files as audio
from ..audio.files import OutputExistsError, OutputFormat
from ..util.fileio import live_writer, remove_stale_parts
from ..util.signals import signals_deferred

DEFAULT_FILENAME = "{stem}_spk{spk}.{ext}"
OutputRate = Literal["input", "model"]
OUTPUT_RATES: tuple[OutputRate, ...] = get_args(OutputRate)

# Suffixes each output format is written under; a template naming another one is refused.
FORMAT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "wav": (".wav",),
    "flac": (".flac",),
    "mp3": (".mp3",),
    "opus": (".opus", ".ogg"),
}


class OutputOptionError(ValueError):
    """An unusable output option; ``option`` names the :class:`OutputOptions` field."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class OutputOptions:
    """How each speaker's output is written; checked once, when made (:class:`OutputOptionError`)."""

    fmt: OutputFormat = "wav"  # wav | flac (24-bit PCM unless float_output) | mp3 | opus (lossy)
    float_output: bool = False  # 32-bit float WAV: no quantisation, no clipping
    rate: OutputRate = "input"  # written at the input's rate or at the model's
    channel: int | None = None  # 0-based input channel to separate; None averages the channels
    filename: str = DEFAULT_FILENAME  # template with {stem}, {spk} (1-based) and {ext}; may hold sub-folders
    overwrite: bool = False  # replace existing outputs instead of refusing them

    def __post_init__(self) -> None:
        try:
            audio.check_output_format(self.fmt, self.float_output)
        except ValueError as exc:
            raise OutputOptionError("float_output" if self.fmt in audio.OUTPUT_FORMATS else "fmt", str(exc)) from None
        if self.rate not in OUTPUT_RATES:
            raise OutputOptionError("rate", f"output rate {self.rate!r}: use {' or '.join(OUTPUT_RATES)}")
        if self.channel is not None and self.channel < 0:
            raise OutputOptionError("channel", f"channel {self.channel}: channels are counted from 0")
        try:
            check_template(self.filename, self.fmt)
        except ValueError as exc:
            raise OutputOptionError("filename", str(exc)) from None

    def paths(self, stem: str, out_dir: str | os.PathLike, num_spk: int) -> list[Path]:
        """One path per speaker for an input named ``stem``, inside ``out_dir``."""
        names = [self.filename.format(stem=stem, spk=j + 1, ext=self.fmt) for j in range(num_spk)]
        escaping = next((n for n in names if not stays_inside(n)), None)
        if escaping is not None:
            raise ValueError(f"{self.filename!r} writes outside the output folder ({escaping}); name files inside -o")
        return [Path(out_dir) / n for n in names]


def claim(targets: list[Path], *, overwrite: bool, hint: str = "") -> None:
    """Make ``targets`` ready to be written, or raise :class:`OutputExistsError` (``path: exists``
    plus ``hint``; or naming the live run writing them). Removes what killed runs left in their
    folders first, even when the outputs are then refused."""
    for folder in dict.fromkeys(t.parent for t in targets):
        remove_stale_parts(folder)
    existing = next((t for t in targets if t.exists()), None)
    if existing is not None and not overwrite:
        raise OutputExistsError(f"{existing}: exists{hint}")
    writer = next((pid for t in targets if (pid := live_writer(t)) is not None), None)
    if writer is not None:  # another run is separating this input right now: leave it to it
        raise OutputExistsError(f"{targets[0]}: being written by another tisdiss run (pid {writer})")


class SpeakerFiles:
    """One :class:`~.audio.AtomicWriter` per speaker, as a context manager: ``write([K, n])``, then
    :meth:`commit` (all or none); leaving it discards whatever was not committed.

    ``targets`` is the list of outputs, or a function of their number for a recording whose
    talkers are counted only at its end (``count`` None): the part files are then created with
    the first block that has samples (earlier blocks are empty), and the outputs past the first
    are claimed then (:func:`claim`)."""

    def __init__(
        self,
        targets: list[Path] | Callable[[int], list[Path]],
        rate: int,
        options: OutputOptions,
        *,
        length: int | None = None,
        count: int | None = None,
    ) -> None:
        self.targets_for = targets if callable(targets) else (lambda _count: targets)
        self.count = len(targets) if isinstance(targets, list) else count
        self.rate, self.options, self.length = rate, options, length
        self.writers: list[audio.AtomicWriter] = []

    def __enter__(self) -> SpeakerFiles:
        if self.count is not None:
            self._open(self.count)
        return self

    def _open(self, count: int) -> None:
        targets = self.targets_for(count)
        if self.count is None:  # counted now: the first was claimed before separating
            claim(targets[1:], overwrite=self.options.overwrite)
            self.count = count
        # Created here, signals held back: a Ctrl-C between a part file's creation and its writer
        # landing in self.writers, or before `with` had registered __exit__, would leave it behind.
        try:
            with signals_deferred():
                for t in targets:
                    self.writers.append(
                        audio.AtomicWriter(
                            t,
                            self.rate,
                            length=self.length,
                            fmt=self.options.fmt,
                            float_output=self.options.float_output,
                            overwrite=self.options.overwrite,
                        )
                    )
        except BaseException:
            self.discard()  # the part files of the speakers opened before the one that failed
            raise

    def write(self, y: np.ndarray) -> None:
        if not self.writers:
            if not y.shape[1]:
                return  # nothing yet: the number of files may not be known
            self._open(y.shape[0])
        for j, w in enumerate(self.writers):
            w.write(y[j])

    def commit(self, count: int | None = None) -> list[Path]:
        """Commit every output; ``count``: how many to write if no block had samples."""
        if not self.writers:
            self._open(self.count or count or 1)
        return commit_all(self.writers)

    def discard(self) -> None:
        for w in self.writers:
            w.discard()  # no-op for committed writers

    @property
    def clipped(self) -> int:
        """Output samples saturated at full scale, all speakers together."""
        return sum(w.clipped for w in self.writers)

    def __exit__(self, *_: object) -> None:
        self.discard()


def commit_all(writers: list[audio.AtomicWriter]) -> list[Path]:
    """Commit every speaker's file, or none: when one fails (it exists, the disk is full), the
    ones this call committed are removed again, so an input never has half of its outputs."""
    done: list[Path] = []
    try:
        # a signal waits for the loop's end, so no commit is half done (linked, part file still
        # there) when the handler below takes them all back
        with signals_deferred():
            for w in writers:
                done.append(w.commit())
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        raise
    return done


def stays_inside(relative: str) -> bool:
    """Whether a relative output name stays inside its folder (no absolute path, no ``..`` above it)."""
    path = Path(relative)
    if path.is_absolute() or path.drive or not path.parts:
        return False
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return False
    return depth > 0


def check_template(filename: str, fmt: str) -> None:
    """Raise ``ValueError`` (one line, naming the problem) for an output name template that cannot
    name one file per speaker inside the output folder in format ``fmt``."""
    if not filename.strip():
        raise ValueError("the template is empty; use e.g. '{stem}_spk{spk}.{ext}'")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(filename) if name is not None}
        example = filename.format(stem="x", spk=1, ext=fmt)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"bad template {filename!r} ({exc}); use {{stem}}, {{spk}}, {{ext}}") from None
    if "spk" not in fields:
        raise ValueError(f"{filename!r} has no {{spk}}: every speaker would get the same name")
    if not stays_inside(example):
        raise ValueError(f"{filename!r} writes outside the output folder ({example}); name files inside -o")
    suffix = _written_suffix(filename)
    if suffix in audio.AUDIO_SUFFIXES and suffix not in FORMAT_SUFFIXES.get(fmt, (f".{fmt}",)):
        raise ValueError(
            f"{filename!r} names {suffix} files but the format is {fmt}; end the template with .{{ext}}, "
            "or ask for the format it names"
        )


def _written_suffix(filename: str) -> str:
    """The extension a template spells out after its last field (``.mp3`` in ``{stem}_{spk}.mp3``;
    nothing when a field ends it, as ``{ext}`` does)."""
    *_, (tail, field_name, _, _) = string.Formatter().parse(filename)
    return "" if field_name is not None else Path(f"x{tail}").suffix.lower()


def output_stem(relative: str | os.PathLike, filename: str, fmt: str) -> str | None:
    """The input stem whose outputs under template ``filename`` include ``relative`` (a path inside
    the output folder), for any speaker number; None when no input's outputs are named so."""
    pattern, stem_seen = "", False
    for literal, name, _, _ in string.Formatter().parse(filename):
        pattern += re.escape(literal)
        if name == "stem":
            pattern += "(?P=stem)" if stem_seen else "(?P<stem>.+?)"
            stem_seen = True
        elif name == "spk":
            pattern += r"\s*\d+"
        elif name == "ext":
            pattern += re.escape(fmt)
    found = re.fullmatch(pattern, Path(relative).as_posix())
    if found is None:
        return None
    return found["stem"] if stem_seen else ""
