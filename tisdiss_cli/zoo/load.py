"""One loader for every way of naming a model: :func:`load_any` -> :class:`LoadedModel`.

``load_any(spec)`` takes a registry name, a name given to :func:`import_model`, a tisdiss
checkpoint (``.safetensors``), a training run folder (holding ``model.safetensors``), an
ESPnet experiment folder (``config.yaml`` + ``.pth``) or one of its ``.pth`` files, or None
for the best available model.

An ESPnet folder usually holds several ``.pth`` files (per-epoch weights, ``checkpoint.pth``
with the optimiser state, the averaged models). The averaged model is taken
(``valid.*ave*.pth``), else a best one (``*best*.pth``), else a ``valid.*.pth``; a folder with
several other ``.pth`` files is an error asking for one to be named.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..model.checkpoint import CheckpointError, read_model, save_checkpoint
from ..model.config import ModelConfig
from ..model.depth import Depth, default_presets, presets_as_lists
from ..model.espnet import load_espnet, load_espnet_state
from ..model.network import TISDiSS
from .card import ModelCard
from .download import (
    DownloadError,
    OfflineError,
    ProgressCallback,
    fetch,
    is_verified,
    read_marker,
    sha256_file,
    write_marker,
)
from .registry import (
    CHECKPOINT_NAME,
    ModelEntry,
    ModelError,
    ModelExistsError,
    ModelNotFoundError,
    RegistryError,
    available_names,
    checkpoint_path,
    is_valid_name,
    load_registry,
    local_index_lock,
    models_dir,
    read_local_index,
    ready_checkpoint,
    source_identity,
    write_local_index,
)
from .unavailable import forget_failure, recent_failure, remember_failure

log = logging.getLogger(__name__)

# Everything load_any / import_model raise for bad input or an unreachable model.
MODEL_ERRORS = (ModelError, DownloadError, CheckpointError)


@dataclass
class LoadedModel:
    """A ready-to-run model and what the zoo knows about it."""

    model: TISDiSS  # in eval mode, on the requested device
    name: str  # registry name, or the path it was loaded from
    card: ModelCard

    @classmethod
    def in_memory(
        cls, model: TISDiSS, name: str = "in-memory model", presets: Mapping[str, tuple[int, int]] | None = None
    ) -> LoadedModel:
        """Wrap a network built in this process (no registry entry, no file)."""
        config = model.config
        depths = {k: Depth(*v) for k, v in presets.items()} if presets is not None else default_presets(config.depth)
        card = ModelCard(depths, config.depth, sample_rate=config.sample_rate, num_spk=config.num_spk)
        return cls(model, name, card)

    @property
    def presets(self) -> dict[str, Depth]:
        """ "fast" / "balanced" / "best" -> (n_sep, n_re), from the card."""
        return self.card.presets

    @property
    def segment_seconds(self) -> float | None:
        """Chunk length in seconds recorded for this model (registry entry or checkpoint), if any."""
        return self.card.segment_seconds

    @property
    def segment(self) -> float | None:
        """Deprecated: :attr:`segment_seconds`."""
        warnings.warn("LoadedModel.segment is deprecated; use segment_seconds", DeprecationWarning, stacklevel=2)
        return self.segment_seconds

    @property
    def documented_n_re(self) -> int:
        """The deepest N_re its card vouches for: measured quality, presets, or the trained depth."""
        return self.card.documented_n_re


def load_any(
    spec: str | os.PathLike[str] | None = None,
    *,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
) -> LoadedModel:
    """Resolve ``spec`` to a ready model (see the module docstring for what it accepts).

    With no spec, the registry's default model is used, downloaded if needed; when that is
    impossible (offline, unreachable) the bundled model is used instead with a warning.
    A model named explicitly never falls back. Raises one of :data:`MODEL_ERRORS`.
    """
    if spec is None:
        return _load_default(device, progress)
    registry = load_registry()
    name = os.fspath(spec)
    if name in registry.entries:
        return _load_entry(registry.entries[name], device, progress)
    local = read_local_index()
    if name in local:
        path = models_dir() / local[name]["file"]
        if not is_verified(path):
            raise ModelNotFoundError(f"imported model {name!r}: {path} is missing or damaged; import it again")
        model, metadata = read_model(path)
        return _loaded(model, metadata, name, device, source=local[name].get("source"))
    path = Path(name).expanduser()
    if path.exists():
        model, metadata = _load_path(path)
        return _loaded(model, metadata, str(path), device, source=str(path))
    raise ModelNotFoundError(
        f"unknown model {name!r}: not a model name (available: {', '.join(available_names())}) "
        "nor an existing checkpoint file or model folder"
    )


load_model = load_any  # the name this function had first (kept: it is documented)


def espnet_files(folder: Path) -> tuple[Path, Path] | None:
    """(config.yaml, .pth) of an ESPnet experiment folder by the rule in the module docstring;
    None when the folder is not one."""
    config = folder / "config.yaml"
    pths = sorted(folder.glob("*.pth"))
    if not config.is_file() or not pths:
        return None
    for pattern in ("valid.*ave*.pth", "*best*.pth", "valid.*.pth"):
        preferred = sorted(folder.glob(pattern))
        if preferred:
            return config, preferred[0]
    if len(pths) > 1:
        raise ModelNotFoundError(f"{folder}: several .pth files ({', '.join(p.name for p in pths)}); name one")
    return config, pths[0]


def _load_path(path: Path) -> tuple[TISDiSS, dict[str, Any]]:
    """Model (eval, CPU) and metadata from a checkpoint file or a folder."""
    if path.is_dir():
        if (path / CHECKPOINT_NAME).is_file():
            path = path / CHECKPOINT_NAME
        else:
            files = espnet_files(path)
            if files is None:
                raise ModelNotFoundError(
                    f"{path}: not a model folder (expected {CHECKPOINT_NAME}, or config.yaml and a .pth)"
                )
            model = load_espnet(*files)
            return model, {"source_format": "espnet", "source": str(files[1])}
    if path.suffix == ".pth":
        if not (path.parent / "config.yaml").is_file():
            raise ModelNotFoundError(f"{path}: an ESPnet .pth needs the experiment's config.yaml next to it")
        return load_espnet(path.parent / "config.yaml", path), {"source_format": "espnet", "source": str(path)}
    return read_model(path)


def _presets_from(metadata: Mapping[str, Any], model: TISDiSS) -> dict[str, Depth]:
    """The presets recorded in a checkpoint's metadata, over the defaults for its config."""
    presets = default_presets(model.config.depth)
    raw = metadata.get("presets")
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            try:
                presets[str(key)] = Depth(value[0], value[1])
            except (TypeError, ValueError, IndexError):
                log.warning("ignoring malformed preset %r in checkpoint metadata", key)
    return presets


