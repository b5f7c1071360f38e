"""The model registry as data (``models/registry.toml``, ``TISDISS_REGISTRY``) and what the cache holds.

Loading a model from a name or a path is :mod:`tisdiss_cli.zoo.load`'s work.

Cache layout (root from :func:`tisdiss_cli.zoo.download.cache_dir`)::

    models/<name>/<file from the URL>      downloaded file + ``.verified`` marker
    models/<name>/model.safetensors        tisdiss checkpoint (converted / imported)
    models/local.json                      index of imported models
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock

from ..model.config import ModelConfig
from ..model.depth import Depth
from ..util.fileio import atomic_write_text
from .download import Expected, cache_dir, is_verified, read_marker

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CHECKPOINT_NAME = "model.safetensors"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ModelError(Exception):
    """Base of the zoo's own errors (the message is meant for the user)."""


class ModelNotFoundError(ModelError, LookupError):
    """A spec that names no known model, file or folder; or a model that is not available."""


class ModelExistsError(ModelError):
    """A model is already imported under the name given; ``name`` is that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a model named {name!r} is already imported; pass overwrite=True to replace it")
        self.name = name


class RegistryError(ModelError, ValueError):
    """A registry file that cannot be read or holds an invalid entry."""


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
    presets: dict[str, Depth] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)  # {"by_n_re": {n_re: score}, ...}
    sample_rate: int | None = None
    num_spk: int | None = None
    params: int | None = None
    training_data: str = ""
    licence: str = ""
    card: str | None = None  # card path relative to the package
    segment: float | None = None  # chunk length (s) the model separates best with (None: the separator's default)

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
        presets = {str(k): Depth(v[0], v[1]) for k, v in table.get("presets", {}).items()}
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
    except (FileNotFoundError, NotADirectoryError):  # nothing imported, or no usable cache at all
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{_index_path()}: unreadable index of imported models ({exc}); delete it and re-import"
        ) from None
    return data if isinstance(data, dict) else {}


def write_local_index(index: Mapping[str, Any]) -> None:
    """Replace the index of imported models (hold :func:`local_index_lock` around read and write)."""
    atomic_write_text(_index_path(), json.dumps(dict(index), indent=1, sort_keys=True))


def local_index_lock() -> FileLock:
    """Serialises changes to the index of imported models across processes."""
    return FileLock(str(_index_path()) + ".lock")


def is_valid_name(name: str) -> bool:
    """Whether ``name`` may name an imported model (letters, digits, '.', '_', '-')."""
    return bool(_NAME_RE.match(name))


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


def ready_checkpoint(entry: ModelEntry) -> Path | None:
    """The entry's tisdiss checkpoint if it is present and passes the cheap re-check."""
    if entry.bundled:
        path = entry.bundled_path()
        return (
            path
            if path is not None and path.is_file() and (entry.size is None or path.stat().st_size == entry.size)
            else None
        )
    if entry.format == "espnet":
        path = checkpoint_path(entry.name)
        marker = read_marker(path)
        ok = is_verified(path) and marker is not None and marker.get("source") == source_identity(entry)
        return path if ok else None
    path = models_dir() / entry.name / entry.download_name
    return path if is_verified(path, entry.expected) else None


def source_identity(entry: ModelEntry) -> str | None:
    return entry.git_blob or entry.sha256


def model_status() -> list[ModelStatus]:
    """Every registry entry and imported model, with whether it is available offline."""
    out: list[ModelStatus] = []
    for entry in load_registry().entries.values():
        path = ready_checkpoint(entry)
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
        out.append(
            ModelStatus(name, "imported", None, ok, path if ok else None, _folder_size(path.parent) if ok else None)
        )
    return out


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0


def remove_model(name: str) -> list[Path]:
    """Delete a downloaded or imported model from the cache; returns the cached files removed."""
    registry = load_registry()
    local = read_local_index()
    if name in registry.entries and registry.entries[name].bundled:
        raise ModelError(f"{name!r} is bundled with the package and cannot be removed")
    if name not in registry.entries and name not in local:
        raise ModelNotFoundError(f"unknown model {name!r}; available: {', '.join(available_names())}")
    removed: list[Path] = []
    folder = models_dir() / name
    if folder.is_dir():
        # Lock files are left by any look-up (an offline download attempt too): not something cached.
        removed.extend(sorted(p for p in folder.iterdir() if p.suffix != ".lock"))
        shutil.rmtree(folder)
    if name in local:
        with local_index_lock():
            index = read_local_index()
            index.pop(name, None)
            write_local_index(index)
    return removed
