"""Benchmark of `tisdiss separate`: real-time factor per preset and peak RSS per input length.

Each (length, preset) runs in a fresh Python process, so peak RSS (``ru_maxrss``) belongs to
that run alone. Inputs are synthetic 16 kHz WAV files written block by block.

    python benchmarks/separate_bench.py --minutes 1 10 60 --threads 2
    python benchmarks/separate_bench.py --model my-model --device cuda --batch-size 8

Without ``--model`` a randomly initialised network of ``--config`` (default: the released
size, sep1x2-re1x6) is used: speed and memory only, its output means nothing.
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
import soundfile as sf

RATE = 16000


def write_input(path: Path, minutes: float, seed: int = 0) -> None:
    """Two 'talkers' (harmonic tones with syllable-rate envelopes) plus noise, in 10-s blocks."""
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * RATE)
    with sf.SoundFile(path, "w", samplerate=RATE, channels=1, subtype="PCM_16") as f:
        for start in range(0, total, 10 * RATE):
            t = np.arange(start, min(total, start + 10 * RATE)) / RATE
            a = np.sin(2 * np.pi * 130 * t) * np.clip(np.sin(2 * np.pi * 2.7 * t), 0, None)
            b = np.sin(2 * np.pi * 210 * t) * np.clip(np.sin(2 * np.pi * 3.9 * t + 1), 0, None)
            f.write((0.2 * (a + b) + 0.01 * rng.standard_normal(len(t))).astype(np.float32))


def child(args: argparse.Namespace) -> None:
    import torch

    from tisdiss_cli import Separator
    from tisdiss_cli.model.config import ARCHITECTURES
    from tisdiss_cli.model.network import TISDiSS, init_weights
    from tisdiss_cli.util.runtime import tune_allocator

    if not args.no_tune_allocator:
        tune_allocator()  # as the tisdiss command does
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        model: object = args.model
    else:
        torch.manual_seed(0)
        model = TISDiSS(ARCHITECTURES[args.config])
        init_weights(model)
    sep = Separator(
        model,
        device=args.device,
        segment=args.segment,
        overlap=args.overlap,
        batch_size=args.batch_size,
        tracker=args.tracker,
    )
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        res = sep.process_file(args.input, out, preset=args.preset)
        wall = time.perf_counter() - t0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(
        json.dumps(
            {
                "preset": args.preset,
                "n_sep": res.depth[0],
                "n_re": res.depth[1],
                "audio_s": res.duration,
                "wall_s": round(wall, 2),
                "rtf": round(wall / res.duration, 4),
                "peak_rss_mb": round(rss_kb / 1024),
                "chunks": res.chunks,
                "segment_s": sep.segment_seconds,
                "device": str(sep.device),
                "model": sep.loaded.name,
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    p.add_argument("--presets", nargs="+", default=["fast", "balanced", "best"])
    p.add_argument("--model", help="model spec for load_model (default: random weights of --config)")
    p.add_argument("--config", default="sep1x2-re1x6", help="named config for random weights")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--segment", type=float, default=None, help="chunk seconds (default: the model card's)")
    p.add_argument("--overlap", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--tracker", default="voice", help="voice (the default, as `separate`) or overlap")
    p.add_argument("--no-tune-allocator", action="store_true", help="keep glibc's default malloc settings")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--preset", help=argparse.SUPPRESS)
    args = p.parse_args()
    from tisdiss_cli.separation.separator import DEFAULT_OVERLAP

    args.overlap = DEFAULT_OVERLAP if args.overlap is None else args.overlap
    if args.child:
        child(args)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            wav = Path(tmp) / f"in_{minutes:g}min.wav"
            write_input(wav, minutes)
            for preset in args.presets:
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    "--input",
                    str(wav),
                    "--preset",
                    preset,
                    "--device",
                    args.device,
                    "--config",
                    args.config,
                    *(["--segment", str(args.segment)] if args.segment is not None else []),
                    "--overlap",
                    str(args.overlap),
                    "--batch-size",
                    str(args.batch_size),
                ]
                cmd += ["--model", args.model] if args.model else []
                cmd += ["--threads", str(args.threads)] if args.threads else []
                cmd += ["--no-tune-allocator"] if args.no_tune_allocator else []
                cmd += ["--tracker", args.tracker]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode:
                    print(f"{minutes:g} min {preset}: failed\n{done.stderr}", file=sys.stderr)
                    continue
                row = {"minutes": minutes, **json.loads(done.stdout.strip().splitlines()[-1])}
                rows.append(row)
                print(
                    f"{minutes:>5g} min  {preset:<8} (n_sep={row['n_sep']}, n_re={row['n_re']})  RTF {row['rtf']:.3f}  "
                    f"peak RSS {row['peak_rss_mb']} MB  {row['chunks']} chunks  {row['wall_s']} s",
                    flush=True,
                )
            wav.unlink()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
