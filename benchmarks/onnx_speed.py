"""CPU real-time factor of onnxruntime against tisdiss's own PyTorch forward, same model and depth.

Each model is exported with the export API (its onnxruntime parity check included), then both
engines separate the same input of --seconds (Gaussian noise, std 0.05: speed does not depend
on the signal) with --threads threads: 1 warm-up, then --runs timed runs, median reported.
Models: the bundled tisdiss-small-8k at its presets fast and balanced, and the released
configuration (sep1x2-re1x6, random weights) at the wsj0-2mix presets fast (2, 1) and balanced (2, 3).

    python benchmarks/onnx_speed.py [--threads 2] [--seconds 4] [--runs 3] [--only bundled|released]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tisdiss_cli.evaluation.bench import random_model
from tisdiss_cli.export.onnx import INPUT_NAME, OUTPUT_NAME, export_onnx
from tisdiss_cli.model.depth import Depth
from tisdiss_cli.util.runtime import tune_allocator
from tisdiss_cli.zoo.load import LoadedModel, load_any

RELEASED_PRESETS = {"fast": Depth(2, 1), "balanced": Depth(2, 3)}  # registry entry wsj0-2mix


def _median_time(fn: Callable[[], None], runs: int) -> tuple[float, list[float]]:
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        fn()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _cases(only: str | None) -> list[tuple[str, LoadedModel, str]]:
    cases = []
    if only in (None, "bundled"):
        bundled = load_any("tisdiss-small-8k")
        cases += [("tisdiss-small-8k", bundled, preset) for preset in ("fast", "balanced")]
    if only in (None, "released"):
        released = LoadedModel.in_memory(
            random_model("random-released"), "released (random weights)", dict(RELEASED_PRESETS)
        )
        cases += [("released sep1x2-re1x6", released, preset) for preset in ("fast", "balanced")]
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=("bundled", "released"))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()

    import onnxruntime as ort

    tune_allocator()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    rows = []
    print(f"{'model':<24} {'preset':<9} {'depth':<7} {'torch RTF':>9} {'ORT RTF':>8} {'ORT/torch':>9} {'parity':>8}")
    for name, loaded, preset in _cases(args.only):
        depth = loaded.presets[preset]
        rate = loaded.model.config.sample_rate
        mix = (0.05 * np.random.default_rng(0).standard_normal((1, int(args.seconds * rate)))).astype(np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            result = export_onnx(loaded, Path(tmp) / "m.onnx", preset=preset)
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
        x = torch.from_numpy(mix)

        def run_torch(model: torch.nn.Module = loaded.model, x: torch.Tensor = x, d: Depth = depth) -> None:
            with torch.inference_mode():
                model(x, n_sep=d.n_sep, n_re=d.n_re)

        def run_ort(session: ort.InferenceSession = session, mix: np.ndarray = mix) -> None:
            session.run([OUTPUT_NAME], {INPUT_NAME: mix})

        torch_s, torch_times = _median_time(run_torch, args.runs)
        ort_s, ort_times = _median_time(run_ort, args.runs)
        assert result.parity is not None
        row = {
            "model": name,
            "preset": preset,
            "depth": list(depth),
            "seconds": args.seconds,
            "threads": args.threads,
            "torch_rtf": torch_s / args.seconds,
            "ort_rtf": ort_s / args.seconds,
            "torch_times": torch_times,
            "ort_times": ort_times,
            "parity_relative_error": result.parity.relative_error,
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
        }
        rows.append(row)
        print(
            f"{name:<24} {preset:<9} {str(tuple(depth)):<7} {row['torch_rtf']:>9.3f} {row['ort_rtf']:>8.3f} "
            f"{ort_s / torch_s:>8.2f}x {result.parity.relative_error:>8.1e}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
