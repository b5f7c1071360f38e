"""Model zoo: registry entries (data in ``models/``), resolution of a model spec to weights.

    load_model(spec=None, *, device="cpu") -> LoadedModel

``spec`` is a registry name, a name given to :func:`import_model`, a tisdiss checkpoint
(``.safetensors``), an ESPnet experiment folder (``config.yaml`` + a ``.pth``), a training
run folder (holding ``model.safetensors``), or None for the best available model.

Cache layout (root from :func:`tisdiss_cli.download.cache_dir`)::

    models/<name>/<file from the URL>      downloaded file + ``.verified`` marker
    models/<name>/model.safetensors        tisdiss checkpoint (converted / imported)
    models/local.json                      index of imported models
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import urllib.parse
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping

import torch
from filelock import FileLock

from ..model.checkpoint import (
    CheckpointError,
    convert_espnet_state,
    load_espnet,
    load_state_strict,
    read_checkpoint,
    save_checkpoint,
)
from ..model.config import ModelConfig
from .download import (
    DownloadError,
    Expected,
    ProgressCallback,
    cache_dir,
    fetch,
    is_verified,
    read_marker,
    sha256_file,
    write_marker,
)
from ..util.fileio import atomic_write_text
from ..model.network import TISDiSS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)

Preset = tuple[int, int]  # (n_sep, n_re)
PRESET_NAMES = ("fast", "balanced", "best")
CHECKPOINT_NAME = "model.safetensors"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class LoadedModel:
    """A ready-to-run model and what the zoo knows about it."""

    model: TISDiSS  # in eval mode, on the requested device
    name: str  # registry name, or the path it was loaded from
    presets: dict[str, Preset]  # "fast" / "balanced" / "best" -> (n_sep, n_re)
    card: dict[str, Any] = field(default_factory=dict)  # registry entry / checkpoint metadata


class ModelError(Exception):
    """Base of the zoo's own errors (the message is meant for the user)."""


class ModelNotFoundError(ModelError, LookupError):
    """A spec that names no known model, file or folder; or a model that is not available."""


class RegistryError(ModelError, ValueError):
    """A registry file that cannot be read or holds an invalid entry."""


# Everything load_model / import_model raise for bad input or an unreachable model.
MODEL_ERRORS: tuple[type[Exception], ...] = (ModelError, DownloadError, CheckpointError)


# --------------------------------------------------------------------------- registry data


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry (see the comments at the top of ``models/registry.toml``)."""

    name: str
    summary: str = ""
    format: Literal["tisdiss", "espnet"] = "tisdiss"
    url: str | None = None  # download location (None for bundled models)
    sha256: str | None = None  # of the file at ``url``
    git_blob: str | None = None  # git blob id of that file
    size: int | None = None  # bytes
    bundled: bool = False  # weights shipped inside the package
    file: str | None = None  # bundled: path relative to ``base``
    base: str | None = None  # folder ``file`` is relative to (package or extra registry)
    config: dict[str, Any] | None = None  # ModelConfig fields (required for "espnet")
    presets: dict[str, Preset] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)  # {"by_n_re": {n_re: score}, ...}
    sample_rate: int | None = None
    num_spk: int | None = None
    params: int | None = None
    training_data: str = ""
    licence: str = ""
    card: str | None = None  # card path relative to the package

    @property
    def expected(self) -> Expected:
        return Expected(size=self.size, sha256=self.sha256, git_blob=self.git_blob)

    @property
    def download_name(self) -> str:
        """File name in the cache: the URL's last component, unquoted."""
        assert self.url is not None
        return urllib.parse.unquote(urllib.parse.urlsplit(self.url).path.rsplit("/", 1)[-1]) or "download"

    def bundled_path(self) -> Path | None:
        if not (self.bundled and self.file and self.base):
            return None
        return Path(self.base) / self.file

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "base"}
        d["presets"] = {k: list(v) for k, v in self.presets.items()}
        return d


@dataclass(frozen=True)
class Registry:
    entries: dict[str, ModelEntry]
    default: str | None = None  # used when no model is named
    fallback: str | None = None  # bundled model used when the default cannot be fetched

    def get(self, name: str) -> ModelEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise ModelNotFoundError(f"unknown model {name!r}; available: {', '.join(available_names())}") from None


def _package_dir() -> Path:
    return Path(str(resources.files("tisdiss_models")))


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{source}: not valid TOML ({exc})") from None