def _loaded(model: TISDiSS, metadata: Mapping[str, Any], name: str, device: str, *, source: str | None) -> LoadedModel:
    config = model.config
    card = ModelCard.from_metadata(
        metadata,
        _presets_from(metadata, model),
        config.depth,
        sample_rate=config.sample_rate,
        num_spk=config.num_spk,
        source=source,
    )
    return LoadedModel(model.to(device).eval(), name, card)


def _load_entry(entry: ModelEntry, device: str, progress: ProgressCallback | None) -> LoadedModel:
    model, metadata = read_model(download_model(entry.name, progress=progress))
    config = model.config
    for field_name, listed, actual in (
        ("sample_rate", entry.sample_rate, config.sample_rate),
        ("num_spk", entry.num_spk, config.num_spk),
    ):
        if listed is not None and listed != actual:
            log.warning("registry entry %r lists %s = %s, its weights have %s", entry.name, field_name, listed, actual)
    presets = dict(entry.presets) or _presets_from(metadata, model)
    card = ModelCard.from_entry(
        entry, presets, config.depth, metadata, sample_rate=config.sample_rate, num_spk=config.num_spk
    )
    return LoadedModel(model.to(device).eval(), entry.name, card)


def _minutes(seconds: float) -> str:
    return "under a minute" if seconds < 60 else f"{round(seconds / 60)} min"


