"""Training: the paper's multi-loss, fine-tuning, crash-safe checkpoints, torchrun / DDP.

``train`` is one linear loop that reads top to bottom. A run folder holds ``config.json``
(the resolved config), ``metrics.jsonl`` (one JSON object per log event),
``checkpoints/last.pt`` (everything needed to resume exactly: :mod:`.state`),
``checkpoints/epoch*.safetensors`` (the n best by valid loss) and ``model.safetensors``
(their average: the trained model).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader

from ..audio.files import probe
from ..model.checkpoint import read_checkpoint, save_checkpoint
from ..model.config import DecodeFlags
from ..model.depth import default_presets, presets_as_lists
from ..model.network import DecodedOutput, TISDiSS, init_weights
from ..util.device import pick_device
from ..util.fileio import atomic_write_text
from ..util.signals import ignore_signals
from ..util.sisnr import neg_si_snr
from ..zoo.load import load_any
from .config import (
    RUN_CONFIG,
    VALID_CONDITIONS,
    Changes,
    OptimConfig,
    TrainConfig,
    check_resumable,
    config_changes,
    read_run_config,
)
from .data import DynamicMixDataset, MixingConfig, PremixedDataset, TrainingSet, collate_padded
from .losses import LossWeights, multi_loss, pit_neg_si_snr
from .schedule import learning_rate
from .state import TrainState, load_state, save_state

LogFn = Callable[[dict[str, Any]], None]
PRECISIONS = ("fp32", "bf16", "fp64")
MAX_BAD_STEPS = 50  # consecutive non-finite steps before a run gives up
STOP_REQUESTED = "stop requested"


@dataclass
class TrainResult:
    model_path: Path  # the final averaged model (written by rank 0)
    model: TISDiSS  # this rank's weights at the end of the loop
    step: int  # optimiser steps taken
    stop_reason: str
    limit: str | None = None  # the setting that ended a resumed run that had already finished, if it had


def finished(state: TrainState, optim: OptimConfig) -> tuple[str, str] | None:
    """(why, the setting that says so) when a run at ``state`` has nothing left to train; None if it has."""
    if optim.max_steps and state.step >= optim.max_steps:
        return f"reached max_steps={optim.max_steps}", "optim.max_steps"
    if state.plateau.since_best >= optim.early_stop:
        return f"valid loss did not improve for {optim.early_stop} epochs", "optim.early_stop"
    if state.epoch >= optim.epochs:
        return "all epochs done", "optim.epochs"
    return None


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    log: LogFn | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """Train (or resume) a run in ``run_dir``.

    Everything is checked (settings, data, the folder) before the run folder is written. On
    resume, settings that differ from the run's ``config.json`` are applied deliberately: they
    are logged as a "config" event (in ``metrics.jsonl`` too) and the run's ``config.json`` is
    updated; the architecture itself cannot change.

    Setting ``stop`` (from another thread or a signal handler) ends the run after the step in
    progress, as ``max_steps`` would: ``last.pt`` is saved and the final model written, so
    nothing trained is lost and ``resume`` continues from exactly there. Under DDP the ranks
    agree on the step to stop at.
    """
    run = _setup(config, Path(run_dir), resume, log)
    if isinstance(run, TrainResult):  # a resumed run that had already finished
        return run
    optim_cfg, state, record = config.optim, run.state, run.record
    clock = RunClock(state.train_seconds, state.cpu_seconds)
    stop_reason = ""
    bad_streak = 0
    while state.epoch < optim_cfg.epochs and not stop_reason:
        loader = run.epoch_loader(config)
        run.net.train()
        t0 = time.perf_counter()
        accum = 0
        for mix, ref in loader:
            mix, ref = mix.to(run.device, run.dtype), ref.to(run.device, run.dtype)
            with run.autocast:
                waves = run.net(mix)
            outputs = [
                DecodedOutput(stage, w.to(run.dtype)) for stage, w in zip(run.forward.stages, waves, strict=True)
            ]
            loss, stats = multi_loss(outputs, ref, run.weights)
            (loss / optim_cfg.accum_steps).backward()
            accum += 1
            state.batch_in_epoch += 1
            if accum < optim_cfg.accum_steps:
                continue
            accum = 0
            grad_norm = _optimizer_step(run, optim_cfg, stats["loss"])
            if grad_norm is None:  # non-finite: the step was skipped
                bad_streak += 1
                record({"event": "skip", "step": state.step, "loss": stats["loss"], "skipped": state.skipped})
                if bad_streak >= MAX_BAD_STEPS:
                    stop_reason = (
                        f"non-finite loss or gradient in {MAX_BAD_STEPS} consecutive steps (lower the learning rate?)"
                    )
                    break
                continue
            bad_streak = 0
            if state.step % config.log_every_steps == 0:
                per_step = (time.perf_counter() - t0) / config.log_every_steps
                record(
                    {
                        "event": "train",
                        "step": state.step,
                        "epoch": state.epoch,
                        "lr": run.optimizer.param_groups[0]["lr"],
                        "grad_norm": grad_norm,
                        "sec_per_step": per_step,
                        "train_seconds": clock.total(),
                        "cpu_seconds": clock.cpu_total(),
                        **stats,
                    }
                )
                t0 = time.perf_counter()
            if state.step % config.save_every_steps == 0:
                run.save(clock)
            stop_reason = _stop_reason(run, optim_cfg, clock, stop)
            if stop_reason:
                break
        if stop_reason:
            if (done := finished(state, optim_cfg)) is not None and stop_reason == done[0]:
                # the planned last step (max_steps), at an epoch's end or not: validate it like an
                # epoch, so the final weights (the end of a decay) can be among the kept best
                _end_epoch(run, config, clock)
            else:
                run.save(clock)
            break

        _end_epoch(run, config, clock)
        if (done := finished(state, optim_cfg)) is not None:
            stop_reason = done[0]
        elif _stop_requested(stop, run.ddp, run.device):  # asked during validation: the epoch is saved
            stop_reason = STOP_REQUESTED

    final = run.run_dir / "model.safetensors"
    if run.ddp.main:
        final = write_final_model(run.model, run.run_dir, config, state.best)
        record(
            {
                "event": "done",
                "step": state.step,
                "epoch": state.epoch,
                "reason": stop_reason or "all epochs done",
                "model": str(final),
            }
        )
    if run.ddp.world > 1:
        dist.barrier()
    return TrainResult(final, run.model, state.step, stop_reason or "all epochs done")


# --------------------------------------------------------------------------- pieces of the loop


@dataclass
class _Run:
    """Everything a run's loop works with, made by :func:`_setup`."""

    run_dir: Path
    ckpt_dir: Path
    last_path: Path  # checkpoints/last.pt: what resume continues from
    device: torch.device
    ddp: Dist
    local_batch: int  # this rank's share of the batch
    dtype: torch.dtype
    model: TISDiSS
    params: list[torch.nn.Parameter]  # the trained ones
    optimizer: torch.optim.Optimizer
    train_set: TrainingSet
    valid_sets: dict[str, TrainingSet]  # by condition ("" for the one set of a run without conditions)
    state: TrainState
    record: RunLog
    forward: TrainingForward  # the module a step calls (wrapped in net)
    net: torch.nn.Module  # forward, under DDP or compiled as configured
    sampler: _ShardedSampler
    weights: LossWeights
    autocast: torch.autocast

    def epoch_loader(self, config: TrainConfig) -> DataLoader:
        """The loader of the current epoch, from the batch it stopped at (a resumed run's mid-epoch)."""
        self.train_set.set_epoch(self.state.epoch)
        self.sampler.set_epoch(self.state.epoch, skip=self.state.batch_in_epoch * self.local_batch)
        return DataLoader(
            self.train_set,
            batch_size=self.local_batch,
            sampler=self.sampler,
            num_workers=config.data.num_workers,
            collate_fn=collate_padded,
            drop_last=True,
            worker_init_fn=_data_worker_init,
        )

    def save(self, clock: RunClock) -> None:
        _save(self.last_path, self.model, self.optimizer, self.state, clock, self.ddp)


