"""A termination signal never falls between creating a part file and registering it for removal.

The command line turns SIGINT / SIGTERM / SIGHUP into an exception (``exit_on_signals``); here
SIGUSR1 stands in for them, so that pytest's own Ctrl-C handling stays untouched. Each case
sends the signal at the worst moment: right after a part file exists, before its owner knows.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tisdiss_cli.audio import files as audio_files
from tisdiss_cli.separation.outputs import OutputOptions, SpeakerFiles
from tisdiss_cli.util import fileio
from tisdiss_cli.util.signals import Terminated, exit_on_signals, signals_deferred

SIG = signal.SIGUSR1


@pytest.fixture
def raising_handler() -> Iterator[None]:
    before = signal.getsignal(SIG)
    exit_on_signals((SIG,))
    yield
    signal.signal(SIG, before)


def test_a_signal_inside_the_block_is_raised_when_the_outermost_block_ends(raising_handler: None) -> None:
    reached: list[str] = []
    with pytest.raises(Terminated) as caught, signals_deferred():
        with signals_deferred():
            signal.raise_signal(SIG)
            signal.raise_signal(SIG)
            reached.append("inner")
        reached.append("outer")
    assert reached == ["inner", "outer"]
    assert caught.value.signum == SIG and caught.value.code == 128 + SIG
    with pytest.raises(Terminated):  # outside a block: at once, and nothing was left pending
        signal.raise_signal(SIG)
        reached.append("after")
    assert reached == ["inner", "outer"]


def test_a_signal_after_one_speakers_part_file_leaves_no_file(
    raising_handler: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_init = audio_files.AtomicWriter.__init__

    def init_then_signal(self: audio_files.AtomicWriter, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        signal.raise_signal(SIG)  # before SpeakerFiles holds this writer

    monkeypatch.setattr(audio_files.AtomicWriter, "__init__", init_then_signal)
    targets = [tmp_path / "a_spk1.wav", tmp_path / "a_spk2.wav"]
    with pytest.raises(Terminated), SpeakerFiles(targets, 8000, OutputOptions()):
        pytest.fail("the signal should stop the run before the writing starts")
    assert list(tmp_path.iterdir()) == []


def test_a_signal_during_the_commits_leaves_no_half_of_the_outputs(
    raising_handler: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_commit = audio_files.commit

    def commit_then_signal(tmp: Path, path: Path, *, overwrite: bool) -> None:
        real_commit(tmp, path, overwrite=overwrite)
        signal.raise_signal(SIG)  # the first speaker is committed, the second not yet

    monkeypatch.setattr(audio_files, "commit", commit_then_signal)
    targets = [tmp_path / "a_spk1.wav", tmp_path / "a_spk2.wav"]
    with pytest.raises(Terminated), SpeakerFiles(targets, 8000, OutputOptions()) as files:
        files.write(np.zeros((2, 800), np.float32))
        files.commit()
    assert list(tmp_path.iterdir()) == []


def test_a_signal_after_a_whole_file_writes_part_file_leaves_no_file(
    raising_handler: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_new = fileio.new_part_file

    def new_then_signal(path: Path, suffix: str = ".part", *, sweep_again: bool = False) -> Path:
        tmp = real_new(path, suffix, sweep_again=sweep_again)
        signal.raise_signal(SIG)
        return tmp

    monkeypatch.setattr(fileio, "new_part_file", new_then_signal)
    with pytest.raises(Terminated):
        fileio.atomic_write_text(tmp_path / "report.json", "{}")
    assert list(tmp_path.iterdir()) == []
