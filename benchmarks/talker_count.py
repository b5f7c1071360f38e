"""The talker-count threshold (``TrackerConfig.talker_similarity``) on recordings it was not tuned on.

The default (0.55) was chosen on devconv and devmeet, which are also what the figures report. This
builds held-out conversations from ``speech8k/train`` adults (none of them in devconv or devmeet;
``--children``: the corpus's children instead) with devconv's recipe: sentences trimmed to their
active part (+-100 ms), levelled to -25 dBFS with +-3 dB per turn; turns alternate (three or more
talkers: a random talker, never the same twice in a row); 60 % of turns start 0.5-2 s before the
previous one ends (at most 40 % into it), the others 0.1-0.8 s after it. One, two, three and four
talkers, fixed seed. ``--condition`` puts them in a room: ``reverb``, one simulated room each
(RT60 0.3-0.6 s), each talker's image at their dry level as `tisdiss train` mixes rooms, with
reverberant-image references; ``noisy``, noise8k's held-out last fifth at 5 dB SNR, with clean
references.

Each recording goes once through the engine `tisdiss separate` uses (its stitched outputs and
the tracker's analysis of them); then, for every threshold, the tracker finds the talkers,
assigns the outputs and renders the files as the engine does, scored as ``tisdiss eval`` scores
(SI-SNRi in the model's band). The default row is checked against the engine's own output (the
same file count). Caveat: the network was trained on these speakers (the voice embedder was not),
so its outputs may be cleaner than on new voices.

    python benchmarks/talker_count.py ../shared/data/speech8k --threads 2
    python benchmarks/talker_count.py ../shared/data/speech8k --condition noisy --noise ../shared/data/noise8k
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tisdiss_cli.audio import files as audio_io
from tisdiss_cli.evaluation.conversations import score_recording
from tisdiss_cli.separation import tracking
from tisdiss_cli.separation.separator import Separator
from tisdiss_cli.separation.talkers import voice_embedder
from tisdiss_cli.training import rooms
from tisdiss_cli.training.data import read_noise, reverberate

THRESHOLDS = (0.48, 0.50, 0.52, 0.55, 0.58, 0.60, 0.62)
LEVEL_DBFS = -25.0
NOISE_SPAN = (0.8, 1.0)  # noise8k's last fifth: training recipes mix the first four
MIN_NOISE_SECONDS = 20.0
ADULT = 18  # years; devconv and devmeet hold adults only, speech8k/train children too


@dataclass(frozen=True)
class Recording:
    name: str
    mix: np.ndarray  # [N]
    refs: np.ndarray  # [K, N]


def frame_energies(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean squares of ``x``'s 10-ms frames (a partial last one dropped), and which are active:
    within 40 dB of the loudest."""
    frame = rate // 100
    energy = np.array([np.mean(x[i : i + frame] ** 2) for i in range(0, len(x) - frame + 1, frame)])
    return energy, energy > energy.max() * 1e-4


def trimmed(x: np.ndarray, rate: int) -> np.ndarray:
    """The active part of a sentence, +-100 ms."""
    active = np.flatnonzero(frame_energies(x, rate)[1])
    frame, pad = rate // 100, rate // 10
    return x[max(0, active[0] * frame - pad) : min(len(x), (active[-1] + 1) * frame + pad)]


def levelled(x: np.ndarray, rate: int, db: float) -> np.ndarray:
    """``x`` at ``db`` dBFS, measured over its active frames."""
    energy, active = frame_energies(x, rate)
    return x * np.sqrt(10 ** (db / 10) / np.mean(energy[active]))


