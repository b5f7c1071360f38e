"""A "fresh user" robustness matrix (issue 24): every command and the Python API against bad input.

Each command-line case runs ``python -m tisdiss_cli ...`` in a fresh process (``--threads 1``,
``OMP_NUM_THREADS=1``, a timeout) inside a temporary folder, offline except for a local
127.0.0.1 file server. Per case it records the expected and actual exit code (0 success, 1 a
runtime or file error, 2 a usage error), whether "Traceback" appears on stdout or stderr,
whether a file that existed before the run (inputs, models, a finished training run) changed,
whether part files (``.*.part``, ``*.tmp``), zero-byte or unreadable outputs were left, and
whether the outputs of a successful run are readable, finite, not constant and of the expected
count and length ("silent corruption"). For errors it checks that one line names the file or
the problem. The Python API (``tisdiss_cli.Separator``: ``separate``, ``process_file``,
``stream``) runs in one child process with the same checks.

    python benchmarks/robustness_matrix.py [--jobs 2] [--only SUBSTRING] [--out results.json] [--keep]

Most cases use a tiny random model (as ``tests/conftest.py``'s ``tiny_checkpoint``); a few use the
bundled ``tisdiss-small-8k``. Where run as root, a 64 KiB tmpfs stands for a full disk and a
read-only tmpfs for a read-only folder (mounted and unmounted here); otherwise the full-disk
cases are skipped with a note and ``chmod 555`` makes a read-only folder. The last line is
``N cases: T tracebacks, W wrong exit codes, C silent corruptions, P partial files, I inputs
modified``; the exit code is 1 when any of these counts is non-zero.

One case per check: 17 near-duplicates of the first version were dropped to keep a run under 10
minutes (each case is a fresh process, about 3 s of start-up). What covers them: 32-bit PCM and
double WAV input (24-bit PCM, float), 11.025 and 44.1 kHz input (7 and 96 kHz; 44.1 kHz in
sep-format-opus-44k), -inf and garbage FLAC (inf, garbage WAV), text on stdin (garbage on stdin),
--segment -1 (0.01), --nre -1 and --nsep 33 (--nsep 0, --nre 33: the same two bounds), the
default preset and precision (every other case), a .flac template with WAV output (the .mp3 one),
bench without --json (bench-json), --nre -1 for bench (a,b), an empty file for live (garbage),
and the bundled model's default run (its best-flac, example and stdin cases).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
RATE = 8000  # the tiny model's and the bundled model's rate
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus"}
PART_PATTERN = re.compile(r"(^\..*\.part$)|(\.part$)|(\.tmp$)")
ERROR_TYPES_OK = ("ValueError", "OSError")  # plus any exception class defined in tisdiss_cli


# --------------------------------------------------------------------------- case description


@dataclass
class Out:
    """An output a successful run must leave: path relative to the case folder."""

    path: str
    frames: int | None = None  # exact length, or None to skip the length check
    tol: int = 0  # allowed length difference (resampling rounds)
    rate: int | None = None
    channels: int | None = None
    kind: str = "audio"  # audio | wavbytes (a WAV stream from --stdout) | json | file
    allow_constant: bool = False  # a silent input separates into silence
    allow_clipped: bool = False  # an input far beyond full scale saturates


@dataclass
class Case:
    name: str
    argv: list[str]  # after ``python -m tisdiss_cli``
    expect: tuple[int, ...]
    folder: Path
    outputs: list[Out] = field(default_factory=list)
    out_dir: str | None = "out"  # where no audio beyond ``outputs`` may appear (None: not checked)
    needle: str | None = None  # an error's message must hold this (a path, an option, a reason)
    message_on: str = "stderr"  # where the error's message is: stderr, or stdout (help for a bare command)
    stdin: Path | None = None
    stdin_bytes: bytes | None = None
    stdout: str = "pipe"  # pipe | file (saved as stdout.bin) | full (/dev/full)
    save_stdout: bool = False  # with pipe: keep the bytes as stdout.bin
    env: dict[str, str] = field(default_factory=dict)
    watch: list[Path] = field(default_factory=list)  # besides argv paths: files that must not change
    mutable: list[Path] = field(default_factory=list)  # files allowed to change (earlier outputs)
    scan: list[Path] = field(default_factory=list)  # besides the case folder: where part files may be left
    stdout_check: Callable[[str], str | None] | None = None
    stderr_check: Callable[[str], str | None] | None = None
    fsize_limit: int | None = None
    timeout: float = 180.0
    skip: str | None = None
    note: str = ""


@dataclass
class Result:
    name: str
    kind: str  # cli | api
    command: str
    expect: list[int]
    actual: int | None
    seconds: float
    traceback: bool = False
    wrong_exit: bool = False
    corruption: str | None = None
    partial: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    message: str | None = None  # a problem with the error message
    skipped: str | None = None
    note: str = ""
    stderr_tail: str = ""


# --------------------------------------------------------------------------- audio helpers


def mixture(seconds: float, rate: int = RATE, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Two voiced synthetic talkers plus a little noise, peak 0.5: [frames, channels] float64."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * rate)))
    t = np.arange(n) / rate
    a = sum(np.sin(2 * np.pi * 120 * h * t) / h for h in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    b = sum(np.sin(2 * np.pi * 210 * h * t) / h for h in range(1, 6)) * (0.6 + 0.4 * np.cos(2 * np.pi * 2 * t))
    x = a + b + 0.05 * rng.standard_normal(n)
    x = x / (np.abs(x).max() or 1.0) * 0.5
    cols = [np.roll(x, 7 * c) * (1.0 - 0.05 * c % 0.5) for c in range(channels)]
    return np.stack(cols, axis=1)


def write(path: Path, data: np.ndarray, rate: int = RATE, subtype: str | None = None, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype=subtype, format=fmt)
    return path


def wav_bytes_info(data: bytes) -> tuple[np.ndarray, int]:
    """Decode a RIFF/WAVE stream as --stdout writes it (the data size may read 0xFFFFFFFF)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE stream")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if tag == b"fmt ":
            fmt = struct.unpack("<HHIIHH", data[body : body + 16])
            if fmt[0] == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
                fmt = (struct.unpack("<H", data[body + 24 : body + 26])[0], *fmt[1:])
        elif tag == b"data":
            if fmt is None:
                raise ValueError("data before fmt")
            code, channels, rate, _, _, bits = fmt
            payload = data[body:] if size in (0, 0xFFFFFFFF) else data[body : body + size]
            width = bits // 8
            payload = payload[: len(payload) // (width * channels) * width * channels]
            if bits == 32 and code == 3:
                x = np.frombuffer(payload, "<f4").astype(np.float64)
            elif bits == 24:
                raw = np.frombuffer(payload, np.uint8).reshape(-1, 3)
                ints = raw[:, 0].astype(np.int32) | raw[:, 1].astype(np.int32) << 8 | raw[:, 2].astype(np.int32) << 16
                ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
                x = ints / float(1 << 23)
            elif bits == 16:
                x = np.frombuffer(payload, "<i2") / 32768.0
            elif bits == 32:
                x = np.frombuffer(payload, "<i4") / 2.0**31
            else:
                raise ValueError(f"{bits}-bit samples")
            return x.reshape(-1, channels), rate
        pos = body + size + (size & 1)
    raise ValueError("no data chunk")


HEADER_CASES = ("under", "over", "zero")  # a WAV header that declares less audio than follows, more, none
# What separate, eval and the API say of each (3 s at 8 kHz); a header that declares no length says nothing.
HEADER_NOTES = {
    "under": "the header declares 6000 frames (0:00.75) but the file holds 24000 (0:03.00): read to the end"
    " of the file",
    "over": "file is truncated: read 24000 of the 48000 frames its header declares (0:03.00 of 0:06.00)",
    "zero": None,
}


def misstate(path: Path, case: str) -> Path:
    """Rewrite the sizes of a WAV libsndfile wrote as a crashed recorder leaves them (issue 42): its
    data chunk declaring a quarter of its audio ("under"), twice it ("over"), or 0 ("zero")."""
    raw = bytearray(path.read_bytes())
    at = raw.index(b"data") + 4
    held = struct.unpack("<I", raw[at : at + 4])[0]
    size = {"under": held // 4, "over": 2 * held, "zero": 0}[case]
    raw[at : at + 4] = struct.pack("<I", size)
    raw[4:8] = struct.pack("<I", at + 4 + size - 8 if size else 0)
    path.write_bytes(bytes(raw))
    return path


def judge_audio(x: np.ndarray, rate: int, spec: Out) -> str | None:
    """What is wrong with one decoded output ([frames, channels]), or None."""
    if spec.rate is not None and rate != spec.rate:
        return f"rate {rate}, expected {spec.rate}"
    if spec.channels is not None and x.shape[1] != spec.channels:
        return f"{x.shape[1]} channels, expected {spec.channels}"
    if spec.frames is not None and abs(len(x) - spec.frames) > spec.tol:
        return f"{len(x)} frames, expected {spec.frames}"
    if not np.isfinite(x).all():
        return "non-finite samples"
    if len(x) > 1 and not spec.allow_constant and float(np.ptp(x)) == 0.0:
        return f"constant output ({x.flat[0]:g})"
    if len(x) > 32 and not spec.allow_clipped and float(np.mean(np.abs(np.abs(x) - 1.0) < 1e-3)) > 0.5:
        return "mostly saturated at full scale"
    return None


def check_output(folder: Path, spec: Out) -> str | None:
    path = folder / spec.path
    if not path.is_file():
        return f"{spec.path} missing"
    if path.stat().st_size == 0:
        return f"{spec.path} is empty"
    try:
        if spec.kind == "json":
            text = path.read_text()
            json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"{c} in JSON")))
            return None
        if spec.kind == "file":
            return None
        if spec.kind == "wavbytes":
            x, rate = wav_bytes_info(path.read_bytes())
        else:
            x, rate = sf.read(path, dtype="float64", always_2d=True)
    except Exception as exc:  # any failure to read is the finding
        return f"{spec.path} unreadable: {type(exc).__name__}: {exc}"
    problem = judge_audio(x, rate, spec)
    return None if problem is None else f"{spec.path}: {problem}"


# --------------------------------------------------------------------------- file-system snapshots


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(paths: list[Path]) -> dict[Path, str]:
    found: dict[Path, str] = {}
    for p in paths:
        with contextlib.suppress(OSError):
            if p.is_file():
                found[p] = file_hash(p)
            elif p.is_dir():
                for q in p.rglob("*"):
                    with contextlib.suppress(OSError):
                        if q.is_file() and not q.is_symlink():
                            found[q] = file_hash(q)
    return found


def listing(folders: list[Path]) -> tuple[dict[Path, str], set[Path]]:
    """Files (with hashes) and folders under ``folders``."""
    dirs: set[Path] = set()
    for f in folders:
        with contextlib.suppress(OSError):
            dirs.update(q for q in f.rglob("*") if q.is_dir())
    return snapshot(folders), dirs


def is_part_file(path: Path) -> bool:
    return bool(PART_PATTERN.search(path.name))


# --------------------------------------------------------------------------- running one CLI case