def _load_default(device: str, progress: ProgressCallback | None) -> LoadedModel:
    registry = load_registry()
    if not registry.default:
        raise RegistryError("the registry names no default model")
    default = registry.get(registry.default)
    fallback = registry.entries.get(registry.fallback or "")
    failed = recent_failure(default.name) if ready_checkpoint(default) is None else None
    if failed is not None and fallback is not None and ready_checkpoint(fallback) is not None:
        ago, retry = _minutes(failed.age_s), _minutes(failed.retry_in_s)
        reason = f"its download failed {ago} ago: {failed.reason}; next try in {retry}"
    else:
        try:
            return _load_entry(default, device, progress)
        except DownloadError as exc:
            if not isinstance(exc, OfflineError):
                remember_failure(default.name, exc.reason)
            reason, detail = exc.reason, str(exc)
        except CheckpointError as exc:
            reason = detail = str(exc)
        if fallback is None or ready_checkpoint(fallback) is None:
            raise ModelNotFoundError(
                f"default model {default.name!r} is unavailable and no bundled model is installed: {detail}"
            )
    log.warning(
        "using the bundled model %s, not %s (%s); get the better model with: tisdiss models download %s",
        fallback.name,
        default.name,
        " ".join(reason.split()),
        default.name,
    )
    return _load_entry(fallback, device, progress)


# --------------------------------------------------------------------------- filling the cache


def _bundled_problem(entry: ModelEntry) -> str:
    """Why a bundled entry's file cannot be used: missing, or not the size the registry records."""
    path = entry.bundled_path()
    if path is None or not path.is_file():
        return f"bundled model {entry.name!r} is not installed (no {entry.file} in the package)"
    return (
        f"bundled model {entry.name!r} is damaged: {path} is {path.stat().st_size} bytes, "
        f"the registry expects {entry.size}; reinstall tisdiss"
    )


def download_model(name: str, *, progress: ProgressCallback | None = None) -> Path:
    """Make registry model ``name`` available offline; returns its tisdiss checkpoint.

    Downloads and verifies the file unless a verified copy is cached, and converts an
    ESPnet checkpoint once to the tisdiss format.
    """
    entry = load_registry().get(name)
    ready = ready_checkpoint(entry)
    if entry.bundled:
        if ready is None:
            raise ModelNotFoundError(_bundled_problem(entry))
        return ready
    if ready is not None:
        return ready
    if entry.url is None:
        raise RegistryError(f"registry model {name!r} has no url")
    source = fetch(entry.url, models_dir() / name / entry.download_name, entry.expected, progress=progress)
    forget_failure(name)
    if entry.format == "tisdiss":
        return source
    return _convert_espnet(entry, source)


def _convert_espnet(entry: ModelEntry, source: Path) -> Path:
    """The downloaded ESPnet ``source`` as a tisdiss checkpoint in the cache (converted once)."""
    target = checkpoint_path(entry.name)
    with FileLock(str(target.with_name(target.name + ".lock"))):
        marker = read_marker(target)
        if is_verified(target) and marker is not None and marker.get("source") == source_identity(entry):
            return target
        if entry.config is None:
            raise RegistryError(f"registry model {entry.name!r}: an 'espnet' entry needs a [config] table")
        model = load_espnet_state(ModelConfig.from_dict(entry.config), source)
        source_marker = read_marker(source) or {}
        metadata = {
            "name": entry.name,
            "presets": presets_as_lists(entry.presets),
            "converted_from": "espnet",
            "source_url": entry.url,
            "source_sha256": source_marker.get("sha256"),
            "source_git_blob": source_marker.get("git_blob"),
            "licence": entry.licence,
        }
        save_checkpoint(model, target, metadata)
        write_marker(
            target, {"size": target.stat().st_size, "sha256": sha256_file(target)}, source=source_identity(entry)
        )
    return target


def import_model(path: str | os.PathLike[str], name: str, *, overwrite: bool = False) -> Path:
    """Store a checkpoint (tisdiss file, ESPnet folder or training run) in the cache as ``name``.

    The model is converted to the tisdiss format once; ``load_any(name)`` then finds it.
    Returns the stored checkpoint's path. The input is only read.
    """
    if not is_valid_name(name):
        raise ModelError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-'")
    if name in load_registry().entries:
        raise ModelError(f"{name!r} is a registry model; choose another name")
    source = Path(path).expanduser()
    if not source.exists():
        raise ModelNotFoundError(f"{source}: no such file or folder")
    model, metadata = _load_path(source)
    target = checkpoint_path(name)
    with local_index_lock():
        index = read_local_index()
        if name in index and not overwrite:
            raise ModelExistsError(name)
        presets = presets_as_lists(_presets_from(metadata, model))
        save_checkpoint(model, target, {**metadata, "name": name, "presets": presets})
        write_marker(target, {"size": target.stat().st_size, "sha256": sha256_file(target)})
        index[name] = {"file": f"{name}/{CHECKPOINT_NAME}", "source": str(source.resolve())}
        write_local_index(index)
    return target