def _setup(config: TrainConfig, run_dir: Path, resume: bool, log: LogFn | None) -> _Run | TrainResult:
    """Where (device, ranks, batch share, precision), what (model, optimiser, data, the run's
    position, new or resumed) and how (the module a step calls, the loss); a TrainResult instead
    when a resumed run has nothing left to train."""
    ckpt_dir = run_dir / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    optim_cfg = config.optim
    if resume:
        changes = _resume_changes(run_dir, config)
    elif last_path.exists():
        raise FileExistsError(f"{run_dir}: already holds a run; use --resume or another folder")

    device = pick_device(config.device, mps=False)
    ddp = setup_distributed(device)
    if device.type == "cuda":  # recent torch refuses a CUDA device without an index here
        torch.cuda.set_device(device.index if device.index is not None else torch.cuda.current_device())
    if optim_cfg.batch_size % ddp.world:
        raise ValueError(f"batch_size {optim_cfg.batch_size} is not divisible by the world size {ddp.world}")
    local_batch = optim_cfg.batch_size // ddp.world
    if config.precision not in PRECISIONS:
        raise ValueError(f"precision must be fp32, bf16 or fp64, not {config.precision!r}")
    dtype = torch.float64 if config.precision == "fp64" else torch.float32

    # a resumed run's weights come from last.pt: its --init-from file may be gone by now
    model = _initial_model(config, pretrained=not resume).to(device=device, dtype=dtype)
    model.set_checkpointing(config.checkpointing)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=optim_cfg.lr, betas=optim_cfg.betas, weight_decay=optim_cfg.weight_decay)
    random.seed(config.seed)
    train_set, valid_sets = _datasets(config, config.model.sample_rate)  # bad data fail before any write
    if resume:
        state = load_state(last_path, model, optimizer)
        done = finished(state, optim_cfg)
        if done is not None:  # nothing to train: leave the run as it is, model and log included
            return TrainResult(run_dir / "model.safetensors", model, state.step, done[0], limit=done[1])
    else:
        state = TrainState()
        if ddp.main:
            _new_run_folder(run_dir, config, last_path)
    record = RunLog(run_dir / "metrics.jsonl", ddp.main, log)
    if resume and changes and ddp.main:
        atomic_write_text(run_dir / RUN_CONFIG, json.dumps(config.to_dict(), indent=2))
        record({"event": "config", "step": state.step, "changes": {k: list(v) for k, v in changes.items()}})

    forward = TrainingForward(
        model, DecodeFlags(splitter=True, separation=config.decode_separation, reconstruction=True)
    )
    return _Run(
        run_dir,
        ckpt_dir,
        last_path,
        device,
        ddp,
        local_batch,
        dtype,
        model,
        params,
        optimizer,
        train_set,
        valid_sets,
        state,
        record,
        forward,
        _wrap(forward, config, device, ddp),
        _ShardedSampler(len(train_set), config.seed, ddp.rank, ddp.world),
        LossWeights.named(config.loss),
        torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"),
    )


