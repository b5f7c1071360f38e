"""Training: the paper's multi-loss, fine-tuning, crash-safe checkpoints, torchrun / DDP.

One linear loop (``train``) reads top to bottom. A run folder holds:
``config.json`` (resolved config), ``metrics.jsonl`` (one JSON object per log event),
``checkpoints/last.pt`` (everything needed to resume exactly), ``checkpoints/epoch*.safetensors``
(the n best by valid loss) and ``model.safetensors`` (their average: the trained model).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..model.checkpoint import read_checkpoint, save_checkpoint
from ..model.config import DecodeFlags, ModelConfig, architecture
from .data import DynamicMixDataset, MixingConfig, PremixedDataset, collate_padded
from ..util.fileio import atomic_write
from .losses import LossWeights, multi_loss, pit_neg_si_snr
from ..model.depth import default_presets, presets_as_lists
from ..model.network import DecodedOutput, TISDiSS, init_weights
from ..util.device import pick_device
from ..util.sisnr import neg_si_snr
from ..zoo.load import load_any


@dataclass(frozen=True)
class DataConfig:
    train: str = ""  # folder: SPEAKER/UTT audio (dynamic) or a pre-mixed set
    valid: str = ""  # same kind as train
    kind: str = "dynamic"  # "dynamic" | "premixed"
    noise: str = ""  # optional noise folder for dynamic mixing
    mixing: MixingConfig = MixingConfig()
    epoch_size: int = 20000  # dynamic mixtures per epoch
    valid_size: int = 200  # dynamic validation mixtures (fixed)
    valid_seconds: float = 4.0  # crop of validation mixtures
    num_workers: int = 2  # DataLoader worker processes


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 2000  # linear warm-up
    plateau_factor: float = 0.5  # ReduceLROnPlateau on valid loss, per epoch
    plateau_patience: int = 3
    grad_clip: float = 5.0
    batch_size: int = 6  # global batch (split across ranks)
    accum_steps: int = 1  # gradient accumulation
    epochs: int = 150
    early_stop: int = 10  # epochs without valid improvement
    max_steps: int = 0  # stop after this many optimiser steps (0 = no limit)
    max_minutes: float = 0.0  # stop this invocation after this much wall time (0 = no limit)


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    loss: str = "released"  # named loss setting (losses.LOSS_SETTINGS)
    decode_separation: bool = False  # also decode separation-stage outputs (L_sep)
    seed: int = 0
    save_every_steps: int = 500  # crash-safe checkpoint interval (and at every epoch end)
    keep_best: int = 5  # n best epochs kept and averaged into the final model
    log_every_steps: int = 20
    precision: str = "fp32"  # "fp32" | "bf16" (autocast, GPU) | "fp64" (exact-arithmetic checks)
    compile: bool = False  # torch.compile the model
    checkpointing: bool = False  # activation checkpointing per block: less memory, ~1 more forward
    device: str = "auto"
    init_from: str = ""  # weights to start from: any model spec load_any takes (name, file, run or ESPnet folder)
    presets: dict[str, list[int]] = field(default_factory=dict)  # written into the final model card
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d


# --------------------------------------------------------------------------- configuration


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
        if key == "model":
            value = _model_config(value, f"{where}.model") if isinstance(value, dict) else value
        elif key == "mixing":
            value = _build(MixingConfig, value, f"{where}.mixing")
        elif key == "data":
            value = _build(DataConfig, value, f"{where}.data")
        elif key == "optim":
            value = _build(OptimConfig, value, f"{where}.optim")
        elif isinstance(value, list) and isinstance(known[key].default, tuple):  # TOML/JSON have no tuples
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _model_config(values: dict[str, Any], where: str) -> ModelConfig:
    """``[model]``: an optional ``architecture`` (a name from ARCHITECTURES) and field overrides."""
    values = dict(values)
    if "preset" in values:  # the key's name before 0.1
        warnings.warn(f"{where}: 'preset' is deprecated; name it 'architecture'", DeprecationWarning, stacklevel=2)
        values.setdefault("architecture", values.pop("preset"))
    name = values.pop("architecture", None)
    base = architecture(name) if name is not None else ModelConfig()
    return base.replace(**values)


def config_from_dict(d: Mapping[str, Any], where: str = "config") -> TrainConfig:
    return _build(TrainConfig, json.loads(json.dumps(d)), where)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``key.sub=value`` overrides (value parsed as JSON when it parses, else a string)."""
    d = json.loads(json.dumps(d))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        node = d
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = _parse_value(value.strip())
    return d


