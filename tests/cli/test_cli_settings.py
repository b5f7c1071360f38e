"""`tisdiss separate` / `eval`: settings that cannot be meant, usage errors, bad audio, full disks, progress."""

from __future__ import annotations

import errno
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from tisdiss_cli.cli import _register_commands, app

_register_commands()
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "400"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture()
def mixture(tmp_path: Path) -> Path:
    path = tmp_path / "in.wav"
    sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32), 8000, subtype="PCM_16")
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# --------------------------------------------------------------------------- audio


def test_truncated_wav_warns_with_frames_read_and_declared(
    mixture: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    data = mixture.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 8000])  # header + 4000 of its 8000 frames
    code, _, err = invoke("separate", str(cut), "-o", str(tmp_path / "o"), "-m", str(tiny_checkpoint))
    assert code == 0
    [line] = [line for line in err.splitlines() if "truncated" in line]
    assert line == (
        f"{cut}: warning: file is truncated: read 4000 of the 8000 frames its header declares (0:00.50 of 0:01.00)"
    )
    code, _, err = invoke("separate", str(mixture), "-o", str(tmp_path / "o"), "-m", str(tiny_checkpoint))
    assert code == 0 and "warning" not in err  # an intact file says nothing


# --------------------------------------------------------------------------- depth and templates


