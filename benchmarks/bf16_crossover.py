"""Where bf16 autocast beats float32 on this CPU, by model width: the data behind ``auto``.

For each width C (attention width = C, FFN widths = 2C for the band-split layout of the bundled
model, the released ratios for the standard layout), times whole 4-s forwards at one depth in
fp32 and in bf16 (median of --runs after a warm-up), 2 threads by default, random weights.
Run it on a CPU with native bf16 (avx512_bf16 / amx_bf16); elsewhere bf16 is emulated.

    python benchmarks/bf16_crossover.py --threads 2 --out bf16_crossover.json
"""

from __future__ import annotations

import argparse
import json

import torch

from tisdiss_cli.evaluation.bench import random_model, time_forward
from tisdiss_cli.model.config import ModelConfig, architecture
from tisdiss_cli.model.precision import apply_precision

BANDSPLIT = ModelConfig(band_split="bandsplit", n_fft=256, hop_length=128, band_mask=True, n_heads=2)


def layouts(widths: list[int]) -> list[tuple[str, ModelConfig]]:
    released = architecture("sep1x2-re1x6")
    rows = []
    for c in widths:
        rows.append((f"band-split C={c}", BANDSPLIT.replace(emb_dim=c, attention_dim=c, ffn_hidden_dim=(2 * c, 2 * c))))
    for c in widths:
        ffn = tuple(h * c // released.emb_dim for h in released.ffn_hidden_dim)
        rows.append((f"standard C={c}", released.replace(emb_dim=c, attention_dim=c, ffn_hidden_dim=ffn)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="16,32,48,64,96,128")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--depth", default="2,2", help="N_sep,N_re")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_sep, n_re = (int(v) for v in args.depth.split(","))
    results = []
    for label, config in layouts([int(w) for w in args.widths.split(",")]):
        model = random_model(config)
        row: dict[str, object] = {"model": label, "emb_dim": config.emb_dim}
        for precision in ("fp32", "bf16"):
            timed = time_forward(
                apply_precision(model, precision), n_sep=n_sep, n_re=n_re, seconds=args.seconds, runs=args.runs
            )
            row[precision] = timed.median_s
        row["bf16_speedup"] = float(row["fp32"]) / float(row["bf16"])  # type: ignore[arg-type]
        print(
            f"{label:20s} fp32 {row['fp32']:.3f} s  bf16 {row['bf16']:.3f} s  speed-up {row['bf16_speedup']:.2f}x",
            flush=True,
        )
        results.append(row)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {"threads": args.threads, "seconds": args.seconds, "depth": [n_sep, n_re], "rows": results}, f, indent=1
            )


if __name__ == "__main__":
    main()
