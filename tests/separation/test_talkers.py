"""The tracker's stages in the engine: the spool that keeps a file's outputs for the second pass."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tisdiss_cli.separation.talkers import Spool
from tisdiss_cli.util.fileio import WriteError


def test_spool_keeps_short_recordings_in_memory_and_long_ones_in_a_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=(2, n)).astype(np.float32) for n in (300, 1, 700, 250)]
    short = Spool(2, memory_frames=10_000)
    for b in blocks:
        short.append(b)
    assert short.file is None
    np.testing.assert_array_equal(short.outputs(), np.concatenate(blocks, axis=1))
    long = Spool(2, memory_frames=500)
    for b in blocks:
        long.append(b)
    assert long.file is not None and long.blocks == []  # spilled: memory no longer grows
    reader = long.outputs()
    everything = np.concatenate(blocks, axis=1)
    assert reader.shape == everything.shape
    np.testing.assert_array_equal(reader[:, :], everything)
    np.testing.assert_array_equal(reader[:, 299:1002], everything[:, 299:1002])  # across the blocks' borders
    np.testing.assert_array_equal(reader[:, 1200:5000], everything[:, 1200:])  # clipped at the end, as arrays are
    long.close()
    assert Spool(2, 10).outputs().shape == (2, 0)


def test_a_spool_that_cannot_be_written_names_its_folder_and_the_reason(monkeypatch) -> None:
    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            pass

    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **_: Full())
    spool = Spool(2, memory_frames=10)
    with pytest.raises(WriteError) as caught:
        spool.append(np.zeros((2, 100), np.float32))
    message = str(caught.value)
    folder = tempfile.gettempdir()
    assert message == f"cannot write the voice tracker's temporary file in {folder}: No space left on device"
    assert caught.value.errno == errno.ENOSPC