def _end_epoch(run: _Run, config: TrainConfig, clock: RunClock) -> None:
    """Validate (each condition), step the plateau schedule, keep the best epochs, log, and save
    at the next epoch's start."""
    scores = {
        name: validate(run.model, dataset, run.weights, run.forward.flags, run.device)
        for name, dataset in run.valid_sets.items()
    }
    valid_loss = float(np.mean([loss for loss, _ in scores.values()]))
    valid_sisnri = float(np.mean([sisnri for _, sisnri in scores.values()]))
    run.state.plateau.update(valid_loss, config.optim)
    if run.ddp.main:
        rank = valid_loss if config.select_by == "loss" else -valid_sisnri
        _keep_best_epochs(run.model, run.ckpt_dir, run.state, rank, config.keep_best)
    by_condition = {name: {"loss": loss, "si_snri": sisnri} for name, (loss, sisnri) in scores.items() if name}
    run.record(
        {
            "event": "epoch",
            "epoch": run.state.epoch,
            "step": run.state.step,
            "valid_loss": valid_loss,
            "valid_si_snri": valid_sisnri,
            **({"valid_conditions": by_condition} if by_condition else {}),
            "lr_scale": run.state.plateau.scale,
            "skipped": run.state.skipped,
            "train_seconds": clock.total(),
            "cpu_seconds": clock.cpu_total(),
        }
    )
    run.state.epoch += 1
    run.state.batch_in_epoch = 0
    run.save(clock)