def conversation(
    speakers: list[list[Path]], seconds: float, rng: np.random.Generator, rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(mix [N], refs [K, N])`` of ``speakers`` (each a list of sentence files) taking turns, at
    most two at once, until a talker runs out of sentences or the next turn would not fit."""
    length = round(seconds * rate)
    refs = np.zeros((len(speakers), length))
    queues = [[files[i] for i in rng.permutation(len(files))] for files in speakers]
    talker, start, previous, before = 0, 0, None, 0  # before: where the turn ahead of the previous ended
    while True:
        if not queues[talker]:
            break
        x, file_rate = sf.read(queues[talker].pop(0), dtype="float64")
        if file_rate != rate:
            raise ValueError(f"expected {rate} Hz sentences, got {file_rate}")
        x = levelled(trimmed(x, rate), rate, LEVEL_DBFS + rng.uniform(-3, 3))
        if previous is not None:
            prev_start, prev_end = previous
            if rng.random() < 0.6:  # starts before the previous turn ends, at most 40 % into it
                start = max(
                    prev_end - round(rng.uniform(0.5, 2.0) * rate), prev_start + round(0.6 * (prev_end - prev_start))
                )
            else:
                start = prev_end + round(rng.uniform(0.1, 0.8) * rate)
            start = max(start, before)  # at most two at once
        if start + len(x) > length:
            break
        refs[talker, start : start + len(x)] += x
        before = previous[1] if previous is not None else 0
        previous = (start, start + len(x))
        if len(speakers) > 1:
            others = [k for k in range(len(speakers)) if k != talker]
            talker = others[0] if len(speakers) == 2 else int(rng.choice(others))
    return refs.sum(axis=0), refs


def ages(root: Path) -> dict[str, int | None]:
    """Each speaker's age in ``root/MANIFEST.tsv`` (None where it gives none)."""
    found: dict[str, int | None] = {}
    with open(root / "MANIFEST.tsv", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            found[row["speaker"]] = int(row["age"]) if row["age"] else None
    return found


def held_out_set(root: Path, counts: dict[int, int], seed: int, children: bool) -> tuple[list[Recording], int]:
    """Recordings of ``counts[k]`` k-talker conversations from ``root/train`` speechocean762 speakers
    with at least 30 s of speech (disjoint within a recording): adults as in devconv, or the
    corpus's children (6-15 years)."""
    rng = np.random.default_rng(seed)
    age = ages(root)
    pool = []
    for folder in sorted((root / "train").iterdir()):
        years = age.get(folder.name)
        if not folder.name.startswith("so") or years is None or (years < ADULT) != children:
            continue
        files = sorted(folder.glob("*.flac"))
        if sum(sf.info(f).duration for f in files) >= 30:
            pool.append(files)
    rate = sf.info(pool[0][0]).samplerate
    seconds = {1: 40.0, 2: 60.0, 3: 75.0, 4: 90.0}
    recordings = []
    for talkers, count in counts.items():
        for i in range(count):
            chosen = rng.choice(len(pool), talkers, replace=False)
            mix, refs = conversation([pool[c] for c in chosen], seconds[talkers], rng, rate)
            recordings.append(Recording(f"{talkers}talk{i}", mix.astype(np.float32), refs))
    return recordings, rate


def in_room(rec: Recording, rate: int, rng: np.random.Generator) -> Recording:
    """The talkers' reverberant images in one room (RT60 0.3-0.6 s), as the training mixer makes them."""
    _, rirs, _ = rooms.measured_room(rng, rooms.RoomRanges(rt60=(0.3, 0.6)), len(rec.refs), rate)
    images, _ = reverberate(rec.refs.astype(np.float32), rirs, "reverberant", rate, 0.0)
    images = images.astype(np.float64)
    return Recording(rec.name, images.sum(0).astype(np.float32), images)


def noise_files(folder: Path) -> list[tuple[Path, audio_io.AudioInfo]]:
    """The noise files of at least ``MIN_NOISE_SECONDS``, in name order."""
    found = [(p, audio_io.probe(p)) for p in sorted(folder.iterdir()) if audio_io.is_audio_file(p)]
    return [(p, info) for p, info in found if info.frames / info.sample_rate >= MIN_NOISE_SECONDS]


def with_noise(
    rec: Recording,
    rate: int,
    rng: np.random.Generator,
    noises: list[tuple[Path, audio_io.AudioInfo]],
    snr_db: float = 5.0,
) -> Recording:
    """One of ``noises`` (its held-out span) at ``snr_db`` against the talkers' sum; the clean references."""
    path, info = noises[int(rng.integers(len(noises)))]
    need = int(np.ceil(rec.refs.shape[1] * info.sample_rate / rate)) + 16
    noise = read_noise(path, info.frames, need, NOISE_SPAN, rng).astype(np.float64)
    noise = audio_io.resample(noise, info.sample_rate, rate)[: rec.refs.shape[1]]
    speech = rec.refs.sum(0)
    noise *= np.sqrt(np.mean(speech**2)) / (np.sqrt(np.mean(noise**2)) or 1.0) / 10 ** (snr_db / 20)
    return Recording(rec.name, (speech + noise).astype(np.float32), rec.refs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("speech", type=Path, help="speech8k (its train/ speakers are used)")
    parser.add_argument("--model", "-m", default="tisdiss-small-8k")
    parser.add_argument("--counts", default="1:4,2:12,3:4,4:4", help="talkers:recordings,...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--children", action="store_true", help="the corpus's children instead of its adults")
    parser.add_argument("--condition", choices=("clean", "reverb", "noisy"), default="clean")
    parser.add_argument(
        "--noise", type=Path, default=Path("../shared/data/noise8k"), help="noise8k (--condition noisy)"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    counts = {int(k): int(n) for k, n in (item.split(":") for item in args.counts.split(","))}
    recordings, set_rate = held_out_set(args.speech, counts, args.seed, args.children)
    rng = np.random.default_rng([args.seed, 1])
    if args.condition == "reverb":
        recordings = [in_room(r, set_rate, rng) for r in recordings]
    elif args.condition == "noisy":
        noises = noise_files(args.noise)
        recordings = [with_noise(r, set_rate, rng, noises) for r in recordings]
    engine = Separator(args.model, band="model", precision="fp32")
    stitched = Separator(args.model, band="model", precision="fp32", tracker="overlap")
    config, embed, rate = engine.tracker_config, voice_embedder(), engine.sample_rate
    if set_rate != rate:
        raise SystemExit(f"{args.speech}: {set_rate} Hz speech; the model runs at {rate} Hz")
    found: dict[float, list[tuple[int, int, float | None]]] = defaultdict(list)  # (talkers, counted, si_snri)
    mismatches = 0
    for rec in recordings:
        outputs = stitched.separate(rec.mix, rate, band="model").astype(np.float64)
        analysis = tracking.analyse(outputs, rate, config, embed)
        present = int(sum(np.any(r) for r in rec.refs))
        row = []
        for threshold in THRESHOLDS:
            chosen = dataclasses.replace(config, talker_similarity=threshold)
            talkers = tracking.find_talkers(analysis, chosen)
            files = tracking.files_for(chosen, len(talkers))
            matrices = tracking.decide(analysis, talkers.centroids, chosen, len(outputs), files)
            est = np.concatenate(list(tracking.rendered(outputs, matrices, rate, chosen, rate * 60)), axis=1)
            n = min(est.shape[1], rec.refs.shape[1])
            scored = score_recording(
                est[:, :n].astype(np.float64), rec.refs[:, :n], rec.mix[:n], rate, rate, with_sdr=False
            )
            found[threshold].append((present, len(talkers), scored["si_snri"]))
            row.append(f"{threshold:.2f}: {len(talkers)}")
            if threshold == config.talker_similarity:
                own = engine.separate(rec.mix, rate, band="model")
                mismatches += own.shape[0] != max(len(talkers), 1)
        print(f"  {rec.name:8s} {present} talkers; found at " + ", ".join(row), flush=True)
    if mismatches:
        print(f"warning: the engine wrote another number of files than the sweep's default in {mismatches} recordings")
    sizes = sorted(counts)
    print(
        f"\nheld-out conversations ({args.condition}; speech8k/train {'children' if args.children else 'adults'}, "
        f"seed {args.seed}); "
        f"default {config.talker_similarity}"
    )
    print(
        "| threshold | "
        + " | ".join(f"{k} talker(s): counted right" for k in sizes)
        + " | all | mean SI-SNRi (2+ talkers) |"
    )
    print("|---:|" + "---:|" * (len(sizes) + 2))
    for threshold in THRESHOLDS:
        rows = found[threshold]
        right = {k: sum(c == p for p, c, _ in rows if p == k) for k in sizes}
        scores = [s for p, _, s in rows if p > 1 and s is not None]
        total = sum(right.values())
        cells = " | ".join(f"{right[k]} / {counts[k]}" for k in sizes)
        print(f"| {threshold:.2f} | {cells} | {total} / {len(rows)} | {np.mean(scores):.2f} dB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
