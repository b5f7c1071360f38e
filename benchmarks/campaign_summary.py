"""Summarise training runs for a model card: validation curve against CPU-hours and audio seen.

Reads each run folder's ``config.json`` and ``metrics.jsonl``. CPU-hours are measured, not wall
time x cores: the training process's CPU time that each event records (``cpu_seconds``, over all
invocations), or, with ``--cpulog``, a log of lines ``UNIX_TIME RUN_FOLDER CPU_SECONDS STEP``
sampled from /proc while the runs train (for runs from before ``cpu_seconds`` was recorded).
Prints, per validation epoch: step, CPU-hours, hours of mixtures seen, mean training SI-SNR of
the epoch's logged steps, validation SI-SNRi (with validation conditions, e.g. clean and room:
their mean, then each); then the slope in dB per CPU-hour over the last ``--window`` CPU-hours
(of the mean, and of each condition).

    python benchmarks/campaign_summary.py RUN [RUN ...] [--cpulog CPULOG.txt]
"""

from __future__ import annotations

import argparse
import json
from bisect import bisect_left
from pathlib import Path


def cpu_by_step(cpulog: Path | None, run: Path) -> list[tuple[int, float]]:
    """(step, CPU seconds) samples of ``run``, cumulative over restarts, in step order."""
    if cpulog is None or not cpulog.is_file():
        return []
    samples: list[tuple[int, float]] = []
    offset, last = 0.0, 0.0
    for line in cpulog.read_text().splitlines():
        fields = line.split()
        if len(fields) != 4 or Path(fields[1]).resolve() != run.resolve() or not fields[3].isdigit():
            continue
        cpu = float(fields[2])
        if cpu < last:  # a new process resumed the run
            offset += last
        last = cpu
        samples.append((int(fields[3]), offset + cpu))
    return samples


def recorded_cpu_by_step(events: list[dict]) -> list[tuple[int, float]]:
    """(step, CPU seconds) from the events' own ``cpu_seconds``; a step logged twice (a resume
    repeats the steps after its last save) keeps its last value."""
    by_step = {e["step"]: e["cpu_seconds"] for e in events if "cpu_seconds" in e}
    return sorted(by_step.items())


def cpu_hours_at(samples: list[tuple[int, float]], step: int) -> float | None:
    if not samples:
        return None
    steps = [s for s, _ in samples]
    i = min(bisect_left(steps, step), len(samples) - 1)
    return samples[i][1] / 3600


def audio_settings_at_start(config: dict, events: list[dict]) -> tuple[float, float]:
    """(batch size, crop seconds) the run started with: the final config, undone by its recorded changes."""
    batch, crop = config["optim"]["batch_size"], config["data"]["mixing"]["segment_seconds"]
    for event in reversed(events):
        changes = event.get("changes", {}) if event["event"] == "config" else {}
        batch = changes.get("optim.batch_size", [batch])[0]
        crop = changes.get("data.mixing.segment_seconds", [crop])[0]
    return batch, crop


def summarise(run: Path, cpulog: Path | None, window: float) -> None:
    config = json.loads((run / "config.json").read_text())
    audio_per_step = config["optim"]["batch_size"] * config["data"]["mixing"]["segment_seconds"]
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    samples = cpu_by_step(cpulog, run) if cpulog is not None else recorded_cpu_by_step(events)
    # config.json holds the settings at the end; a resume's "config" event records what it changed
    batch, crop = audio_settings_at_start(config, events)
    seen, last_step = 0.0, 0
    conditions = list(config["data"].get("valid_conditions", []))
    extra = "".join(f" {c} |" for c in conditions)
    print(f"\n{run}  ({audio_per_step:g} s of mixtures per step at the end)")
    print(f"| epoch | step | CPU-h | mixtures (h) | train SI-SNR | valid SI-SNRi |{extra}")
    print("|---:|---:|---:|---:|---:|---:|" + "---:|" * len(conditions))
    train: list[float] = []
    curves: dict[str, list[tuple[float, float]]] = {"mean": [], **{c: [] for c in conditions}}
    for event in events:
        finals = [v for k, v in event.items() if k.startswith("final")]  # "final{i}": the last output's loss
        if event["event"] == "train" and finals:
            train.append(-finals[0])
        elif event["event"] == "config":
            seen += (event["step"] - last_step) * batch * crop
            last_step = event["step"]
            changes = event.get("changes", {})
            batch = changes.get("optim.batch_size", [batch, batch])[1]
            crop = changes.get("data.mixing.segment_seconds", [crop, crop])[1]
        elif event["event"] == "epoch":
            cpu = cpu_hours_at(samples, event["step"])
            mean_train = sum(train) / len(train) if train else float("nan")
            cpu_text = f"{cpu:.2f}" if cpu is not None else "-"
            hours = (seen + (event["step"] - last_step) * batch * crop) / 3600
            by_condition = event.get("valid_conditions", {})
            values = {"mean": event["valid_si_snri"], **{c: by_condition.get(c, {}).get("si_snri") for c in conditions}}
            cells = "".join(f" {values[c]:.2f} |" if values[c] is not None else " - |" for c in conditions)
            print(
                f"| {event['epoch']} | {event['step']} | {cpu_text} | {hours:.2f} | {mean_train:.2f} | "
                f"{event['valid_si_snri']:.2f} |{cells}"
            )
            if cpu is not None:
                for name, value in values.items():
                    if value is not None:
                        curves[name].append((cpu, value))
            train = []
    for name, curve in curves.items():
        if len(curve) < 2:
            continue
        end_cpu, end_db = curve[-1]
        start = next(((c, d) for c, d in curve if c >= end_cpu - window), curve[0])
        if end_cpu > start[0]:
            slope = (end_db - start[1]) / (end_cpu - start[0])
            label = "" if name == "mean" and not conditions else f" ({name})"
            print(f"slope over CPU-hours {start[0]:.2f}-{end_cpu:.2f}{label}: {slope:.2f} dB per CPU-hour")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--cpulog", type=Path, default=None)
    parser.add_argument("--window", type=float, default=0.5, help="CPU-hours the final slope is taken over")
    args = parser.parse_args()
    for run in args.runs:
        summarise(run, args.cpulog, args.window)


if __name__ == "__main__":
    main()