def _optimizer_step(run: _Run, optim: OptimConfig, loss: float) -> float | None:
    """Clip, then one AdamW step at the schedule's rate; None (and the gradients dropped, the skip
    counted) when the loss or the gradient is not finite. Returns the gradient norm."""
    grad_norm = torch.nn.utils.clip_grad_norm_(run.params, optim.grad_clip)
    if not (math.isfinite(loss) and torch.isfinite(grad_norm)):
        run.optimizer.zero_grad(set_to_none=True)
        run.state.skipped += 1
        return None
    for group in run.optimizer.param_groups:
        group["lr"] = learning_rate(run.state.step, optim, run.state.plateau.scale)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.state.step += 1
    return float(grad_norm)


def _stop_reason(run: _Run, optim: OptimConfig, clock: RunClock, stop: threading.Event | None) -> str:
    """Why the run stops after this step ("" to go on): a limit reached, or a stop asked for."""
    if (done := finished(run.state, optim)) is not None:
        return done[0]
    if optim.max_minutes and clock.this_invocation() >= optim.max_minutes * 60:
        return f"reached max_minutes={optim.max_minutes:g}"
    if _stop_requested(stop, run.ddp, run.device):
        return STOP_REQUESTED
    return ""


class RunLog:
    """A log event goes to ``metrics.jsonl`` and to the caller's callback (rank 0 only)."""

    def __init__(self, path: Path, main: bool, callback: LogFn | None) -> None:
        self.path, self.main, self.callback = path, main, callback

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.main:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(event) + "\n")
        if self.callback is not None:
            self.callback(event)


class RunClock:
    """Wall time of the run, over all invocations (resumes included) and of this one; and the
    run's CPU time, so that its cost is measured where it is spent (the process's threads; not
    DataLoader workers, which are processes of their own)."""

    def __init__(self, before: float, cpu_before: float = 0.0) -> None:
        self.before = before  # seconds spent by earlier invocations
        self.cpu_before = cpu_before  # CPU seconds spent by earlier invocations
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()

    def this_invocation(self) -> float:
        return time.perf_counter() - self.started

    def total(self) -> float:
        return self.before + self.this_invocation()

    def cpu_total(self) -> float:
        return self.cpu_before + time.process_time() - self.cpu_started


