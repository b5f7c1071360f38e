"""Inputs libsndfile cannot read, decoded through PyAV: containers, streams, lengths and errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.media import (
    CONTAINERS,
    Container,
    best_lag_si_snr,
    spectrum_match,
    voiced,
    write_media,
    write_video_only,
)
from tisdiss_cli.audio import ffmpeg as decode
from tisdiss_cli.audio import files as audio
from tisdiss_cli.cli.inputs import collect_inputs

pytest.importorskip("av", reason="PyAV not installed: pip install 'tisdiss[av]'")


def _decoded(path: Path, rate: int, **kwargs: object) -> np.ndarray:
    return np.concatenate(list(audio.read_blocks(path, rate, block_seconds=0.3, **kwargs)))  # type: ignore[arg-type]


@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("kind", list(CONTAINERS))
def test_every_container_decodes_with_its_rate_channels_and_length(kind: str, channels: int, tmp_path: Path) -> None:
    spec = CONTAINERS[kind]
    if spec.mono_only and channels == 2:
        pytest.skip(f"{kind} holds mono only")
    source = voiced(0.8, spec.rate, channels)
    path = write_media(tmp_path / f"clip{spec.suffix}", [source], spec)
    info = audio.probe(path)
    assert (info.sample_rate, info.channels) == (spec.rate, channels)
    # Exact where the container records the length (MP4/MOV edit lists, Opus pre-skip and end trim);
    # otherwise within a codec frame (Matroska keeps AAC's end padding, FFmpeg's WMA loses its first frame).
    assert abs(info.frames - len(source)) <= spec.slack
    assert info.header_warning() is None
    whole, rate = audio.read(path)
    assert rate == spec.rate and whole.shape == (info.frames, channels)
    for c in range(channels):
        assert spectrum_match(source[:, c], whole[:, c]) > 0.95, f"channel {c + 1}"
        if spec.waveform:
            assert best_lag_si_snr(source[:, c], whole[:, c], max_lag=2048) > 10.0, f"channel {c + 1}"
    mono = _decoded(path, spec.rate)  # several blocks, at the file's own rate
    np.testing.assert_allclose(mono, whole.mean(axis=1), atol=1e-6)
    at_8k = _decoded(path, 8000, channel=channels - 1)
    assert len(at_8k) == audio.resampled_length(info.frames, spec.rate, 8000)


def test_a_second_audio_stream_is_chosen_with_stream(tmp_path: Path) -> None:
    spec = CONTAINERS["mp4-video-aac"]
    first, second = voiced(0.5, spec.rate, 1), voiced(0.6, spec.rate, 2, f0=220.0)
    path = write_media(tmp_path / "two.mp4", [first, second], spec)
    assert (audio.probe(path).channels, audio.probe(path).frames) == (1, len(first))
    info = audio.probe(path, stream=1)
    assert (info.channels, info.frames, info.stream) == (2, len(second), 1)
    got = _decoded(path, spec.rate, stream=1, channel=1)
    assert best_lag_si_snr(second[:, 1], got, max_lag=0) > 10.0
    with pytest.raises(audio.AudioError, match=r"two\.mp4: has 2 audio streams, no stream 3$"):
        audio.probe(path, stream=2)


def test_a_frame_range_equals_the_whole_read_and_decodes_only_up_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = CONTAINERS["m4a-aac"]
    path = write_media(tmp_path / "long.m4a", [voiced(6.0, spec.rate, 2)], spec)
    whole, _ = audio.read(path)
    decoded: list[int] = []
    frames = decode._Opened.frames

    def counting(self: decode._Opened) -> Iterator[object]:
        for frame in frames(self):
            decoded.append(frame.samples)
            yield frame

    monkeypatch.setattr(decode._Opened, "frames", counting)
    start, stop = spec.rate // 2, spec.rate  # 0.5-1.0 s of a 6-s file
    part, rate = audio.read(path, start=start, stop=stop)
    assert rate == spec.rate
    np.testing.assert_array_equal(part, whole[start:stop])
    assert stop <= sum(decoded) < stop + 4096  # stopped within a few codec frames of the range's end
    np.testing.assert_array_equal(audio.read(path, start=-100)[0], whole[-100:])  # slice semantics, as sf.read
    assert audio.read(path, start=stop, stop=start)[0].shape == (0, 2)
    np.testing.assert_array_equal(audio.read_mono(path, start=start, stop=stop), whole[start:stop].mean(axis=1))


def test_decode_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    spec = CONTAINERS["m4a-aac"]
    good = write_media(tmp_path / "good.m4a", [voiced(2.0, spec.rate)], spec)  # moov atom at the end
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    messages = {}
    for path in (cut, write_video_only(tmp_path / "silent-film.mp4")):
        with pytest.raises(audio.AudioError) as err:
            audio.probe(path)
        messages[path.name] = str(err.value)
    assert messages["cut.m4a"].startswith(f"{cut}: not a readable audio or video file")
    assert messages["silent-film.mp4"] == f"{tmp_path / 'silent-film.mp4'}: has no audio stream (video)"
    with pytest.raises(audio.AudioError, match=r"good\.m4a: has 1 audio stream, no stream 3$"):
        audio.probe(good, stream=2)
    wav = tmp_path / "plain.wav"
    audio.write(wav, voiced(0.1, 8000)[:, 0], 8000)
    with pytest.raises(audio.AudioError, match=r"plain\.wav: has 1 audio stream, no stream 2$"):
        audio.probe(wav, stream=1)
    text = tmp_path / "notes.wav"
    text.write_text("not audio\n" * 20)  # libsndfile's suffix: its reason, not FFmpeg's
    with pytest.raises(audio.AudioError, match=r"notes\.wav: not a readable audio file$"):
        audio.probe(text)
    assert all("\n" not in m for m in messages.values())


def test_a_cut_short_stream_is_read_up_to_the_damage_with_a_warning(tmp_path: Path) -> None:
    spec = CONTAINERS["m4a-aac"]
    good = write_media(tmp_path / "memo.m4a", [voiced(4.0, spec.rate)], spec, faststart=True)
    cut = tmp_path / "memo-cut.m4a"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    info = audio.probe(cut)
    assert 0 < info.frames < 4 * spec.rate
    assert info.declared_frames == 4 * spec.rate
    note = info.header_warning()
    assert note is not None and note.startswith(f"file is truncated: read {info.frames} of the 64000 frames")
    assert len(_decoded(cut, spec.rate)) == info.frames


def test_missing_pyav_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = CONTAINERS["m4a-aac"]
    path = write_media(tmp_path / "memo.m4a", [voiced(0.3, spec.rate)], spec)
    text = tmp_path / "notes.wav"
    text.write_text("not audio\n" * 20)
    decode._probe.cache_clear()
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    with pytest.raises(audio.AudioError) as err:
        audio.probe(path)
    assert str(err.value) == f"{path}: reading m4a needs PyAV: pip install 'tisdiss[av]'"
    with pytest.raises(audio.AudioError, match=r"notes\.wav: not a readable audio file$"):
        audio.probe(text)


def test_folders_pick_up_the_new_suffixes(tmp_path: Path) -> None:
    names = ["a.m4a", "b.mp4", "c.mkv", "d.webm", "e.mov", "f.opus", "g.wma", "h.amr", "i.wav"]
    for name in [*names, "notes.txt", "cover.jpg"]:
        (tmp_path / name).write_bytes(b"x")
    found, problems = collect_inputs([str(tmp_path)])
    assert sorted(item.path.name for item in found) == names and problems == []
    assert set(audio.FFMPEG_SUFFIXES) <= set(audio.AUDIO_SUFFIXES)


def test_probe_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    spec = CONTAINERS["mkv-aac"]
    path = write_media(tmp_path / "talk.mkv", [voiced(0.5, spec.rate)], spec)
    first = audio.probe(path)
    assert audio.probe(path) is first
    write_media(path, [voiced(1.0, spec.rate)], Container(".mkv", ("aac",), spec.rate))
    assert audio.probe(path).frames > first.frames