def load_registry() -> Registry:
    """The packaged registry, updated field by field by the files in ``TISDISS_REGISTRY``."""
    builtin = resources.files("tisdiss_models").joinpath("registry.toml")
    layers: list[tuple[dict[str, Any], str, str]] = [
        (_read_toml(builtin.read_text(encoding="utf-8"), "registry.toml"), str(_package_dir()), "registry.toml")
    ]
    for extra in filter(None, os.environ.get("TISDISS_REGISTRY", "").split(os.pathsep)):
        path = Path(extra).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RegistryError(f"{path} (from TISDISS_REGISTRY): cannot read ({exc.strerror})") from None
        layers.append((_read_toml(text, str(path)), str(path.parent.resolve()), str(path)))

    raw: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for data, base, source in layers:
        models = data.get("models", {})
        if not isinstance(models, dict):
            raise RegistryError(f"{source}: [models] must be a table")
        for name, table in models.items():
            if not isinstance(table, dict):
                raise RegistryError(f"{source}: models.{name} must be a table")
            merged = {**raw.get(name, {}), **table, "_source": source}
            if "file" in table:
                merged["base"] = base
            raw[name] = merged
        top.update({k: v for k, v in data.items() if k in ("default", "fallback")})
    entries = {name: _entry(name, table) for name, table in raw.items()}
    return Registry(entries, default=top.get("default"), fallback=top.get("fallback"))


def _entry(name: str, table: dict[str, Any]) -> ModelEntry:
    source = table.pop("_source")
    where = f"{source}: models.{name}"
    known = {f.name for f in fields(ModelEntry)} - {"name"}
    unknown = set(table) - known
    if unknown:
        raise RegistryError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        presets = {str(k): (int(v[0]), int(v[1])) for k, v in table.get("presets", {}).items()}
    except (TypeError, ValueError, IndexError):
        raise RegistryError(f"{where}: presets must map names to [n_sep, n_re]") from None
    table = {**table, "presets": presets}
    for key in ("sha256", "git_blob"):
        if table.get(key) == "":
            table[key] = None  # "" = not known yet
    entry = ModelEntry(name=name, **table)
    if entry.format not in ("tisdiss", "espnet"):
        raise RegistryError(f"{where}: format must be 'tisdiss' or 'espnet', not {entry.format!r}")
    if not entry.bundled and not entry.url:
        raise RegistryError(f"{where}: needs a url (or bundled = true with a file)")
    if entry.bundled and not entry.file:
        raise RegistryError(f"{where}: bundled = true needs a file")
    if entry.config is not None:
        try:
            ModelConfig.from_dict(entry.config)
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"{where}: bad config ({exc})") from None
    elif entry.format == "espnet":
        raise RegistryError(f"{where}: an 'espnet' entry needs a [config] table (the .pth holds none)")
    return entry


def card_text(entry: ModelEntry) -> str | None:
    """The model card (markdown), when the entry names one that exists."""
    if not entry.card:
        return None
    path = resources.files("tisdiss_models").joinpath(entry.card)
    return path.read_text(encoding="utf-8") if path.is_file() else None


# --------------------------------------------------------------------------- local index


def models_dir() -> Path:
    return cache_dir() / "models"


def _index_path() -> Path:
    return models_dir() / "local.json"


