"""What counting talkers costs on a long recording: clustering and assignment on an hour of voices.

The voice tracker analyses every 0.5-s block once (embedding its voices: the tracker's own cost,
measured by ``benchmarks/separate_bench.py --tracker``); `--speakers auto` then clusters the kept
voices and decides each block's assignment among the talkers found. This script measures that
second part at the length of a long meeting: it separates devmeet's mixtures, analyses them as the
engine does, tiles the analyses to ``--minutes`` (each copy's voices slightly perturbed, so that no
two are identical), and times and measures (tracemalloc peak) the talkers' count and the Viterbi
assignment, for ``auto`` and for a fixed two files.

    python benchmarks/meeting_cost.py ../shared/data/devmeet --minutes 60
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import tracemalloc
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from tisdiss_cli.separation.separator import Separator
from tisdiss_cli.separation.talkers import voice_embedder
from tisdiss_cli.separation.tracking import Analysis, TrackerConfig, analyse, decide, files_for, find_talkers


def tiled(parts: list[Analysis], blocks: int, seed: int = 0) -> Analysis:
    """``parts`` repeated to ``blocks`` blocks, each copy's voices perturbed a little and renormalised."""
    rng = np.random.default_rng(seed)
    copies, total = [], 0
    while total < blocks:
        for part in parts:
            noise = lambda v: v + 0.02 * rng.standard_normal(v.shape).astype(v.dtype)  # noqa: E731
            unit = lambda v: v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)  # noqa: E731
            copies.append(
                dataclasses.replace(part, mix_voice=unit(noise(part.mix_voice)), out_voice=unit(noise(part.out_voice)))
            )
            total += len(part)
    whole = Analysis.concat(copies)
    fields = ("mix_energy", "out_energy", "mix_voice", "out_voice", "coherence")
    return Analysis(*(getattr(whole, f)[:blocks] for f in fields))


def measure(analysis: Analysis, config: TrackerConfig, num_out: int) -> tuple[int, float, float]:
    """(talkers found, seconds, peak MB of Python allocations) of counting and assigning."""
    tracemalloc.start()
    start = time.perf_counter()
    talkers = find_talkers(analysis, config)
    decide(analysis, talkers.centroids, config, num_out, files_for(config, len(talkers)))
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return len(talkers), seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("devmeet", type=Path)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--model", default="tisdiss-small-8k")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    separator = Separator(args.model, tracker="overlap", precision="fp32")
    config, embed = TrackerConfig(), voice_embedder()
    parts = []
    for path in sorted((args.devmeet / "mix").iterdir()):
        wave, rate = sf.read(path, dtype="float32")
        outputs = separator.separate(wave, rate)  # the network's stitched outputs, at the input rate
        model_rate = separator.sample_rate  # the engine analyses them at the model's rate
        at_model = np.stack([soxr.resample(o, rate, model_rate) for o in outputs]).astype(np.float32)
        parts.append(analyse(at_model, model_rate, config, embed))
        print(f"analysed {path.name}: {len(parts[-1])} blocks")
    blocks = round(args.minutes * 60 / config.block_seconds)
    analysis = tiled(parts, blocks)
    print(f"{args.minutes:g} min: {blocks} blocks")
    for name, speakers in (("auto", None), ("2 files", 2)):
        found, seconds, peak = measure(analysis, dataclasses.replace(config, speakers=speakers), separator.num_spk)
        print(f"speakers {name}: {found} talkers, {seconds:.1f} s, peak {peak:.0f} MB of Python allocations")


if __name__ == "__main__":
    main()