def load_recipe(name_or_path: str) -> dict[str, Any]:
    """A recipe shipped with the package (by name) or a TOML / JSON file."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    from importlib import resources

    path = Path(name_or_path)
    if path.suffix in (".toml", ".json") and path.exists():
        text = path.read_text()
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    shipped = resources.files("tisdiss_cli") / "recipes" / f"{name_or_path}.toml"
    if not shipped.is_file():
        names = sorted(p.name[:-5] for p in (resources.files("tisdiss_cli") / "recipes").iterdir() if p.name.endswith(".toml"))
        raise ValueError(f"unknown recipe {name_or_path!r}; shipped recipes: {', '.join(names)}")
    return tomllib.loads(shipped.read_text())


# --------------------------------------------------------------------------- schedule


def learning_rate(step: int, optim: OptimConfig, plateau_scale: float) -> float:
    """Linear warm-up to ``lr``, times the plateau scale (halved on each plateau)."""
    warm = min(1.0, (step + 1) / optim.warmup_steps) if optim.warmup_steps > 0 else 1.0
    return optim.lr * warm * plateau_scale


@dataclass
class Plateau:
    """ReduceLROnPlateau (mode min, relative threshold 1e-4) plus early-stopping bookkeeping."""

    best: float = math.inf
    bad_epochs: int = 0
    since_best: int = 0
    scale: float = 1.0

    def update(self, valid_loss: float, optim: OptimConfig) -> None:
        # Relative threshold 1e-4, measured on |best| so it also holds for negative losses.
        if math.isinf(self.best) or valid_loss < self.best - abs(self.best) * 1e-4:
            self.best, self.bad_epochs, self.since_best = valid_loss, 0, 0
            return
        self.bad_epochs += 1
        self.since_best += 1
        if self.bad_epochs > optim.plateau_patience:
            self.scale *= optim.plateau_factor
            self.bad_epochs = 0


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


# --------------------------------------------------------------------------- state


def _rng_state() -> dict[str, Any]:
    # Data are a pure function of (seed, epoch, index); these cover anything else random.
    return {"python": random.getstate(), "torch": torch.get_rng_state()}


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])


def _initial_model(config: TrainConfig) -> TISDiSS:
    torch.manual_seed(config.seed)
    model = TISDiSS(config.model)
    init_weights(model)
    if not config.init_from:
        return model
    loaded = load_any(config.init_from).model
    # Loop counts may differ (fine-tuning deeper); the architecture may not.
    if loaded.config.replace(n_sep=config.model.n_sep, n_re=config.model.n_re) != config.model:
        raise ValueError(f"{config.init_from}: architecture differs from the configured model")
    model.load_state_dict(loaded.state_dict())
    return model


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


def _datasets(config: TrainConfig, sample_rate: int) -> tuple[Dataset, Dataset]:
    d = config.data
    if not d.train or not d.valid:
        raise ValueError("data.train and data.valid must be set (e.g. --data FOLDER)")
    if d.kind == "dynamic":
        train = DynamicMixDataset(d.train, d.mixing, epoch_size=d.epoch_size, seed=config.seed, noise_dir=d.noise or None)
        valid_mixing = dataclasses.replace(d.mixing, segment_seconds=d.valid_seconds, speed_range=(1.0, 1.0))
        valid = DynamicMixDataset(d.valid, valid_mixing, epoch_size=d.valid_size, seed=config.seed + 1, noise_dir=d.noise or None)
        rate = train.sample_rate
    elif d.kind == "premixed":
        from ..evaluation.testset import load_testset  # shared with `tisdiss eval`

        segment = int(d.mixing.segment_seconds * sample_rate)
        train_set, valid_set = load_testset(d.train), load_testset(d.valid)
        train = PremixedDataset([(u.mix, list(u.sources)) for u in train_set.utterances], segment, config.seed)
        valid = PremixedDataset([(u.mix, list(u.sources)) for u in valid_set.utterances], None)
        rate = train_set.sample_rate
    else:
        raise ValueError(f"data.kind must be 'dynamic' or 'premixed', not {d.kind!r}")
    if rate != sample_rate:
        raise ValueError(f"{d.train}: audio at {rate} Hz but the model runs at {sample_rate} Hz")
    return train, valid


# --------------------------------------------------------------------------- loop

LogFn = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    model_path: Path  # the final averaged model (written by rank 0)
    model: TISDiSS  # this rank's weights at the end of the loop
    step: int  # optimiser steps taken
    stop_reason: str


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False, log: LogFn | None = None) -> TrainResult:
    """Train (or resume) a run in ``run_dir``."""
    run_dir = Path(run_dir)
    device = pick_device(config.device, mps=False)
    ddp = setup_distributed(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    optim_cfg = config.optim
    if optim_cfg.batch_size % ddp.world:
        raise ValueError(f"batch_size {optim_cfg.batch_size} is not divisible by the world size {ddp.world}")
    local_batch = optim_cfg.batch_size // ddp.world

    emit: LogFn = (log or (lambda _: None)) if ddp.main else (lambda _: None)
    ckpt_dir = run_dir / "checkpoints"
    last_path = ckpt_dir / "last.pt"

    if config.precision not in ("fp32", "bf16", "fp64"):
        raise ValueError(f"precision must be fp32, bf16 or fp64, not {config.precision!r}")
    dtype = torch.float64 if config.precision == "fp64" else torch.float32
    model = _initial_model(config).to(device=device, dtype=dtype)
    model.set_checkpointing(config.checkpointing)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=optim_cfg.lr, betas=optim_cfg.betas, weight_decay=optim_cfg.weight_decay)
    plateau = Plateau()
    step, epoch, batch_in_epoch, skipped_total, bad_streak = 0, 0, 0, 0, 0
    train_seconds = 0.0  # wall time spent in this run over all invocations (resumes included)
    best: list[tuple[float, int]] = []  # (valid loss, epoch) of kept epoch checkpoints
    random.seed(config.seed)

    if resume:
        if not last_path.exists():
            raise FileNotFoundError(f"{last_path}: nothing to resume")
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        plateau = Plateau(**state["plateau"])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        skipped_total, best = state["skipped"], [tuple(b) for b in state["best"]]
        train_seconds = float(state.get("train_seconds", 0.0))
        _set_rng_state(state["rng"])
    elif ddp.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if last_path.exists():
            raise FileExistsError(f"{run_dir}: already holds a run; use --resume or another folder")
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    forward = TrainingForward(model, DecodeFlags(splitter=True, separation=config.decode_separation, reconstruction=True))
    net: torch.nn.Module = forward
    if ddp.world > 1:
        # With one separation call the mixing block is idle, which DDP must be told.
        idle = model.mixer is not None and config.model.m_sep * config.model.n_sep == 1 and not config.model.re_residual
        net = torch.nn.parallel.DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=idle
        )
    if config.compile:
        net = torch.compile(net)

    train_set, valid_set = _datasets(config, config.model.sample_rate)
    sampler = _ShardedSampler(len(train_set), config.seed, ddp.rank, ddp.world)
    weights = LossWeights.named(config.loss)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")
    metrics_file = run_dir / "metrics.jsonl"

    def record(event: dict[str, Any]) -> None:
        if ddp.main:
            with metrics_file.open("a") as f:
                f.write(json.dumps(event) + "\n")
        emit(event)

    def save_state() -> None:
        if ddp.main:
            atomic_write(
                last_path,
                lambda tmp: torch.save({
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "plateau": dataclasses.asdict(plateau),
                    "step": step,
                    "epoch": epoch,
                    "batch_in_epoch": batch_in_epoch,
                    "skipped": skipped_total,
                    "best": best,
                    "train_seconds": elapsed(),
                    "rng": _rng_state(),
                }, tmp),
            )

    stop_reason = ""
    started = time.perf_counter()
    elapsed = lambda: train_seconds + (time.perf_counter() - started)  # noqa: E731
    while epoch < optim_cfg.epochs and not stop_reason:
        train_set.set_epoch(epoch)  # type: ignore[attr-defined]
        sampler.set_epoch(epoch, skip=batch_in_epoch * local_batch)
        loader = DataLoader(
            train_set,
            batch_size=local_batch,
            sampler=sampler,
            num_workers=config.data.num_workers,
            collate_fn=collate_padded,
            drop_last=True,
        )
        net.train()
        t0 = time.perf_counter()
        accum = 0
        for mix, ref in loader:
            mix, ref = mix.to(device, dtype), ref.to(device, dtype)
            with autocast:
                waves = net(mix)
            outputs = [DecodedOutput(stage, 0, w.to(dtype)) for stage, w in zip(forward.stages, waves)]
            loss, stats = multi_loss(outputs, ref, weights)
            (loss / optim_cfg.accum_steps).backward()
            accum += 1
            batch_in_epoch += 1
            if accum < optim_cfg.accum_steps:
                continue
            accum = 0
            grad_norm = torch.nn.utils.clip_grad_norm_(params, optim_cfg.grad_clip)
            if not (math.isfinite(stats["loss"]) and torch.isfinite(grad_norm)):
                optimizer.zero_grad(set_to_none=True)
                skipped_total += 1
                bad_streak += 1
                record({"event": "skip", "step": step, "loss": stats["loss"], "skipped": skipped_total})
                if bad_streak >= 50:
                    stop_reason = "non-finite loss or gradient in 50 consecutive steps (lower the learning rate?)"
                    break
                continue
            bad_streak = 0
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, optim_cfg, plateau.scale)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % config.log_every_steps == 0:
                per_step = (time.perf_counter() - t0) / config.log_every_steps
                record({"event": "train", "step": step, "epoch": epoch, "lr": optimizer.param_groups[0]["lr"],
                        "grad_norm": float(grad_norm), "sec_per_step": per_step, "train_seconds": elapsed(), **stats})
                t0 = time.perf_counter()
            if step % config.save_every_steps == 0:
                save_state()
            if optim_cfg.max_steps and step >= optim_cfg.max_steps:
                stop_reason = f"reached max_steps={optim_cfg.max_steps}"
                break
            if optim_cfg.max_minutes and time.perf_counter() - started >= optim_cfg.max_minutes * 60:
                stop_reason = f"reached max_minutes={optim_cfg.max_minutes:g}"
                break
        if stop_reason:
            save_state()
            break

        valid_loss, valid_sisnri = validate(model, valid_set, weights, forward.flags, device)
        plateau.update(valid_loss, optim_cfg)
        if ddp.main:
            save_checkpoint(model, ckpt_dir / f"epoch{epoch}.safetensors", {"epoch": epoch, "valid_loss": valid_loss})
            best = sorted(best + [(valid_loss, epoch)])
            for _, dropped in best[config.keep_best :]:
                (ckpt_dir / f"epoch{dropped}.safetensors").unlink(missing_ok=True)
            best = best[: config.keep_best]
        record({"event": "epoch", "epoch": epoch, "step": step, "valid_loss": valid_loss, "valid_si_snri": valid_sisnri,
                "lr_scale": plateau.scale, "skipped": skipped_total, "train_seconds": elapsed()})
        epoch += 1
        batch_in_epoch = 0
        save_state()
        if plateau.since_best >= optim_cfg.early_stop:
            stop_reason = f"valid loss did not improve for {optim_cfg.early_stop} epochs"

    final = run_dir / "model.safetensors"
    if ddp.main:
        final = write_final_model(model, run_dir, config, best)
        record({"event": "done", "step": step, "epoch": epoch, "reason": stop_reason or "all epochs done", "model": str(final)})
    if ddp.world > 1:
        dist.barrier()
    return TrainResult(final, model, step, stop_reason or "all epochs done")


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


@torch.no_grad()
def validate(model: TISDiSS, dataset: Dataset, weights: LossWeights, flags: DecodeFlags, device: torch.device) -> tuple[float, float]:
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
        total = None
        for p in paths:
            _, s, _ = read_checkpoint(p)
            total = {k: v.double() for k, v in s.items()} if total is None else {k: total[k] + s[k].double() for k in total}
        state = {k: (v / len(paths)).to(state[k].dtype) for k, v in total.items()}
    averaged = TISDiSS(config.model)
    averaged.load_state_dict(state)
    presets = config.presets or presets_as_lists(default_presets(config.model.depth))
    metadata = {
        "presets": presets,
        "averaged_epochs": [e for _, e in best][: len(paths)],
        "valid_loss": [l for l, _ in best][: len(paths)],
        "description": config.description,
        "train_config": config.to_dict(),
    }
    return save_checkpoint(averaged, run_dir / "model.safetensors", metadata)


def resolve_config(
    recipe: str | None = None,
    config_file: str | None = None,
    data: str | None = None,
    overrides: list[str] | None = None,
    init_from: str | None = None,
) -> TrainConfig:
    """Recipe or config file, then ``--set`` overrides; relative data paths are resolved
    against ``data`` (the folder ``--data`` names)."""
    if (recipe is None) == (config_file is None):
        raise ValueError("give exactly one of --recipe NAME or --config FILE")
    raw = load_recipe(recipe or config_file)  # type: ignore[arg-type]
    raw = apply_overrides(raw, overrides or [])
    if init_from:
        raw["init_from"] = init_from
    if data:
        section = raw.setdefault("data", {})
        for key in ("train", "valid"):
            value = section.get(key, "")
            section[key] = str(Path(data) / value) if value and not Path(value).is_absolute() else (value or data)
    return config_from_dict(raw, recipe or str(config_file))