def _stop_requested(stop: threading.Event | None, ddp: Dist, device: torch.device) -> bool:
    """Whether ``stop`` is set here or, under DDP, on any rank (each rank sees a signal at its own step)."""
    if stop is None:
        return False
    if ddp.world == 1:
        return stop.is_set()
    flag = torch.tensor([float(stop.is_set())], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _data_worker_init(worker_id: int) -> None:
    ignore_signals()  # the main process stops the run and then its workers


def _save(
    path: Path, model: TISDiSS, optimizer: torch.optim.Optimizer, state: TrainState, clock: RunClock, ddp: Dist
) -> None:
    if ddp.main:
        state.train_seconds = clock.total()
        state.cpu_seconds = clock.cpu_total()
        save_state(path, model, optimizer, state)


def _new_run_folder(run_dir: Path, config: TrainConfig, last_path: Path) -> None:
    if last_path.exists():
        raise FileExistsError(f"{run_dir}: already holds a run; use --resume or another folder")
    atomic_write_text(run_dir / RUN_CONFIG, json.dumps(config.to_dict(), indent=2))


def _resume_changes(run_dir: Path, config: TrainConfig) -> Changes:
    """What ``config`` changes against the run's ``config.json`` (nothing for a run without one)."""
    if not (run_dir / RUN_CONFIG).exists():
        return {}
    changes = config_changes(read_run_config(run_dir), config)
    check_resumable(changes)
    return changes


def _keep_best_epochs(model: TISDiSS, ckpt_dir: Path, state: TrainState, rank: float, keep: int) -> None:
    """Save this epoch's weights and keep only the ``keep`` best epoch checkpoints (lowest ``rank``:
    the valid loss, or the negated valid SI-SNRi with ``select_by = "si_snri"``)."""
    save_checkpoint(model, ckpt_dir / f"epoch{state.epoch}.safetensors", {"epoch": state.epoch, "valid_rank": rank})
    ranked = sorted(state.best + [(rank, state.epoch)])
    for _, dropped in ranked[keep:]:
        (ckpt_dir / f"epoch{dropped}.safetensors").unlink(missing_ok=True)
    state.best = ranked[:keep]


def _initial_model(config: TrainConfig, *, pretrained: bool = True) -> TISDiSS:
    """The reference initialisation (seeded), then the weights of ``config.init_from`` if ``pretrained``."""
    torch.manual_seed(config.seed)
    model = TISDiSS(config.model)
    init_weights(model)
    if not (pretrained and config.init_from):
        return model
    loaded = load_any(config.init_from).model
    # Loop counts may differ (fine-tuning deeper); the architecture may not.
    if loaded.config.replace(n_sep=config.model.n_sep, n_re=config.model.n_re) != config.model:
        raise ValueError(f"{config.init_from}: architecture differs from the configured model")
    model.load_state_dict(loaded.state_dict())
    return model


def _wrap(forward: TrainingForward, config: TrainConfig, device: torch.device, ddp: Dist) -> torch.nn.Module:
    """The module a step calls: ``forward``, under DDP across ranks, compiled on request."""
    net: torch.nn.Module = forward
    if ddp.world > 1:
        # With one separation call the mixing block is idle, which DDP must be told.
        m = config.model
        idle = forward.model.mixer is not None and m.m_sep * m.n_sep == 1 and not m.re_residual
        net = torch.nn.parallel.DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=idle
        )
    if config.compile:
        net = cast(torch.nn.Module, torch.compile(net))
    return net


class TrainingForward(torch.nn.Module):
    """``mix -> tuple of decoded waves``, the module DDP wraps (it must be the one called);
    the stage of each wave is left in ``stages``."""

    def __init__(self, model: TISDiSS, flags: DecodeFlags) -> None:
        super().__init__()
        self.model = model
        self.flags = flags
        self.stages: list[str] = []

    def forward(self, mix: Tensor) -> tuple[Tensor, ...]:
        outputs = self.model.forward_train(mix, flags=self.flags)
        self.stages = [o.stage for o in outputs]
        return tuple(o.wave for o in outputs)


# --------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


# --------------------------------------------------------------------------- data


class _ShardedSampler(torch.utils.data.Sampler[int]):
    """Deterministic shuffle per epoch, strided across ranks, resumable at a batch offset."""

    def __init__(self, size: int, seed: int, rank: int, world: int) -> None:
        self.size, self.seed, self.rank, self.world = size, seed, rank, world
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _indices(self) -> list[int]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        usable = len(order) - len(order) % self.world
        return order[self.rank : usable : self.world].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.skip :])

    def __len__(self) -> int:
        return max(0, len(self._indices()) - self.skip)


def _valid_mixing(mixing: MixingConfig, condition: str, seconds: float) -> MixingConfig:
    """The validation mixing of ``condition`` (VALID_CONDITIONS; "" mixes as the training set)."""
    room, noise = VALID_CONDITIONS.get(condition, (None, None))
    return dataclasses.replace(
        mixing,
        segment_seconds=seconds,
        speed_range=(1.0, 1.0),
        room_prob=mixing.room_prob if room is None else room,
        noise_prob=mixing.noise_prob if noise is None else noise,
    )


