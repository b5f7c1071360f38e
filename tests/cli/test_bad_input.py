"""Issue 24, part 3: bad input that used to fall short. Each case gets a one-line message naming the
file and the problem, the right exit code, no traceback, inputs untouched and no partial outputs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import tomllib
import typer
from typer.testing import CliRunner, Result

from tests.conftest import REPO, run_events
from tests.headers import HEADER_CASES, declared_frames, write_misstated
from tisdiss_cli.audio import files as audio
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.model.depth import Depth
from tisdiss_cli.separation.chunking import ChunkPlan
from tisdiss_cli.separation.separator import OutputExistsError, Separator
from tisdiss_cli.separation.streaming import SeparationStream

_register_commands()
runner = CliRunner()
RATE = 8000


def invoke(*args: str, input: bytes | None = None) -> Result:
    result = runner.invoke(app, list(args), env={"COLUMNS": "400"}, input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def noise(path: Path, seconds: float = 0.5, *, peak: float = 0.5, subtype: str = "FLOAT", channels: int = 1) -> Path:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((int(seconds * RATE), channels))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (x / np.abs(x).max() * peak).astype(np.float32), RATE, subtype=subtype)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tisdiss(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    """The command line in a fresh process; stdout is captured unless given."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"}
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(  # type: ignore[call-overload]
        [sys.executable, "-m", "tisdiss_cli", *args], cwd=REPO, env=env, stderr=subprocess.PIPE, timeout=300, **kwargs
    )


# --------------------------------------------------------------------------- 1. huge finite float input


def test_huge_float_input_is_separated_at_its_own_scale(tiny_checkpoint: Path) -> None:
    separator = Separator(tiny_checkpoint, device="cpu", precision="fp32", segment=0.25)
    x = np.random.default_rng(1).standard_normal(3000).astype(np.float32) * 0.2
    quiet = separator.separate(x, RATE)
    loud = separator.separate(x * np.float32(2.0**100), RATE)  # peak about 1e30, chunked
    assert np.isfinite(loud).all()
    np.testing.assert_array_equal(loud, quiet * np.float32(2.0**100))  # a power of two: exactly the same


