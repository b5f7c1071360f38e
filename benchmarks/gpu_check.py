"""One prepared GPU check: parity, reduced precision, speed and memory, in one run.

Prepared on CPU so that lent GPU minutes measure instead of debug. Writes ``OUT/gpu_check.json``
and prints a short table. Steps, each recorded even if a later one fails:

1. parity: float32 on the device against the authors' float32 golden outputs (atol 2e-6);
2. precision: bf16 and fp16 autocast outputs, SI-SNR against float32 (golden model and the
   released configuration on 10 s);
3. speed: RTF and peak GPU memory of `Separator.separate` per preset, released configuration
   (random weights), for each input length x batch size x segment length;
4. torch.compile on and off for one whole-utterance forward.

    python benchmarks/gpu_check.py --pack-golden gpu_golden.pt      # here, from ../shared/golden
    python benchmarks/gpu_check.py --golden gpu_golden.pt --out OUT  # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --quick --out OUT    # smoke test (CI)

``--quick`` runs the tiny configuration, one speed setting, and parity at two of the six golden
depths (both loops deeper than one; the suite's golden tests check all six).

``--budget-s`` stops starting new speed settings once spent (the rest are listed as skipped).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tisdiss_cli import ARCHITECTURES, ModelConfig, Separator, TISDiSS, load_espnet
from tisdiss_cli.model.network import init_weights

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden"
PRESETS = {"fast": (2, 1), "balanced": (2, 3), "best": (2, 8)}  # the released model's card
RATE = 8000


def pack_golden(out: Path) -> None:
    """One small file with what the parity check needs (float32 outputs: 1e-9 rounding)."""
    load = lambda name: torch.load(GOLDEN / name, weights_only=True)  # noqa: E731
    config = json.loads((GOLDEN / "config.json").read_text())
    outputs = {k: v.float() for k, v in load("outputs.pt").items() if k.startswith("nsep")}
    torch.save({"config": config, "state": load("state_dict.pt"), "input": load("input.pt"), "outputs": outputs}, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def si_snr(est: torch.Tensor, ref: torch.Tensor) -> float:
    est, ref = est.double().flatten(), ref.double().flatten()
    est, ref = est - est.mean(), ref - ref.mean()
    target = (est @ ref) / (ref @ ref) * ref
    return float(10 * torch.log10(target.pow(2).sum() / (est - target).pow(2).sum().clamp_min(1e-20)))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_model(config: ModelConfig, device: torch.device) -> TISDiSS:
    torch.manual_seed(0)
    model = TISDiSS(config)
    init_weights(model)
    return model.to(device).eval()


# --quick checks two depths that run both loops (N_sep and N_re > 1); the suite's golden tests check all six
QUICK_PARITY = ("nsep2_nre1", "nsep1_nre3")


def check_parity(golden: dict[str, Any], device: torch.device, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    model = load_espnet(golden["config"], golden["state"]).to(device)
    mix = golden["input"].to(device)
    errors = {}
    with torch.inference_mode():
        for key, expected in golden["outputs"].items():
            if keys is not None and key not in keys:
                continue
            n_sep, n_re = (int(part[4:]) if part.startswith("nsep") else int(part[3:]) for part in key.split("_"))
            out = model(mix, n_sep=n_sep, n_re=n_re)[0].double().cpu()
            errors[key] = float((out - expected.double()).abs().max())
    if not errors:
        raise ValueError(f"none of the depths {keys} is in the golden outputs")
    return {"max_abs_error": errors, "atol": 2e-6, "ok": max(errors.values()) <= 2e-6}


def check_precision(model: TISDiSS, mix: torch.Tensor, depth: tuple[int, int]) -> dict[str, float]:
    device = mix.device
    with torch.inference_mode():
        reference = model(mix, n_sep=depth[0], n_re=depth[1])
        scores = {}
        for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
            if device.type == "cpu" and dtype == torch.float16:
                continue  # CPU autocast has no fp16 kernels for most of these ops
            with torch.autocast(device.type, dtype=dtype):
                out = model(mix, n_sep=depth[0], n_re=depth[1]).float()
            scores[name] = min(si_snr(out[0, j], reference[0, j]) for j in range(out.shape[1]))
    return scores


def peak_memory_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def time_separate(
    model: TISDiSS,
    device: torch.device,
    seconds: float,
    batch: int,
    segment: float,
    presets: dict[str, tuple[int, int]],
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    wave = (rng.standard_normal(int(seconds * RATE)) * 0.05).astype(np.float32)
    rows = {}
    for preset, depth in presets.items():
        separator = Separator(model, device=str(device), segment=segment, batch_size=batch)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        separator.separate(
            wave[: int(min(seconds, 2 * segment) * RATE)], RATE, n_sep=depth[0], n_re=depth[1]
        )  # warm-up
        sync(device)
        start = time.perf_counter()
        separator.separate(wave, RATE, n_sep=depth[0], n_re=depth[1])
        sync(device)
        rows[preset] = {"rtf": (time.perf_counter() - start) / seconds, "peak_mb": peak_memory_mb(device)}
    return rows


def check_compile(model: TISDiSS, mix: torch.Tensor, depth: tuple[int, int]) -> dict[str, float]:
    device = mix.device

    def timed(fn: Callable[[torch.Tensor], torch.Tensor], runs: int = 3) -> float:
        with torch.inference_mode():
            fn(mix)
            sync(device)
            start = time.perf_counter()
            for _ in range(runs):
                fn(mix)
            sync(device)
        return (time.perf_counter() - start) / runs

    eager = timed(lambda x: model(x, n_sep=depth[0], n_re=depth[1]))
    compiled_model = torch.compile(model)
    start = time.perf_counter()
    with torch.inference_mode():
        compiled_model(mix, n_sep=depth[0], n_re=depth[1])
    compile_s = time.perf_counter() - start
    compiled = timed(lambda x: compiled_model(x, n_sep=depth[0], n_re=depth[1]))
    seconds = mix.shape[-1] / RATE
    return {"eager_rtf": eager / seconds, "compiled_rtf": compiled / seconds, "compile_s": compile_s}


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    report: dict[str, Any] = {"device": str(device), "torch": torch.__version__, "quick": args.quick}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    config = ARCHITECTURES["tiny"] if args.quick else ARCHITECTURES["sep1x2-re1x6"]
    lengths = [1.0] if args.quick else [10.0, 60.0, 600.0]
    batches = [1] if args.quick else [1, 4, 16]
    segments = [0.5] if args.quick else [4.0, 8.0, 16.0]
    presets = {"fast": (1, 1)} if args.quick else PRESETS
    report["presets"] = presets
    started = time.perf_counter()

    def step(name: str, fn: Callable[[], Any]) -> None:
        try:
            report[name] = fn()
        except Exception as exc:  # record and go on: one failure must not cost the other figures
            report[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=3)}

    golden_path = args.golden or (GOLDEN if GOLDEN.exists() else None)
    if golden_path is not None:
        golden = _load_golden(Path(golden_path))
        step("parity", lambda: check_parity(golden, device, QUICK_PARITY if args.quick else None))
        golden_model = load_espnet(golden["config"], golden["state"]).to(device)
        golden_depth = (2, 1) if args.quick else (2, 3)
        step("precision_golden", lambda: check_precision(golden_model, golden["input"].to(device), golden_depth))
    else:
        report["parity"] = {"skipped": "no golden file (--golden)"}
    model = random_model(config, device)
    seconds = 1.0 if args.quick else 10.0
    mix = (torch.randn(1, int(seconds * RATE), generator=torch.Generator().manual_seed(1)) * 0.05).to(device)
    step("precision_released_10s", lambda: check_precision(model, mix, PRESETS["fast"]))
    speed, skipped = [], []
    for length in lengths:
        for batch in batches:
            for segment in segments:
                setting = {"seconds": length, "batch_size": batch, "segment": segment}
                if time.perf_counter() - started > args.budget_s:
                    skipped.append(setting)
                    continue
                try:
                    rows = time_separate(model, device, length, batch, segment, presets)
                    speed.append({**setting, "presets": rows})
                except Exception as exc:
                    speed.append({**setting, "error": f"{type(exc).__name__}: {exc}"})
    report["speed"], report["speed_skipped"] = speed, skipped
    if not args.no_compile:
        step("compile", lambda: check_compile(model, mix, PRESETS["fast"]))
    report["wall_s"] = time.perf_counter() - started
    return report


def _load_golden(path: Path) -> dict[str, Any]:
    if path.is_dir():  # the ../shared/golden folder itself
        load = lambda name: torch.load(path / name, weights_only=True)  # noqa: E731
        outputs = {k: v for k, v in load("outputs.pt").items() if k.startswith("nsep")}
        config = json.loads((path / "config.json").read_text())
        return {"config": config, "state": load("state_dict.pt"), "input": load("input.pt"), "outputs": outputs}
    return dict(torch.load(path, weights_only=True))


def table(report: dict[str, Any]) -> str:
    lines = [f"device {report['device']} {report.get('gpu', '')}, torch {report['torch']}"]
    parity = report.get("parity", {})
    if "max_abs_error" in parity:
        lines.append(f"parity fp32 vs golden: max {max(parity['max_abs_error'].values()):.2e} (ok={parity['ok']})")
    for key in ("precision_golden", "precision_released_10s"):
        if isinstance(report.get(key), dict) and "error" not in report[key]:
            lines.append(f"{key}: " + ", ".join(f"{k} {v:.1f} dB" for k, v in report[key].items()))
    presets = report.get("presets", PRESETS)
    lines.append("| seconds | batch | segment | " + " | ".join(f"{p} RTF | {p} MB" for p in presets) + " |")
    for row in report.get("speed", []):
        if "error" in row:
            lines.append(f"| {row['seconds']:g} | {row['batch_size']} | {row['segment']:g} | error: {row['error']} |")
            continue
        cells = []
        for p in presets:
            r = row["presets"][p]
            cells += [f"{r['rtf']:.4f}", "-" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"]
        lines.append(f"| {row['seconds']:g} | {row['batch_size']} | {row['segment']:g} | " + " | ".join(cells) + " |")
    if isinstance(report.get("compile"), dict) and "error" not in report["compile"]:
        c = report["compile"]
        lines.append(
            f"compile: eager RTF {c['eager_rtf']:.4f}, compiled {c['compiled_rtf']:.4f} ({c['compile_s']:.0f} s)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--golden", help="packed golden file (--pack-golden) or the golden folder")
    parser.add_argument("--out", type=Path, default=Path("gpu_check_out"))
    parser.add_argument("--quick", action="store_true", help="tiny model, one setting (smoke test)")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting speed settings after this")
    parser.add_argument("--pack-golden", type=Path, metavar="OUT", help="write the packed golden file and exit")
    args = parser.parse_args()
    if args.pack_golden:
        pack_golden(args.pack_golden)
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: no CUDA device here (use --device cpu --quick for a smoke test)")
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(table(report))


if __name__ == "__main__":
    main()