def _datasets(config: TrainConfig, sample_rate: int) -> tuple[TrainingSet, dict[str, TrainingSet]]:
    d = config.data
    if not d.train or not d.valid:
        raise ValueError("data.train and data.valid must be set (e.g. --data FOLDER)")
    train: TrainingSet
    valid: dict[str, TrainingSet]
    if d.kind == "dynamic":
        train = DynamicMixDataset(
            d.train, d.mixing, epoch_size=d.epoch_size, seed=config.seed, noise_dir=d.noise or None
        )
        if any(VALID_CONDITIONS[c][1] for c in d.valid_conditions) and not d.noise:
            raise ValueError("data.valid_conditions: a noisy condition needs a noise folder (data.noise)")
        # every condition mixes the same utterances (seed + 1): their scores differ by the condition alone
        valid = {
            condition: DynamicMixDataset(
                d.valid,
                _valid_mixing(d.mixing, condition, d.valid_seconds),
                epoch_size=d.valid_size,
                seed=config.seed + 1,
                noise_dir=d.noise or None,
                valid=True,
            )
            for condition in d.valid_conditions or ("",)
        }
        rate = train.sample_rate
    elif d.kind == "premixed":
        from ..evaluation.testset import load_testset  # the layouts `tisdiss eval` reads

        segment = int(d.mixing.segment_seconds * sample_rate)
        train_set, valid_set = load_testset(d.train), load_testset(d.valid)
        if d.valid_conditions:
            raise ValueError("data.valid_conditions: only for dynamic mixing (data.kind = 'dynamic')")
        train = PremixedDataset([(u.mix, list(u.refs)) for u in train_set.utterances], segment, config.seed)
        valid = {"": PremixedDataset([(u.mix, list(u.refs)) for u in valid_set.utterances], None)}
        rate = probe(train_set.utterances[0].mix).sample_rate
    else:
        raise ValueError(f"data.kind must be 'dynamic' or 'premixed', not {d.kind!r}")
    if rate != sample_rate:
        raise ValueError(f"{d.train}: audio at {rate} Hz but the model runs at {sample_rate} Hz")
    return train, valid


# --------------------------------------------------------------------------- validation and the final model


@torch.no_grad()
def validate(
    model: TISDiSS, dataset: TrainingSet, weights: LossWeights, flags: DecodeFlags, device: torch.device
) -> tuple[float, float]:
    """Mean multi-loss and mean SI-SNR improvement of the final output on whole items."""
    model.eval()
    losses, improvements = [], []
    for i in range(len(dataset)):
        mix, ref = dataset[i]
        dtype = next(model.parameters()).dtype
        mix, ref = mix[None].to(device, dtype), ref[None].to(device, dtype)
        outputs = model.forward_train(mix, flags=flags)
        loss, _ = multi_loss(outputs, ref, weights)
        final, _ = pit_neg_si_snr(outputs[-1].wave, ref)
        baseline = neg_si_snr(mix.expand_as(ref), ref).mean(-1)
        losses.append(float(loss))
        improvements.append(float(baseline - final))
    model.train()
    return float(np.mean(losses)), float(np.mean(improvements))


def write_final_model(model: TISDiSS, run_dir: Path, config: TrainConfig, best: list[tuple[float, int]]) -> Path:
    """Average the kept best epochs (or take the current weights) into ``model.safetensors``."""
    ckpt_dir = run_dir / "checkpoints"
    best = best[: config.keep_best]  # keep_best may have been lowered on resume
    paths = [ckpt_dir / f"epoch{e}.safetensors" for _, e in best if (ckpt_dir / f"epoch{e}.safetensors").exists()]
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if paths:
        total: dict[str, Tensor] = {}
        for p in paths:
            _, s, _ = read_checkpoint(p)
            total = {k: v.double() for k, v in s.items()} if not total else {k: total[k] + s[k].double() for k in total}
        state = {k: (v / len(paths)).to(state[k].dtype) for k, v in total.items()}
    averaged = TISDiSS(config.model)
    averaged.load_state_dict(state)
    metadata = {
        "presets": config.presets or presets_as_lists(default_presets(config.model.depth)),
        "averaged_epochs": [e for _, e in best][: len(paths)],
        # the kept epochs' ranks: valid losses, or negated valid SI-SNRi with select_by = "si_snri"
        "valid_loss" if config.select_by == "loss" else "valid_rank": [rank for rank, _ in best][: len(paths)],
        "description": config.description,
        "segment": config.data.mixing.segment_seconds,  # separate in chunks of the length it was trained on
        "train_config": config.to_dict(),
    }
    return save_checkpoint(averaged, run_dir / "model.safetensors", metadata)
