"""Block-wise reading (downmix, channel pick, resampling, bad files) and atomic writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tisdiss_cli.audio import files as audio


def read_all(path: Path, rate: int, channel: int | None = None) -> np.ndarray:
    return np.concatenate(list(audio.read_blocks(path, rate, channel=channel)))


def tone(n: int, rate: int, freq: float = 220.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def test_read_blocks_downmix_channel_and_resample(tmp_path: Path) -> None:
    rate = 44100
    left, right = tone(rate * 3, rate), tone(rate * 3, rate, 330.0)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right], 1), rate, subtype="FLOAT")
    same = np.concatenate(list(audio.read_blocks(path, rate, block_seconds=0.7)))
    np.testing.assert_allclose(same, (left + right) / 2, atol=1e-7)
    np.testing.assert_array_equal(read_all(path, rate, channel=1), right)
    blocks = list(audio.read_blocks(path, 8000, block_seconds=0.5))
    assert len(blocks) > 3
    y = np.concatenate(blocks)
    assert len(y) == audio.resampled_length(3 * rate, rate, 8000) == 24000
    ref = (tone(24000, 8000) + tone(24000, 8000, 330.0)) / 2
    assert np.abs(y[100:-100] - ref[100:-100]).max() < 1e-3


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty file"), (b"hello, this is text\n" * 20, "not a readable audio file")],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(audio.AudioError) as err:
        read_all(path, 8000)
    assert str(err.value) == f"{path}: {reason}"


def test_nan_and_missing_channel_are_rejected(tmp_path: Path) -> None:
    x = tone(8000, 8000)
    x[5000] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, 8000, subtype="FLOAT")
    with pytest.raises(audio.AudioError, match=r"nan\.wav: NaN or Inf samples"):
        read_all(path, 8000)
    with pytest.raises(audio.AudioError, match="has 1 channel"):
        read_all(path, 8000, channel=1)
    with pytest.raises(audio.AudioError, match="no such file"):
        audio.probe(tmp_path / "missing.wav")
    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros(0, np.float32), 8000)
    with pytest.raises(audio.AudioError, match="no audio samples"):
        audio.probe(zero)


def test_writer_clips_without_wraparound_and_is_atomic(tmp_path: Path) -> None:
    x = np.array([0.5, 1.5, -2.0, 0.999, -1.0], np.float32)
    path = tmp_path / "out.wav"
    w = audio.AtomicWriter(path, 8000, length=7)
    w.write(x)
    assert not path.exists()  # only the temporary file so far
    w.commit()
    y, rate = sf.read(path, dtype="float32")
    info = sf.info(path)
    assert (rate, info.subtype, len(y)) == (8000, "PCM_24", 7)  # padded to the length
    assert w.clipped == 2
    np.testing.assert_allclose(y[:5], [0.5, 1.0, -1.0, 0.999, -1.0], atol=2e-7)  # saturated, not wrapped
    assert list(tmp_path.iterdir()) == [path]


def test_writer_float_flac_and_discard(tmp_path: Path) -> None:
    x = np.array([0.25, 3.0, -7.5], np.float32)
    out = audio.write(tmp_path / "f.wav", x, 16000, float_output=True)
    np.testing.assert_array_equal(sf.read(out, dtype="float32")[0], x)  # float keeps everything
    flac = audio.write(tmp_path / "f.flac", x / 10, 16000, fmt="flac")
    assert sf.info(flac).subtype == "PCM_24"
    with pytest.raises(ValueError, match="FLAC cannot hold float"):
        audio.AtomicWriter(tmp_path / "g.flac", 8000, length=1, fmt="flac", float_output=True)
    with pytest.raises(KeyboardInterrupt), audio.AtomicWriter(tmp_path / "int.wav", 8000, length=10) as w:
        w.write(x)
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.flac", "f.wav"]


def test_outputs_get_the_usual_file_mode(tmp_path) -> None:
    """Atomic writes go through mkstemp (mode 0600); finished files must not stay private."""
    from tisdiss_cli.util.fileio import FILE_MODE, atomic_write_text

    target = atomic_write_text(tmp_path / "report.json", "{}")
    assert target.stat().st_mode & 0o777 == FILE_MODE
