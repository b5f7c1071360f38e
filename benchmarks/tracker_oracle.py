"""How much of a conversation set's loss is the voice tracker's: the tracker against oracles that
know the references, all on the same network outputs, through the engine `tisdiss separate` uses.

For each recording of a conversation set (the ``tisdiss eval`` layout: ``mix/`` and one folder per
talker), the engine's stitched outputs (``--tracker overlap``: what the voice tracker is given)
are assigned to files four ways, each rendered by the tracker's own renderer (0.5-s blocks,
40-ms cross-fades) and scored as ``tisdiss eval`` scores (SI-SNRi in the model's band):

- ``tracker``: the voice tracker as shipped (the default `tisdiss separate` output);
- ``true talkers``: the tracker's assignment (Viterbi over voice similarity), given the talkers'
  true voices instead of the ones it finds (each talker's centroid: the voices of the output
  that holds them where they talk alone, known from the references);
- ``oracle``: each block's outputs given to the talkers that least-squares match the references
  (every output to some file);
- ``oracle, drop``: the same, where an output may also go to no file (noise the network passed
  through, which no talker's file should keep).

    python benchmarks/tracker_oracle.py ../campaign/rooms/sets/devconv-noisy ../shared/data/devconv
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tisdiss_cli.audio import files as audio
from tisdiss_cli.evaluation.conversations import score_recording
from tisdiss_cli.separation import tracking
from tisdiss_cli.separation.separator import Separator
from tisdiss_cli.separation.talkers import voice_embedder

FORMS = ("tracker", "true talkers", "oracle", "oracle, drop")


def oracle_assignment(outputs: np.ndarray, refs: np.ndarray, block: int, drop: bool) -> np.ndarray:
    """``[nb, K, J]``: per block, the 0/1 assignment whose sum best matches ``refs [K, N]``."""
    talkers, num_out = len(refs), len(outputs)
    choices = list(itertools.product(range(talkers + drop), repeat=num_out))  # index ``talkers``: no file
    matrices = np.zeros((len(choices), talkers, num_out))
    for c, choice in enumerate(choices):
        for j, k in enumerate(choice):
            if k < talkers:
                matrices[c, k, j] = 1.0
    blocks = -(-outputs.shape[1] // block)
    best = np.zeros((blocks, talkers, num_out))
    for b in range(blocks):
        span = slice(b * block, (b + 1) * block)
        errors = (((matrices @ outputs[:, span]) - refs[None, :, span]) ** 2).sum(axis=(1, 2))
        best[b] = matrices[int(errors.argmin())]
    return best


def true_centroids(outputs: np.ndarray, refs: np.ndarray, analysis: tracking.Analysis, block: int) -> np.ndarray:
    """Each talker's voice: the mean voice of the output nearest to them where they talk alone."""
    energy = np.stack([[np.mean(r[b * block : (b + 1) * block] ** 2) for r in refs] for b in range(len(analysis))])
    centroids = []
    for k in range(len(refs)):
        others = np.delete(energy, k, axis=1).max(axis=1, initial=0.0)
        alone = np.flatnonzero((energy[:, k] > 10 * others) & (energy[:, k] > 0.05 * energy[:, k].max()))
        voices = []
        for b in alone:
            span = slice(b * block, (b + 1) * block)
            error = ((outputs[:, span] - refs[k, span]) ** 2).sum(axis=1)
            voices.append(analysis.out_voice[b, int(error.argmin())])
        centroids.append(tracking.normalise(np.mean(voices, axis=0)))
    return np.stack(centroids)


def recordings(root: Path) -> list[tuple[str, np.ndarray, int, np.ndarray]]:
    talkers = sorted(p for p in root.iterdir() if p.is_dir() and p.name != "mix")
    items = []
    for path in sorted((root / "mix").iterdir()):
        mix, rate = sf.read(path, dtype="float32")
        refs = np.stack([sf.read(t / path.name, dtype="float64")[0] for t in talkers if (t / path.name).exists()])
        items.append((path.stem, mix, rate, refs))
    return items


def score_set(root: Path, model: str) -> dict[str, list[float]]:
    voice = Separator(model, band="model", precision="fp32")
    stitched = Separator(model, band="model", precision="fp32", tracker="overlap")
    config, embed = voice.tracker_config, voice_embedder()
    scores: dict[str, list[float]] = {form: [] for form in FORMS}
    for name, mix, rate, refs in recordings(root):
        present = refs[[k for k in range(len(refs)) if np.any(refs[k])]]
        if len(present) < 2:
            continue  # one talker: nothing to assign
        model_rate = stitched.sample_rate
        outputs = stitched.separate(mix, rate, band="model").astype(np.float64)  # at the input's rate
        outputs, ref_band = (np.stack([audio.resample(r, rate, model_rate) for r in x]) for x in (outputs, present))
        mix_band = audio.resample(mix.astype(np.float64), rate, model_rate)
        n = min(outputs.shape[1], ref_band.shape[1], len(mix_band))
        outputs, ref_band, mix_band = outputs[:, :n], ref_band[:, :n], mix_band[:n]
        block = round(config.block_seconds * model_rate)
        analysis = tracking.analyse(outputs, model_rate, config, embed)
        centroids = true_centroids(outputs, ref_band, analysis, block)
        forms = {
            "tracker": voice.separate(mix, rate, band="model").astype(np.float64),
            "true talkers": tracking.decide(analysis, centroids, config, len(outputs), len(centroids)),
            "oracle": oracle_assignment(outputs, ref_band, block, drop=False),
            "oracle, drop": oracle_assignment(outputs, ref_band, block, drop=True),
        }
        row = []
        for form, result in forms.items():
            if form == "tracker":  # the engine's own output, at the input's rate
                est, est_rate, ref_at, mix_at = result, rate, present, mix.astype(np.float64)
            else:
                est = np.concatenate(list(tracking.rendered(outputs, result, model_rate, config, model_rate * 60)), 1)
                est, est_rate, ref_at, mix_at = est.astype(np.float64), model_rate, ref_band, mix_band
            m = min(est.shape[1], ref_at.shape[1], len(mix_at))
            scored = score_recording(est[:, :m], ref_at[:, :m], mix_at[:m], est_rate, model_rate, with_sdr=False)
            si_snri = scored["si_snri"]
            scores[form].append(si_snri)
            row.append(f"{form} {si_snri:6.2f}")
        print(f"  {name:18s} {'  '.join(row)}", flush=True)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", type=Path, nargs="+", help="conversation sets (tisdiss eval layout)")
    parser.add_argument("--model", "-m", default="tisdiss-small-8k")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| set | recordings | " + " | ".join(FORMS) + " |")
    rows = []
    for root in args.sets:
        print(root, flush=True)
        scores = score_set(root, args.model)
        means = " | ".join(f"{np.mean(scores[f]):.2f}" for f in FORMS)
        rows.append(f"| {root.name} | {len(scores['tracker'])} | {means} |")
    print("\nmean SI-SNRi (dB) of the recordings with two talkers or more, in the model's band")
    print("| set | recordings | " + " | ".join(FORMS) + " |\n|---|---:|" + "---:|" * len(FORMS))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
