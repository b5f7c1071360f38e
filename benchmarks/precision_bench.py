"""Speed and quality per ``--precision`` (fp32, bf16, int8) on the CPU.

Speed: RTF of whole-utterance forwards (median of --runs after one warm-up) of the released
configuration (sep1x2-re1x6, random weights) at 4 s and 10 s, and of the bundled model at 4 s.
bf16 is timed only where the CPU computes it natively (avx512_bf16 / amx_bf16): emulated
bf16 says nothing about bf16 hardware, so the table states it is not native instead.

Quality (does not depend on the instruction set): SI-SNR of each reduced-precision output
against the fp32 output, on the golden model (../shared/golden) and on dev2mix with the bundled
model, and the dev2mix SI-SNRi of each precision (PIT against the references).

    python benchmarks/precision_bench.py --threads 2 --out precision.json
    python benchmarks/precision_bench.py --skip-speed --limit 100     # quality only, all of dev2mix
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tisdiss_cli import load_espnet
from tisdiss_cli.evaluation import metrics
from tisdiss_cli.evaluation.bench import random_model, time_forward
from tisdiss_cli.evaluation.testset import load_testset, read_example
from tisdiss_cli.model.network import TISDiSS
from tisdiss_cli.model.precision import apply_precision
from tisdiss_cli.util.precision import NATIVE_BF16_FLAGS, Precision, cpu_flags, native_cpu_bf16
from tisdiss_cli.util.runtime import tune_allocator
from tisdiss_cli.zoo.load import load_any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BUNDLED = REPO / "models" / "weights" / "tisdiss-small-8k.safetensors"
REDUCED: tuple[Precision, ...] = ("bf16", "int8")


def cpu_description() -> dict[str, Any]:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", *NATIVE_BF16_FLAGS, "amx_int8") if f in flags]
    return {
        "cpu": name,
        "flags": shown,
        "native_bf16": native_cpu_bf16(),
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "quantized_engine": torch.backends.quantized.engine,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def si_snr(est: torch.Tensor, ref: torch.Tensor) -> np.ndarray:
    """Per-row SI-SNR (dB) of ``est`` against ``ref``, both ``[J, L]``."""
    return metrics.si_snr_matrix(est.double().numpy(), ref.double().numpy()).diagonal().copy()


def speed(args: argparse.Namespace, native: bool) -> list[dict[str, Any]]:
    settings: list[tuple[str, TISDiSS, float, tuple[int, int]]] = [
        ("released sep1x2-re1x6 (random)", random_model("random-released"), s, (2, args.nre)) for s in args.lengths
    ]
    bundled = load_any(str(BUNDLED)).model
    settings.append(("bundled tisdiss-small-8k", bundled, 4.0, tuple(bundled.config.depth)))  # type: ignore[arg-type]
    rows = []
    for label, model, seconds, (n_sep, n_re) in settings:
        all_precisions: tuple[Precision, ...] = ("fp32", *REDUCED)
        for precision in all_precisions:
            row: dict[str, Any] = {"model": label, "seconds": seconds, "n_sep": n_sep, "n_re": n_re}
            row["precision"] = precision
            if precision == "bf16" and not native:
                row["rtf"] = None
                row["note"] = "bf16 not native on this CPU: not timed"
            else:
                cpu_start = time.process_time()
                r = time_forward(
                    apply_precision(model, precision), n_sep=n_sep, n_re=n_re, seconds=seconds, runs=args.runs
                )
                # CPU seconds of all this process's threads per audio second, warm-up included: on a
                # machine shared with other work, wall time mostly measures waiting for a core.
                cpu_rtf = (time.process_time() - cpu_start) / (seconds * (args.runs + 1))
                row.update(rtf=r.rtf, cpu_rtf=cpu_rtf, times=list(r.times), peak_rss_mb=r.peak_memory_mb)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def golden_quality() -> dict[str, Any]:
    golden = SHARED / "golden"
    if not (golden / "state_dict.pt").exists():
        return {"skipped": "../shared/golden absent"}
    config = json.loads((golden / "config.json").read_text())
    model = load_espnet(config, torch.load(golden / "state_dict.pt", weights_only=True)).eval()
    mix = torch.load(golden / "input.pt", weights_only=True)
    out: dict[str, Any] = {}
    with torch.inference_mode():
        for n_sep, n_re in ((2, 1), (2, 3)):
            reference = model(mix, n_sep=n_sep, n_re=n_re)[0]
            for precision in REDUCED:
                est = apply_precision(model, precision)(mix, n_sep=n_sep, n_re=n_re)[0]
                out[f"{precision} nsep{n_sep}_nre{n_re}"] = float(si_snr(est, reference).min())
    return out


def dev2mix_quality(limit: int) -> dict[str, Any]:
    folder = SHARED / "data" / "dev2mix"
    if not folder.exists():
        return {"skipped": "../shared/data/dev2mix absent"}
    base = load_any(str(BUNDLED)).model
    models = {"fp32": base, **{p: apply_precision(base, p) for p in REDUCED}}
    si_snri: dict[str, list[float]] = {p: [] for p in models}
    vs_fp32: dict[str, list[float]] = {p: [] for p in REDUCED}
    seconds = dict.fromkeys(models, 0.0)
    tset = load_testset(folder).head(limit)
    with torch.inference_mode():
        for utt in tset.utterances:
            example = read_example(utt)
            mix = torch.from_numpy(example.mix).float()[None]
            baseline = metrics.mixture_baseline(example.mix, example.refs, with_sdr=False)
            outputs = {}
            for precision, model in models.items():
                start = time.perf_counter()
                outputs[precision] = model(mix)[0]
                seconds[precision] += time.perf_counter() - start
                est = outputs[precision].double().numpy()
                si_snri[precision].append(metrics.score(est, example.refs, baseline, with_sdr=False).si_snri)
            for precision in REDUCED:
                vs_fp32[precision].append(float(si_snr(outputs[precision], outputs["fp32"]).min()))
    fp32 = float(np.mean(si_snri["fp32"]))
    result: dict[str, Any] = {"utterances": len(tset), "si_snri_fp32": fp32, "seconds": seconds}
    for precision in REDUCED:
        result[precision] = {
            "si_snri": float(np.mean(si_snri[precision])),
            "si_snri_delta": float(np.mean(si_snri[precision])) - fp32,
            "si_snr_vs_fp32_mean": float(np.mean(vs_fp32[precision])),
            "si_snr_vs_fp32_min": float(np.min(vs_fp32[precision])),
        }
    return result


def table(report: dict[str, Any]) -> str:
    cpu = report["machine"]
    lines = [
        f"{cpu['cpu']}, flags {' '.join(cpu['flags'])}, torch capability {cpu['torch_capability']}, "
        f"{cpu['threads']} threads, native bf16: {cpu['native_bf16'] or 'no'}",
        "RTF: wall seconds per audio second (CPU seconds per audio second in brackets)",
        "| model | input | (N_sep, N_re) | fp32 RTF | bf16 RTF | int8 RTF |",
        "|---|---|---|---|---|---|",
    ]
    rows = report.get("speed", [])
    for key in dict.fromkeys((r["model"], r["seconds"], r["n_sep"], r["n_re"]) for r in rows):
        cells = {r["precision"]: r for r in rows if (r["model"], r["seconds"], r["n_sep"], r["n_re"]) == key}
        shown = [
            "not native" if cells[p]["rtf"] is None else f"{cells[p]['rtf']:.2f} ({cells[p]['cpu_rtf']:.2f})"
            for p in ("fp32", "bf16", "int8")
        ]
        lines.append(f"| {key[0]} | {key[1]:g} s | ({key[2]}, {key[3]}) | " + " | ".join(shown) + " |")
    lines.append(f"golden model, SI-SNR vs fp32 (min over speakers): {json.dumps(report.get('golden'))}")
    lines.append(f"dev2mix, bundled model: {json.dumps(report.get('dev2mix'))}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lengths", type=lambda s: [float(v) for v in s.split(",")], default=[4.0, 10.0])
    ap.add_argument("--nre", type=int, default=1, help="N_re of the released configuration (N_sep 2)")
    ap.add_argument("--limit", type=int, default=100, help="dev2mix utterances scored")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("precision_bench.json"))
    args = ap.parse_args()
    tune_allocator()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    report: dict[str, Any] = {"machine": cpu_description()}
    if not args.skip_speed:
        report["speed"] = speed(args, report["machine"]["native_bf16"] is not None)
    if not args.skip_quality:
        report["golden"] = golden_quality()
        print(json.dumps(report["golden"]), flush=True)
        report["dev2mix"] = dev2mix_quality(args.limit)
    args.out.write_text(json.dumps(report, indent=2))
    print(table(report))


if __name__ == "__main__":
    main()
