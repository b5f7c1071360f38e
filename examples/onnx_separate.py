"""Separate a recording with an exported tisdiss model and onnxruntime alone (no PyTorch).

    pip install numpy soundfile onnxruntime
    tisdiss export tisdiss-small-8k --preset fast -o small.onnx     # once, where tisdiss is installed
    python examples/onnx_separate.py small.onnx mixture.wav -o separated/

The graph takes the waveform and returns one waveform per speaker (the STFT is inside it); the
card beside it (small.onnx.json) gives the sample rate. The whole file goes through the graph in
one call, so memory grows with its length: fine for short files with a small model. For long
recordings, cut them into chunks and re-align the speakers between chunks, as `tisdiss separate`
does. Like `tisdiss separate`, the sources are scaled so that together they carry the mixture's
energy, with its polarity (the network's own level and sign are arbitrary). The input must be at
the model's rate.
Outputs: <stem>_spk1.wav, <stem>_spk2.wav, ... as 32-bit float WAV.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf


def separate(session: ort.InferenceSession, mixture: np.ndarray, min_samples: int) -> np.ndarray:
    """Mono float32 ``[L]`` -> ``[J, L]``."""
    length = len(mixture)
    x = np.zeros(max(length, min_samples), np.float32)  # very short inputs: pad, then trim
    x[:length] = mixture
    sources = session.run(None, {"mixture": x[None]})[0][0, :, :length]
    energy = float(np.sum(sources.astype(np.float64) ** 2))
    if not np.any(mixture):
        return np.zeros_like(sources)
    if energy > 0:
        polarity = -1.0 if float(np.sum(sources.sum(0).astype(np.float64) * mixture)) < 0 else 1.0
        sources = sources * polarity * np.sqrt(np.sum(mixture.astype(np.float64) ** 2) / energy)
    return sources.astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="the .onnx file written by `tisdiss export`")
    ap.add_argument("input", type=Path, help="a recording at the model's sample rate")
    ap.add_argument("-o", "--output", type=Path, default=Path("separated"), help="output folder")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = ap.parse_args()

    card = json.loads(args.model.with_name(args.model.name + ".json").read_text())
    try:
        data, rate = sf.read(str(args.input), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        print(f"{args.input}: {exc}", file=sys.stderr)
        return 1
    if rate != card["sample_rate"]:
        print(
            f"{args.input}: {rate} Hz; the model runs at {card['sample_rate']} Hz (resample it first)", file=sys.stderr
        )
        return 1
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(args.model), options, providers=["CPUExecutionProvider"])
    sources = separate(session, data.mean(axis=1), card["min_samples"])

    args.output.mkdir(parents=True, exist_ok=True)
    for j, source in enumerate(sources, start=1):
        target = args.output / f"{args.input.stem}_spk{j}.wav"
        part = target.with_name(f".{target.name}.part")
        sf.write(str(part), source, rate, subtype="FLOAT", format="WAV")
        os.replace(part, target)  # no half-written output under the final name
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
