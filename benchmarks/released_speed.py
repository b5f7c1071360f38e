"""Released configuration, random weights, CPU: time per (N_sep, N_re) for 4-s and 10-s inputs.

Each setting runs in a fresh process (1 warm-up, then --runs timed runs; median, min-max,
RTF, peak RSS), as in ../shared/design/reference-speed.md, whose figures (the authors' code
on that note's machine) are printed alongside.

    python benchmarks/released_speed.py [--threads 2] [--runs 3] [--lengths 4,10] [--nre 1,3,6,8]

A same-machine stand-in for the authors' implementation: the plain layer implementations,
SDPA's math backend (their code forces it) and glibc's default allocator:

    python benchmarks/released_speed.py --reference --math-attention --no-tune-allocator
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

# The authors' implementation (median RTF), from reference-speed.md.
REFERENCE_RTF = {
    (4.0, 1): 1.68,
    (4.0, 3): 3.46,
    (4.0, 6): 5.24,
    (4.0, 8): 7.67,
    (10.0, 1): 2.10,
    (10.0, 3): 4.56,
    (10.0, 6): 8.16,
    (10.0, 8): 11.43,
}
FLAGS = ("reference", "math_attention", "no_tune_allocator")


def _child(seconds: float, n_re: int, args: argparse.Namespace) -> None:
    import contextlib

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from tisdiss_cli.evaluation.bench import random_model, time_forward
    from tisdiss_cli.model.layers import reference_paths
    from tisdiss_cli.util.runtime import tune_allocator

    if not args.no_tune_allocator:
        tune_allocator()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    with contextlib.ExitStack() as stack:
        if args.reference:
            stack.enter_context(reference_paths())
        if args.math_attention:
            stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        r = time_forward(random_model("random-released"), n_sep=2, n_re=n_re, seconds=seconds, runs=args.runs)
    print(json.dumps({"times": r.times, "median": r.median_s, "rtf": r.rtf, "rss_mb": r.peak_memory_mb}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lengths", default="4,10")
    ap.add_argument("--nre", default="1,3,6,8")
    ap.add_argument("--reference", action="store_true", help="time the plain layer implementations")
    ap.add_argument(
        "--math-attention", action="store_true", help="force SDPA's math backend, as the authors' code does"
    )
    ap.add_argument("--no-tune-allocator", action="store_true", help="keep glibc's default malloc settings")
    ap.add_argument("--child", nargs=2, metavar=("SECONDS", "NRE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(float(args.child[0]), int(args.child[1]), args)
        return
    flags = [f"--{name.replace('_', '-')}" for name in FLAGS if getattr(args, name)]
    print(
        f"{'input':>6} {'(Nsep,Nre)':>10} {'median s':>9} {'min-max s':>13} "
        f"{'RTF':>6} {'ref RTF':>7} {'speed-up':>8} {'RSS MB':>7}"
    )
    for seconds in (float(v) for v in args.lengths.split(",")):
        for n_re in (int(v) for v in args.nre.split(",")):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                str(seconds),
                str(n_re),
                "--threads",
                str(args.threads),
                "--runs",
                str(args.runs),
                *flags,
            ]
            r = json.loads(
                subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            )
            ref = REFERENCE_RTF.get((seconds, n_re))
            gain = f"{ref / r['rtf']:.2f}x" if ref else "-"
            print(
                f"{seconds:>5g}s {f'(2,{n_re})':>10} {r['median']:>9.2f} "
                f"{min(r['times']):>6.2f}-{max(r['times']):<6.2f} "
                f"{r['rtf']:>6.2f} {ref or '-':>7} {gain:>8} {r['rss_mb']:>7.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