def test_huge_float_wav_is_never_turned_into_nan_or_a_constant(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = noise(tmp_path / "huge.wav", peak=3e38)
    out = tmp_path / "out"
    overlap = ("--precision", "fp32", "--tracker", "overlap")  # each network output in its own file
    result = invoke("separate", str(path), "-o", str(out), "-m", str(tiny_checkpoint), *overlap)
    assert result.exit_code == 0, result.output
    assert f"{path}: warning: " in result.stderr and "samples clipped at full scale" in result.stderr
    for j in (1, 2):
        y = sf.read(out / f"huge_spk{j}.wav")[0]
        assert np.isfinite(y).all() and (y > 0.5).any() and (y < -0.5).any()  # saturated, no longer constant -1.0
    tracked = invoke("separate", str(path), "-o", str(tmp_path / "t"), "-m", str(tiny_checkpoint), *overlap[:2])
    assert tracked.exit_code == 0, tracked.output  # the voice tracker (the default) on the same input
    ys = [sf.read(p)[0] for p in sorted((tmp_path / "t").glob("huge_spk*.wav"))]
    assert ys
    assert all(np.isfinite(y).all() for y in ys)
    assert any((y > 0.5).any() and (y < -0.5).any() for y in ys)  # a talker's file saturated, not constant
    floats = invoke("separate", str(path), "-o", str(tmp_path / "f"), "-m", str(tiny_checkpoint), "--float", *overlap)
    if floats.exit_code == 0:  # finite, at the input's scale
        for j in (1, 2):
            y = sf.read(tmp_path / "f" / f"huge_spk{j}.wav")[0]
            assert np.isfinite(y).all() and np.abs(y).max() > 1e37
    else:  # or beyond what float32 can hold: said, and nothing written
        assert floats.exit_code == 1
        assert f"{path}: " in floats.stderr and "float32 range" in floats.stderr
        assert not (tmp_path / "f").exists()
    high = tmp_path / "huge16k.wav"  # resampled to the model's 8 kHz: soxr's overshoot leaves float32
    sf.write(high, sf.read(path, dtype="float32")[0] * np.float32(1.13), 2 * RATE, subtype="FLOAT")
    resampled = invoke("separate", str(high), "-o", str(tmp_path / "r"), "-m", str(tiny_checkpoint), "--float")
    assert resampled.exit_code == 1
    assert f"{high}: samples of up to 3.39e+38 overflow float32 when resampled to 8000 Hz" in resampled.stderr
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- 2. resuming a finished run


def test_resume_of_a_finished_run_trains_nothing(corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    quick = ["--set", "optim.max_steps=2", "--set", "data.epoch_size=8", "--set", "data.valid_size=2"]
    args = ["train", "--quiet", "--threads", "1", "--recipe", "tiny", "--data", str(corpus), "--run", str(run)]
    assert invoke(*args, *quick).exit_code == 0
    before = snapshot(run)
    again = invoke("train", "--quiet", "--threads", "1", "--resume", "--run", str(run))
    assert again.exit_code == 0, again.output
    assert "already finished (reached max_steps=2) at step 2" in again.stderr
    assert "--set optim.max_steps" in again.stderr
    assert snapshot(run) == before  # no step, no rewritten model, no new event
    assert [e["step"] for e in run_events(run, "done")] == [2]


# --------------------------------------------------------------------------- 3. outputs that are inputs


def test_previous_outputs_in_the_input_folder_are_not_inputs(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "D"
    noise(folder / "a.wav")
    two = ("--speakers", "2")  # the files are known in advance
    first = invoke("separate", str(folder), "-o", str(folder), "-m", str(tiny_checkpoint), *two)
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in folder.iterdir()) == ["a.wav", "a_spk1.wav", "a_spk2.wav"]
    again = invoke("separate", str(folder), "-o", str(folder), "-m", str(tiny_checkpoint), *two)
    assert again.exit_code == 0 and "0 separated, 1 skipped, 0 failed" in again.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["a.wav", "a_spk1.wav", "a_spk2.wav"]  # no a_spk1_spk1.wav
    replaced = invoke("separate", str(folder), "-o", str(folder), "-m", str(tiny_checkpoint), "--overwrite", *two)
    assert replaced.exit_code == 0 and "1 separated, 0 skipped, 0 failed" in replaced.stdout


def test_an_output_that_is_a_named_input_is_refused_before_any_work(tmp_path: Path) -> None:
    folder = tmp_path / "D"
    noise(folder / "a.wav")
    noise(folder / "a_spk1.wav", peak=0.3)
    before = snapshot(folder)
    result = invoke(
        "separate", str(folder / "a.wav"), str(folder / "a_spk1.wav"), "-o", str(folder), "--overwrite", "-m", "/nope"
    )
    assert result.exit_code == 2, result.output
    assert f"{folder / 'a_spk1.wav'} is an input and also an output of {folder / 'a.wav'}" in result.stderr
    assert snapshot(folder) == before


# --------------------------------------------------------------------------- 4. extension against format


@pytest.mark.parametrize(
    ("template", "extra", "suffix"),
    [("{stem}_{spk}.mp3", [], ".mp3"), ("{stem}_{spk}.wav", ["--format", "flac"], ".wav")],
)
def test_a_template_extension_that_contradicts_the_format_is_a_usage_error(
    template: str, extra: list[str], suffix: str, tmp_path: Path
) -> None:
    path = noise(tmp_path / "a.wav")
    result = invoke("separate", str(path), "-o", str(tmp_path / "out"), "--filename", template, *extra, "-m", "/nope")
    assert result.exit_code == 2
    fmt = extra[1] if extra else "wav"
    assert f"names {suffix} files but the format is {fmt}" in result.stderr
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- 5. tracebacks


def test_an_unknown_device_is_a_usage_error(tmp_path: Path) -> None:
    path = noise(tmp_path / "a.wav")
    for command in (["separate", str(path), "-o", str(tmp_path / "o")], ["bench"], ["live", "--from-file", str(path)]):
        result = invoke(*command, "--device", "bogus", "-m", "/nope")
        assert result.exit_code == 2, (command, result.output)
        assert "unknown device 'bogus'" in result.stderr
    with pytest.raises(ValueError, match="unknown device 'bogus'"):
        Separator(device="bogus")


def test_stdout_to_a_full_device_is_one_line(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = noise(tmp_path / "a.wav", subtype="PCM_16")
    with path.open("rb") as stdin, open("/dev/full", "wb") as full:
        proc = tisdiss("separate", "-", "--stdout", "-m", str(tiny_checkpoint), stdin=stdin, stdout=full)
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert "stdin: cannot write standard output: No space left on device" in stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


# --------------------------------------------------------------------------- 6. an unusable cache


@contextlib.contextmanager
def small_file_system(path: Path, options: str) -> Iterator[Path]:
    """A 64 KiB tmpfs at ``path`` (``options``: ``ro`` for read-only, also against root); skips
    where mounting is not allowed, except for a read-only folder, which a mode gives a non-root user."""
    path.mkdir()
    if options == "ro" and os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    mount = ["mount", "-t", "tmpfs", "-o", f"{options},size=64k", "tmpfs", str(path)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("mounting a small file system needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("kind", ["read-only", "a file"])
def test_an_unusable_cache_falls_back_and_warns_once(
    kind: str, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = noise(tmp_path / "a.wav", seconds=0.3)
    with contextlib.ExitStack() as stack:
        if kind == "a file":
            cache = tmp_path / "cache"
            cache.write_text("not a folder")
        else:
            cache = stack.enter_context(small_file_system(tmp_path / "cache", "ro"))
        monkeypatch.setenv("TISDISS_CACHE_DIR", str(cache))
        fallback = tisdiss("separate", str(path), "-o", str(tmp_path / "out"), "--nre", "1", "--precision", "fp32")
        stderr = fallback.stderr.decode()
        assert fallback.returncode == 0, stderr
        assert "model tisdiss-small-8k" in fallback.stdout.decode()
        warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and f"cache {cache}" in warnings[0], stderr
        timed = tisdiss(
            "separate", str(path), "-o", str(tmp_path / "out2"), "-m", str(tiny_checkpoint), "--max-rtf", "100",
            "--precision", "fp32",
        )  # fmt: skip
        stderr = timed.stderr.decode()
        assert timed.returncode == 0, stderr
        warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and "measured again next time" in warnings[0], stderr
        assert (tmp_path / "out2" / "a_spk1.wav").is_file()


# --------------------------------------------------------------------------- 7. a full disk


@pytest.fixture()
def full_disk(tmp_path: Path) -> Iterator[Path]:
    with small_file_system(tmp_path / "full", "rw") as folder:
        yield folder


@pytest.mark.parametrize("extra", [[], ["--format", "flac"], ["stdin"]])
def test_a_full_disk_says_no_space_left(
    extra: list[str], tiny_checkpoint: Path, full_disk: Path, tmp_path: Path
) -> None:
    path = noise(tmp_path / "long.wav", seconds=10.0, subtype="PCM_16")
    out = full_disk / "o"
    overlap = ("--tracker", "overlap")  # speaker 1's file is written first (the tracker's spool: test_talkers.py)
    if extra == ["stdin"]:
        with path.open("rb") as stdin:
            proc = tisdiss("separate", "-", "-o", str(out), "-m", str(tiny_checkpoint), *overlap, stdin=stdin)
        name = "stdin"
    else:
        proc = tisdiss("separate", str(path), "-o", str(out), "-m", str(tiny_checkpoint), *extra, *overlap)
        name = "long"
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert f"cannot write {out / name}_spk1." in stderr and ": No space left on device" in stderr
    assert "System error" not in stderr and "Traceback" not in stderr
    assert list(full_disk.iterdir()) == []  # no part file, no empty folder


def test_a_file_size_limit_gives_the_real_reason(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Unprivileged stand-in for a full disk: writes beyond RLIMIT_FSIZE fail with EFBIG."""
    path = noise(tmp_path / "long.wav", seconds=10.0, subtype="PCM_16")

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    proc = tisdiss("separate", str(path), "-o", str(tmp_path / "o"), "-m", str(tiny_checkpoint), preexec_fn=limit)
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert f"cannot write {tmp_path / 'o' / 'long_spk1.wav'}: File too large" in stderr
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- 8. exit codes


def test_a_template_without_spk_is_a_usage_error_before_any_work(tmp_path: Path) -> None:
    path = noise(tmp_path / "a.wav")
    result = invoke("separate", str(path), "-o", str(tmp_path / "o"), "--filename", "{stem}.{ext}", "-m", "/nope")
    assert result.exit_code == 2
    assert "'{stem}.{ext}' has no {spk}" in result.stderr


def test_a_segment_longer_than_the_input_runs_it_whole(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = noise(tmp_path / "a.wav")
    for segment, out in (("1e9", "huge"), ("1", "whole")):
        result = invoke(
            "separate", str(path), "-o", str(tmp_path / out), "-m", str(tiny_checkpoint), "--segment", segment,
            "--precision", "fp32",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "huge").iterdir()) and names
    for name in names:
        np.testing.assert_array_equal(sf.read(tmp_path / "huge" / name)[0], sf.read(tmp_path / "whole" / name)[0])
    assert ChunkPlan.from_seconds(1e9, 0.25, RATE).num_chunks(4000) == 1
    with pytest.raises(ValueError, match="segment must be a finite number of seconds"):
        ChunkPlan.from_seconds(float("inf"), 0.25, RATE)


def test_export_to_an_unwritable_folder_is_a_usage_error(tiny_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = invoke("export", str(tiny_checkpoint), "-o", str(tmp_path / "file" / "m.onnx"))
    assert result.exit_code == 2, result.output
    assert "is a file, not a folder" in result.stderr


# --------------------------------------------------------------------------- 9. markup in help


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))


def _bracketed(text: str) -> list[str]:
    return re.findall(r"\S*\[[^\]\n]+\]\S*", text)


def test_every_help_text_keeps_its_brackets() -> None:
    root = typer.main.get_command(app)
    checked = 0
    for path, command in _commands(root):
        shown = " ".join(invoke(*path, "--help").stdout.split())
        texts = [command.help or "", command.epilog or ""]
        texts += [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            for bracketed in _bracketed(text):
                assert bracketed.replace("\\[", "[") in shown, (path, bracketed)
                checked += 1
    assert checked >= 6
    shown = " ".join(invoke("separate", "--help").stdout.split())
    assert "pip install 'tisdiss[av]'" in shown
    assert "[default: the model card's, else 1.5]" in shown
    export = " ".join(invoke("export", "--help").stdout.split())
    assert "[default: MODEL's name .onnx]" in export and "[default: a synthetic 2.5-s mixture]" in export
    assert "Capture rate [default: the model's]." in " ".join(invoke("live", "--help").stdout.split())


# --------------------------------------------------------------------------- 10. messages name real options


def test_export_onto_an_existing_file_names_overwrite(tiny_checkpoint: Path, tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    target.write_text("keep")
    result = invoke("export", str(tiny_checkpoint), "-o", str(target))
    assert result.exit_code == 1
    assert f"error: {target}: exists (use --overwrite to replace it)" in result.stderr
    assert target.read_text() == "keep"


def test_import_under_a_taken_name_names_force(tiny_checkpoint: Path) -> None:
    assert invoke("models", "import", str(tiny_checkpoint), "--name", "mine").exit_code == 0
    result = invoke("models", "import", str(tiny_checkpoint), "--name", "mine")
    assert result.exit_code == 1
    assert "a model named 'mine' is already imported; use --force to replace it" in result.stderr


def test_clipping_warning_names_float(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = noise(tmp_path / "loud.wav", peak=40.0)
    result = invoke("separate", str(path), "-o", str(tmp_path / "o"), "-m", str(tiny_checkpoint))
    assert result.exit_code == 0
    assert re.search(
        r"loud\.wav: warning: \d+ samples clipped at full scale \(use --float to keep them\)", result.stderr
    )


def test_an_empty_template_says_so(tmp_path: Path) -> None:
    path = noise(tmp_path / "a.wav")
    result = invoke("separate", str(path), "-o", str(tmp_path / "o"), "--filename", "", "-m", "/nope")
    assert result.exit_code == 2
    assert "the template is empty; use e.g. '{stem}_spk{spk}.{ext}'" in result.stderr


def test_train_into_a_file_says_it_is_a_file(tmp_path: Path, corpus: Path) -> None:
    run = tmp_path / "run"
    run.write_text("x")
    result = invoke("train", "--quiet", "--recipe", "tiny", "--data", str(corpus), "--run", str(run))
    assert result.exit_code == 2
    assert f"cannot write into {run}: it is a file, not a folder" in result.stderr
    assert run.read_text() == "x"


def test_remove_of_a_model_never_downloaded_removed_nothing() -> None:
    assert invoke("models", "download", "wsj0-2mix").exit_code == 1  # offline: leaves its lock file
    result = invoke("models", "remove", "wsj0-2mix")
    assert result.exit_code == 0
    assert result.stdout.strip() == "wsj0-2mix: nothing cached"


# --------------------------------------------------------------------------- 11. one-chunk latency


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_one_chunk_stream_reports_its_latency(tiny_checkpoint: Path) -> None:
    separator = Separator(tiny_checkpoint, device="cpu", precision="fp32", segment=1.0)
    clock = Clock()
    stream = SeparationStream(
        separator._network, Depth(1, 1), separator.plan, 2, RATE, RATE, clock=clock
    )  # the only constructor that takes a clock
    assert stream.feed(np.zeros(2000, np.float32) + 0.1).shape == (2, 0)  # shorter than a segment: held
    clock.now = 0.75
    assert stream.close().shape == (2, 2000)
    assert stream.stats.latency_max == pytest.approx(0.75) and stream.stats.latency_mean == pytest.approx(0.75)


def test_stdin_summary_of_a_one_chunk_input_has_a_latency(tiny_checkpoint: Path, tmp_path: Path) -> None:
    data = noise(tmp_path / "a.wav", subtype="PCM_16").read_bytes()
    result = invoke("separate", "-", "-o", str(tmp_path / "o"), "-m", str(tiny_checkpoint), "--json", input=data)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["chunks"] == 1 and summary["latency_max_seconds"] > 0 and summary["latency_mean_seconds"] > 0


# --------------------------------------------------------------------------- 12. no empty folders


@pytest.mark.parametrize("case", ["nan", "channel"])
def test_a_failing_input_leaves_no_folder(case: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    if case == "nan":
        path = noise(src / "sub" / "bad.wav", seconds=1.0)
        x, _ = sf.read(path)
        x[6000] = np.nan
        sf.write(path, x, RATE, subtype="FLOAT")
        args = [str(src), "-r"]
    else:
        noise(src / "sub" / "bad.wav")
        args = [str(src), "-r", "--channel", "3"]
    out = tmp_path / "out"
    result = invoke("separate", *args, "-o", str(out), "-m", str(tiny_checkpoint))
    assert result.exit_code == 1
    assert str(src / "sub" / "bad.wav") in result.stderr
    assert not out.exists()


# --------------------------------------------------------------------------- 13. concurrent runs


def test_a_run_never_replaces_outputs_another_run_wrote_meanwhile(tiny_checkpoint: Path, tmp_path: Path) -> None:
    separator = Separator(tiny_checkpoint, device="cpu", precision="fp32")
    path = noise(tmp_path / "a.wav")
    out = tmp_path / "out"
    theirs = out / "a_spk1.wav"

    def other_run_commits(done: int, total: int) -> None:
        theirs.parent.mkdir(parents=True, exist_ok=True)  # as the other run does
        theirs.write_bytes(b"the other run's output")

    with pytest.raises(OutputExistsError, match="a_spk1.wav: exists"):
        separator.process_file(path, out, progress=other_run_commits)
    assert theirs.read_bytes() == b"the other run's output"
    assert sorted(p.name for p in out.iterdir()) == ["a_spk1.wav"]  # no part files, no a_spk2.wav from this run


def test_concurrent_runs_share_the_files_without_replacing_any(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    for k in range(4):
        noise(src / f"f{k}.wav", seconds=2.0)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "tisdiss_cli", "separate", str(src), "-o", str(out), "-m", str(tiny_checkpoint)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen([*args, "--json"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    summaries = [json.loads(run.communicate(timeout=300)[0]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    written = [p for s in summaries for p in s["outputs"]]
    assert sorted(written) == sorted(str(out / f"f{k}_spk{j}.wav") for k in range(4) for j in (1, 2))  # each once
    assert sum(s["files"] + s["skipped"] for s in summaries) == 8


def test_the_exclusive_commit_refuses_an_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "x.wav"
    writer = audio.AtomicWriter(target, RATE, length=10)
    writer.write(np.zeros(10, np.float32))
    target.write_bytes(b"theirs")
    with pytest.raises(FileExistsError, match="x.wav: exists"):
        writer.commit()
    assert target.read_bytes() == b"theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]
    replacing = audio.AtomicWriter(target, RATE, length=10, overwrite=True)
    replacing.write(np.zeros(10, np.float32))
    replacing.commit()
    assert sf.info(str(target)).frames == 10


# --------------------------------------------------------------------------- 14. README and docs figures


def _card_table(card: str, column: str) -> list[dict[str, str]]:
    """The rows of the card's first table with a ``column`` header, as {header: cell}."""
    lines = card.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|") and f"| {column} |" in line)
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:  # after the |---| line
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, [cell.strip() for cell in line.strip("|").split("|")], strict=True)))
    return rows


def test_readme_figures_of_the_bundled_model_are_the_cards() -> None:
    readme = (REPO / "README.md").read_text()
    speed_page = (REPO / "docs" / "speed.md").read_text()  # the speed figures, with their command
    card = (REPO / "models" / "cards" / "tisdiss-small-8k.md").read_text()
    entry = tomllib.loads((REPO / "models" / "registry.toml").read_text())["models"]["tisdiss-small-8k"]
    models = readme.split("## Models", 1)[1].split("\n## ", 1)[0]
    assert f"{entry['params'] / 1e6:.1f} M parameters, {entry['size'] / 1e6:.1f} MB" in models
    best = max(entry["quality"]["by_n_re"].values())
    assert f"{best:.2f} dB SI-SNRi on dev2mix" in models
    speed = _card_table(card, "RTF 1 min")
    assert [row["preset"] for row in speed] == ["fast", "balanced", "best"]
    rtfs = " / ".join(row["RTF 1 min"] for row in speed)
    paragraph = next(p for p in speed_page.split("\n\n") if "1-minute 16 kHz recording" in p)
    assert f"RTF {rtfs}" in paragraph, rtfs
    peak = max(int(row["peak RSS"].removesuffix(" MB")) for row in speed)
    assert f"peak RSS of at most {peak} MB" in paragraph
    assert "benchmarks/separate_bench.py --minutes 1 --model tisdiss-small-8k --threads 2" in paragraph


# --------------------------------------------------------------------------- the robustness matrix's findings
# (benchmarks/robustness_matrix.py, issue 24): one test each


def test_feed_or_close_after_close_is_a_clear_error(tiny_checkpoint: Path) -> None:
    stream = Separator(tiny_checkpoint, device="cpu", precision="fp32").stream(RATE)
    stream.feed(np.zeros(800, np.float32))
    stream.close()
    with pytest.raises(ValueError, match=r"feed\(\) on a closed stream; start another with Separator.stream\(\)"):
        stream.feed(np.zeros(800, np.float32))
    with pytest.raises(ValueError, match=r"close\(\) on a closed stream"):
        stream.close()


def _testset(root: Path) -> Path:
    for name in ("utt0", "utt1"):
        for sub, peak in (("s1", 0.3), ("s2", 0.2)):
            noise(root / sub / f"{name}.wav", peak=peak)
        s1, s2 = (sf.read(root / sub / f"{name}.wav")[0] for sub in ("s1", "s2"))
        (root / "mix").mkdir(exist_ok=True)
        sf.write(root / "mix" / f"{name}.wav", s1 + s2, RATE, subtype="FLOAT")
    return root


@pytest.mark.parametrize("part", ["mix", "s2"])
def test_eval_of_a_nan_file_names_it_and_fails(part: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    testset = _testset(tmp_path / "set")
    bad = testset / part / "utt1.wav"
    x, _ = sf.read(bad)
    x[2000] = np.nan
    sf.write(bad, x, RATE, subtype="FLOAT")
    report = tmp_path / "r.json"
    result = invoke("eval", str(testset), "-m", str(tiny_checkpoint), "--nre", "1", "--json", str(report))
    assert result.exit_code == 1, result.output
    assert f"error: {bad}: NaN or Inf samples near 0.25 s" in " ".join(result.stderr.split())
    assert "nan" not in result.stdout and not report.exists()  # no score computed from it


def _header_note(case: str, frames: int) -> str | None:
    """The warning for a 0.5-s 8-kHz file whose header is ``case`` (tests/headers.py)."""
    declared = declared_frames(case, frames)
    if case == "under":
        return (
            f"the header declares {declared} frames (0:00.12) but the file holds {frames} (0:00.50): "
            "read to the end of the file"
        )
    if case == "over":
        return f"file is truncated: read {frames} of the {declared} frames its header declares (0:00.50 of 0:01.00)"
    return None  # no length declared: to the end, as on a stream


@pytest.mark.parametrize("case", HEADER_CASES)
def test_a_wav_header_that_misstates_its_length_is_read_to_the_end_by_separate_and_the_api(
    case: str, tiny_checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x, _ = sf.read(noise(tmp_path / "clean.wav"), dtype="float32")
    path = write_misstated(tmp_path / "in" / "rec.wav", x, RATE, case)
    before = snapshot(tmp_path / "in")
    note = _header_note(case, len(x))
    result = invoke("separate", str(path), "-o", str(tmp_path / "out"), "-m", str(tiny_checkpoint))
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "out").glob("rec_spk*.wav"))  # one per talker found
    assert written and all(sf.info(p).frames == len(x) for p in written)  # to the end of the file
    assert [line for line in result.stderr.splitlines() if "warning" in line] == (
        [f"{path}: warning: {note}"] if note else []
    )
    separator = Separator(tiny_checkpoint, device="cpu", precision="fp32")
    with caplog.at_level("WARNING", logger="tisdiss_cli"):
        outputs = separator.separate_file(path, tmp_path / "api")
        result_api = separator.process_file(path, tmp_path / "api2")
    assert len(outputs) == len(result_api.outputs) == len(written)
    assert all(sf.info(p).frames == len(x) for p in [*outputs, *result_api.outputs])
    assert [r.getMessage() for r in caplog.records] == ([f"{path}: {note}"] if note else [])
    assert result_api.warnings == ([note] if note else [])
    assert snapshot(tmp_path / "in") == before  # the input is read, never repaired


@pytest.mark.parametrize("case", HEADER_CASES)
def test_a_wav_header_that_misstates_its_length_is_read_to_the_end_by_eval(
    case: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    testset = _testset(tmp_path / "set")
    misstated = sorted(testset.rglob("utt1.wav"))  # every file of one utterance, so that their lengths agree
    for path in misstated:
        write_misstated(path, sf.read(path, dtype="float32")[0], RATE, case)
    before = snapshot(testset)
    report = tmp_path / "r.json"
    run = tisdiss("eval", str(testset), "-m", str(tiny_checkpoint), "--nre", "1", "--json", str(report))
    err = run.stderr.decode()
    assert run.returncode == 0, err
    assert json.loads(report.read_text())["audio_seconds"] == pytest.approx(1.0)  # both mixtures whole
    note = _header_note(case, RATE // 2)
    lines = [line for line in err.splitlines() if "utt1.wav" in line]
    assert sorted(lines) == sorted(f"warning: {p}: {note}" for p in misstated if note)
    assert snapshot(testset) == before


def test_an_infinite_segment_is_a_usage_error_before_any_work(tmp_path: Path) -> None:
    path = noise(tmp_path / "a.wav")
    for command in (["separate", str(path), "-o", str(tmp_path / "o")], ["live", "--from-file", str(path)]):
        for value in ("inf", "-inf", "nan"):
            result = invoke(*command, "--segment", value, "-m", "/nope")  # no model: nothing is loaded
            assert result.exit_code == 2, (command, value, result.output)
            assert "Invalid value for '--segment'" in result.stderr, result.stderr
    result = invoke("separate", str(path), "-o", str(tmp_path / "o"), "--segment", "inf", "-m", "/nope")
    assert "a finite number of seconds" in result.stderr
    assert not (tmp_path / "o").exists()


def test_an_unknown_preset_is_the_same_usage_error_for_every_command(tmp_path: Path) -> None:
    path = noise(tmp_path / "a.wav")
    commands = (
        ["separate", str(path), "-o", str(tmp_path / "o"), "-m", "/nope"],
        ["export", "/nope", "-o", str(tmp_path / "m.onnx")],
        ["live", "--from-file", str(path), "-m", "/nope"],
    )
    for command in commands:
        result = invoke(*command, "--preset", "turbo")
        assert result.exit_code == 2, (command, result.output)
        message = " ".join(result.stderr.replace("│", " ").split())
        assert "Invalid value for '-p' / '--preset': 'turbo' is not one of 'fast', 'balanced', 'best'." in message
    assert not (tmp_path / "m.onnx").exists()


def test_a_config_file_that_is_not_toml_is_named(corpus: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("this is = = not toml")
    args = ["train", "--quiet", "--data", str(corpus), "--run", str(tmp_path / "r")]
    result = invoke(*args, "--config", str(config))
    assert result.exit_code == 2
    assert f"error: {config}: not valid TOML (" in result.stderr
    missing = invoke(*args, "--config", str(tmp_path / "gone.toml"))
    assert missing.exit_code == 2
    assert f"error: {tmp_path / 'gone.toml'}: no such file" in missing.stderr
    assert not (tmp_path / "r").exists()


def _nan_wav(path: Path) -> Path:
    noise(path)
    x, _ = sf.read(path)
    x[2000] = np.nan
    sf.write(path, x, RATE, subtype="FLOAT")
    return path


def test_live_from_a_nan_file_names_the_file(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = _nan_wav(tmp_path / "nan.wav")
    out = tmp_path / "o"
    result = invoke(
        "live", "-m", str(tiny_checkpoint), "--nre", "1", "-q", "--from-file", str(path), "-o", str(out), "--name", "t"
    )
    assert result.exit_code == 1, result.output
    assert f"{path}: NaN or Inf samples near 0.25 s" in " ".join(result.stderr.split())
    assert not out.exists() or not any(out.iterdir())


def test_export_check_input_with_nan_names_the_file(tiny_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    path = _nan_wav(tmp_path / "nan.wav")
    target = tmp_path / "m.onnx"
    result = invoke("export", str(tiny_checkpoint), "-o", str(target), "--check-input", str(path))
    assert result.exit_code == 1, result.output
    assert f"error: {path}: NaN or Inf samples near 0.25 s" in " ".join(result.stderr.split())
    assert not target.exists()


def test_process_file_says_what_is_wrong_with_a_folder_or_garbage(tiny_checkpoint: Path, tmp_path: Path) -> None:
    separator = Separator(tiny_checkpoint, device="cpu", precision="fp32")
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    with pytest.raises(audio.AudioError, match=rf"^{re.escape(str(folder))}: a folder, not an audio file$"):
        separator.process_file(folder, tmp_path / "o")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(audio.AudioError) as caught:  # libsndfile calls it "not a regular file (possibly a pipe?)"
        separator.process_file(garbage, tmp_path / "o")
    assert str(caught.value) == f"{garbage}: not a readable audio file"
    assert not (tmp_path / "o").exists()


def test_arrays_and_streams_take_the_same_samples_and_rates(tiny_checkpoint: Path) -> None:
    separator = Separator(tiny_checkpoint, device="cpu", precision="fp32", speakers=2)  # a stream's number
    x = np.random.default_rng(2).standard_normal(2400) * 0.2
    pcm = np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8)  # 8-bit WAV PCM: unsigned, centred on 128
    whole = separator.separate(pcm, RATE)
    np.testing.assert_array_equal(whole, separator.separate((pcm.astype(np.float32) - 128) / 128, RATE))
    stream = separator.stream(RATE)
    streamed = np.concatenate([stream.feed(b) for b in np.array_split(pcm, 3)] + [stream.close()], axis=1)
    np.testing.assert_array_equal(streamed, whole)
    for rate in (RATE, float(RATE), np.float64(RATE), np.int32(RATE)):  # a whole number of Hz, of any type
        np.testing.assert_array_equal(separator.separate(x, rate), separator.separate(x, RATE))
        assert separator.stream(rate).sample_rate == RATE
    for rate in (8000.5, float("nan"), 0, -8000, "8000", True):
        with pytest.raises(ValueError, match="sample_rate must be a positive whole number of Hz"):
            separator.separate(x, rate)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="sample_rate must be a positive whole number of Hz"):
            separator.stream(rate)  # type: ignore[arg-type]
    page = " ".join((REPO / "docs" / "separating.md").read_text().split())  # its "From Python"
    assert "unsigned 8-bit PCM (centred on 128, as 8-bit WAV stores it)" in page
    assert "The sample rate is a positive whole number of Hz" in page


def test_eval_depth_list_errors_name_the_option(tiny_checkpoint: Path, tmp_path: Path) -> None:
    testset = _testset(tmp_path / "set")
    for value, reason in (("x-y", "bad depth list 'x-y'"), ("33", "N_re 33 in '33' is beyond the limit of 32")):
        result = invoke("eval", str(testset), "-m", str(tiny_checkpoint), "--nre", value)
        assert result.exit_code == 2
        message = " ".join(result.stderr.replace("│", " ").split())
        assert f"Invalid value for --nre: {reason}" in message, message