class Matrix:
    """Builds the inputs, the models and the cases inside ``root``."""

    def __init__(self, root: Path, jobs: int) -> None:
        self.root = root
        self.jobs = jobs
        self.inputs = root / "inputs"
        self.cases_dir = root / "cases"
        self.cache = root / "cache"
        self.cache.mkdir(parents=True)
        self.cases_dir.mkdir()
        self.is_root = os.geteuid() == 0
        self.mounts: list[Path] = []
        self.server: FileServer | None = None
        self.env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "COLUMNS": "200",
            "TISDISS_OFFLINE": "1",
            "TISDISS_CACHE_DIR": str(self.cache),
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "no_proxy": "127.0.0.1,localhost",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        for var in ("TISDISS_REGISTRY", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            self.env.pop(var, None)

    # ----------------------------------------------------------------- mounts

    def mount(self, path: Path, options: str) -> bool:
        """A 64 KiB tmpfs at ``path``; False where mounting is not possible (not root)."""
        path.mkdir(parents=True, exist_ok=True)
        if not self.is_root:
            return False
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"{options},size=64k", "tmpfs", str(path)], capture_output=True
        )
        if proc.returncode == 0:
            self.mounts.append(path)
            return True
        return False

    def read_only_folder(self, path: Path) -> Path:
        """An empty folder nobody can write into: a read-only tmpfs for root, mode 555 otherwise."""
        if not self.mount(path, "ro"):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o555)
        return path

    def unmount_all(self) -> None:
        for path in reversed(self.mounts):
            subprocess.run(["umount", str(path)], capture_output=True)
        self.mounts.clear()
        for p in self.root.rglob("*"):  # chmod-555 folders back, so that the tree can be removed
            with contextlib.suppress(OSError):
                if p.is_dir():
                    p.chmod(0o755)

    # ----------------------------------------------------------------- one case

    def case_folder(self, name: str) -> Path:
        folder = self.cases_dir / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        folder.mkdir()
        return folder

    def run_case(self, case: Case) -> Result:
        command = "tisdiss " + " ".join(shlex_quote(a) for a in case.argv)
        if case.stdin is not None:
            command += f" < {case.stdin.name}"
        if case.stdout == "full":
            command += " > /dev/full"
        elif case.stdout == "file":
            command += " > stdout.bin"
        result = Result(case.name, "cli", command, list(case.expect), None, 0.0, note=case.note)
        if case.skip:
            result.skipped = case.skip
            return result
        argv_paths = [Path(a) for a in case.argv if a.startswith(str(self.root)) and Path(a).exists()]
        watched = [p for p in argv_paths + case.watch + ([case.stdin] if case.stdin else []) if p is not None]
        before = snapshot(watched)
        scan_dirs = [case.folder, *case.scan]
        files_before, dirs_before = listing(scan_dirs)
        env = {**self.env, **case.env}
        stdout_target: Any = subprocess.PIPE
        handles: list[Any] = []
        if case.stdout == "file":
            stdout_target = open(case.folder / "stdout.bin", "wb")  # noqa: SIM115 - closed below
            handles.append(stdout_target)
        elif case.stdout == "full":
            stdout_target = open("/dev/full", "wb")  # noqa: SIM115 - closed below
            handles.append(stdout_target)
        stdin_arg: Any = subprocess.DEVNULL
        if case.stdin is not None:
            stdin_arg = open(case.stdin, "rb")  # noqa: SIM115 - closed below
            handles.append(stdin_arg)
        elif case.stdin_bytes is not None:
            stdin_arg = subprocess.PIPE
        limit = case.fsize_limit

        def preexec() -> None:
            if limit is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tisdiss_cli", *case.argv],
                cwd=case.folder,
                env=env,
                stdin=stdin_arg,
                stdout=stdout_target,
                stderr=subprocess.PIPE,
                preexec_fn=preexec if limit is not None else None,
                start_new_session=True,
            )
            try:
                out_b, err_b = proc.communicate(case.stdin_bytes, timeout=case.timeout)
                result.actual = proc.returncode
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out_b, err_b = proc.communicate()
                result.actual = None
                result.note = (result.note + "; " if result.note else "") + f"timed out after {case.timeout:g} s"
        finally:
            for h in handles:
                h.close()
        result.seconds = time.perf_counter() - t0
        stdout = (out_b or b"").decode("utf-8", "replace")
        stderr = (err_b or b"").decode("utf-8", "replace")
        result.stderr_tail = stderr[-600:]
        if case.save_stdout:
            (case.folder / "stdout.bin").write_bytes(out_b or b"")
        result.traceback = "Traceback" in stdout or "Traceback" in stderr
        if case.stdout == "file":
            with contextlib.suppress(OSError):
                result.traceback |= b"Traceback" in (case.folder / "stdout.bin").read_bytes()[-4096:]
        result.wrong_exit = result.actual not in case.expect
        # inputs untouched
        after = snapshot(watched)
        mutable = set(case.mutable)
        for path, digest in before.items():
            if path in mutable:
                continue
            if path not in after:
                result.modified.append(f"{path.relative_to(self.root)} removed")
            elif after[path] != digest:
                result.modified.append(f"{path.relative_to(self.root)} changed")
        # part files, empty or unreadable outputs, empty folders of a failed run
        files_after, dirs_after = listing(scan_dirs)
        for path, digest in files_after.items():
            if files_before.get(path) == digest or path.name == "stdout.bin":
                continue
            if is_part_file(path):
                result.partial.append(f"{path.relative_to(self.root)} (part file)")
            elif path.stat().st_size == 0 and path.suffix != ".lock":
                result.partial.append(f"{path.relative_to(self.root)} (zero bytes)")
            elif path.suffix.lower() in AUDIO_SUFFIXES:
                try:
                    sf.info(path)
                except Exception:
                    result.partial.append(f"{path.relative_to(self.root)} (unreadable)")
        if result.actual not in (0, None):
            for d in sorted(dirs_after - dirs_before):
                with contextlib.suppress(OSError):
                    if not any(d.iterdir()):
                        result.partial.append(f"{d.relative_to(self.root)}/ (empty folder left)")
        # outputs of a success
        if result.actual == 0 and 0 in case.expect:
            problems = [p for p in (check_output(case.folder, o) for o in case.outputs) if p]
            if case.out_dir is not None:
                expected = {(case.folder / o.path).resolve() for o in case.outputs}
                out = case.folder / case.out_dir
                extra = (
                    sorted(
                        p
                        for p in out.rglob("*")
                        if p.is_file()
                        and p.suffix.lower() in AUDIO_SUFFIXES
                        and p.resolve() not in expected
                        and p not in files_before
                    )
                    if out.is_dir()
                    else []
                )
                if extra:
                    problems.append("unexpected outputs: " + ", ".join(p.name for p in extra[:4]))
            if case.stdout_check is not None:
                problems.append(case.stdout_check(stdout) or "")
            if case.stderr_check is not None:
                problems.append(case.stderr_check(stderr) or "")
            problems = [p for p in problems if p]
            if problems:
                result.corruption = "; ".join(problems)
        # the message of an error
        if result.actual in (1, 2) and result.actual in case.expect:
            said = stdout if case.message_on == "stdout" else stderr
            result.message = judge_message(said, result.actual, case.needle)
        return result


def shlex_quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def judge_message(text: str, code: int, needle: str | None) -> str | None:
    """None when the error is said (on stderr, unless the case says stdout) on one line that names ``needle``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "no message"
    if needle is None:
        return None
    if code == 2:  # Typer's usage-error box wraps one message over several lines
        flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", ln).strip() for ln in lines)
        flat = re.sub(r"\s+", " ", flat)
        flat, low = flat.lower(), needle.lower()
        return None if low in flat or low in flat.replace(" ", "") else f"no mention of {needle!r}"
    if any(needle in ln for ln in lines):
        return None
    return f"no line names {needle!r}"


# --------------------------------------------------------------------------- a local file server


class FileServer:
    """Serves ``files`` on 127.0.0.1 (the one network the matrix uses)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                data = files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- building inputs


@dataclass
class Inputs:
    """Paths of the shared input files and their lengths in frames."""

    files: dict[str, Path] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    rates: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, path: Path) -> Path:
        self.files[key] = path
        with contextlib.suppress(Exception):
            info = sf.info(path)
            self.frames[key] = info.frames
            self.rates[key] = info.samplerate
        return path

    def __getitem__(self, key: str) -> Path:
        return self.files[key]


