"""Training ladder: candidate configurations under the same wall-clock budget, same seed.

Each rung is `tisdiss train --recipe speech8k` with its own overrides, stopped by
``optim.max_minutes``; validation (30 fixed 4-s mixtures of held-out speakers) runs every
``data.epoch_size`` mixtures. The summary gives validation SI-SNRi against training minutes.

    python benchmarks/training_ladder.py --data ../shared/data/speech8k --root RUNS_FOLDER \\
        --minutes 12 --rungs bs128-c32 bs256-c32
    python benchmarks/training_ladder.py --root RUNS_FOLDER --summary   # table only

Run it on an otherwise idle machine: minutes are wall-clock on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

COMMON = ["data.valid_size=30", "data.epoch_size=160", "optim.warmup_steps=50", "save_every_steps=40", "model.n_re=2"]
BAND256 = ["model.band_split=bandsplit", "model.n_fft=256", "model.hop_length=128"]
C48 = ["model.emb_dim=48", "model.attention_dim=48", "model.ffn_hidden_dim=[96,96]"]

# name -> overrides on top of COMMON and the speech8k recipe (C = 32, 2-s crops, batch 4, lr 2e-3).
RUNGS: dict[str, list[str]] = {
    "std-c32": [],
    "bs128-c32": ["model.band_split=bandsplit"],
    "mel128-c32": ["model.band_split=mel"],
    "bs256-c32": BAND256,
    "bs256-c48": BAND256 + C48,
    "bs256-c32-4s": BAND256 + ["data.mixing.segment_seconds=4.0"],
    "bs256-c32-lr4e-3": BAND256 + ["optim.lr=4e-3"],
    "bs256-c32-nre1": BAND256 + ["model.n_re=1"],
    "bs256-c32-b8": BAND256 + ["optim.batch_size=8"],
    "bs256-c32-mask": BAND256 + ["model.band_mask=true"],  # tisdiss option: complex mask output
    "bs256-c48-mask": BAND256 + ["model.band_mask=true"] + C48,
    "bs128-c32-mask": ["model.band_split=bandsplit", "model.band_mask=true"],
    "bs256-c32-mask-lr4e-3": BAND256 + ["model.band_mask=true", "optim.lr=4e-3"],
}


def run_rung(name: str, root: Path, data: str, minutes: float, threads: int) -> None:
    run = root / name
    if (run / "model.safetensors").exists():
        print(f"{name}: done already, skipped", flush=True)
        return
    overrides = COMMON + RUNGS[name] + [f"optim.max_minutes={minutes}"]
    command = [
        sys.executable,
        "-m",
        "tisdiss_cli",
        "train",
        "--recipe",
        "speech8k",
        "--data",
        data,
        "--run",
        str(run),
        "--threads",
        str(threads),
        "--quiet",
    ]
    for item in overrides:
        command += ["--set", item]
    print(f"{name}: {' '.join(overrides)}", flush=True)
    subprocess.run(command, check=True)


def summarise(root: Path) -> str:
    rows = [
        "| rung | overrides | params | s/step | steps | minutes | valid SI-SNRi by minute | last | best |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name in RUNGS:
        metrics = root / name / "metrics.jsonl"
        if not metrics.exists():
            continue
        events = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        epochs = [e for e in events if e["event"] == "epoch"]
        trains = [e for e in events if e["event"] == "train"]
        if not epochs or not trains:
            continue
        per_step = sorted(e["sec_per_step"] for e in trains)[len(trains) // 2]
        log_every = trains[0]["step"]
        for e in epochs + trains:  # runs from before train_seconds was recorded: sum the step times
            e.setdefault("train_seconds", sum(t["sec_per_step"] * log_every for t in trains if t["step"] <= e["step"]))
        curve = ", ".join(f"{e['train_seconds'] / 60:.0f}: {e['valid_si_snri']:.2f}" for e in epochs)
        params = ""
        model = root / name / "model.safetensors"
        if model.exists():
            from tisdiss_cli.model.checkpoint import read_checkpoint

            params = f"{sum(t.numel() for t in read_checkpoint(model)[1].values()) / 1e3:.0f} k"
        best = max(e["valid_si_snri"] for e in epochs)
        rows.append(
            f"| {name} | {' '.join(RUNGS[name]) or '(recipe)'} | {params} | {per_step:.2f} | {trains[-1]['step']} | "
            f"{trains[-1]['train_seconds'] / 60:.1f} | {curve} | {epochs[-1]['valid_si_snri']:.2f} | {best:.2f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="folder for the rungs' run folders")
    parser.add_argument("--data", default="", help="speech8k folder (train/ and valid/)")
    parser.add_argument("--rungs", nargs="*", default=list(RUNGS), choices=list(RUNGS))
    parser.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget per rung")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--summary", action="store_true", help="only print the table")
    args = parser.parse_args()
    if not args.summary:
        if not args.data:
            parser.error("--data is needed to run rungs")
        for name in args.rungs:
            run_rung(name, args.root, args.data, args.minutes, args.threads)
    print(summarise(args.root))


if __name__ == "__main__":
    main()
