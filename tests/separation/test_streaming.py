"""Streaming: Separator.stream and `tisdiss separate -` equal file separation sample for sample."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.conftest import REPO
from tisdiss_cli.audio.files import AudioError
from tisdiss_cli.audio.pcm import PcmReader, WavStreamWriter, read_wav_header
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.separation.separator import Separator

pytestmark = pytest.mark.numerics  # CI runs these again with `auto` pinned to bf16

_register_commands()
runner = CliRunner()
SEGMENT = 0.25  # seconds: a few chunks in a second of audio
# Outputs are compared sample for sample, so both sides pin their precision: what `auto` means
# depends on the CPU (and on TISDISS_AUTO_PRECISION, which CI sets for one run).
PRECISION = "fp32"


# This module holds the chunk engine to being blind to how the input is cut, so the voice tracker is
# off here: its online form (streams) and offline form (files) differ by design, within the bound
# that tests/separation/test_tracking.py and test_one_engine.py hold.
TRACKER = "overlap"


@pytest.fixture(scope="module")
def separator(tiny_checkpoint: Path) -> Separator:
    return Separator(tiny_checkpoint, device="cpu", segment=SEGMENT, precision=PRECISION, tracker=TRACKER)


def noise(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32)


def feed_randomly(stream: object, x: np.ndarray, seed: int = 1, most: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    outs, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, most))
        outs.append(stream.feed(x[i : i + n]))  # type: ignore[attr-defined]
        i += n
    outs.append(stream.close())  # type: ignore[attr-defined]
    return np.concatenate(outs, axis=1)


def file_outputs(separator: Separator, path: Path, out: Path, **options: object) -> np.ndarray:
    res = separator.process_file(path, out, float_output=True, overwrite=True, **options)  # type: ignore[arg-type]
    return np.stack([sf.read(p, dtype="float32")[0] for p in res.outputs])


@pytest.mark.parametrize(
    ("rate", "channels", "output_rate"), [(8000, 1, "input"), (16000, 2, "input"), (11025, 1, "model")]
)
def test_stream_in_random_pieces_equals_the_file_path(
    separator: Separator, tmp_path: Path, rate: int, channels: int, output_rate: str
) -> None:
    x = noise(1.3, rate, channels)
    sf.write(tmp_path / "in.wav", x, rate, subtype="FLOAT")
    expected = file_outputs(separator, tmp_path / "in.wav", tmp_path / "out", output_rate=output_rate)
    stream = separator.stream(rate, channels=channels, output_rate=output_rate)  # type: ignore[arg-type]
    got = feed_randomly(stream, x if channels > 1 else x[:, 0])
    assert stream.stats.chunks > 2  # chunked, re-aligned, overlap-added
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)  # exact: the same operations on the same samples


def test_stream_equals_separate_and_a_short_input_runs_whole(separator: Separator) -> None:
    for seconds in (1.1, 0.2):  # 0.2 s fits in one segment: run whole at close()
        x = noise(seconds, 8000)[:, 0]
        stream = separator.stream(8000)
        got = feed_randomly(stream, x, seed=2, most=300)
        np.testing.assert_array_equal(got, separator.separate(x, 8000))


def test_stream_output_trails_the_input_by_one_segment(separator: Separator) -> None:
    stream = separator.stream(8000)
    seg = separator.plan.segment_samples
    x = noise(1.0, 8000)[:, 0]
    emitted = 0
    for i in range(0, len(x), 400):
        emitted += stream.feed(x[i : i + 400]).shape[1]
        fed = min(len(x), i + 400)
        assert emitted == (max(0, fed - seg) if fed > seg else 0)
    assert emitted + stream.close().shape[1] == len(x)
    assert stream.latency_bound == pytest.approx(SEGMENT)


def test_tracked_stream_trails_the_input_by_its_stated_bound(tiny_checkpoint: Path) -> None:
    tracked = Separator(tiny_checkpoint, device="cpu", segment=SEGMENT, precision=PRECISION)  # voice: the default
    stream = tracked.stream(8000)
    x = noise(4.0, 8000)[:, 0]
    emitted = fed = 0
    for i in range(0, len(x), 400):
        emitted += stream.feed(x[i : i + 400]).shape[1]
        fed = min(len(x), i + 400)
        assert fed - emitted <= stream.latency_bound * 8000 + 400
    assert fed - emitted > SEGMENT * 8000  # the tracker's look-ahead is on top of the chunks'
    assert emitted + stream.close().shape[1] == len(x)


def test_stream_rejects_bad_blocks(separator: Separator) -> None:
    stream = separator.stream(8000, channels=2)
    with pytest.raises(ValueError, match=r"block of shape \(10,\): expected \[frames, 2\]"):
        stream.feed(np.zeros(10, np.float32))
    bad = np.zeros((100, 2), np.float32)
    bad[50, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf samples near 0.01 s"):
        stream.feed(bad)
    with pytest.raises(ValueError, match="samples of type int64"):
        stream.feed(np.zeros((4, 2), np.int64))
    with pytest.raises(ValueError, match="positive whole number"):
        separator.stream(8000.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- WAV and raw streams


def pipe_wav(x: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    """A WAV as ffmpeg writes one to a pipe: both sizes 0xFFFFFFFF."""
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype=subtype)
    data = bytearray(buf.getvalue())
    data[4:8] = struct.pack("<I", 0xFFFFFFFF)
    at = data.index(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFFF)
    return bytes(data)


def test_wav_header_unknown_sizes_extensible_and_truncation() -> None:
    x = noise(0.1, 8000, 3)  # 3 channels: libsndfile writes WAVE_FORMAT_EXTENSIBLE
    raw = pipe_wav(x, 8000, "PCM_24")
    f = io.BytesIO(raw)
    fmt = read_wav_header(f)
    assert (fmt.sample_rate, fmt.channels, fmt.encoding, fmt.declared_frames) == (8000, 3, "s24le", None)
    reader = PcmReader(f, fmt)
    got = np.concatenate(list(reader.blocks()))
    np.testing.assert_array_equal(got, sf.read(io.BytesIO(raw), dtype="float32")[0])
    assert reader.warnings == []

    buf = io.BytesIO()
    sf.write(buf, x[:, 0], 8000, format="WAV", subtype="PCM_16")
    cut = buf.getvalue()[:-101]  # declared 800 frames; 50.5 frames missing
    f = io.BytesIO(cut)
    reader = PcmReader(f, read_wav_header(f))
    assert sum(len(b) for b in reader.blocks()) == 749
    assert reader.warnings == [
        "stream ends inside a frame (1 bytes dropped)",
        "stream is truncated: read 749 of the 800 frames declared",
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "stdin: empty stream"),
        (b"\x00garbage garbage garbage", "stdin: not a WAV stream"),
        (b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00", "stdin: stream ends inside the WAV header"),
        (b"RIFF\xff\xff\xff\xffWAVEdata\xff\xff\xff\xff", "stdin: WAV stream has no fmt chunk"),
    ],
)
def test_bad_headers_name_the_problem(data: bytes, reason: str) -> None:
    with pytest.raises(AudioError, match=reason):
        read_wav_header(io.BytesIO(data))


def test_wav_stream_writer_pipe_and_seekable() -> None:
    x = np.clip(noise(0.2, 8000, 2, seed=3) * 5, -1.5, 1.5)  # some samples clip

    class Pipe(io.BytesIO):
        def seekable(self) -> bool:
            return False

    for out, size in ((Pipe(), 0xFFFFFFFF), (io.BytesIO(), len(x) * 6)):
        w = WavStreamWriter(out, 8000, 2)
        w.write(x[:7])
        w.write(x[7:])
        w.close()
        data = out.getvalue()
        assert struct.unpack("<I", data[40:44])[0] == size
        ref = io.BytesIO()
        sf.write(ref, np.clip(x, -1.0, 1.0 - 2.0**-23), 8000, format="WAV", subtype="PCM_24")
        np.testing.assert_array_equal(sf.read(io.BytesIO(data))[0], sf.read(io.BytesIO(ref.getvalue()))[0])
        assert w.clipped == int((np.abs(x) > 1.0 - 2.0**-23).sum()) > 0


# --------------------------------------------------------------------------- `tisdiss separate -`


def cli(model: Path, *args: str, data: bytes) -> object:
    command = ["separate", "-", "-m", str(model), "--segment", str(SEGMENT), "--precision", PRECISION, *args]
    command += ["--tracker", TRACKER]
    return runner.invoke(app, command, input=data)


def reference(separator: Separator, tmp_path: Path, x: np.ndarray, rate: int, subtype: str = "PCM_16") -> np.ndarray:
    """What `tisdiss separate FILE` writes (24-bit PCM) for the same samples."""
    sf.write(tmp_path / "ref.wav", x, rate, subtype=subtype)
    res = separator.process_file(tmp_path / "ref.wav", tmp_path / "ref", overwrite=True)
    return np.stack([sf.read(p)[0] for p in res.outputs])


def test_stdin_wav_stream_equals_file_separation(separator: Separator, tiny_checkpoint: Path, tmp_path: Path) -> None:
    x = noise(1.2, 16000, 2)
    result = cli(tiny_checkpoint, "-o", str(tmp_path / "out"), "--name", "talk", data=pipe_wav(x, 16000))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "latency max" in result.output  # type: ignore[attr-defined]
    got = np.stack([sf.read(tmp_path / "out" / f"talk_spk{j}.wav")[0] for j in (1, 2)])
    np.testing.assert_array_equal(got, reference(separator, tmp_path, x, 16000))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["talk_spk1.wav", "talk_spk2.wav"]


@pytest.mark.parametrize(
    ("fmt", "subtype", "encode"),
    [
        ("s16le", "PCM_16", lambda q: (q * 2**15).astype("<i2").tobytes()),
        ("s24le", "PCM_24", lambda q: (q * 2**23).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()),
        ("s32le", "PCM_32", lambda q: (q * 2**31).astype("<i4").tobytes()),
        ("f32le", "FLOAT", lambda q: q.astype("<f4").tobytes()),
    ],
)
def test_raw_pcm_formats(
    separator: Separator, tiny_checkpoint: Path, tmp_path: Path, fmt: str, subtype: str, encode: object
) -> None:
    bits = {"s16le": 16, "s24le": 24, "s32le": 24, "f32le": 24}[fmt]  # s32 from float32: 24 significant bits
    x = np.round(noise(0.8, 8000, 2).astype(np.float64) * 2 ** (bits - 1)) / 2 ** (bits - 1)
    data = encode(x.reshape(-1))  # type: ignore[operator]
    result = cli(
        tiny_checkpoint, "--raw-rate", "8000", "--raw-format", fmt, "--raw-channels", "2", "-o", str(tmp_path / "o"),
        data=data,
    )  # fmt: skip
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    got = np.stack([sf.read(tmp_path / "o" / f"stdin_spk{j}.wav")[0] for j in (1, 2)])
    np.testing.assert_array_equal(got, reference(separator, tmp_path, x, 8000, subtype))


def test_stdout_is_a_j_channel_wav_equal_to_the_files(
    separator: Separator, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    x = noise(1.0, 8000)
    result = cli(tiny_checkpoint, "--stdout", data=pipe_wav(x, 8000))
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    wav = result.stdout_bytes  # type: ignore[attr-defined]
    assert wav[:4] == b"RIFF" and struct.unpack("<I", wav[40:44])[0] == len(x) * 2 * 3  # seekable: sizes filled in
    got, rate = sf.read(io.BytesIO(wav))
    assert rate == 8000 and got.shape == (len(x), 2)
    np.testing.assert_array_equal(got.T, reference(separator, tmp_path, x, 8000))
    assert "latency max" in result.stderr  # type: ignore[attr-defined]
    assert not (tmp_path / "separated").exists()


@pytest.mark.parametrize(
    ("data", "args", "message"),
    [
        (b"this is not audio at all, just text", (), "stdin: not a WAV stream"),
        (b"RIFF\xff\xff\xff\xffWAVEfm", (), "stdin: stream ends inside the WAV header"),
        (b"", (), "stdin: empty stream"),
        (b"\x01", ("--raw-rate", "8000"), "stdin: no audio samples"),
    ],
)
def test_garbage_or_truncated_stdin_fails_in_one_line(
    tiny_checkpoint: Path, tmp_path: Path, data: bytes, args: tuple[str, ...], message: str
) -> None:
    result = cli(tiny_checkpoint, "-o", str(tmp_path / "o"), *args, data=data)
    assert result.exit_code == 1  # type: ignore[attr-defined]
    errors = [line for line in result.stderr.splitlines() if line.startswith("stdin")]  # type: ignore[attr-defined]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr  # type: ignore[attr-defined]
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_stdin_option_conflicts(tiny_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(pipe_wav(noise(0.1, 8000), 8000))
    for args in (
        ["-", str(tmp_path / "a.wav")],
        [str(tmp_path / "a.wav"), "--stdout"],
        ["-", "--stdout", "--json"],
        ["-", "--stdout", "--format", "flac"],
    ):
        result = runner.invoke(app, ["separate", *args, "-m", str(tiny_checkpoint)], input=b"")
        assert result.exit_code == 2, result.output


def test_a_real_pipe_in_and_out(separator: Separator, tiny_checkpoint: Path, tmp_path: Path) -> None:
    x = noise(0.6, 8000)
    cmd = [sys.executable, "-m", "tisdiss_cli", "separate", "-", "--stdout", "-m", str(tiny_checkpoint)]
    cmd += ["--segment", str(SEGMENT), "--threads", "1", "--precision", PRECISION, "--tracker", TRACKER]
    proc = subprocess.run(cmd, cwd=REPO, input=pipe_wav(x, 8000), capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert struct.unpack("<I", proc.stdout[40:44])[0] == 0xFFFFFFFF  # a pipe cannot be rewound: length unknown
    got, rate = sf.read(io.BytesIO(proc.stdout))
    assert rate == 8000 and got.shape == (len(x), 2)
    np.testing.assert_array_equal(got.T, reference(separator, tmp_path, x, 8000))
