"""Training configuration: the config dataclasses, recipes (shipped or a file) and ``--set`` overrides.

A recipe is TOML (or JSON) with the fields of :class:`TrainConfig`; ``[model]`` may name one of
the ARCHITECTURES and override its fields. ``resolve_config`` is what ``tisdiss train`` runs.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..model.config import ModelConfig, architecture
from .data import MixingConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


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
    # Validation conditions, each on the same valid mixtures (VALID_CONDITIONS); the epoch's
    # valid loss and SI-SNRi are their means. Empty: one set mixed as the training set is.
    valid_conditions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [c for c in self.valid_conditions if c not in VALID_CONDITIONS]
        if unknown:
            raise ValueError(
                f"data.valid_conditions: unknown condition {unknown[0]!r} (choose from {', '.join(VALID_CONDITIONS)})"
            )


# What each validation condition sets in the mixing: (room_prob, noise_prob); None keeps the recipe's.
VALID_CONDITIONS: dict[str, tuple[float | None, float | None]] = {
    "train": (None, None),
    "clean": (0.0, 0.0),
    "room": (1.0, 0.0),
    "noisy": (0.0, 1.0),
    "room+noise": (1.0, 1.0),
}
SELECT_BY = ("loss", "si_snri")


SCHEDULES = ("plateau", "wsd")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 2000  # linear warm-up
    # "plateau": after the warm-up, halve on plateaus of the validation loss (the paper's);
    # "wsd": warm-up, then constant, then a cosine decay planned in steps (schedule.py)
    schedule: str = "plateau"
    plateau_factor: float = 0.5  # ReduceLROnPlateau on valid loss, per epoch
    plateau_patience: int = 3
    decay_start_step: int = 0  # wsd: the step the decay starts at (0: constant, no decay planned)
    decay_steps: int = 0  # wsd: steps the cosine decay takes, down to final_lr_scale
    final_lr_scale: float = 0.05  # wsd: the rate at the end of the decay, as a fraction of lr
    grad_clip: float = 5.0
    batch_size: int = 6  # global batch (split across ranks)
    accum_steps: int = 1  # gradient accumulation
    epochs: int = 150
    early_stop: int = 10  # epochs without valid improvement
    max_steps: int = 0  # stop after this many optimiser steps (0 = no limit)
    max_minutes: float = 0.0  # stop this invocation after this much wall time (0 = no limit)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule: unknown schedule {self.schedule!r} (choose from {', '.join(SCHEDULES)})")
        if self.decay_start_step < 0 or self.decay_steps < 0 or not 0.0 <= self.final_lr_scale <= 1.0:
            raise ValueError("optim: decay_start_step and decay_steps must be >= 0, final_lr_scale in [0, 1]")


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
    select_by: str = "loss"  # what ranks the epochs kept: "loss" (lowest valid loss) or "si_snri" (highest)
    log_every_steps: int = 20
    precision: str = "fp32"  # "fp32" | "bf16" (autocast, GPU) | "fp64" (exact-arithmetic checks)
    compile: bool = False  # torch.compile the model
    checkpointing: bool = False  # activation checkpointing per block: less memory, ~1 more forward
    device: str = "auto"
    init_from: str = ""  # weights to start from: any model spec load_any takes (name, file, run or ESPnet folder)
    presets: dict[str, list[int]] = field(default_factory=dict)  # written into the final model card
    description: str = ""

    def __post_init__(self) -> None:
        if self.select_by not in SELECT_BY:
            raise ValueError(f"select_by: {self.select_by!r} is not one of {', '.join(SELECT_BY)}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d


def _checked(default: Any, value: Any, where: str) -> Any:
    """``value`` if it has the type of the field's ``default`` (ints may stand for floats, and
    integral floats for ints), else a ``ValueError`` naming the key: a wrong type would
    otherwise fail deep inside the loop, or train with a string for a number."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        kind = "true or false"
    elif isinstance(default, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
        kind = "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        kind = "a number"
    elif isinstance(default, str):
        ok = isinstance(value, str)
        kind = "a string (quote it in --set: key='\"text\"')"
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple))
        value = tuple(value) if ok else value
        kind = "a list"
    else:
        return value
    if not ok:
        raise ValueError(f"{where}: expected {kind}, got {value!r}")
    return value


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    if not isinstance(values, Mapping):
        raise ValueError(f"{where}: expected a table of settings, got {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
        default = known[key].default
        if key == "model":
            if not isinstance(value, (dict, ModelConfig)):
                raise ValueError(f"{where}.model: expected a table of settings, got {value!r}")
            value = _model_config(value, f"{where}.model") if isinstance(value, dict) else value
        elif key == "mixing":
            value = _build(MixingConfig, value, f"{where}.mixing")
        elif key == "data":
            value = _build(DataConfig, value, f"{where}.data")
        elif key == "optim":
            value = _build(OptimConfig, value, f"{where}.optim")
        elif default is not dataclasses.MISSING:
            value = _checked(default, value, f"{where}.{key}")  # also TOML/JSON lists -> tuples
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
    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(fields)})")
    checked = {key: _checked(getattr(base, key), value, f"{where}.{key}") for key, value in values.items()}
    return base.replace(**checked)


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


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """A recipe file: JSON for ``.json``, else TOML. A ``ValueError`` naming the file when it is
    missing, unreadable or not a table of settings."""
    path = Path(path)
    kind = "JSON" if path.suffix == ".json" else "TOML"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise ValueError(f"{path}: not valid {kind} ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe is a table of settings, not a {type(data).__name__}")
    return data


