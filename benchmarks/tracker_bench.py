"""The voice tracker against the stitching alone, through the engine `tisdiss separate` uses.

Two sets that conversations (``tisdiss eval ../shared/data/devconv``) do not cover:

- ``--dev2mix DIR``: dev2mix's fully overlapped 4-s mixtures (each runs as one chunk);
- ``--overlapped SPEECH_DIR``: long mixtures where both talkers speak all the time, built here
  from ``SPEECH_DIR/valid`` (speech8k): each talker's utterances end to end at the same level,
  ``--seconds`` long, two random valid speakers per mixture (``--seed``).

For each, SI-SNRi (best permutation, whole file) with ``--tracker overlap`` and ``--tracker voice``
and how many talkers the tracker found. ``--online DEVCONV`` scores the conversation set through
the stream (the online form: `tisdiss separate -`, `live`) against the file path::

    python benchmarks/tracker_bench.py --dev2mix ../shared/data/dev2mix --preset best
    python benchmarks/tracker_bench.py --overlapped ../shared/data/speech8k --count 8 --seconds 12
    python benchmarks/tracker_bench.py --online ../shared/data/devconv
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tisdiss_cli.evaluation import metrics
from tisdiss_cli.evaluation.conversations import score_recording
from tisdiss_cli.separation.separator import Separator

RATE = 8000


def dev2mix(root: Path, limit: int | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    items = []
    for path in sorted((root / "mix").glob("*.wav"))[:limit]:
        mix = sf.read(path, dtype="float64")[0]
        refs = np.stack([sf.read(root / s / path.name, dtype="float64")[0] for s in ("s1", "s2")])
        items.append((path.stem, mix, refs))
    return items


def overlapped(root: Path, count: int, seconds: float, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    speakers = sorted(p for p in (root / "valid").iterdir() if p.is_dir())
    length = round(seconds * RATE)
    items = []
    for _ in range(count):
        pair = rng.choice(len(speakers), 2, replace=False)
        sources = []
        for k in pair:
            files = sorted(speakers[k].glob("*.flac"))
            rng.shuffle(files)
            pieces, total = [], 0
            for f in files:
                x = sf.read(f, dtype="float64")[0]
                pieces.append(x / np.sqrt(np.mean(x**2) + 1e-12) * 0.05)
                total += len(x)
                if total > length:
                    break
            x = np.concatenate(pieces)[:length]
            sources.append(np.pad(x, (0, length - len(x))))
        refs = np.stack(sources)
        items.append((f"{speakers[pair[0]].name}+{speakers[pair[1]].name}", refs.sum(0), refs))
    return items


def online(root: Path, preset: str, model: str) -> None:
    """Each devconv recording through the stream (fed in 0.1-s blocks) and through the file path."""
    separator = Separator(model, preset=preset, precision="fp32")
    wrong = {"file": 0, "stream": 0}
    single = {"file": 0, "stream": 0}
    snrs: dict[str, list[float]] = {"file": [], "stream": []}
    for path in sorted((root / "mix").glob("*.flac")):
        mix, rate = sf.read(path, dtype="float32")
        refs = np.stack([sf.read(root / s / path.name, dtype="float64")[0] for s in ("s1", "s2")])
        stream = separator.stream(rate)
        block = rate // 10
        parts = [stream.feed(mix[i : i + block]) for i in range(0, len(mix), block)] + [stream.close()]
        row = []
        for form, est in (("file", separator.separate(mix, rate)), ("stream", np.concatenate(parts, axis=1))):
            scores = score_recording(est.astype(np.float64), refs, mix.astype(np.float64), rate, RATE, with_sdr=False)
            wrong[form] += scores["wrong_windows"]
            single[form] += scores["single_windows"]
            if scores["si_snri"] is not None:
                snrs[form].append(scores["si_snri"])
            snr = "solo" if scores["si_snri"] is None else f"{scores['si_snri']:6.2f}"
            row.append(f"{form} {snr} wrong {scores['wrong_windows']}/{scores['single_windows']}")
        print(f"{path.stem:16s} {'  '.join(row)}", flush=True)
    for form, values in snrs.items():
        worst = f"worst {np.min(values):.2f}"
        print(f"{form}: mean SI-SNRi {np.mean(values):.2f} dB ({worst}), wrong file {wrong[form]}/{single[form]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev2mix", type=Path)
    parser.add_argument("--overlapped", type=Path)
    parser.add_argument("--online", type=Path, help="a devconv-style set, scored through the stream")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--model", default="tisdiss-small-8k")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.online:
        online(args.online, args.preset, args.model)
        return 0
    if args.dev2mix:
        items = dev2mix(args.dev2mix, args.limit)
    elif args.overlapped:
        items = overlapped(args.overlapped, args.count, args.seconds, args.seed)
    else:
        parser.error("give --dev2mix or --overlapped")
    separators = {
        t: Separator(args.model, preset=args.preset, precision="fp32", tracker=t) for t in ("overlap", "voice")
    }
    scores: dict[str, list[float]] = {t: [] for t in separators}
    found: Counter[int] = Counter()
    for name, mix, refs in items:
        baseline = metrics.mixture_baseline(mix, refs, with_sdr=False)
        row = []
        for tracker, separator in separators.items():
            est = separator.separate(mix.astype(np.float32), RATE).astype(np.float64)
            scores[tracker].append(metrics.score(est, refs, baseline, with_sdr=False).si_snri)
            row.append(f"{tracker} {scores[tracker][-1]:6.2f}")
        talkers = separators["voice"].last_talkers
        found[talkers.talkers if talkers else -1] += 1
        print(f"{name[:48]:48s} {'  '.join(row)}  talkers {talkers.talkers if talkers else '-'}", flush=True)
    means = ", ".join(f"{t} {np.mean(v):.2f} dB" for t, v in scores.items())
    print(f"{len(items)} mixtures, {args.preset}: mean SI-SNRi {means}; talkers found {dict(sorted(found.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