def build_inputs(folder: Path) -> Inputs:
    inp = Inputs()
    folder.mkdir(parents=True)
    m = mixture(0.6)
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "FLOAT"):
        inp.add(subtype.lower(), write(folder / f"mix_{subtype.lower()}.wav", m, subtype=subtype))
    inp.add("flac", write(folder / "mix.flac", m, subtype="PCM_16"))
    inp.add("aiff", write(folder / "mix.aiff", m, subtype="PCM_16"))
    for key, fmt, subtype in (("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")):
        with contextlib.suppress(Exception):
            inp.add(key, write(folder / f"mix.{key}", m, fmt=fmt, subtype=subtype))
    inp.add("stereo16k", write(folder / "stereo16k.wav", mixture(0.6, 16000, 2), 16000, "PCM_24"))
    inp.add("ch12", write(folder / "ch12.wav", mixture(0.3, RATE, 12), subtype="PCM_16"))
    inp.add("ch64", write(folder / "ch64.wav", mixture(0.2, RATE, 64), subtype="PCM_16"))
    for rate in (7000, 44100, 96000):
        inp.add(f"r{rate}", write(folder / f"r{rate}.wav", mixture(0.3, rate), rate, "PCM_16"))
    inp.add("r1", write(folder / "r1hz.wav", mixture(8.0, 1), 1, "PCM_16"))
    inp.add("one", write(folder / "one_sample.wav", mixture(0.6)[:1], subtype="PCM_16"))
    inp.add("ten", write(folder / "ten_samples.wav", mixture(0.6)[:10], subtype="PCM_16"))
    inp.add("zero_len", write(folder / "zero_length.wav", np.zeros((0, 1)), subtype="PCM_16"))
    inp.add("silent", write(folder / "silent.wav", np.zeros((4800, 1)), subtype="PCM_16"))
    inp.add("dc", write(folder / "dc.wav", np.full((4800, 1), 0.25), subtype="FLOAT"))
    inp.add("long", write(folder / "long.wav", mixture(3.0), subtype="PCM_16"))
    inp.add("ten_s", write(folder / "ten_seconds.wav", mixture(10.0), subtype="PCM_16"))
    inp.add("bundled_mix", write(folder / "bundled_mix.wav", mixture(1.0, 16000), 16000, "PCM_16"))
    for key, value in (("nan", np.nan), ("inf", np.inf)):
        x = mixture(0.6).astype(np.float32)
        x[2000] = value
        inp.add(key, write(folder / f"{key}.wav", x, subtype="FLOAT"))
    inp.add("huge", write(folder / "huge.wav", (mixture(0.6) * 6e38).astype(np.float32), subtype="FLOAT"))
    inp.add("big", write(folder / "big.wav", (mixture(0.6) * 2e30).astype(np.float32), subtype="FLOAT"))
    loud = mixture(0.6) * 8.0
    inp.add("loud", write(folder / "loud.wav", loud.astype(np.float32), subtype="FLOAT"))
    (folder / "empty.wav").write_bytes(b"")
    inp.files["empty"] = folder / "empty.wav"
    garbage = np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    for name in ("garbage.wav", "garbage.mp3"):
        (folder / name).write_bytes(garbage)
        inp.files[name.replace(".", "_")] = folder / name
    (folder / "text.wav").write_text("this is not audio\n")
    inp.files["text"] = folder / "text.wav"
    full = inp["pcm_16"].read_bytes()
    (folder / "truncated.wav").write_bytes(full[: len(full) // 2 + 1])  # odd: a half sample at the end
    inp.files["truncated"] = folder / "truncated.wav"
    with sf.SoundFile(folder / "truncated.wav") as f:
        inp.frames["truncated"] = f.frames
    for case in HEADER_CASES:  # the frames are what the file holds: every one of them must be separated
        header = write(folder / f"header_{case}.wav", mixture(3.0, seed=4), subtype="PCM_16")
        inp.files[f"header_{case}"], inp.frames[f"header_{case}"] = misstate(header, case), int(3.0 * RATE)
    (folder / "header_only.wav").write_bytes(full[:30])
    inp.files["header_only"] = folder / "header_only.wav"
    # raw PCM for --raw-rate
    m16 = (mixture(0.6) * 32767).astype("<i2")
    (folder / "raw_s16.pcm").write_bytes(m16.tobytes())
    inp.files["raw_s16"] = folder / "raw_s16.pcm"
    (folder / "raw_f32_stereo.pcm").write_bytes(mixture(0.6, RATE, 2).astype("<f4").tobytes())
    inp.files["raw_f32_stereo"] = folder / "raw_f32_stereo.pcm"
    # a folder of inputs, with a sub-folder
    tree = folder / "tree"
    write(tree / "a.wav", mixture(0.4, seed=1), subtype="PCM_16")
    write(tree / "b.flac", mixture(0.4, seed=2), subtype="PCM_16")
    write(tree / "sub" / "c.wav", mixture(0.4, seed=3), subtype="PCM_16")
    (tree / "notes.txt").write_text("not audio, not picked up")
    inp.files["tree"] = tree
    inp.frames["tree"] = int(0.4 * RATE)
    (folder / "empty_dir").mkdir()
    inp.files["empty_dir"] = folder / "empty_dir"
    mixed = folder / "mixed"
    write(mixed / "good.wav", mixture(0.4), subtype="PCM_16")
    (mixed / "bad.wav").write_bytes(garbage)
    inp.files["mixed"] = mixed
    return inp


def build_testset(folder: Path, n: int = 2, seconds: float = 0.6) -> Path:
    rng = np.random.default_rng(5)
    for i in range(n):
        s1 = mixture(seconds, seed=10 + i)[:, 0] * 0.6
        s2 = np.roll(mixture(seconds, seed=20 + i)[:, 0], 311) * 0.4 + 0.01 * rng.standard_normal(len(s1))
        for sub, x in (("s1", s1), ("s2", s2), ("mix", s1 + s2)):
            write(folder / sub / f"utt{i}.wav", x, subtype="FLOAT")
    return folder


def build_corpus(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(int(1.2 * RATE)) / RATE
    for split, speakers in (("train", 4), ("valid", 2)):
        for s in range(speakers):
            f0 = 90 + 37 * s + (200 if split == "valid" else 0)
            for u in range(2):
                env = 0.5 + 0.5 * np.sin(2 * np.pi * (3 + u) * t + s)
                wave = sum(np.sin(2 * np.pi * f0 * h * t * (1 + 0.02 * u)) / h for h in range(1, 6)) * env
                wave = wave + 0.01 * rng.standard_normal(len(t))
                write(folder / split / f"spk{s}" / f"u{u}.flac", (0.1 * wave).astype(np.float32), subtype="PCM_16")
    return folder


def build_tiny_checkpoint(folder: Path) -> Path:
    """A randomly initialised tiny model, presets fast (1, 1), balanced (2, 1), best (2, 3)."""
    import torch

    from tisdiss_cli import ARCHITECTURES, TISDiSS, save_checkpoint
    from tisdiss_cli.model.network import init_weights

    torch.manual_seed(0)
    model = TISDiSS(ARCHITECTURES["tiny"])
    init_weights(model)
    meta = {"presets": {"fast": [1, 1], "balanced": [2, 1], "best": [2, 3]}}
    folder.mkdir(parents=True, exist_ok=True)
    return Path(save_checkpoint(model, folder / "tiny.safetensors", meta))


# --------------------------------------------------------------------------- the cases


def spk_outputs(
    stem: str, frames: int | None, *, out: str = "out", ext: str = "wav", n: int = 2, **kw: Any
) -> list[Out]:
    return [Out(f"{out}/{stem}_spk{j}.{ext}", frames, **kw) for j in range(1, n + 1)]


def has(text: str) -> Callable[[str], str | None]:
    return lambda s: None if text in s else f"no {text!r} in the output"


def lacks(text: str) -> Callable[[str], str | None]:
    return lambda s: None if text not in s else f"{text!r} in the output"


def build_cases(mx: Matrix, inp: Inputs, ckpt: Path, corpus: Path, testset: Path) -> list[list[Case]]:
    """Units of cases; the cases of one unit run in order (later ones use what earlier ones left)."""
    units: list[list[Case]] = []
    tiny = ["-m", str(ckpt), "--threads", "1", "--speakers", "2"]  # two files, known in advance: their count is checked
    cuda = _cuda_available()
    onnx = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))

    def case(name: str, argv: list[str], expect: int | tuple[int, ...], **kw: Any) -> Case:
        folder = kw.pop("folder", None) or mx.case_folder(name)
        codes = (expect,) if isinstance(expect, int) else expect
        return Case(name, [a.replace("{case}", str(folder)) for a in argv], codes, folder, **kw)

    def single(name: str, argv: list[str], expect: int | tuple[int, ...], **kw: Any) -> None:
        units.append([case(name, argv, expect, **kw)])

    def sep(name: str, key: str, extra: list[str] | None = None, **kw: Any) -> None:
        """separate one shared input into {case}/out; success expects two outputs of its length."""
        expect = kw.pop("expect", 0)
        stem = inp[key].stem
        outputs = kw.pop("outputs", None)
        if outputs is None and 0 in ((expect,) if isinstance(expect, int) else expect):
            outputs = spk_outputs(stem, inp.frames.get(key), rate=inp.rates.get(key), **kw.pop("out_kw", {}))
        single(
            name,
            ["separate", str(inp[key]), "-o", "{case}/out", *tiny, *(extra or [])],
            expect,
            outputs=outputs or [],
            **kw,
        )

    # ---- input kinds (near-duplicates trimmed: see the module docstring)
    for key in ("pcm_u8", "pcm_16", "pcm_24", "float", "flac", "aiff", "ogg", "mp3"):
        if key in inp.files:
            tol = 1200 if key in ("mp3", "ogg") else 0
            sep(f"sep-input-{key}", key, out_kw={"tol": tol, "channels": 1})
    sep("sep-stereo-16k-24bit", "stereo16k", out_kw={"channels": 1})
    sep("sep-12-channels", "ch12")
    sep("sep-64-channels", "ch64")
    for rate in (7000, 96000):  # down and up to the model's rate; 44.1 kHz in sep-format-opus-44k
        sep(f"sep-rate-{rate}", f"r{rate}")
    sep("sep-rate-1hz", "r1", note="1 Hz: docs/separating.md says any rate")
    sep("sep-one-sample", "one")
    sep("sep-ten-samples", "ten")
    sep(
        "sep-zero-length-audio",
        "zero_len",
        expect=(0, 1),
        needle="zero_length.wav",
        outputs=spk_outputs("zero_length", 0, allow_constant=True),
        note="0 frames: either empty outputs or a one-line error",
    )
    sep("sep-silent", "silent", out_kw={"allow_constant": True})
    sep("sep-dc-offset", "dc", out_kw={"allow_constant": True})
    sep("sep-loud-float-8x", "loud", out_kw={"allow_clipped": True})
    sep("sep-loud-float-8x-float", "loud", ["--float"])
    sep("sep-huge-float-3e38", "huge", out_kw={"allow_clipped": True}, stderr_check=has("clipped"))
    sep(
        "sep-huge-float-3e38-float",
        "huge",
        ["--float"],
        expect=(0, 1),
        needle="huge.wav",
        note="finite at the input's scale, or an error naming float32",
    )
    sep("sep-big-float-2e30", "big", out_kw={"allow_clipped": True})
    sep("sep-big-float-2e30-float", "big", ["--float"])
    sep("sep-truncated-wav", "truncated", stderr_check=has("warning"))
    for key, note in HEADER_NOTES.items():
        sep(f"sep-header-{key}-declared", f"header_{key}", stderr_check=has(note) if note else lacks("warning"))
    for key in ("nan", "inf", "empty", "garbage_wav", "garbage_mp3", "text", "header_only"):
        sep(f"sep-bad-{key}", key, expect=1, needle=inp[key].name)
    single("sep-missing-file", ["separate", "{case}/nope.wav", "-o", "{case}/out", *tiny], 1, needle="nope.wav")
    single(
        "sep-directory-as-file",
        ["separate", str(inp["empty_dir"]), "-o", "{case}/out", *tiny],
        1,
        needle="no audio files",
    )

    # ---- folders, globs, several inputs
    tree, n = inp["tree"], inp.frames["tree"]
    single(
        "sep-folder",
        ["separate", str(tree), "-o", "{case}/out", *tiny],
        0,
        outputs=spk_outputs("a", n) + spk_outputs("b", n),
    )
    single(
        "sep-folder-recursive",
        ["separate", str(tree), "-r", "-o", "{case}/out", *tiny],
        0,
        outputs=spk_outputs("a", n) + spk_outputs("b", n) + spk_outputs("c", n, out="out/sub"),
    )
    single("sep-glob", ["separate", f"{tree}/*.wav", "-o", "{case}/out", *tiny], 0, outputs=spk_outputs("a", n))
    single(
        "sep-glob-recursive",
        ["separate", f"{tree}/**/*.wav", "-o", "{case}/out", *tiny],
        0,
        outputs=spk_outputs("a", n) + spk_outputs("c", n, out="out/sub"),
        note="outputs keep the sub-folder",
    )
    single("sep-glob-no-match", ["separate", f"{tree}/*.xyz", "-o", "{case}/out", *tiny], 1, needle="matches no file")
    single("sep-good-and-bad", ["separate", str(inp["mixed"]), "-o", "{case}/out", *tiny], 1, needle="bad.wav")
    single(
        "sep-good-and-missing",
        ["separate", str(inp["pcm_16"]), "{case}/gone.wav", "-o", "{case}/out", *tiny],
        1,
        needle="gone.wav",
    )
    single(
        "sep-same-input-twice",
        ["separate", str(inp["pcm_16"]), str(inp["pcm_16"]), "-o", "{case}/out", *tiny],
        (0, 1, 2),
        outputs=spk_outputs("mix_pcm_16", inp.frames["pcm_16"]),
        note="once, or refused",
    )
    single("sep-no-inputs", ["separate", *tiny], 2, needle="INPUTS")
    single(
        "sep-default-output-folder",
        ["separate", str(inp["pcm_16"]), *tiny],
        0,
        out_dir="separated",
        outputs=spk_outputs("mix_pcm_16", inp.frames["pcm_16"], out="separated"),
    )

    # ---- -o: a file, under a file, read-only, the input folder
    f = mx.case_folder("sep-output-is-a-file")
    (f / "afile").write_text("x")
    units.append(
        [
            case(
                "sep-output-is-a-file",
                ["separate", str(inp["pcm_16"]), "-o", str(f / "afile"), *tiny],
                2,
                folder=f,
                needle="is a file",
            )
        ]
    )
    f = mx.case_folder("sep-output-under-a-file")
    (f / "afile").write_text("x")
    units.append(
        [
            case(
                "sep-output-under-a-file",
                ["separate", str(inp["pcm_16"]), "-o", str(f / "afile" / "sub"), *tiny],
                2,
                folder=f,
                needle="is a file",
            )
        ]
    )
    f = mx.case_folder("sep-output-read-only")
    ro = mx.read_only_folder(f / "ro")
    units.append(
        [
            case(
                "sep-output-read-only",
                ["separate", str(inp["pcm_16"]), "-o", str(ro), *tiny],
                2,
                folder=f,
                needle="cannot write into",
            )
        ]
    )
    f = mx.case_folder("sep-output-read-only-sub")
    ro = mx.read_only_folder(f / "ro")
    units.append(
        [
            case(
                "sep-output-read-only-sub",
                ["separate", str(inp["pcm_16"]), "-o", str(ro / "x"), *tiny],
                2,
                folder=f,
                needle="cannot write into",
            )
        ]
    )

    f = mx.case_folder("sep-o-is-input-folder")
    d = f / "d"
    write(d / "a.wav", mixture(0.4, seed=4), subtype="PCM_16")
    write(d / "b.wav", mixture(0.4, seed=5), subtype="PCM_16")
    na = int(0.4 * RATE)
    outs = [Out(f"d/{s}_spk{j}.wav", na) for s in ("a", "b") for j in (1, 2)]
    prev = [d / f"{s}_spk{j}.wav" for s in ("a", "b") for j in (1, 2)]
    units.append(
        [
            case(
                "sep-o-is-input-folder",
                ["separate", str(d), "-o", str(d), *tiny],
                0,
                folder=f,
                outputs=outs,
                out_dir="d",
            ),
            case(
                "sep-o-is-input-folder-rerun",
                ["separate", str(d), "-o", str(d), *tiny],
                0,
                folder=f,
                outputs=outs,
                out_dir="d",
                stdout_check=has("0 separated"),
                note="previous outputs are not new inputs",
            ),
            case(
                "sep-o-is-input-folder-overwrite",
                ["separate", str(d), "-o", str(d), "--overwrite", *tiny],
                0,
                folder=f,
                outputs=outs,
                out_dir="d",
                mutable=prev,
                stdout_check=has("2 separated"),
            ),
            case(
                "sep-o-is-input-folder-named-output",
                ["separate", str(d / "a.wav"), str(d / "a_spk1.wav"), "-o", str(d), "--overwrite", *tiny],
                2,
                folder=f,
                needle="is an input and also an output",
            ),
            case(
                "sep-o-is-input-folder-named-output-no-overwrite",
                ["separate", str(d / "a_spk1.wav"), str(d / "a.wav"), "-o", str(d), *tiny],
                (0, 2),
                folder=f,
                outputs=outs,
                out_dir="d",
                note="the output exists, so nothing would be replaced: skip or refuse",
            ),
        ]
    )
    f = mx.case_folder("sep-existing-outputs")
    p16 = inp["pcm_16"]
    outs = spk_outputs("mix_pcm_16", inp.frames["pcm_16"])
    units.append(
        [
            case(
                "sep-existing-outputs-first",
                ["separate", str(p16), "-o", "{case}/out", *tiny],
                0,
                folder=f,
                outputs=outs,
            ),
            case(
                "sep-existing-outputs-skipped",
                ["separate", str(p16), "-o", "{case}/out", *tiny],
                0,
                folder=f,
                outputs=outs,
                watch=[f / "out"],
                stdout_check=has("skipped"),
            ),
            case(
                "sep-existing-outputs-overwrite",
                ["separate", str(p16), "-o", "{case}/out", "--overwrite", *tiny],
                0,
                folder=f,
                outputs=outs,
                mutable=[f / "out" / "mix_pcm_16_spk1.wav", f / "out" / "mix_pcm_16_spk2.wav"],
            ),
        ]
    )

    # ---- output formats and templates
    fr = inp.frames["pcm_16"]
    sep("sep-format-flac", "pcm_16", ["--format", "flac"], outputs=spk_outputs("mix_pcm_16", fr, ext="flac"))
    sep("sep-format-mp3", "pcm_16", ["--format", "mp3"], outputs=spk_outputs("mix_pcm_16", fr, ext="mp3", tol=2000))
    sep(
        "sep-format-opus",
        "pcm_16",
        ["--format", "opus"],
        outputs=spk_outputs("mix_pcm_16", None, ext="opus", rate=8000),
    )
    sep(
        "sep-format-opus-44k",
        "r44100",
        ["--format", "opus"],
        outputs=spk_outputs("r44100", None, ext="opus", rate=48000),
        note="written at the next Opus rate up",
    )
    sep(
        "sep-format-mp3-96k",
        "r96000",
        ["--format", "mp3"],
        outputs=spk_outputs("r96000", None, ext="mp3", rate=48000),
        note="MP3 up to 48 kHz",
    )
    sep("sep-format-bogus", "pcm_16", ["--format", "aac"], expect=2, needle="--format")
    sep("sep-float", "pcm_16", ["--float"])
    sep("sep-float-flac", "pcm_16", ["--float", "--format", "flac"], expect=2, needle="--float")
    sep(
        "sep-output-rate-model",
        "stereo16k",
        ["--output-rate", "model"],
        outputs=spk_outputs("stereo16k", inp.frames["stereo16k"] // 2, tol=1, rate=RATE),
    )
    sep("sep-output-rate-bogus", "pcm_16", ["--output-rate", "fast"], expect=2, needle="--output-rate")
    sep(
        "sep-filename-subfolders",
        "pcm_16",
        ["--filename", "{stem}/{spk}.{ext}"],
        outputs=[Out(f"out/mix_pcm_16/{j}.wav", fr) for j in (1, 2)],
    )
    sep("sep-filename-no-spk", "pcm_16", ["--filename", "{stem}.{ext}"], expect=2, needle="has no {spk}")
    sep("sep-filename-empty", "pcm_16", ["--filename", ""], expect=2, needle="--filename")
    sep("sep-filename-wrong-ext", "pcm_16", ["--filename", "{stem}_{spk}.mp3"], expect=2, needle="--filename")
    sep(
        "sep-filename-mp3-ext-mp3-format",
        "pcm_16",
        ["--filename", "{stem}_{spk}.mp3", "--format", "mp3"],
        outputs=[Out(f"out/mix_pcm_16_{j}.mp3", fr, tol=2000) for j in (1, 2)],
    )
    sep("sep-filename-outside-o", "pcm_16", ["--filename", "../{stem}_{spk}.{ext}"], expect=2, needle="--filename")
    sep("sep-filename-absolute", "pcm_16", ["--filename", "/tmp/{stem}_{spk}.{ext}"], expect=2, needle="--filename")
    sep(
        "sep-filename-unknown-field",
        "pcm_16",
        ["--filename", "{stem}_{spk}_{bogus}.{ext}"],
        expect=2,
        needle="--filename",
    )
    sep("sep-filename-unbalanced-brace", "pcm_16", ["--filename", "{stem_{spk}.{ext}"], expect=2, needle="--filename")

    # ---- chunking, depth, presets, levels
    lf = inp.frames["long"]
    sep("sep-segment-short", "long", ["--segment", "0.1"], outputs=spk_outputs("long", lf))
    sep("sep-segment-1e9", "long", ["--segment", "1e9"], outputs=spk_outputs("long", lf))
    sep("sep-segment-too-small", "long", ["--segment", "0.01"], expect=2, needle="--segment")
    sep("sep-segment-text", "long", ["--segment", "abc"], expect=2, needle="--segment")
    sep("sep-segment-nan", "long", ["--segment", "nan"], expect=2, needle="--segment")
    sep("sep-segment-inf", "long", ["--segment", "inf"], expect=2, needle="--segment")
    sep("sep-overlap-0.5", "long", ["--overlap", "0.5", "--segment", "0.5"], outputs=spk_outputs("long", lf))
    sep("sep-overlap-0", "long", ["--overlap", "0", "--segment", "0.5"], outputs=spk_outputs("long", lf))
    sep("sep-overlap-too-big", "long", ["--overlap", "0.95"], expect=2, needle="--overlap")
    sep("sep-batch-size-3", "long", ["--batch-size", "3", "--segment", "0.4"], outputs=spk_outputs("long", lf))
    sep("sep-batch-size-0", "long", ["--batch-size", "0"], expect=2, needle="--batch-size")
    for preset in ("fast", "best"):  # balanced is the default every other case runs
        sep(f"sep-preset-{preset}", "pcm_16", ["--preset", preset])
    sep("sep-preset-bogus", "pcm_16", ["--preset", "turbo"], expect=2, needle="--preset")
    sep("sep-nsep-1-nre-1", "pcm_16", ["--nsep", "1", "--nre", "1"])
    sep("sep-nre-0", "pcm_16", ["--nre", "0"])
    sep("sep-nre-beyond-card", "pcm_16", ["--nre", "5"], stderr_check=has("warning"))
    sep("sep-nsep-0", "pcm_16", ["--nsep", "0"], expect=2, needle="--nsep")
    sep("sep-nre-33", "pcm_16", ["--nre", "33"], expect=2, needle="--nre")
    sep("sep-nre-text", "pcm_16", ["--nre", "two"], expect=2, needle="--nre")
    sep("sep-max-rtf-100", "pcm_16", ["--max-rtf", "100"])
    sep("sep-max-rtf-0", "pcm_16", ["--max-rtf", "0"], stderr_check=has("warning"))
    sep("sep-max-rtf-negative", "pcm_16", ["--max-rtf", "-1"], expect=2, needle="--max-rtf")
    sep("sep-adaptive", "long", ["--adaptive", "--nre", "3"], outputs=spk_outputs("long", lf))
    sep("sep-model-level", "pcm_16", ["--model-level"])
    sep("sep-channel-2", "stereo16k", ["--channel", "2"])
    sep("sep-channel-3-of-2", "stereo16k", ["--channel", "3"], expect=1, needle="stereo16k.wav")
    sep("sep-channel-0", "stereo16k", ["--channel", "0"], expect=2, needle="--channel")
    sep("sep-channel-2-of-mono", "pcm_16", ["--channel", "2"], expect=1, needle="mix_pcm_16.wav")
    sep("sep-stream-2-of-wav", "pcm_16", ["--stream", "2"], expect=1, needle="mix_pcm_16.wav")
    sep("sep-json", "pcm_16", ["--json"], stdout_check=_json_summary(2))
    sep("sep-quiet", "pcm_16", ["--quiet"])
    sep("sep-threads-0", "pcm_16", ["--threads", "0"], expect=2, needle="--threads")
    sep("sep-unknown-option", "pcm_16", ["--bogus"], expect=2, needle="--bogus")

    # ---- device and precision
    sep("sep-device-cpu", "pcm_16", ["--device", "cpu"])
    sep("sep-device-bogus", "pcm_16", ["--device", "bogus"], expect=2, needle="unknown device 'bogus'")
    sep("sep-device-cuda", "pcm_16", ["--device", "cuda"], expect=0 if cuda else 1, needle="CUDA")
    sep("sep-device-cuda-99", "pcm_16", ["--device", "cuda:99"], expect=(1, 2), needle="cuda:99")
    sep("sep-device-mps", "pcm_16", ["--device", "mps"], expect=1, needle="MPS")
    for prec in ("fp32", "bf16", "int8"):  # auto is the default every other case runs
        sep(f"sep-precision-{prec}", "pcm_16", ["--precision", prec])
    sep("sep-precision-bogus", "pcm_16", ["--precision", "fp16"], expect=2, needle="--precision")

    # ---- models and the cache
    sep("sep-model-missing", "pcm_16", ["-m", "/nope/model.safetensors"], expect=1, needle="/nope/model.safetensors")
    sep("sep-model-garbage", "pcm_16", ["-m", str(inp["garbage_wav"])], expect=1, needle="garbage.wav")
    sep("sep-model-empty-folder", "pcm_16", ["-m", str(inp["empty_dir"])], expect=1, needle="empty_dir")
    sep("sep-model-unknown-name", "pcm_16", ["-m", "wsj0-3mix"], expect=1, needle="wsj0-3mix")
    sep("sep-model-wsj0-2mix-offline", "pcm_16", ["-m", "wsj0-2mix"], expect=1, needle="TISDISS_OFFLINE")
    bm, bf = inp["bundled_mix"], inp.frames["bundled_mix"]
    bundled = ["-m", "tisdiss-small-8k", "--threads", "1"]
    single(
        "sep-bundled-best-flac",
        ["separate", str(bm), "-o", "{case}/out", *bundled, "--preset", "best", "--format", "flac"],
        0,
        outputs=spk_outputs("bundled_mix", bf, ext="flac"),
    )
    single(
        "sep-bundled-example",
        ["separate", str(REPO / "models/examples/two_speakers.wav"), "-o", "{case}/out", *bundled, "--preset", "fast"],
        0,
        outputs=spk_outputs("two_speakers", sf.info(REPO / "models/examples/two_speakers.wav").frames),
    )
    single(
        "sep-no-model-offline-fallback",
        ["separate", str(inp["pcm_16"]), "-o", "{case}/out", "--threads", "1", "--nre", "1"],
        0,
        outputs=spk_outputs("mix_pcm_16", fr),
        stderr_check=has("warning"),
    )
    f = mx.case_folder("sep-cache-read-only")
    ro_cache = mx.read_only_folder(f / "cache")
    units.append(
        [
            case(
                "sep-cache-read-only",
                ["separate", str(p16), "-o", "{case}/out", "--threads", "1", "--nre", "1"],
                0,
                folder=f,
                outputs=spk_outputs("mix_pcm_16", fr),
                env={"TISDISS_CACHE_DIR": str(ro_cache)},
                stdout_check=has("tisdiss-small-8k"),
            )
        ]
    )
    f = mx.case_folder("sep-cache-read-only-max-rtf")
    ro_cache = mx.read_only_folder(f / "cache")
    units.append(
        [
            case(
                "sep-cache-read-only-max-rtf",
                ["separate", str(p16), "-o", "{case}/out", *tiny, "--max-rtf", "100"],
                0,
                folder=f,
                outputs=spk_outputs("mix_pcm_16", fr),
                env={"TISDISS_CACHE_DIR": str(ro_cache)},
                stderr_check=has("measured again"),
            )
        ]
    )
    f = mx.case_folder("sep-cache-is-a-file")
    (f / "cachefile").write_text("not a folder")
    units.append(
        [
            case(
                "sep-cache-is-a-file",
                ["separate", str(p16), "-o", "{case}/out", "--threads", "1", "--nre", "1"],
                0,
                folder=f,
                outputs=spk_outputs("mix_pcm_16", fr),
                env={"TISDISS_CACHE_DIR": str(f / "cachefile")},
            )
        ]
    )
    f = mx.case_folder("sep-cache-under-a-file")
    (f / "cachefile").write_text("not a folder")
    units.append(
        [
            case(
                "sep-cache-under-a-file",
                ["separate", str(p16), "-o", "{case}/out", *tiny, "--max-rtf", "50"],
                0,
                folder=f,
                outputs=spk_outputs("mix_pcm_16", fr),
                env={"TISDISS_CACHE_DIR": str(f / "cachefile" / "sub")},
            )
        ]
    )

    # ---- standard input
    def stdin_case(name: str, key: str, extra: list[str], expect: int | tuple[int, ...], **kw: Any) -> None:
        single(name, ["separate", "-", "-o", "{case}/out", *tiny, *extra], expect, stdin=inp[key], **kw)

    stdin_case("stdin-wav", "pcm_16", [], 0, outputs=spk_outputs("stdin", fr, rate=RATE))
    stdin_case("stdin-wav-name", "pcm_24", ["--name", "talk"], 0, outputs=spk_outputs("talk", fr))
    stdin_case("stdin-float-wav", "float", [], 0, outputs=spk_outputs("stdin", fr))
    stdin_case("stdin-u8-wav", "pcm_u8", [], 0, outputs=spk_outputs("stdin", fr))
    stdin_case(
        "stdin-stereo-16k", "stereo16k", [], 0, outputs=spk_outputs("stdin", inp.frames["stereo16k"], rate=16000)
    )
    stdin_case(
        "stdin-channel-2", "stereo16k", ["--channel", "2"], 0, outputs=spk_outputs("stdin", inp.frames["stereo16k"])
    )
    stdin_case("stdin-channel-3-of-2", "stereo16k", ["--channel", "3"], 1, needle="stdin")
    stdin_case(
        "stdin-output-rate-model",
        "stereo16k",
        ["--output-rate", "model"],
        0,
        outputs=spk_outputs("stdin", inp.frames["stereo16k"] // 2, tol=1, rate=RATE),
    )
    stdin_case("stdin-flac-out", "pcm_16", ["--format", "flac"], 0, outputs=spk_outputs("stdin", fr, ext="flac"))
    stdin_case("stdin-float-out", "pcm_16", ["--float"], 0, outputs=spk_outputs("stdin", fr))
    stdin_case("stdin-long-chunked", "long", ["--segment", "0.5"], 0, outputs=spk_outputs("stdin", lf))
    stdin_case(
        "stdin-truncated",
        "truncated",
        [],
        0,
        outputs=spk_outputs("stdin", inp.frames["truncated"]),
        stderr_check=has("warning"),
    )
    for key in ("garbage_wav", "header_only", "empty"):
        stdin_case(f"stdin-bad-{key}", key, [], 1, needle="stdin")
    stdin_case("stdin-nan", "nan", [], 1, needle="stdin")
    stdin_case("stdin-huge", "huge", [], 0, outputs=spk_outputs("stdin", fr, allow_clipped=True))
    stdin_case(
        "stdin-zero-length",
        "zero_len",
        [],
        (0, 1),
        needle="stdin",
        outputs=spk_outputs("stdin", 0, allow_constant=True),
    )
    stdin_case("stdin-one-sample", "one", [], 0, outputs=spk_outputs("stdin", 1))
    stdin_case(
        "stdin-raw-s16le",
        "raw_s16",
        ["--raw-rate", "8000", "--raw-format", "s16le"],
        0,
        outputs=spk_outputs("stdin", fr),
    )
    stdin_case(
        "stdin-raw-f32le-stereo",
        "raw_f32_stereo",
        ["--raw-rate", "8000", "--raw-format", "f32le", "--raw-channels", "2"],
        0,
        outputs=spk_outputs("stdin", fr),
    )
    stdin_case(
        "stdin-raw-format-bogus", "raw_s16", ["--raw-rate", "8000", "--raw-format", "u8"], 2, needle="--raw-format"
    )
    stdin_case("stdin-raw-rate-0", "raw_s16", ["--raw-rate", "0"], 2, needle="--raw-rate")
    stdin_case(
        "stdin-raw-garbage-odd-bytes",
        "garbage_wav",
        ["--raw-rate", "8000", "--raw-format", "s24le"],
        (0, 1),
        outputs=spk_outputs("stdin", 5000 // 3),
        needle="stdin",
        note="any bytes are raw PCM: 5000 bytes = 1666 s24 frames + 2 left over",
    )
    single(
        "stdin-stdout-file",
        ["separate", "-", "--stdout", *tiny],
        0,
        stdin=inp["pcm_16"],
        stdout="file",
        outputs=[Out("stdout.bin", fr, channels=2, rate=RATE, kind="wavbytes")],
        out_dir=None,
    )
    single(
        "stdin-stdout-float",
        ["separate", "-", "--stdout", "--float", *tiny],
        0,
        stdin=inp["long"],
        stdout="file",
        outputs=[Out("stdout.bin", lf, channels=2, rate=RATE, kind="wavbytes")],
        out_dir=None,
    )
    single(
        "stdin-stdout-pipe",
        ["separate", "-", "--stdout", "--segment", "0.5", *tiny],
        0,
        stdin=inp["long"],
        out_dir=None,
        note="the bytes a pipe carries, read as a WAV stream",
    )
    units[-1][0].save_stdout = True
    units[-1][0].outputs = [Out("stdout.bin", lf, channels=2, rate=RATE, kind="wavbytes")]
    single(
        "stdin-stdout-dev-full",
        ["separate", "-", "--stdout", *tiny],
        1,
        stdin=inp["pcm_16"],
        stdout="full",
        needle="No space left on device",
    )
    single(
        "stdin-stdout-flac",
        ["separate", "-", "--stdout", "--format", "flac", *tiny],
        2,
        stdin=inp["pcm_16"],
        needle="--format",
    )
    single("stdin-stdout-json", ["separate", "-", "--stdout", "--json", *tiny], 2, stdin=inp["pcm_16"], needle="--json")
    single(
        "stdin-with-other-input",
        ["separate", "-", str(inp["pcm_16"]), "-o", "{case}/out", *tiny],
        2,
        stdin=inp["pcm_16"],
        needle="standard input",
    )
    single("stdout-without-stdin", ["separate", str(inp["pcm_16"]), "--stdout", *tiny], 2, needle="--stdout")
    single(
        "raw-rate-without-stdin", ["separate", str(inp["pcm_16"]), "--raw-rate", "8000", *tiny], 2, needle="--raw-rate"
    )
    single(
        "stdin-bundled-stdout",
        ["separate", "-", "--stdout", *bundled],
        0,
        stdin=inp["bundled_mix"],
        stdout="file",
        outputs=[Out("stdout.bin", bf, channels=2, rate=16000, kind="wavbytes")],
        out_dir=None,
    )
    single(
        "stdin-output-read-only",
        ["separate", "-", "-o", "{case}/ro", *tiny],
        2,
        stdin=inp["pcm_16"],
        needle="cannot write into",
    )
    mx.read_only_folder(units[-1][0].folder / "ro")

    # ---- full disk and file size limit
    f = mx.case_folder("sep-full-disk")
    full = f / "full"
    if mx.mount(full, "rw"):
        ten = inp["ten_s"]
        units.append(
            [
                case(
                    "sep-full-disk",
                    ["separate", str(ten), "-o", str(full / "o"), *tiny],
                    1,
                    folder=f,
                    scan=[full],
                    needle="No space left on device",
                    stderr_check=None,
                ),
                case(
                    "sep-full-disk-flac",
                    ["separate", str(ten), "-o", str(full / "o"), "--format", "flac", *tiny],
                    1,
                    folder=f,
                    scan=[full],
                    needle="No space left on device",
                ),
                case(
                    "sep-full-disk-float",
                    ["separate", str(ten), "-o", str(full / "o"), "--float", *tiny],
                    1,
                    folder=f,
                    scan=[full],
                    needle="No space left on device",
                ),
                case(
                    "stdin-full-disk",
                    ["separate", "-", "-o", str(full / "o"), *tiny],
                    1,
                    folder=f,
                    scan=[full],
                    stdin=ten,
                    needle="No space left on device",
                ),
                case(
                    "sep-full-disk-leaves-nothing",
                    ["separate", str(ten), "-o", str(full / "o"), *tiny],
                    1,
                    folder=f,
                    scan=[full],
                    needle="No space left on device",
                    note="after four failed runs the tmpfs must still be empty (checked as part files)",
                ),
            ]
        )
    else:
        for name in (
            "sep-full-disk",
            "sep-full-disk-flac",
            "sep-full-disk-float",
            "stdin-full-disk",
            "sep-full-disk-leaves-nothing",
        ):
            units.append([Case(name, ["separate"], (1,), f, skip="needs root to mount a small tmpfs")])
    single(
        "sep-file-size-limit",
        ["separate", str(inp["ten_s"]), "-o", "{case}/out", *tiny],
        1,
        fsize_limit=20_000,
        needle="File too large",
    )

    # ---- eval
    ev = ["-m", str(ckpt), "--nre", "1", "--rtf-utterances", "0"]
    single(
        "eval-ok-json-csv",
        ["eval", str(testset), *ev, "--json", "{case}/s.json", "--csv", "{case}/s.csv"],
        0,
        outputs=[Out("s.json", kind="json"), Out("s.csv", kind="file")],
        out_dir=None,
    )
    single(
        "eval-nre-range",
        ["eval", str(testset), "-m", str(ckpt), "--nre", "1-3", "--limit", "1", "--rtf-utterances", "1"],
        0,
        out_dir=None,
    )
    single(
        "eval-save-estimates",
        ["eval", str(testset), *ev, "--save-estimates", "{case}/est", "--limit", "1"],
        0,
        outputs=[Out(f"est/nsep2-nre1/{s}/utt0.wav", int(0.6 * RATE)) for s in ("s1", "s2")],
        out_dir="est",
    )
    single("eval-adaptive", ["eval", str(testset), *ev, "--adaptive", "20", "--limit", "1"], 0, out_dir=None)
    single("eval-no-sdr", ["eval", str(testset), *ev, "--no-sdr"], 0, out_dir=None)
    single(
        "eval-bundled",
        [
            "eval",
            str(testset),
            "-m",
            "tisdiss-small-8k",
            "--nre",
            "2",
            "--limit",
            "1",
            "--rtf-utterances",
            "0",
            "--json",
            "{case}/s.json",
        ],
        0,
        outputs=[Out("s.json", kind="json")],
        out_dir=None,
    )
    single("eval-missing-testset", ["eval", "{case}/nope", *ev], (1, 2), needle="nope")
    single("eval-empty-folder", ["eval", str(inp["empty_dir"]), *ev], 1, needle="empty_dir")
    single("eval-a-wav-as-testset", ["eval", str(inp["pcm_16"]), *ev], (1, 2), needle="mix_pcm_16.wav")
    f = mx.case_folder("eval-missing-reference")
    broken = f / "set"
    shutil.copytree(testset, broken)
    (broken / "s2" / "utt1.wav").unlink()
    units.append([case("eval-missing-reference", ["eval", str(broken), *ev], 1, folder=f, needle="utt1")])
    f = mx.case_folder("eval-garbage-mixture")
    broken = f / "set"
    shutil.copytree(testset, broken)
    (broken / "mix" / "utt0.wav").write_bytes(inp["garbage_wav"].read_bytes())
    units.append([case("eval-garbage-mixture", ["eval", str(broken), *ev], 1, folder=f, needle="utt0")])
    f = mx.case_folder("eval-nan-mixture")
    broken = f / "set"
    shutil.copytree(testset, broken)
    shutil.copy(inp["nan"], broken / "mix" / "utt0.wav")
    units.append([case("eval-nan-mixture", ["eval", str(broken), *ev], 1, folder=f, needle="utt0")])
    f = mx.case_folder("eval-length-mismatch")
    broken = f / "set"
    shutil.copytree(testset, broken)
    write(broken / "s1" / "utt0.wav", mixture(0.3)[:, 0], subtype="FLOAT")
    units.append([case("eval-length-mismatch", ["eval", str(broken), *ev], 1, folder=f, needle="utt0")])
    eval_notes = {  # the test set's 0.6-s files
        "under": "the header declares 1200 frames (0:00.15) but the file holds 4800 (0:00.60): read to the end",
        "over": "file is truncated: read 4800 of the 9600 frames its header declares (0:00.60 of 0:01.20)",
        "zero": None,
    }
    for key, note in eval_notes.items():  # every file of one utterance, so that their lengths still agree
        f = mx.case_folder(f"eval-header-{key}-declared")
        shutil.copytree(testset, f / "set")
        for part in ("mix", "s1", "s2"):
            misstate(f / "set" / part / "utt0.wav", key)
        units.append(
            [
                case(
                    f"eval-header-{key}-declared",
                    ["eval", str(f / "set"), *ev, "--json", "{case}/s.json"],
                    0,
                    folder=f,
                    outputs=[Out("s.json", kind="json")],
                    out_dir=None,
                    stderr_check=_all_named(note, [f / "set" / p / "utt0.wav" for p in ("mix", "s1", "s2")]),
                )
            ]
        )
    f = mx.case_folder("eval-tsv-missing-file")
    (f / "list.tsv").write_text(f"{testset}/mix/utt0.wav\t{testset}/s1/utt0.wav\t{f}/gone.wav\n")
    units.append([case("eval-tsv-missing-file", ["eval", str(f / "list.tsv"), *ev], 1, folder=f, needle="gone.wav")])
    single("eval-nre-bogus", ["eval", str(testset), "-m", str(ckpt), "--nre", "x-y"], 2, needle="--nre")
    single("eval-nre-33", ["eval", str(testset), "-m", str(ckpt), "--nre", "33"], 2, needle="--nre")
    single("eval-limit-0", ["eval", str(testset), *ev, "--limit", "0"], 2, needle="--limit")
    single("eval-metrics-bogus", ["eval", str(testset), *ev, "--metrics", "mos"], 2, needle="--metrics")
    single("eval-sdr-backend-bogus", ["eval", str(testset), *ev, "--sdr-backend", "slow"], 2, needle="--sdr-backend")
    single("eval-device-bogus", ["eval", str(testset), *ev, "--device", "bogus"], 2, needle="unknown device")
    single("eval-precision-bogus", ["eval", str(testset), *ev, "--precision", "fp8"], 2, needle="--precision")
    single("eval-json-into-read-only", ["eval", str(testset), *ev, "--json", "{case}/ro/s.json"], 2, needle="--json")
    mx.read_only_folder(units[-1][0].folder / "ro")
    single(
        "eval-json-is-a-folder",
        ["eval", str(testset), *ev, "--json", str(inp["empty_dir"])],
        (1, 2),
        needle="empty_dir",
    )
    single(
        "eval-model-missing",
        ["eval", str(testset), "-m", "/nope.safetensors", "--nre", "1"],
        1,
        needle="/nope.safetensors",
    )

    # ---- export
    ok = 0 if onnx else 1
    need = None if onnx else "pip install"
    f = mx.case_folder("export")
    units.append(
        [
            case(
                "export-fast",
                ["export", str(ckpt), "--preset", "fast", "-o", "{case}/m.onnx", "--threads", "1"],
                ok,
                folder=f,
                needle=need,
                out_dir=None,
                outputs=[Out("m.onnx", kind="file"), Out("m.onnx.json", kind="json")] if onnx else [],
            ),
            case(
                "export-exists",
                ["export", str(ckpt), "--preset", "fast", "-o", "{case}/m.onnx", "--threads", "1"],
                1,
                folder=f,
                needle="--overwrite" if onnx else need,
                watch=[f / "m.onnx"],
            ),
            case(
                "export-overwrite",
                [
                    "export",
                    str(ckpt),
                    "--preset",
                    "fast",
                    "-o",
                    "{case}/m.onnx",
                    "--overwrite",
                    "--threads",
                    "1",
                    "--no-check",
                ],
                ok,
                folder=f,
                needle=need,
                out_dir=None,
                mutable=[f / "m.onnx", f / "m.onnx.json"],
                outputs=[Out("m.onnx", kind="file")] if onnx else [],
            ),
        ]
    )
    single("export-read-only-folder", ["export", str(ckpt), "-o", "{case}/ro/m.onnx"], 2, needle="-o")
    mx.read_only_folder(units[-1][0].folder / "ro")
    f = mx.case_folder("export-output-under-a-file")
    (f / "afile").write_text("x")
    units.append(
        [
            case(
                "export-output-under-a-file",
                ["export", str(ckpt), "-o", str(f / "afile" / "m.onnx")],
                2,
                folder=f,
                needle="is a file",
            )
        ]
    )
    single("export-nre-33", ["export", str(ckpt), "--nre", "33", "-o", "{case}/m.onnx"], 2, needle="--nre")
    single("export-preset-bogus", ["export", str(ckpt), "--preset", "x", "-o", "{case}/m.onnx"], 2, needle="--preset")
    single(
        "export-model-missing", ["export", "/nope.safetensors", "-o", "{case}/m.onnx"], 1, needle="/nope.safetensors"
    )
    single(
        "export-check-input-missing",
        ["export", str(ckpt), "-o", "{case}/m.onnx", "--check-input", "{case}/gone.wav"],
        (1, 2),
        needle="gone.wav",
    )
    single(
        "export-check-input-garbage",
        ["export", str(ckpt), "-o", "{case}/m.onnx", "--check-input", str(inp["garbage_wav"])],
        1,
        needle="garbage.wav" if onnx else need,
    )
    single(
        "export-check-input-nan",
        ["export", str(ckpt), "-o", "{case}/m.onnx", "--check-input", str(inp["nan"])],
        1,
        needle="nan.wav" if onnx else need,
    )

    # ---- bench
    bench = ["bench", "-m", str(ckpt), "--seconds", "0.3", "--runs", "1", "--nre", "1", "--threads", "1"]
    single("bench-json", [*bench, "--json"], 0, out_dir=None, stdout_check=_json_any)
    single(
        "bench-random-tiny",
        ["bench", "-m", "random-tiny", "--seconds", "0.3", "--runs", "1", "--nre", "1,2", "--threads", "1"],
        0,
        out_dir=None,
    )
    single(
        "bench-bundled",
        ["bench", "-m", "tisdiss-small-8k", "--seconds", "0.5", "--runs", "1", "--nre", "1", "--threads", "1"],
        0,
        out_dir=None,
    )
    single("bench-nre-bogus", ["bench", "-m", str(ckpt), "--nre", "a,b"], 2, needle="--nre")
    single("bench-nre-33", ["bench", "-m", str(ckpt), "--nre", "33"], 2, needle="--nre")
    single("bench-seconds-0", ["bench", "-m", str(ckpt), "--seconds", "0"], 2, needle="--seconds")
    single("bench-runs-0", ["bench", "-m", str(ckpt), "--runs", "0"], 2, needle="--runs")
    single("bench-device-bogus", ["bench", "-m", str(ckpt), "--device", "bogus"], 2, needle="unknown device")
    single("bench-device-cuda", [*bench, "--device", "cuda"], 0 if cuda else 2, needle="CUDA", out_dir=None)
    single("bench-precision-bogus", ["bench", "-m", str(ckpt), "--precision", "x"], 2, needle="--precision")
    single(
        "bench-model-missing",
        ["bench", "-m", "/nope.safetensors", "--seconds", "0.3", "--runs", "1"],
        1,
        needle="/nope.safetensors",
    )

    # ---- models (each unit its own cache)
    def models_case(name: str, argv: list[str], expect: int | tuple[int, ...], cache: Path, **kw: Any) -> Case:
        env = {"TISDISS_CACHE_DIR": str(cache), **kw.pop("env", {})}
        return case(name, ["models", *argv], expect, env=env, out_dir=None, **kw)

    f = mx.case_folder("models")
    cache = f / "cache"
    units.append(
        [
            models_case("models-list", ["list"], 0, cache, folder=f, stdout_check=has("tisdiss-small-8k")),
            models_case("models-info-bundled", ["info", "tisdiss-small-8k"], 0, cache, folder=f),
            models_case("models-info-wsj0-2mix", ["info", "wsj0-2mix"], 0, cache, folder=f),
            models_case("models-info-unknown", ["info", "nope"], 1, cache, folder=f, needle="nope"),
            models_case("models-path", ["path"], 0, cache, folder=f, stdout_check=has(str(cache))),
            models_case("models-path-unknown", ["path", "nope"], (1, 2), cache, folder=f, needle="nope"),
            models_case("models-import", ["import", str(ckpt), "--name", "mine"], 0, cache, folder=f),
            models_case(
                "models-import-taken", ["import", str(ckpt), "--name", "mine"], 1, cache, folder=f, needle="--force"
            ),
            models_case("models-import-force", ["import", str(ckpt), "--name", "mine", "--force"], 0, cache, folder=f),
            models_case("models-import-no-name", ["import", str(ckpt)], 2, cache, folder=f, needle="--name"),
            models_case(
                "models-import-missing",
                ["import", "{case}/gone.safetensors", "--name", "x"],
                1,
                cache,
                folder=f,
                needle="gone.safetensors",
            ),
            models_case(
                "models-import-garbage",
                ["import", str(inp["garbage_wav"]), "--name", "g"],
                1,
                cache,
                folder=f,
                needle="garbage.wav",
            ),
            models_case(
                "models-import-empty-folder",
                ["import", str(inp["empty_dir"]), "--name", "e"],
                1,
                cache,
                folder=f,
                needle="empty_dir",
            ),
            models_case(
                "models-import-bad-name",
                ["import", str(ckpt), "--name", "../escape"],
                (1, 2),
                cache,
                folder=f,
                needle="escape",
            ),
            models_case(
                "models-import-over-bundled",
                ["import", str(ckpt), "--name", "tisdiss-small-8k"],
                (1, 2),
                cache,
                folder=f,
                needle="tisdiss-small-8k",
            ),
        ]
    )
    units[-1].append(
        case(
            "models-use-imported",
            ["separate", str(p16), "-o", "{case}/out", "-m", "mine", "--threads", "1"],
            0,
            folder=f,
            env={"TISDISS_CACHE_DIR": str(cache)},
            outputs=spk_outputs("mix_pcm_16", fr),
        )
    )
    units[-1] += [
        models_case("models-remove-imported", ["remove", "mine"], 0, cache, folder=f),
        models_case("models-remove-again", ["remove", "mine"], (0, 1), cache, folder=f, needle="mine"),
        models_case("models-remove-unknown", ["remove", "nope"], 1, cache, folder=f, needle="nope"),
        models_case(
            "models-remove-bundled", ["remove", "tisdiss-small-8k"], 1, cache, folder=f, needle="tisdiss-small-8k"
        ),
        models_case("models-download-offline", ["download", "wsj0-2mix"], 1, cache, folder=f, needle="TISDISS_OFFLINE"),
        models_case(
            "models-remove-never-downloaded",
            ["remove", "wsj0-2mix"],
            (0, 1),
            cache,
            folder=f,
            stdout_check=lambda s: "removed 1 file" in s and "removed 1 file(s) " or None,
        ),
        models_case("models-download-unknown", ["download", "nope"], 1, cache, folder=f, needle="nope"),
        models_case("models-unknown-subcommand", ["fetch", "x"], 2, cache, folder=f, needle="fetch"),
    ]
    # downloads from a local server
    mx.server = FileServer()
    blob = ckpt.read_bytes()
    mx.server.files["tiny.safetensors"] = blob
    f = mx.case_folder("models-download")
    cache = f / "cache"
    good = f / "good.toml"
    sha = hashlib.sha256(blob).hexdigest()
    good.write_text(_registry_toml("local-tiny", mx.server.url("tiny.safetensors"), sha, len(blob)))
    bad = f / "bad.toml"
    bad.write_text(_registry_toml("bad-tiny", mx.server.url("tiny.safetensors"), "0" * 64, len(blob)))
    missing = f / "missing.toml"
    missing.write_text(_registry_toml("gone-tiny", mx.server.url("gone.safetensors"), sha, len(blob)))
    broken = f / "broken.toml"
    broken.write_text("[models.x\nurl = ")
    online = {"TISDISS_OFFLINE": "0"}
    units.append(
        [
            models_case(
                "models-download-local",
                ["download", "local-tiny"],
                0,
                cache,
                folder=f,
                env={**online, "TISDISS_REGISTRY": str(good)},
                scan=[cache],
            ),
            models_case(
                "models-download-local-again",
                ["download", "local-tiny"],
                0,
                cache,
                folder=f,
                env={**online, "TISDISS_REGISTRY": str(good)},
                watch=[cache],
            ),
            models_case(
                "models-download-hash-mismatch",
                ["download", "bad-tiny"],
                1,
                cache,
                folder=f,
                env={**online, "TISDISS_REGISTRY": str(bad)},
                needle="sha256",
                scan=[cache],
            ),
            models_case(
                "models-download-404",
                ["download", "gone-tiny"],
                1,
                cache,
                folder=f,
                env={**online, "TISDISS_REGISTRY": str(missing)},
                needle="gone-tiny",
                scan=[cache],
            ),
            models_case(
                "models-list-broken-registry",
                ["list"],
                1,
                cache,
                folder=f,
                env={"TISDISS_REGISTRY": str(broken)},
                needle="broken.toml",
            ),
            models_case(
                "models-list-missing-registry",
                ["list"],
                1,
                cache,
                folder=f,
                env={"TISDISS_REGISTRY": str(f / "nope.toml")},
                needle="nope.toml",
            ),
        ]
    )
    units[-1].append(
        case(
            "models-separate-downloaded",
            ["separate", str(p16), "-o", "{case}/out", "-m", "local-tiny", "--threads", "1"],
            0,
            folder=f,
            env={"TISDISS_CACHE_DIR": str(cache), "TISDISS_REGISTRY": str(good)},
            outputs=spk_outputs("mix_pcm_16", fr),
        )
    )
    units[-1].append(
        models_case(
            "models-remove-downloaded",
            ["remove", "local-tiny"],
            0,
            cache,
            folder=f,
            env={"TISDISS_REGISTRY": str(good)},
        )
    )

    # ---- train
    quick = ["--set", "optim.max_steps=2", "--set", "data.epoch_size=4", "--set", "data.valid_size=2"]
    f = mx.case_folder("train")
    run = f / "run"
    base = ["train", "--quiet", "--threads", "1"]
    units.append(
        [
            case(
                "train-tiny",
                [*base, "--recipe", "tiny", "--data", str(corpus), "--run", str(run), *quick],
                0,
                folder=f,
                out_dir=None,
                outputs=[Out("run/model.safetensors", kind="file"), Out("run/config.json", kind="json")],
                timeout=300,
            ),
            case(
                "train-resume-finished",
                [*base, "--resume", "--run", str(run)],
                0,
                folder=f,
                out_dir=None,
                watch=[run],
                stderr_check=has("already finished"),
                timeout=300,
            ),
            case(
                "train-resume-finished-again",
                [*base, "--resume", "--run", str(run)],
                0,
                folder=f,
                out_dir=None,
                watch=[run],
                timeout=300,
            ),
            case(
                "train-into-existing-run",
                [*base, "--recipe", "tiny", "--data", str(corpus), "--run", str(run), *quick],
                (1, 2),
                folder=f,
                watch=[run],
                needle=str(run),
            ),
            case(
                "train-resume-other-recipe",
                [*base, "--resume", "--run", str(run), "--recipe", "speech8k"],
                2,
                folder=f,
                watch=[run],
                needle="--recipe",
            ),
            case(
                "sep-with-run-folder",
                ["separate", str(p16), "-o", "{case}/out", "-m", str(run), "--threads", "1"],
                0,
                folder=f,
                watch=[run],
                outputs=spk_outputs("mix_pcm_16", fr),
            ),
            case(
                "models-import-run-folder",
                ["models", "import", str(run), "--name", "myrun"],
                0,
                folder=f,
                watch=[run],
                env={"TISDISS_CACHE_DIR": str(f / "cache")},
                out_dir=None,
            ),
        ]
    )
    f = mx.case_folder("train-resume-missing")
    units.append(
        [case("train-resume-missing", [*base, "--resume", "--run", "{case}/norun"], (1, 2), folder=f, needle="norun")]
    )
    single(
        "train-recipe-bogus",
        [*base, "--recipe", "bogus", "--data", str(corpus), "--run", "{case}/r"],
        2,
        needle="bogus",
    )
    # A corpus folder that is missing or holds no SPEAKER/UTT files is a file error (1), found when the
    # data are indexed, as for `separate nope.wav` and `eval` of a test set missing a file; a bad
    # recipe, --set or --config (the command line's own text) is a usage error (2).
    single(
        "train-data-missing",
        [*base, "--recipe", "tiny", "--data", "{case}/nodata", "--run", "{case}/r"],
        1,
        needle="nodata",
    )
    single(
        "train-data-empty",
        [*base, "--recipe", "tiny", "--data", str(inp["empty_dir"]), "--run", "{case}/r"],
        1,
        needle="empty_dir",
    )
    single(
        "train-set-unknown-key",
        [*base, "--recipe", "tiny", "--data", str(corpus), "--run", "{case}/r", "--set", "optim.nope=1"],
        2,
        needle="optim: unknown key 'nope'",
    )
    single(
        "train-set-bad-value",
        [*base, "--recipe", "tiny", "--data", str(corpus), "--run", "{case}/r", "--set", "optim.lr=fast"],
        2,
        needle="optim.lr",
    )
    single(
        "train-set-no-equals",
        [*base, "--recipe", "tiny", "--data", str(corpus), "--run", "{case}/r", "--set", "optim.lr"],
        2,
        needle="optim.lr",
    )
    f = mx.case_folder("train-run-is-a-file")
    (f / "afile").write_text("x")
    units.append(
        [
            case(
                "train-run-is-a-file",
                [*base, "--recipe", "tiny", "--data", str(corpus), "--run", str(f / "afile"), *quick],
                2,
                folder=f,
                needle="is a file",
            )
        ]
    )
    f = mx.case_folder("train-config-garbage")
    (f / "c.toml").write_text("this is = = not toml")
    units.append(
        [
            case(
                "train-config-garbage",
                [*base, "--config", str(f / "c.toml"), "--data", str(corpus), "--run", str(f / "r")],
                2,
                folder=f,
                needle="c.toml",
            )
        ]
    )
    single(
        "train-print-config",
        [*base, "--recipe", "tiny", "--print-config"],
        0,
        out_dir=None,
        stdout_check=has("emb_dim"),
    )
    single("train-no-recipe", [*base, "--data", str(corpus), "--run", "{case}/r"], 2, needle="--recipe")
    single(
        "train-init-from-missing",
        [
            *base,
            "--recipe",
            "tiny",
            "--data",
            str(corpus),
            "--run",
            "{case}/r",
            "--init-from",
            "/nope.safetensors",
            *quick,
        ],
        (1, 2),
        needle="/nope.safetensors",
    )

    # ---- live --from-file
    lv = ["live", "-m", str(ckpt), "--nre", "1", "--no-adapt", "--threads", "1", "-q", "--segment", "0.2"]
    single(
        "live-from-file",
        [*lv, "--from-file", str(inp["pcm_16"]), "-o", "{case}/out", "--name", "t"],
        0,
        outputs=spk_outputs("t", fr),
        timeout=120,
    )
    single(
        "live-from-file-16k-stereo",
        [*lv, "--from-file", str(inp["stereo16k"]), "-o", "{case}/out", "--name", "t", "--float"],
        0,
        outputs=spk_outputs("t", inp.frames["stereo16k"], rate=16000),
        timeout=120,
    )
    single(
        "live-from-file-missing", [*lv, "--from-file", "{case}/gone.wav", "-o", "{case}/out"], (1, 2), needle="gone.wav"
    )
    single(
        "live-from-file-garbage",
        [*lv, "--from-file", str(inp["garbage_wav"]), "-o", "{case}/out"],
        1,
        needle="garbage.wav",
    )
    single(
        "live-from-file-nan",
        [*lv, "--from-file", str(inp["nan"]), "-o", "{case}/out", "--name", "t"],
        1,
        needle="nan.wav",
    )
    single(
        "live-monitor-3",
        [*lv, "--from-file", str(inp["pcm_16"]), "--monitor", "3", "-o", "{case}/out"],
        2,
        needle="--monitor",
    )
    single(
        "live-device-bogus", [*lv, "--from-file", str(inp["pcm_16"]), "--device", "bogus"], 2, needle="unknown device"
    )
    single("live-rate-0", [*lv, "--from-file", str(inp["pcm_16"]), "--rate", "0"], 2, needle="--rate")
    single(
        "live-max-rtf-0",
        ["live", "-m", str(ckpt), "--max-rtf", "0", "--from-file", str(inp["pcm_16"])],
        2,
        needle="--max-rtf",
    )
    single(
        "live-microphone-without-sounddevice",
        [*lv, "-o", "{case}/out"],
        (0, 1) if _has("sounddevice") else 1,
        needle="pip install",
        timeout=20,
        skip="sounddevice installed: would open a microphone" if _has("sounddevice") else None,
    )
    f = mx.case_folder("live-output-is-a-file")
    (f / "afile").write_text("x")
    units.append(
        [
            case(
                "live-output-is-a-file",
                [*lv, "--from-file", str(inp["pcm_16"]), "-o", str(f / "afile")],
                2,
                folder=f,
                needle="is a file",
            )
        ]
    )
    f = mx.case_folder("live-existing")
    units.append(
        [
            case(
                "live-existing-first",
                [*lv, "--from-file", str(inp["pcm_16"]), "-o", "{case}/out", "--name", "t"],
                0,
                folder=f,
                outputs=spk_outputs("t", fr),
            ),
            case(
                "live-existing-refused",
                [*lv, "--from-file", str(inp["pcm_16"]), "-o", "{case}/out", "--name", "t"],
                1,
                folder=f,
                needle="--overwrite",
                watch=[f / "out"],
                outputs=spk_outputs("t", fr),
            ),
            case(
                "live-existing-overwrite",
                [*lv, "--from-file", str(inp["pcm_16"]), "-o", "{case}/out", "--name", "t", "--overwrite"],
                0,
                folder=f,
                outputs=spk_outputs("t", fr),
                mutable=[f / "out" / "t_spk1.wav", f / "out" / "t_spk2.wav"],
            ),
        ]
    )

    # ---- top level
    single("top-version", ["--version"], 0, out_dir=None)
    # click's no_args_is_help: the help on stdout and exit 2 (a usage error), nothing on stderr
    single("top-no-command", [], (0, 2), out_dir=None, message_on="stdout", needle="Usage:")
    single("top-unknown-command", ["split", "a.wav"], 2, needle="split")
    for command in ("separate", "eval", "export", "bench", "train", "live", "models"):
        single(f"help-{command}", [command, "--help"], 0, out_dir=None, stdout_check=has("Usage"))
    return units


def _registry_toml(name: str, url: str, sha: str, size: int) -> str:
    return (
        f'[models.{name}]\nsummary = "local test model"\nformat = "tisdiss"\nurl = "{url}"\n'
        f'sha256 = "{sha}"\nsize = {size}\nsample_rate = 8000\nnum_spk = 2\n'
    )


def _all_named(note: str | None, paths: list[Path]) -> Callable[[str], str | None]:
    """Each of ``paths`` named with ``note`` on stderr (a library warning: ``warning: path: note``),
    or no warning at all for None."""

    def check(stderr: str) -> str | None:
        if note is None:
            return None if "warning" not in stderr else "a warning for a header that declares no length"
        missing = [f"{p.parent.name}/{p.name}" for p in paths if f"warning: {p}: {note}" not in stderr]
        return f"no warning naming {', '.join(missing)}" if missing else None

    return check


def _json_summary(count: int) -> Callable[[str], str | None]:
    def check(stdout: str) -> str | None:
        try:
            summary = json.loads(stdout)
        except ValueError as exc:
            return f"--json: stdout is not JSON ({exc})"
        if summary.get("files") != 1 or len(summary.get("outputs", [])) != count:
            return f"--json: files {summary.get('files')}, outputs {summary.get('outputs')}"
        return None

    return check


def _json_any(stdout: str) -> str | None:
    try:
        json.loads(stdout)
    except ValueError as exc:
        return f"stdout is not JSON ({exc})"
    return None


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda_available() -> bool:
    proc = subprocess.run(
        [sys.executable, "-c", "import torch; print(int(torch.cuda.is_available()))"], capture_output=True, text=True
    )
    return proc.stdout.strip() == "1"


# --------------------------------------------------------------------------- the Python API


CALL_TIMEOUT = 60  # seconds one API call may take


class CallTimeout(Exception):
    """Raised by SIGALRM inside the API worker when a call takes too long."""


def _on_alarm(signum: int, frame: object) -> None:
    raise CallTimeout


def api_worker(root: Path, ckpt: Path, inputs: Path, report: Path) -> None:
    """Runs every API call in this process; writes one record per call to ``report``."""
    import torch

    torch.set_num_threads(1)
    from tisdiss_cli import Separator

    signal.signal(signal.SIGALRM, _on_alarm)

    records: list[dict[str, Any]] = []
    sep = Separator(ckpt, device="cpu", speakers=2)  # two rows, known in advance: their shape is checked
    x = mixture(0.6)[:, 0].astype(np.float32)
    n = len(x)

    def call(
        name: str,
        expect: str,
        fn: Callable[[], Any],
        arrays: tuple[Any, ...] = (),
        shape: Any = None,
        allow_constant: bool = False,
        allow_clipped: bool = True,
        check: Callable[[Any], str | None] | None = None,
    ) -> None:
        copies = [a.copy() if isinstance(a, np.ndarray) else a.clone() for a in arrays]
        rec: dict[str, Any] = {
            "name": name,
            "expect": expect,
            "outcome": "ok",
            "error": None,
            "traceback": False,
            "corruption": None,
            "modified": False,
        }
        t0 = time.perf_counter()
        signal.alarm(CALL_TIMEOUT)
        try:
            out = fn()
        except CallTimeout:
            rec["outcome"] = "timeout"
            rec["error"] = f"no answer within {CALL_TIMEOUT} s"
            out = None
        except Exception as exc:
            rec["outcome"] = "error"
            rec["error"] = f"{type(exc).__name__}: {exc}"
            known = isinstance(exc, ValueError | OSError) or type(exc).__module__.startswith("tisdiss_cli")
            rec["traceback"] = not known
            if not known:
                rec["error"] += "\n" + traceback.format_exc(limit=3)
        else:
            problem = None
            if isinstance(out, np.ndarray):
                if shape is not None and tuple(out.shape) != tuple(shape):
                    problem = f"shape {tuple(out.shape)}, expected {tuple(shape)}"
                elif out.size:
                    problem = judge_audio(
                        out.T.astype(np.float64), 0, Out("", allow_constant=allow_constant, allow_clipped=allow_clipped)
                    )
            if problem is None and check is not None:
                problem = check(out)
            rec["corruption"] = problem
        signal.alarm(0)
        rec["seconds"] = time.perf_counter() - t0
        for a, c in zip(arrays, copies, strict=True):
            if not _same(a, c):
                rec["modified"] = True
        records.append(rec)

    def bad(arr: np.ndarray, index: int, value: float) -> np.ndarray:
        y = arr.copy()
        y[index] = value
        return y

    j = sep.num_spk
    cases: list[tuple[str, str, Any, Any]] = [
        ("separate float32 mono", "ok", x, (j, n)),
        ("separate float64 mono", "ok", x.astype(np.float64), (j, n)),
        ("separate float16 mono", "either", x.astype(np.float16), (j, n)),
        ("separate stereo [C, L]", "ok", np.stack([x, x[::-1].copy()]), (j, n)),
        ("separate 64 channels", "ok", np.tile(x, (64, 1)), (j, n)),
        ("separate 65 channels", "error", np.tile(x, (65, 1)), None),
        ("separate [L, C] soundfile layout", "error", np.stack([x, x], axis=1), None),
        ("separate 3-D array", "error", x.reshape(1, 1, -1), None),
        ("separate 0-D array", "error", np.float32(0.5), None),
        ("separate [1, L]", "ok", x[None], (j, n)),
        ("separate [0, L] no channels", "error", np.zeros((0, n), np.float32), None),
        ("separate int16 PCM", "ok", (x * 32767).astype(np.int16), (j, n)),
        ("separate int32 PCM", "ok", (x * 2**31).astype(np.int32), (j, n)),
        ("separate int8 PCM", "ok", (x * 127).astype(np.int8), (j, n)),
        ("separate uint8 (8-bit WAV PCM, docs)", "ok", (x * 127 + 128).astype(np.uint8), (j, n)),
        ("separate int64", "error", (x * 32767).astype(np.int64), None),
        ("separate bool", "error", x > 0, None),
        ("separate complex", "error", x.astype(np.complex64), None),
        ("separate object array", "error", np.array(["a", "b"], dtype=object), None),
        ("separate NaN", "error", bad(x, 100, np.nan), None),
        ("separate +inf", "error", bad(x, 100, np.inf), None),
        ("separate -inf", "error", bad(x, 100, -np.inf), None),
        ("separate huge finite 3e38", "either", (x / np.abs(x).max() * 3e38).astype(np.float32), (j, n)),
        ("separate huge 1e30 (chunked)", "ok", np.tile(x, 8) * np.float32(1e30), (j, 8 * n)),
        ("separate float64 beyond float32 (1e300)", "either", x.astype(np.float64) * 1e300, (j, n)),
        ("separate empty", "ok", np.zeros(0, np.float32), (j, 0)),
        ("separate one sample", "ok", x[:1].copy(), (j, 1)),
        ("separate silence", "ok", np.zeros(n, np.float32), (j, n)),
        ("separate torch float32", "ok", torch.from_numpy(x.copy()), (j, n)),
        ("separate torch int16", "ok", torch.from_numpy((x * 32767).astype(np.int16)), (j, n)),
        ("separate torch NaN", "error", torch.from_numpy(bad(x, 5, np.nan)), None),
        ("separate non-contiguous", "ok", np.stack([x, x])[:, ::2], (j, (n + 1) // 2)),
    ]
    for name, expect, arr, shape in cases:
        silent = "silence" in name
        arrays = (arr,) if isinstance(arr, np.ndarray | torch.Tensor) else ()
        call(name, expect, partial(sep.separate, arr, RATE), arrays, shape, allow_constant=silent)
    call("separate python list", "either", lambda: sep.separate([0.1, -0.2, 0.3] * 100, RATE), shape=(j, 300))  # type: ignore[arg-type]
    for rate, expect, shape in (
        (7000, "ok", (j, n)),
        (96000, "ok", (j, n)),
        (0, "error", None),
        (-8000, "error", None),
    ):
        call(f"separate rate {rate}", expect, partial(sep.separate, x, rate), (x,), shape)
    x8 = x[:8].copy()  # 8 s at 1 Hz
    call("separate rate 1 Hz", "either", lambda: sep.separate(x8, 1), (x8,), (j, 8))
    call("separate rate '8000' (str)", "error", lambda: sep.separate(x, "8000"), (x,))  # type: ignore[arg-type]
    call("separate rate 8e3 (a whole float)", "ok", lambda: sep.separate(x, 8e3), (x,), (j, n))  # type: ignore[arg-type]
    call("separate rate 8000.5 (docs: whole Hz)", "error", lambda: sep.separate(x, 8000.5), (x,))  # type: ignore[arg-type]
    call("separate rate nan", "error", lambda: sep.separate(x, float("nan")), (x,))  # type: ignore[arg-type]
    call("separate n_re 33", "error", lambda: sep.separate(x, RATE, n_re=33), (x,))
    call("separate n_sep 0", "error", lambda: sep.separate(x, RATE, n_sep=0), (x,))
    call("separate preset bogus", "error", lambda: sep.separate(x, RATE, preset="turbo"), (x,))
    call("Separator device bogus", "error", lambda: Separator(ckpt, device="bogus"))
    call("Separator precision bogus", "error", lambda: Separator(ckpt, device="cpu", precision="fp8"))
    call("Separator model missing", "error", lambda: Separator("/nope.safetensors", device="cpu"))
    call("Separator model garbage", "error", lambda: Separator(inputs / "garbage.wav", device="cpu"))
    call("Separator segment 0", "error", lambda: Separator(ckpt, device="cpu", segment=0.0))
    call("Separator overlap 1.5", "error", lambda: Separator(ckpt, device="cpu", overlap=1.5))
    call("Separator preset bogus", "error", lambda: Separator(ckpt, device="cpu", preset="turbo"))

    # process_file
    out_root = root / "api"
    out_root.mkdir()
    ref = sf.info(inputs / "mix_pcm_16.wav").frames

    def files_ok(res: Any, count: int = 2, frames: int | None = ref, clipped: bool = False) -> str | None:
        for p in res.outputs:
            problem = check_output(Path("/"), Out(str(p).lstrip("/"), frames, allow_clipped=clipped))
            if problem:
                return problem
        return None if len(res.outputs) == count else f"{len(res.outputs)} outputs"

    call("process_file ok", "ok", lambda: sep.process_file(inputs / "mix_pcm_16.wav", out_root / "a"), check=files_ok)
    call("process_file existing outputs", "error", lambda: sep.process_file(inputs / "mix_pcm_16.wav", out_root / "a"))
    call(
        "process_file overwrite",
        "ok",
        lambda: sep.process_file(inputs / "mix_pcm_16.wav", out_root / "a", overwrite=True),
        check=files_ok,
    )
    call(
        "process_file flac float",
        "error",
        lambda: sep.process_file(inputs / "mix_pcm_16.wav", out_root / "b", fmt="flac", float_output=True),
    )
    call("process_file missing", "error", lambda: sep.process_file(inputs / "gone.wav", out_root / "c"))
    call("process_file garbage", "error", lambda: sep.process_file(inputs / "garbage.wav", out_root / "c"))
    call("process_file empty file", "error", lambda: sep.process_file(inputs / "empty.wav", out_root / "c"))
    call("process_file NaN wav", "error", lambda: sep.process_file(inputs / "nan.wav", out_root / "c"))
    call("process_file directory", "error", lambda: sep.process_file(inputs / "empty_dir", out_root / "c"))
    (root / "api_file").write_text("x")
    call(
        "process_file out_dir is a file",
        "error",
        lambda: sep.process_file(inputs / "mix_pcm_16.wav", root / "api_file"),
    )
    call(
        "process_file template without {spk}",
        "error",
        lambda: sep.process_file(inputs / "mix_pcm_16.wav", out_root / "d", filename="{stem}.{ext}"),
    )
    call(
        "process_file template outside",
        "error",
        lambda: sep.process_file(inputs / "mix_pcm_16.wav", out_root / "d", filename="../{stem}_{spk}.{ext}"),
    )
    call(
        "process_file channel 3 of mono",
        "error",
        lambda: sep.process_file(inputs / "mix_pcm_16.wav", out_root / "e", channel=2),
    )
    call(
        "process_file 96 kHz opus",
        "ok",
        lambda: sep.process_file(inputs / "r96000.wav", out_root / "f", fmt="opus"),
        check=lambda r: files_ok(r, frames=None),
    )
    call(
        "process_file huge float",
        "ok",
        lambda: sep.process_file(inputs / "huge.wav", out_root / "g"),
        check=lambda r: files_ok(r, clipped=True),
    )
    call(
        "process_file truncated",
        "ok",
        lambda: sep.process_file(inputs / "truncated.wav", out_root / "h"),
        check=lambda r: files_ok(r, frames=sf.info(inputs / "truncated.wav").frames),
    )

    def header_ok(res: Any, note: str | None) -> str | None:
        problem = files_ok(res, frames=int(3.0 * RATE))
        if problem is None and res.warnings != ([note] if note else []):
            return f"warnings {res.warnings}"
        return problem

    for key, note in HEADER_NOTES.items():
        call(
            f"process_file header {key}-declared",
            "ok",
            partial(sep.process_file, inputs / f"header_{key}.wav", out_root / f"header_{key}"),
            check=partial(header_ok, note=note),
        )

    # stream
    def streamed(blocks: list[Any], rate: int = RATE, channels: int = 1, **kw: Any) -> np.ndarray:
        st = sep.stream(rate, channels=channels, **kw)
        parts = [st.feed(b) for b in blocks]
        parts.append(st.close())
        return np.concatenate(parts, axis=1)

    blocks = np.array_split(x, 7)
    call("stream float blocks", "ok", lambda: streamed(blocks), tuple(blocks), (j, n))
    call(
        "stream equals separate",
        "ok",
        lambda: streamed(blocks),
        (),
        (j, n),
        check=lambda y: None if np.allclose(y, sep.separate(x, RATE), atol=1e-5) else "differs from separate()",
    )
    i16 = [(b * 32767).astype(np.int16) for b in blocks]
    call("stream int16 blocks", "ok", lambda: streamed(i16), tuple(i16), (j, n))
    st2 = np.stack([x, x], axis=1)
    call("stream stereo [frames, 2]", "ok", lambda: streamed(np.array_split(st2, 3), channels=2), (st2,), (j, n))
    call("stream 16 kHz", "ok", lambda: streamed(np.array_split(np.repeat(x, 2), 5), rate=16000), (), (j, 2 * n))
    call("stream empty blocks", "ok", lambda: streamed([x[:0], x, x[:0]]), (), (j, n))
    call("stream nothing fed", "ok", lambda: streamed([]), (), (j, 0))
    call("stream NaN block", "error", lambda: streamed([x[:100], bad(x, 3, np.nan)]))
    call("stream inf block", "error", lambda: streamed([bad(x, 3, np.inf)]))
    call("stream wrong channel count", "error", lambda: streamed([st2], channels=1))
    call("stream 3-D block", "error", lambda: streamed([x.reshape(1, 1, -1)]))
    call("stream uint8 block (as separate)", "ok", lambda: streamed([(x * 100 + 128).astype(np.uint8)]), (), (j, n))
    call("stream rate 8000.5", "error", lambda: sep.stream(8000.5))  # type: ignore[arg-type]
    call("stream rate 0", "error", lambda: sep.stream(0))
    call("stream channels 0", "error", lambda: sep.stream(RATE, channels=0))
    call("stream channel 2 of 1", "error", lambda: streamed([x], channel=1))

    def after_close() -> Any:
        st = sep.stream(RATE)
        st.feed(x)
        st.close()
        return st.feed(x)

    call("stream feed after close", "error", after_close)
    report.write_text(json.dumps(records))


def _same(a: Any, b: Any) -> bool:
    """Equal content (NaN equal to NaN), for numpy arrays of any dtype and torch tensors."""
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return bool(a.dtype == b.dtype and a.shape == b.shape and a.numpy().tobytes() == b.numpy().tobytes())


def run_api(mx: Matrix, ckpt: Path, timeout: float) -> list[Result]:
    report = mx.root / "api.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--api-worker",
        str(mx.root),
        str(ckpt),
        str(mx.inputs),
        str(report),
    ]
    t0 = time.perf_counter()
    before = snapshot([mx.inputs, ckpt])
    try:
        proc = subprocess.run(cmd, env=mx.env, capture_output=True, text=True, timeout=timeout, cwd=mx.root)
        crashed = proc.returncode != 0 or not report.exists()
        tail = proc.stderr[-2000:]
    except subprocess.TimeoutExpired:
        crashed, tail = True, "timed out"
    wall = time.perf_counter() - t0
    changed = [str(p.relative_to(mx.root)) for p, h in before.items() if not p.exists() or file_hash(p) != h]
    if crashed:
        r = Result(
            "api-worker",
            "api",
            "python API worker",
            [0],
            1,
            wall,
            traceback="Traceback" in tail,
            wrong_exit=True,
            note="the API worker died",
            stderr_tail=tail,
        )
        return [r]
    results = []
    leftovers = [
        str(p.relative_to(mx.root))
        for p in (mx.root / "api").rglob("*")
        if p.is_file() and (is_part_file(p) or p.stat().st_size == 0)
    ]
    for rec in json.loads(report.read_text()):
        expect = {"ok": [0], "error": [1], "either": [0, 1]}[rec["expect"]]
        actual = {"ok": 0, "error": 1}.get(rec["outcome"])
        r = Result(
            rec["name"],
            "api",
            rec["name"],
            expect,
            actual,
            rec["seconds"],
            traceback=rec["traceback"],
            wrong_exit=actual not in expect,
            corruption=rec["corruption"],
            modified=["the input array"] if rec["modified"] else [],
            stderr_tail=rec["error"] or "",
        )
        if rec["error"] and "\n" in rec["error"].split("Traceback")[0].strip():
            r.message = "multi-line message"
        results.append(r)
    if results:
        results[-1].partial = leftovers
        results[-1].modified += changed
    return results


# --------------------------------------------------------------------------- driver


def run_units(
    mx: Matrix, units: list[list[Case]], jobs: int, first: Callable[[], list[Result]] | None = None
) -> list[Result]:
    """The units, ``jobs`` at a time; ``first`` (the API worker) takes the first slot, beside them."""
    results: list[Result] = []
    lock = threading.Lock()

    def run_first() -> None:
        assert first is not None
        for res in first():
            with lock:
                results.append(res)
                print(row(res), flush=True)

    def run_unit(unit: list[Case]) -> None:
        for case in unit:
            res = mx.run_case(case)
            with lock:
                results.append(res)
                print(row(res), flush=True)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_first)] if first is not None else []
        for fut in futures + [pool.submit(run_unit, u) for u in units]:
            fut.result()
    return results


def row(r: Result) -> str:
    flags = []
    if r.skipped:
        flags.append(f"SKIP {r.skipped}")
    if r.traceback:
        flags.append("TRACEBACK")
    if r.wrong_exit:
        flags.append("WRONG-EXIT")
    if r.corruption:
        flags.append(f"CORRUPT {r.corruption}")
    if r.partial:
        flags.append(f"PARTIAL {', '.join(r.partial[:3])}")
    if r.modified:
        flags.append(f"MODIFIED {', '.join(r.modified[:3])}")
    if r.message:
        flags.append(f"MSG {r.message}")
    expect = "/".join(map(str, r.expect))
    actual = "-" if r.actual is None else str(r.actual)
    status = "ok" if not flags else "; ".join(flags)
    return f"{r.kind:3} {r.name:50.50} exp {expect:5} got {actual:3} {r.seconds:6.1f}s  {status}"


def summarise(results: list[Result]) -> tuple[str, bool]:
    ran = [r for r in results if not r.skipped]
    t = sum(r.traceback for r in ran)
    w = sum(r.wrong_exit for r in ran)
    c = sum(r.corruption is not None for r in ran)
    p = sum(bool(r.partial) for r in ran)
    i = sum(bool(r.modified) for r in ran)
    line = (
        f"{len(ran)} cases: {t} tracebacks, {w} wrong exit codes, {c} silent corruptions, "
        f"{p} partial files, {i} inputs modified"
    )
    return line, bool(t or w or c or p or i)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--api-worker":
        root, ckpt, inputs, report = map(Path, sys.argv[2:6])
        api_worker(root, ckpt, inputs, report)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (each with one thread)")
    parser.add_argument("--only", action="append", default=[], help="run only cases whose name holds this")
    parser.add_argument("--no-api", action="store_true", help="skip the Python API calls")
    parser.add_argument("--out", type=Path, help="also write every case's record as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="tisdiss-matrix-"))
    mx = Matrix(root, args.jobs)
    os.environ.update({"OMP_NUM_THREADS": "1"})
    failed = True
    try:
        built = build_inputs(mx.inputs)
        ckpt = build_tiny_checkpoint(root / "model")
        corpus = build_corpus(root / "corpus")
        testset = build_testset(root / "testset")
        units = build_cases(mx, built, ckpt, corpus, testset)
        if args.only:
            units = [[c for c in u if any(s in c.name for s in args.only)] for u in units]
            units = [u for u in units if u]
        n_cli = sum(len(u) for u in units)
        print(f"{n_cli} command-line cases in {len(units)} units, {args.jobs} at a time; temp folder {root}")
        with_api = not args.no_api and (not args.only or any("api" in s for s in args.only))
        results = run_units(mx, units, args.jobs, (lambda: run_api(mx, ckpt, timeout=300)) if with_api else None)
        skipped = [r for r in results if r.skipped]
        unclear = [r for r in results if r.message and not r.skipped]
        for r in skipped:
            print(f"note: skipped {r.name}: {r.skipped}")
        print(f"{len(unclear)} error messages that do not name the file or problem on one line")
        if args.out:
            args.out.write_text(json.dumps([asdict(r) for r in results], indent=1))
        print(f"total {time.perf_counter() - t0:.0f} s")
        line, failed = summarise(results)
        print(line)
    finally:
        if mx.server is not None:
            mx.server.close()
        mx.unmount_all()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