def load_recipe(name_or_path: str) -> dict[str, Any]:
    """A recipe shipped with the package (by name) or a TOML / JSON file."""
    path = Path(name_or_path)
    if path.suffix in (".toml", ".json") and path.exists():
        return read_recipe_file(path)
    shipped = resources.files("tisdiss_cli") / "recipes" / f"{name_or_path}.toml"
    if not shipped.is_file():
        names = sorted(
            p.name[:-5] for p in (resources.files("tisdiss_cli") / "recipes").iterdir() if p.name.endswith(".toml")
        )
        raise ValueError(f"unknown recipe {name_or_path!r}; shipped recipes: {', '.join(names)}")
    return tomllib.loads(shipped.read_text())


def resolve_config(
    recipe: str | None = None,
    config_file: str | None = None,
    data: str | None = None,
    overrides: list[str] | None = None,
    init_from: str | None = None,
) -> TrainConfig:
    """Recipe or config file, then ``--set`` overrides; relative data paths are resolved
    against ``data`` (the folder ``--data`` names)."""
    source = recipe if config_file is None else config_file
    if source is None or (recipe is not None and config_file is not None):
        raise ValueError("give exactly one of --recipe NAME or --config FILE")
    raw = load_recipe(source) if config_file is None else read_recipe_file(config_file)
    raw = apply_overrides(raw, overrides or [])
    if init_from:
        raw["init_from"] = init_from
    if data:
        section = raw.setdefault("data", {})
        for key in ("train", "valid"):
            value = section.get(key, "")
            section[key] = str(Path(data) / value) if value and not Path(value).is_absolute() else (value or data)
    return config_from_dict(raw, recipe or str(config_file))


# --------------------------------------------------------------------------- resuming a run

RUN_CONFIG = "config.json"
# What a resumed run may change in [model]: loop counts, which change no parameter shape.
RESUMABLE_MODEL_KEYS = ("model.n_sep", "model.n_re")
Changes = dict[str, tuple[Any, Any]]  # dotted key -> (the run's value, the new value)


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The configuration a run was started with (its ``config.json``)."""
    path = Path(run_dir) / RUN_CONFIG
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{run_dir}: no {RUN_CONFIG}, so no run to resume there") from None
    try:
        return config_from_dict(json.loads(text), str(path))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """The run's own configuration with ``--set`` overrides on top (checked by :func:`check_resumable`)."""
    run = read_run_config(run_dir)
    config = config_from_dict(apply_overrides(run.to_dict(), overrides or []), f"{run_dir}/{RUN_CONFIG}")
    check_resumable(config_changes(run, config))
    return config


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, Mapping) and key != "presets":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_changes(old: TrainConfig, new: TrainConfig) -> Changes:
    """Every setting that differs, by dotted key (as ``--set`` names it)."""
    a, b = _flatten(json.loads(json.dumps(old.to_dict()))), _flatten(json.loads(json.dumps(new.to_dict())))
    return {key: (a.get(key), b.get(key)) for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)}


def describe_changes(changes: Changes) -> str:
    """``optim.lr 0.002 -> 0.001, ...`` on one line."""
    return ", ".join(f"{key} {json.dumps(old)} -> {json.dumps(new)}" for key, (old, new) in changes.items())


def check_resumable(changes: Changes) -> None:
    """Refuse changes a resumed run cannot take: the model's architecture (the weights would not fit)."""
    fixed = {k: v for k, v in changes.items() if k.startswith("model.") and k not in RESUMABLE_MODEL_KEYS}
    if fixed:
        raise ValueError(
            f"a resumed run keeps its architecture ({describe_changes(fixed)}); "
            "start a new run, or fine-tune with --init-from RUN"
        )