def test_nre_beyond_the_card_warns_and_absurd_values_are_refused(
    mixture: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    base = ("separate", str(mixture), "-m", str(tiny_checkpoint))
    code, _, err = invoke(*base, "-o", str(tmp_path / "a"), "--nre", "5")
    assert code == 0
    assert "warning: --nre 5 is beyond the depths documented for" in err and "(up to N_re = 3)" in err
    code, out, err = invoke(*base, "-o", str(tmp_path / "b"), "--nre", "1000")
    assert code == 2 and "Invalid value for '--nre'" in err and "32" in err  # the limit, in Typer's words
    assert not (tmp_path / "b").exists()
    code, _, err = invoke(*base, "-o", str(tmp_path / "c"), "--nre", "3")
    assert code == 0 and "warning" not in err


def test_max_rtf_that_no_depth_meets_says_so_and_which_depth_runs(
    mixture: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    code, out, err = invoke(
        "separate", str(mixture), "-o", str(tmp_path / "o"), "-m", str(tiny_checkpoint), "--max-rtf", "1e-9"
    )
    assert code == 0
    assert re.search(r"warning: no depth runs at RTF <= 1e-09 on cpu-\dt \(the fastest, n_re=\d+, measured RTF", err)
    assert err.rstrip().endswith("using n_re=0") and "n_re=0" in out


@pytest.mark.parametrize(
    "template", ["../../x_{stem}_{spk}.{ext}", "/abs/x_{stem}_{spk}.{ext}", "a/../../{stem}{spk}.{ext}"]
)
def test_filename_templates_leaving_the_output_folder_are_refused(
    template: str, mixture: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "deep" / "out"
    before = leftovers(tmp_path)
    code, _, err = invoke("separate", str(mixture), "-o", str(out), "-m", str(tiny_checkpoint), "--filename", template)
    assert code == 2 and "writes outside the output folder" in err
    assert leftovers(tmp_path) == before
    code, _, _ = invoke(
        "separate",
        str(mixture),
        "-o",
        str(out),
        "-m",
        str(tiny_checkpoint),
        "--filename",
        "{stem}/../{stem}_{spk}.{ext}",
    )
    assert code == 0 and (out / "in_1.wav").exists()


# --------------------------------------------------------------------------- usage errors


def test_preset_is_a_choice_listed_in_help(mixture: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    code, _, err = invoke(
        "separate", str(mixture), "-o", str(tmp_path / "o"), "-m", str(tiny_checkpoint), "--preset", "bogus"
    )
    assert code == 2 and "'bogus' is not one of 'fast', 'balanced', 'best'" in err
    assert not (tmp_path / "o").exists()
    code, out, _ = invoke("separate", "--help")
    assert code == 0 and "fast|balanced|best" in out


@pytest.mark.parametrize(
    "command",
    [
        (),
        ("separate",),
        ("eval",),
        ("train",),
        ("bench",),
        ("models",),
        *(("models", c) for c in ("list", "info", "download", "import", "remove", "path")),
    ],
)
def test_help_shows_what_to_type_not_python_types(command: tuple[str, ...]) -> None:
    code, out, _ = invoke(*command, "--help")
    assert code == 0 and "Usage:" in out
    assert not re.search(r"<(bool|str|int|float|path|list)", out), out


def test_an_unusable_output_folder_is_reported_once_before_any_work(mixture: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    inputs = [str(mixture)] * 3
    # -m names no model: the folder is checked before any model is loaded or file read
    code, out, err = invoke("separate", *inputs, "-o", str(blocker), "-m", "no-such-model")
    assert code == 2 and err.count("cannot write into") == 1 and "it is a file, not a folder" in err
    assert "in.wav" not in err and "Errno" not in err and "no-such-model" not in err
    code, _, err = invoke("separate", *inputs, "-o", str(blocker / "sub"), "-m", "no-such-model")
    assert code == 2 and f"{blocker} is a file, not a folder" in err
    assert blocker.read_text() == "a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_reported_once(mixture: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, _, err = invoke("separate", str(mixture), str(mixture), "-o", str(locked), "-m", "no-such-model")
    finally:
        locked.chmod(0o755)
    assert code == 2 and err.count("permission denied") == 1


# --------------------------------------------------------------------------- a full disk


def _enospc(*_: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_outputs_leaves_nothing_and_says_which_file(
    mixture: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = sf.SoundFile.write
    calls = {"n": 0}

    def fill_up(self: sf.SoundFile, data: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] > 1:  # the first block lands, then the disk is full
            _enospc()
        real_write(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", fill_up)
    out = tmp_path / "o"
    code, _, err = invoke("separate", str(mixture), "-o", str(out), "-m", str(tiny_checkpoint))
    assert code == 1
    assert re.fullmatch(
        rf"{re.escape(str(mixture))}: cannot write {re.escape(str(out))}/in_spk[12]\.wav: No space left on device\n",
        err,
    ), err
    assert leftovers(out) == []


def test_disk_full_while_writing_an_eval_report(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.evaluation.test_eval import write_set

    real = Path.write_text

    def half_then_full(self: Path, text: str, *args: object, **kwargs: object) -> int:
        if self.name.startswith(".scores.json."):
            real(self, text[: len(text) // 2])
            _enospc()
        return real(self, text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", half_then_full)
    report = tmp_path / "reports" / "scores.json"
    args = ["eval", str(write_set(tmp_path / "set")), "-m", str(tiny_checkpoint), "--no-sdr", "--rtf-utterances", "0"]
    code, _, err = invoke(*args, "--json", str(report))
    assert code == 1 and f"error: cannot write {report}: No space left on device" in err
    assert leftovers(report.parent) == []


# --------------------------------------------------------------------------- progress


def test_progress_shows_audio_time_real_time_factor_and_eta() -> None:
    from tisdiss_cli.cli.progress import AudioTimeColumn, RealTimeFactorColumn, clock

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, color_system=None)
    with Progress(AudioTimeColumn(), RealTimeFactorColumn(), console=console, auto_refresh=False) as bar:
        task = bar.add_task("x", total=600.0)
        bar.update(task, completed=3.0)
        bar.refresh()
        elapsed = bar.tasks[0].elapsed
    shown = buffer.getvalue()
    assert "0:03 / 10:00" in shown and "RTF" in shown and "30000/4800000" not in shown
    assert elapsed is not None
    assert clock(3) == "0:03" and clock(600) == "10:00" and clock(3725) == "1:02:05"


def test_eval_depth_limits_and_unusable_report_paths(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from tests.evaluation.test_eval import write_set

    base = ("eval", str(write_set(tmp_path / "set")), "-m", str(tiny_checkpoint), "--no-sdr", "--rtf-utterances", "0")
    code, _, err = invoke(*base, "--nre", "1-1000")
    assert code == 2 and "N_re 1000 in '1-1000' is beyond the limit of 32" in err
    code, _, err = invoke(*base, "--nre", "4")
    assert code == 0 and "warning: --nre 4 is beyond the depths documented for" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, err = invoke(*base, "--json", str(blocker / "scores.json"))
    assert code == 2 and f"cannot write into {blocker}: it is a file, not a folder" in err and "SI-SNRi" not in out
