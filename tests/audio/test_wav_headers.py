"""WAV, RF64 and Wave64 headers that misstate the length of their audio (issue 42): a data chunk that
declares less than follows it is read to the end of the file with a warning naming both lengths,
one that declares more is read as far as it goes with the warning it always had, and a size of 0
means "to the end", as on a stream. The input is never modified."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.headers import HEADER_CASES, declared_frames, write_misstated
from tisdiss_cli.audio import files as audio

RATE = 8000


def noise(frames: int, channels: int = 1) -> np.ndarray:
    x = 0.2 * np.random.default_rng(frames + channels).standard_normal((frames, channels))
    return (x[:, 0] if channels == 1 else x).astype(np.float32)


def as_pcm16(x: np.ndarray, folder: Path) -> np.ndarray:
    """What libsndfile gives back of ``x`` written as an intact 16-bit PCM WAV, ``[frames, channels]``."""
    sf.write(folder / "intact.wav", x, RATE, subtype="PCM_16")
    return sf.read(folder / "intact.wav", dtype="float32", always_2d=True)[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("fmt", ["WAV", "RF64", "W64"])
@pytest.mark.parametrize("case", HEADER_CASES)
def test_every_frame_the_file_holds_is_read_and_a_misstated_length_is_named(
    case: str, fmt: str, channels: int, tmp_path: Path
) -> None:
    x = noise(3 * RATE, channels)
    path = write_misstated(tmp_path / f"in.{fmt.lower()}", x, RATE, case, fmt)
    before = digest(path)
    info = audio.probe(path)
    assert (info.frames, info.channels, info.sample_rate) == (len(x), channels, RATE)
    note = info.header_warning()
    declared = declared_frames(case, len(x))
    if case == "under":
        assert note == (
            f"the header declares {declared} frames (0:00.75) but the file holds {len(x)} (0:03.00): "
            "read to the end of the file"
        )
    elif case == "over":
        assert note == (
            f"file is truncated: read {len(x)} of the {declared} frames its header declares (0:03.00 of 0:06.00)"
        )
    else:
        assert note is None  # no length declared: to the end, as a stream
    whole, rate = audio.read(path)
    assert rate == RATE
    np.testing.assert_array_equal(whole, as_pcm16(x, tmp_path))
    part, _ = audio.read(path, start=RATE, stop=RATE + 10)
    np.testing.assert_array_equal(part, whole[RATE : RATE + 10])
    blocks = list(audio.read_frames(info, block_seconds=0.25))  # streamed: many small blocks, never the whole
    assert max(len(b) for b in blocks) == RATE // 4
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    mono = np.concatenate(list(audio.read_blocks(path, RATE, block_seconds=0.5)))
    np.testing.assert_allclose(mono, whole.mean(axis=1), atol=1e-7)
    assert digest(path) == before  # read, never repaired in place


def _with_chunk_after_data(path: Path, tail: bytes) -> None:
    raw = bytearray(path.read_bytes()) + tail
    raw[4:8] = struct.pack("<I", len(raw) - 8)
    path.write_bytes(bytes(raw))


def test_a_chunk_after_the_data_is_not_taken_for_audio(tmp_path: Path) -> None:
    x = noise(RATE)
    path = tmp_path / "tagged.wav"
    sf.write(path, x, RATE, subtype="PCM_16")
    title = b"a title" + bytes(7)
    _with_chunk_after_data(
        path, b"LIST" + struct.pack("<I", 12 + len(title)) + b"INFOINAM" + struct.pack("<I", len(title)) + title
    )
    info = audio.probe(path)
    assert info.frames == RATE and info.header_warning() is None
    np.testing.assert_array_equal(audio.read(path)[0], as_pcm16(x, tmp_path))


@pytest.mark.parametrize(
    "tail", [bytes(4096), b"\x01\x02\x03\x04\x05"], ids=["zeros to a whole sector", "a few stray bytes"]
)
def test_padding_after_the_data_is_not_taken_for_audio(tail: bytes, tmp_path: Path) -> None:
    x = noise(RATE)
    path = tmp_path / "padded.wav"
    sf.write(path, x, RATE, subtype="PCM_16")
    path.write_bytes(path.read_bytes() + tail)
    info = audio.probe(path)
    assert info.frames == RATE and info.header_warning() is None


def test_a_size_of_zero_with_nothing_after_it_is_still_an_empty_file(tmp_path: Path) -> None:
    path = write_misstated(tmp_path / "empty.wav", noise(RATE)[:0], RATE, "zero")
    with pytest.raises(audio.AudioError, match=r"empty\.wav: no audio samples"):
        audio.probe(path)


def test_under_declared_24_bit_and_float_files_are_read_in_whole_frames(tmp_path: Path) -> None:
    for subtype in ("PCM_24", "FLOAT"):
        path = tmp_path / f"{subtype}.wav"
        sf.write(path, noise(RATE, 3), RATE, subtype=subtype)
        expected, _ = sf.read(path, dtype="float32", always_2d=True)
        raw = bytearray(path.read_bytes())
        at = raw.index(b"data") + 4
        raw[at : at + 4] = struct.pack("<I", 1001)  # not a whole frame: a writer that stopped mid-sample
        path.write_bytes(bytes(raw) + b"\x01\x02")  # and a partial frame at the very end
        info = audio.probe(path)
        note = info.header_warning()
        assert info.frames == RATE and note is not None and f"the file holds {RATE} (0:01.00)" in note, subtype
        np.testing.assert_array_equal(audio.read(path)[0], expected)


@pytest.mark.parametrize("fmt", ["WAV", "RF64"])
def test_a_size_of_all_ones_means_to_the_end(fmt: str, tmp_path: Path) -> None:
    x = noise(RATE)
    path = tmp_path / f"stream.{fmt.lower()}"
    sf.write(path, x, RATE, subtype="PCM_16", format=fmt)
    raw = bytearray(path.read_bytes())
    if fmt == "RF64":
        raw[28:36] = b"\xff" * 8  # ds64's data size (libsndfile cannot open such a file by itself)
    else:
        at = raw.index(b"data") + 4
        raw[4:8] = raw[at : at + 4] = b"\xff" * 4
    path.write_bytes(bytes(raw))
    info = audio.probe(path)
    assert info.frames == RATE and info.header_warning() is None
    np.testing.assert_array_equal(audio.read(path)[0], as_pcm16(x, tmp_path))
