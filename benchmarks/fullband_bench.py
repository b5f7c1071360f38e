"""The full-band stage against oracles, on a conversation set above the model's rate (devconv).

Each recording is separated once through the engine with ``--band model`` (the model's band,
brought back to the set's rate, as before the stage) and the outputs are cached in ``--cache``
(outside the repository), so the stage can be re-run on them without the network. Then, per
conversation, SI-SNRi in the model's band and at the set's rate, and SI-SNR in the band above
the model's (each talker against their own highs), for:

- ``model``: the cached outputs as they are (nothing above the model's band);
- ``full``: the stage on them (:func:`~tisdiss_cli.separation.fullband.separated_at_rate`, as
  for a file: ``--lookahead``, default 10 s); ``tisdiss eval`` runs the same stage inside the
  engine;
- ``clean-low``: the stage fed the references' own low bands instead (a perfect separation of
  the model's band): what the design itself loses;
- ``oracle``: ideal ratio masks in the band above, from the references' power in each STFT bin
  (32 ms, 8 ms hop), on the same highs: what any mask on the mixture's highs could reach.

``--cost FILE ...`` instead times the engine on each file with and without the stage, with a
stand-in network that costs nothing (each output a fixed share of the chunk), so that the
stage's own CPU time shows; runs alternate, and each is reported::

    python benchmarks/fullband_bench.py ../shared/data/devconv --cache /tmp/devconv-lowband
    python benchmarks/fullband_bench.py --cost long16k.wav talk44k.wav
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from tisdiss_cli.audio import files as audio
from tisdiss_cli.evaluation import metrics
from tisdiss_cli.evaluation.testset import load_testset, read_example
from tisdiss_cli.model.depth import Depth
from tisdiss_cli.separation.chunking import ChunkPlan, SeparateFn
from tisdiss_cli.separation.fullband import FullBandConfig, FullBandStage, analysis_window, geometry
from tisdiss_cli.separation.separator import Separator
from tisdiss_cli.separation.streaming import SeparationStream


def stft(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    """``[..., L]`` -> ``[..., T, n // 2 + 1]``, frames from ``-(n - hop)`` on, as the stage's."""
    pad = [(0, 0)] * (x.ndim - 1) + [(n - hop, n)]
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, pad), n, axis=-1)[..., ::hop, :]
    return np.fft.rfft(frames * analysis_window(n), axis=-1)


def istft(spec: np.ndarray, n: int, hop: int, length: int) -> np.ndarray:
    frames = np.fft.irfft(spec, n, axis=-1) * analysis_window(n) / 2
    out = np.zeros(spec.shape[:-2] + ((spec.shape[-2] - 1) * hop + n,))
    for t in range(spec.shape[-2]):
        out[..., t * hop : t * hop + n] += frames[..., t, :]
    return out[..., n - hop : n - hop + length]


def residual(mix: np.ndarray, rate: int, model_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(the mixture at the model's rate, the mixture's highs: what the way down and back loses)."""
    narrow = audio.resample_stream(rate, model_rate, 1)
    back = audio.resample_stream(model_rate, rate, 1)
    assert narrow is not None and back is not None
    low = narrow.resample_chunk(mix.astype(np.float32), last=True)
    again = back.resample_chunk(low, last=True)[: len(mix)]
    return low, mix - np.pad(again, (0, len(mix) - len(again)))


def with_stage(
    tracks: np.ndarray, mix: np.ndarray, narrow: np.ndarray, rate: int, model_rate: int, look: float
) -> np.ndarray:
    """The stage on tracks already at ``rate`` ``[K, L]``."""
    stage = FullBandStage(len(tracks), rate, model_rate, rate, FullBandConfig(lookahead_seconds=look))
    stage.mixture(mix.astype(np.float32), narrow, last=True)
    return stage.push(np.ascontiguousarray(tracks.T, np.float32), last=True).T.astype(np.float64)


def oracle(tracks: np.ndarray, refs: np.ndarray, highs: np.ndarray, rate: int, model_rate: int) -> np.ndarray:
    """Tracks plus the mixture's highs under ideal ratio masks (``refs`` in the tracks' order)."""
    geo = geometry(rate, model_rate, rate, FullBandConfig())
    power = np.abs(stft(refs, geo.n, geo.hop)) ** 2
    total = power.sum(0, keepdims=True)
    masks = np.divide(power, total, out=np.zeros_like(power), where=total > 0)
    return tracks + istft(masks * stft(highs, geo.n, geo.hop)[None], geo.n, geo.hop, tracks.shape[1])


@dataclasses.dataclass
class Row:
    id: str
    scores: dict[str, tuple[float, float, float]]  # variant -> (SI-SNRi band, SI-SNRi at rate, SI-SNR above)


def score(est: np.ndarray, refs: np.ndarray, mix: np.ndarray, rate: int, model_rate: int) -> tuple[float, float, float]:
    """(SI-SNRi in the model's band, SI-SNRi at ``rate``, SI-SNR above the model's band); the
    assignment is the model band's."""
    band = [
        np.asarray(audio.resample(np.ascontiguousarray(x.T), rate, model_rate), np.float64).T
        for x in (est, refs, mix[None])
    ]
    length = min(b.shape[-1] for b in band)
    e, r, m = (b[:, :length] for b in band)
    snr, perm = metrics.si_snr(e, r)
    narrow = snr.mean() - metrics.mixture_baseline(m[0], r, with_sdr=False).si_snr
    aligned = est[list(perm)]
    wide = (
        np.diag(metrics.si_snr_matrix(aligned, refs)).mean()
        - metrics.mixture_baseline(mix, refs, with_sdr=False).si_snr
    )
    above = [metrics.band_above(x, rate, model_rate) for x in (aligned, refs)]
    high = np.diag(metrics.si_snr_matrix(*above)).mean()
    return float(narrow), float(wide), float(high)


