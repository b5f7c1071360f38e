"""Speed and memory of FFmpeg inputs: probe (one counting decode) and block reading of an AAC m4a.

Makes a synthetic mono AAC file of ``--minutes`` in a temporary folder (PyAV, the ``av`` extra), then
times ``audio.probe`` and ``audio.read_blocks`` (to 8 kHz, as the bundled model reads it) and reports
the peak resident memory of the process. Run at two lengths to see that memory does not grow with it:

    python benchmarks/decode_speed.py --minutes 1
    python benchmarks/decode_speed.py --minutes 10
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.media import CONTAINERS, write_media  # noqa: E402
from tisdiss_cli.audio import files as audio  # noqa: E402


def write_file(path: Path, minutes: float, rate: int) -> None:
    spec = CONTAINERS["m4a-aac"]
    n = int(minutes * 60 * rate)
    t = np.arange(n) / rate
    wave = (0.2 * np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)))[:, None].astype(np.float32)
    write_media(path, [wave], type(spec)(spec.suffix, spec.encoders, rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)  # internal: make the file and exit
    args = parser.parse_args()
    if args.write is not None:
        write_file(args.write, args.minutes, args.rate)
        return
    n = int(args.minutes * 60 * args.rate)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "long.m4a"
        # Made in another process, so that this one's peak memory is the decoding's alone.
        make = [
            sys.executable,
            __file__,
            "--write",
            str(path),
            "--minutes",
            str(args.minutes),
            "--rate",
            str(args.rate),
        ]
        subprocess.run(make, check=True)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        info = audio.probe(path)
        probe_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = sum(len(block) for block in audio.read_blocks(path, 8000))
        read_s = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "minutes": args.minutes,
        "rate": args.rate,
        "frames": info.frames,
        "exact": info.frames == n,
        "samples_at_8k": got,
        "probe_s": round(probe_s, 3),
        "read_s": round(read_s, 3),
        "probe_x_realtime": round(info.duration / probe_s, 1),
        "read_x_realtime": round(info.duration / read_s, 1),
        "peak_rss_mb_before_decoding": round(before, 1),
        "peak_rss_mb": round(peak, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
