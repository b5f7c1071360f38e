"""What rooms cost training: CPU seconds per mixture without rooms, from a RIR bank, and made on the fly.

Draws ``--items`` 4-s two-talker mixtures of ``SPEECH_DIR/train`` through `tisdiss train`'s
dynamic mixer (one thread), every one in a room (``room_prob = 1``) but the dry baseline; and
the CPU time of making the bank itself, per room, on ``--bank-rooms`` rooms (a throwaway bank,
not the cached one)::

    python benchmarks/rir_cost.py --data ../shared/data/speech8k --bank ../campaign/rooms/bank
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from tisdiss_cli.training import rooms
from tisdiss_cli.training.data import DynamicMixDataset, MixingConfig


def cpu_per_item(dataset: DynamicMixDataset, items: int) -> float:
    dataset[0]  # reads and caches what the first item needs
    start = time.process_time()
    for i in range(1, items + 1):
        dataset[i]
    return (time.process_time() - start) / items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/speech8k"))
    parser.add_argument("--bank", default="../campaign/rooms/bank", help="the cached bank (made if absent)")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--bank-rooms", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = MixingConfig(exclude=("fsdd-*",))
    settings = {
        "dry": base,
        "bank": dataclasses.replace(base, room_prob=1.0, room_bank=args.bank),
        "on the fly": dataclasses.replace(base, room_prob=1.0),
    }
    for name, mixing in settings.items():
        dataset = DynamicMixDataset(args.data / "train", mixing, epoch_size=args.items + 1, seed=7)
        print(f"{name}: {cpu_per_item(dataset, args.items) * 1000:.1f} CPU-ms per 4-s mixture", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.process_time()
        rooms.RirBank.load_or_build(tmp, base.room_ranges, rooms=args.bank_rooms, num_sources=2, sample_rate=8000)
        per_room = (time.process_time() - start) / args.bank_rooms
    print(f"making a bank: {per_room:.3f} CPU-s per room ({args.bank_rooms} rooms, 2 talkers, 8 kHz)")


if __name__ == "__main__":
    main()