def stand_in(depth: Depth) -> SeparateFn:
    """A network that costs nothing: 0.6 and 0.4 of each chunk."""

    def run(chunks: Tensor) -> Tensor:
        return torch.stack([0.6 * chunks, 0.4 * chunks], dim=1)

    return run


def engine_seconds(path: Path, full: bool, model_rate: int = 8000) -> float:
    """CPU seconds of the engine over ``path`` (file blocks in, as a file's outputs out)."""
    rate = sf.info(str(path)).samplerate
    highs = FullBandStage(2, rate, model_rate, rate, FullBandConfig(lookahead_seconds=10.0)) if full else None
    plan = ChunkPlan.from_seconds(4.0, 0.25, model_rate, 1)
    stream = SeparationStream(stand_in, Depth(1, 1), plan, 2, model_rate, rate, fullband=highs)
    start = time.process_time()
    for block in sf.blocks(str(path), blocksize=65536, dtype="float32"):
        stream.feed(block)
    for _ in stream.close_blocks():
        pass
    return time.process_time() - start


def cost(paths: list[Path], repeats: int = 2) -> None:
    for path in paths:
        seconds = sf.info(str(path)).duration
        runs: dict[bool, list[float]] = {False: [], True: []}
        for r in range(repeats):
            for full in (False, True) if r % 2 == 0 else (True, False):
                runs[full].append(engine_seconds(path, full))
        plain, staged = (", ".join(f"{t:.2f}" for t in runs[k]) for k in (False, True))
        print(f"{path.name} ({seconds:.0f} s): engine CPU {plain} s without the stage, {staged} s with it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("testset", type=Path, nargs="?", help="a conversation set above the model's rate (devconv)")
    parser.add_argument("--cache", type=Path, help="folder for the separated low bands")
    parser.add_argument("--cost", type=Path, nargs="+", help="time the stage on these files instead")
    parser.add_argument("-m", "--model", default="tisdiss-small-8k")
    parser.add_argument("--lookahead", type=float, default=10.0, help="the stage's lookahead in seconds")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.cost:
        cost(args.cost)
        return
    if args.testset is None or args.cache is None:
        parser.error("a test set and --cache, or --cost FILE ...")
    separator = Separator(args.model, band="model")
    model_rate = separator.sample_rate
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for utt in load_testset(args.testset).utterances:
        ex = read_example(utt)
        if not all(np.any(r) for r in ex.refs):
            continue  # a lone talker: nothing to share
        cached = args.cache / f"{utt.id}.npy"
        if not cached.exists():
            np.save(cached, separator.separate(ex.mix.astype(np.float32), ex.sample_rate))
        tracks = np.load(cached).astype(np.float64)
        rate = ex.sample_rate
        narrow, highs = residual(ex.mix, rate, model_rate)
        low = [np.asarray(audio.resample(np.ascontiguousarray(x.T), rate, model_rate)).T for x in (tracks, ex.refs)]
        _, perm = metrics.si_snr(*low)  # tracks[perm[k]] is talker k's
        refs = ex.refs[np.argsort(perm)]  # in the tracks' order
        clean = np.stack([residual(r, rate, model_rate)[1] for r in refs])  # each talker's highs
        variants = {
            "model": tracks,
            "full": with_stage(tracks, ex.mix, narrow, rate, model_rate, args.lookahead),
            "clean-low": with_stage(refs - clean, ex.mix, narrow, rate, model_rate, args.lookahead),
            "oracle": oracle(tracks, refs, highs, rate, model_rate),
        }
        row = Row(utt.id, {k: score(v, ex.refs, ex.mix, rate, model_rate) for k, v in variants.items()})
        rows.append(row)
        cells = "  ".join(f"{k} {a:6.2f} {b:6.2f} {c:6.2f}" for k, (a, b, c) in row.scores.items())
        print(f"{utt.id:16s} {cells}", flush=True)
    chosen = [r for r in rows if r.scores["full"][0] >= 8]  # as the outputs with the stage score in the model's band
    print(f"means over the {len(chosen)} conversations at or above 8 dB in the model's band:")
    for k in rows[0].scores if rows else ():
        band, wide, high = (float(np.mean([r.scores[k][i] for r in chosen])) for i in range(3))
        print(f"  {k:9s} SI-SNRi band {band:6.2f}  at the set's rate {wide:6.2f}  SI-SNR above {high:6.2f} dB")


if __name__ == "__main__":
    main()
