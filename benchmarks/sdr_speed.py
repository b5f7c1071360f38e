"""SDR backends on dev2mix: agreement (max |diff| per utterance) and speed of `tisdiss eval`'s scoring step.

For every utterance the estimates are made once, then scored by each backend in turn, the
order alternating between utterances so a noisy machine weighs on both alike. The scoring is
what ``evaluate`` does per utterance: the mixture baseline, then SI-SNR and SDR of each
requested depth (``metrics.mixture_baseline`` + ``metrics.score``). Wall and CPU seconds are
both reported: on a shared machine CPU time is the steadier figure.

    python benchmarks/sdr_speed.py                            # bundled model, N_re 1-8, 100 utterances
    python benchmarks/sdr_speed.py --nre 2 --json sdr.json    # one setting per utterance
    python benchmarks/sdr_speed.py --estimates synthetic      # no model: mixture + filtered references

``--estimates model`` scores the outputs of ``--model`` (default: the bundled
tisdiss-small-8k) at every ``--nre``; ``synthetic`` scores, per "depth", the references
filtered, leaked into each other and mixed with a little of the mixture, in swapped order.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from tisdiss_cli.evaluation import metrics
from tisdiss_cli.evaluation.evaluate import parse_depths
from tisdiss_cli.evaluation.testset import load_testset, read_example

DEFAULT_SET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dev2mix"


def synthetic(mix: np.ndarray, refs: np.ndarray, depths: list[int], seed: int) -> dict[int, np.ndarray]:
    """Plausible imperfect estimates [J, L] per depth: better separated as the depth grows."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in depths:
        leak = 0.5 / (1 + k)
        taps = rng.standard_normal(24) * np.exp(-np.arange(24) / 4)
        taps[0] = 1.0
        est = np.stack([np.convolve(r, taps)[: r.size] for r in refs]) + leak * refs[::-1] + 0.05 * leak * mix
        out[k] = est[::-1] + 1e-3 * rng.standard_normal(refs.shape)
    return out


def model_outputs(model: torch.nn.Module, mix: np.ndarray, n_sep: int, depths: list[int]) -> dict[int, np.ndarray]:
    wanted = set(depths)
    with torch.inference_mode():
        x = torch.from_numpy(mix).float()[None]
        return {
            k: est[0].double().numpy()
            for k, est in model.iter_depths(x, n_sep=n_sep, max_n_re=max(depths))  # type: ignore[operator]
            if k in wanted
        }


def score(backend: str, mix: np.ndarray, refs: np.ndarray, outputs: dict[int, np.ndarray]) -> list[float]:
    """What evaluate does per utterance (``metrics.score`` is ``si_snr`` + ``bss_sdr`` on the
    baseline's prepared references); returns the mixture's SDR and every depth's per-speaker SDR."""
    base = metrics.mixture_baseline(mix, refs, sdr_backend=backend)  # type: ignore[arg-type]
    values = [base.sdr]
    for est in outputs.values():
        metrics.si_snr(est, refs)
        values.extend(metrics.bss_sdr(est, refs, backend=backend, prepared=base.prepared)[0])  # type: ignore[arg-type]
    return [float("nan") if v is None else float(v) for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--testset", type=Path, default=DEFAULT_SET)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--estimates", choices=("model", "synthetic"), default="model")
    parser.add_argument("--model", default="tisdiss-small-8k")
    parser.add_argument("--nsep", type=int, default=2)
    parser.add_argument("--nre", default="1-8")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the fast backend's linear algebra)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    depths = parse_depths(args.nre)
    tset = load_testset(args.testset).head(args.limit)
    model = None
    if args.estimates == "model":
        from tisdiss_cli.zoo.load import load_any

        model = load_any(args.model).model.eval()

    backends = ("fast", "mir_eval")
    wall = dict.fromkeys(backends, 0.0)
    cpu = dict.fromkeys(backends, 0.0)
    diffs: list[float] = []
    worst = ("", 0.0)
    for i, utt in enumerate(tset.utterances):
        ex = read_example(utt)
        if model is not None:
            if ex.sample_rate != model.config.sample_rate:
                raise SystemExit(f"{utt.mix}: {ex.sample_rate} Hz; this benchmark needs the model's rate")
            outputs = model_outputs(model, ex.mix, args.nsep, depths)
        else:
            outputs = synthetic(ex.mix, ex.refs, depths, seed=i)
        sdr = {}
        for backend in backends if i % 2 == 0 else backends[::-1]:
            w, c = time.perf_counter(), time.process_time()
            sdr[backend] = score(backend, ex.mix, ex.refs, outputs)
            wall[backend] += time.perf_counter() - w
            cpu[backend] += time.process_time() - c
        d = float(np.max(np.abs(np.subtract(sdr["fast"], sdr["mir_eval"]))))
        diffs.append(d)
        if d >= worst[1]:
            worst = (utt.id, d)
        print(
            f"{i + 1}/{len(tset)} {utt.id}: max |diff| {d:.2e} dB, "
            f"wall fast {wall['fast']:.1f} s mir_eval {wall['mir_eval']:.1f} s",
            flush=True,
        )

    result = {
        "testset": str(args.testset),
        "utterances": len(tset),
        "estimates": args.estimates,
        "model": args.model if model is not None else None,
        "n_sep": args.nsep,
        "n_re": depths,
        "values_per_utterance": len(sdr["fast"]),
        "max_abs_diff_db": max(diffs),
        "worst_utterance": worst[0],
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "speedup_wall": wall["mir_eval"] / wall["fast"],
        "speedup_cpu": cpu["mir_eval"] / cpu["fast"],
        "torch_threads": args.threads,
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