def read_local_index() -> dict[str, dict[str, Any]]:
    """Imported models: name -> {"file": path relative to models_dir(), "source": ...}."""
    try:
        data = json.loads(_index_path().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{_index_path()}: unreadable index of imported models ({exc}); delete it and re-import") from None
    return data if isinstance(data, dict) else {}


def _write_local_index(index: Mapping[str, Any]) -> None:
    atomic_write_text(_index_path(), json.dumps(dict(index), indent=1, sort_keys=True))


def available_names() -> list[str]:
    return sorted(set(load_registry().entries) | set(read_local_index()))


# --------------------------------------------------------------------------- cache status


def checkpoint_path(name: str) -> Path:
    """Where the ready-to-load tisdiss checkpoint of a downloaded or imported model lives."""
    return models_dir() / name / CHECKPOINT_NAME


@dataclass(frozen=True)
class ModelStatus:
    """What ``tisdiss models list`` shows for one model."""

    name: str
    kind: Literal["registry", "bundled", "imported"]
    entry: ModelEntry | None  # None for imported models
    available: bool  # loadable without the network
    path: Path | None  # the checkpoint, when available
    size: int | None  # bytes on disk, when available


def _ready_checkpoint(entry: ModelEntry) -> Path | None:
    """The entry's tisdiss checkpoint if it is present and passes the cheap re-check."""
    if entry.bundled:
        path = entry.bundled_path()
        return path if path is not None and path.is_file() and (entry.size is None or path.stat().st_size == entry.size) else None
    if entry.format == "espnet":
        path = checkpoint_path(entry.name)
        marker = read_marker(path)
        ok = is_verified(path) and marker is not None and marker.get("source") == _source_identity(entry)
        return path if ok else None
    path = models_dir() / entry.name / entry.download_name
    return path if is_verified(path, entry.expected) else None


def _source_identity(entry: ModelEntry) -> str | None:
    return entry.git_blob or entry.sha256


def model_status() -> list[ModelStatus]:
    """Every registry entry and imported model, with whether it is available offline."""
    out: list[ModelStatus] = []
    for entry in load_registry().entries.values():
        path = _ready_checkpoint(entry)
        if entry.bundled:
            kind: Literal["registry", "bundled", "imported"] = "bundled"
        else:
            kind = "registry"
        size = None
        if path is not None:
            size = path.stat().st_size if entry.bundled else _folder_size(models_dir() / entry.name)
        out.append(ModelStatus(entry.name, kind, entry, path is not None, path, size))
    for name, info in sorted(read_local_index().items()):
        path = models_dir() / info["file"]
        ok = is_verified(path)
        out.append(ModelStatus(name, "imported", None, ok, path if ok else None, _folder_size(path.parent) if ok else None))
    return out


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0


# --------------------------------------------------------------------------- fetching


def download_model(name: str, *, progress: ProgressCallback | None = None) -> Path:
    """Make registry model ``name`` available offline; returns its tisdiss checkpoint.

    Downloads and verifies the file unless a verified copy is cached, and converts an
    ESPnet checkpoint once to the tisdiss format.
    """
    entry = load_registry().get(name)
    if entry.bundled:
        path = _ready_checkpoint(entry)
        if path is None:
            raise ModelNotFoundError(f"bundled model {name!r} is not installed (no {entry.file} in the package)")
        return path
    ready = _ready_checkpoint(entry)
    if ready is not None:
        return ready
    folder = models_dir() / name
    source = fetch(entry.url, folder / entry.download_name, entry.expected, progress=progress)  # type: ignore[arg-type]
    if entry.format == "tisdiss":
        return source
    return _convert_espnet(entry, source)


def _convert_espnet(entry: ModelEntry, source: Path) -> Path:
    target = checkpoint_path(entry.name)
    with FileLock(str(target.with_name(target.name + ".lock"))):
        marker = read_marker(target)
        if is_verified(target) and marker is not None and marker.get("source") == _source_identity(entry):
            return target
        assert entry.config is not None
        config = ModelConfig.from_dict(entry.config)
        model = TISDiSS(config)
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a file that is not a state dict
            raise CheckpointError(f"{source}: not a loadable PyTorch state dict ({exc})") from None
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{source}: holds a {type(state).__name__}, not a state dict")
        try:
            converted = convert_espnet_state(model, state)
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {exc}") from None
        load_state_strict(model, converted, source=str(source))
        source_marker = read_marker(source) or {}
        metadata = {
            "name": entry.name,
            "presets": {k: list(v) for k, v in entry.presets.items()},
            "converted_from": "espnet",
            "source_url": entry.url,
            "source_sha256": source_marker.get("sha256"),
            "source_git_blob": source_marker.get("git_blob"),
            "licence": entry.licence,
        }
        save_checkpoint(model, target, metadata)
        write_marker(target, {"size": target.stat().st_size, "sha256": sha256_file(target)}, source=_source_identity(entry))
    return target


# --------------------------------------------------------------------------- resolution


def default_presets(config: ModelConfig) -> dict[str, Preset]:
    """Presets for a checkpoint that records none: the trained depth, and N_re = 1 for speed."""
    trained = (config.n_sep, config.n_re)
    return {"fast": (config.n_sep, min(1, config.n_re)), "balanced": trained, "best": trained}


def _presets_from(metadata: Mapping[str, Any], config: ModelConfig) -> dict[str, Preset]:
    presets = default_presets(config)
    raw = metadata.get("presets")
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            try:
                presets[str(key)] = (int(value[0]), int(value[1]))
            except (TypeError, ValueError, IndexError):
                log.warning("ignoring malformed preset %r in checkpoint metadata", key)
    return presets


def _espnet_files(folder: Path) -> tuple[Path, Path] | None:
    """(config.yaml, .pth) of an ESPnet experiment folder, preferring the averaged best model."""
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
            files = _espnet_files(path)
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
    return _read_model(path)


def _read_model(path: Path) -> tuple[TISDiSS, dict[str, Any]]:
    """Model (eval, CPU) and metadata of a tisdiss checkpoint, reading the file once."""
    config, state, metadata = read_checkpoint(path)
    model = TISDiSS(config)
    load_state_strict(model, state, source=str(path))
    return model.eval(), metadata


def load_model(
    spec: str | os.PathLike | None = None,
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
        model, metadata = _read_model(path)
        return _loaded(model, metadata, name, device, {"imported_from": local[name].get("source")})
    path = Path(name).expanduser()
    if path.exists():
        model, metadata = _load_path(path)
        return _loaded(model, metadata, str(path), device, {})
    raise ModelNotFoundError(
        f"unknown model {name!r}: not a model name (available: {', '.join(available_names())}) "
        "nor an existing checkpoint file or model folder"
    )


def _loaded(model: TISDiSS, metadata: Mapping[str, Any], name: str, device: str, extra: Mapping[str, Any]) -> LoadedModel:
    card = {**metadata, **extra, "config": model.config.to_dict()}
    return LoadedModel(model.to(device).eval(), name, _presets_from(metadata, model.config), card)


def _load_entry(entry: ModelEntry, device: str, progress: ProgressCallback | None) -> LoadedModel:
    model, metadata = _read_model(download_model(entry.name, progress=progress))
    presets = dict(entry.presets) or _presets_from(metadata, model.config)
    return LoadedModel(model.to(device).eval(), entry.name, presets, entry.to_dict())


def _load_default(device: str, progress: ProgressCallback | None) -> LoadedModel:
    registry = load_registry()
    if not registry.default:
        raise RegistryError("the registry names no default model")
    try:
        return _load_entry(registry.get(registry.default), device, progress)
    except (DownloadError, CheckpointError) as exc:
        reason = str(exc)
    fallback = registry.entries.get(registry.fallback or "")
    if fallback is None or _ready_checkpoint(fallback) is None:
        raise ModelNotFoundError(f"default model {registry.default!r} is unavailable and no bundled model is installed: {reason}")
    log.warning(
        "using the bundled model %s instead of %s (%s); get the better model with `tisdiss models download %s`",
        fallback.name, registry.default, reason, registry.default,
    )
    return _load_entry(fallback, device, progress)


# --------------------------------------------------------------------------- import / remove


def import_model(path: str | os.PathLike, name: str, *, overwrite: bool = False) -> Path:
    """Store a checkpoint (tisdiss file, ESPnet folder or training run) in the cache as ``name``.

    The model is converted to the tisdiss format once; ``load_model(name)`` then finds it.
    Returns the stored checkpoint's path. The input is only read.
    """
    if not _NAME_RE.match(name):
        raise ModelError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-'")
    if name in load_registry().entries:
        raise ModelError(f"{name!r} is a registry model; choose another name")
    source = Path(path).expanduser()
    if not source.exists():
        raise ModelNotFoundError(f"{source}: no such file or folder")
    model, metadata = _load_path(source)
    target = checkpoint_path(name)
    with FileLock(str(_index_path()) + ".lock"):
        index = read_local_index()
        if name in index and not overwrite:
            raise ModelError(f"a model named {name!r} is already imported; remove it first or overwrite")
        presets = _presets_from(metadata, model.config)
        save_checkpoint(model, target, {**metadata, "name": name, "presets": {k: list(v) for k, v in presets.items()}})
        write_marker(target, {"size": target.stat().st_size, "sha256": sha256_file(target)})
        index[name] = {"file": f"{name}/{CHECKPOINT_NAME}", "source": str(source.resolve())}
        _write_local_index(index)
    return target


def remove_model(name: str) -> list[Path]:
    """Delete a downloaded or imported model from the cache; returns what was removed."""
    registry = load_registry()
    local = read_local_index()
    if name in registry.entries and registry.entries[name].bundled:
        raise ModelError(f"{name!r} is bundled with the package and cannot be removed")
    if name not in registry.entries and name not in local:
        raise ModelNotFoundError(f"unknown model {name!r}; available: {', '.join(available_names())}")
    removed: list[Path] = []
    folder = models_dir() / name
    if folder.is_dir():
        removed.extend(sorted(p for p in folder.iterdir()))
        shutil.rmtree(folder)
    if name in local:
        with FileLock(str(_index_path()) + ".lock"):
            index = read_local_index()
            index.pop(name, None)
            _write_local_index(index)
    return removed


def iter_presets(presets: Mapping[str, Preset]) -> Iterator[tuple[str, Preset]]:
    """Presets in the order fast, balanced, best, then any others."""
    for key in PRESET_NAMES:
        if key in presets:
            yield key, presets[key]
    for key, value in presets.items():
        if key not in PRESET_NAMES:
            yield key, value
