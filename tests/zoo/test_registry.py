"""Registry data, model resolution, import, fallback and the cached ESPnet conversion."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import GOLDEN, FileServer, blob_id, golden_output, need
from tisdiss_cli.model.checkpoint import save_checkpoint
from tisdiss_cli.model.config import ARCHITECTURES, ModelConfig
from tisdiss_cli.model.espnet import config_from_espnet
from tisdiss_cli.model.network import TISDiSS, init_weights
from tisdiss_cli.zoo.download import DownloadError, OfflineError
from tisdiss_cli.zoo.load import download_model, espnet_files, import_model, load_model
from tisdiss_cli.zoo.registry import (
    ModelError,
    ModelNotFoundError,
    RegistryError,
    card_text,
    checkpoint_path,
    load_registry,
    model_status,
    remove_model,
)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    return "[" + ", ".join(toml_value(x) for x in v) + "]"


def write_registry(path: Path, models: dict[str, dict[str, Any]]) -> Path:
    lines: list[str] = []
    for name, table in models.items():
        lines.append(f"[models.{name}]")
        subtables = {k: v for k, v in table.items() if isinstance(v, dict)}
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items() if k not in subtables]
        for sub, values in subtables.items():
            lines.append(f"[models.{name}.{sub}]")
            lines += [f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_model(seed: int = 0) -> TISDiSS:
    torch.manual_seed(seed)
    model = TISDiSS(ARCHITECTURES["tiny"])
    init_weights(model)
    return model.eval()


# --------------------------------------------------------------------------- registry data


def test_packaged_wsj0_2mix_entry() -> None:
    entry = load_registry().get("wsj0-2mix")
    assert entry.format == "espnet" and entry.licence == "MIT"
    assert entry.git_blob == "226f9f1349ce8f8c123c34225476ee9d0cdfedaf"
    assert entry.url.endswith("valid.loss.ave_5best.pth") and "%2B" in entry.url
    assert entry.download_name == "valid.loss.ave_5best.pth"
    assert entry.config is not None and ModelConfig.from_dict(entry.config) == ARCHITECTURES["sep1x2-re1x6"]
    assert entry.params == sum(p.numel() for p in TISDiSS(ARCHITECTURES["sep1x2-re1x6"]).parameters()) == 8_011_779
    assert entry.presets == {"fast": (2, 1), "balanced": (2, 3), "best": (2, 8)}
    table = {int(k): v for k, v in entry.quality["by_n_re"].items()}
    assert sorted(table) == list(range(1, 11)) and table[3] == 24.39 and table[8] == 25.20
    assert (entry.sample_rate, entry.num_spk) == (8000, 2)
    assert "| 8 |" in card_text(entry)
    assert load_registry().default == "wsj0-2mix"


def test_extra_registry_overrides_fields_and_adds_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = write_registry(
        tmp_path / "extra.toml",
        {
            "wsj0-2mix": {"url": "https://mirror.invalid/m.pth"},
            "mine": {
                "url": "https://mirror.invalid/mine.safetensors",
                "sha256": "ab" * 32,
                "presets": {"fast": [1, 1]},
            },
        },
    )
    monkeypatch.setenv("TISDISS_REGISTRY", str(extra))
    reg = load_registry()
    assert reg.entries["wsj0-2mix"].url == "https://mirror.invalid/m.pth"
    assert reg.entries["wsj0-2mix"].git_blob == "226f9f1349ce8f8c123c34225476ee9d0cdfedaf"  # kept
    assert reg.entries["mine"].presets == {"fast": (1, 1)}


def test_bad_registry_names_file_and_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = write_registry(tmp_path / "bad.toml", {"broken": {"url": "https://x.invalid/a", "colour": "red"}})
    monkeypatch.setenv("TISDISS_REGISTRY", str(extra))
    with pytest.raises(RegistryError, match=r"bad\.toml: models\.broken: unknown field\(s\) colour"):
        load_registry()


# --------------------------------------------------------------------------- resolution


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ModelNotFoundError, match="available: .*wsj0-2mix"):
        load_model("no-such-model")


def test_import_espnet_folder_reproduces_golden(espnet_dir: Path) -> None:
    stored = import_model(espnet_dir, "golden-tiny")
    assert stored == checkpoint_path("golden-tiny") and stored.suffix == ".safetensors"
    loaded = load_model("golden-tiny")
    assert loaded.name == "golden-tiny"
    assert loaded.presets["balanced"] == (2, 3)  # trained depth of the golden model
    out, expected = golden_output(loaded.model, 2, 3)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    assert [s.name for s in model_status() if s.kind == "imported" and s.available] == ["golden-tiny"]
    with pytest.raises(ModelError, match="already imported"):
        import_model(espnet_dir, "golden-tiny")
    assert remove_model("golden-tiny") and not stored.exists()
    with pytest.raises(ModelNotFoundError):
        load_model("golden-tiny")


def test_espnet_folder_and_pth_paths_load_directly(espnet_dir: Path) -> None:
    from_folder = load_model(espnet_dir).model
    out, expected = golden_output(from_folder, 2, 1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    from_pth = load_model(espnet_dir / "valid.loss.ave_5best.pth").model.double()
    pairs = zip(from_pth.state_dict().values(), from_folder.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_tisdiss_checkpoint_and_run_folder(tmp_path: Path) -> None:
    model = tiny_model()
    run = tmp_path / "run"
    ckpt = save_checkpoint(model, run / "model.safetensors", {"presets": {"fast": [1, 1], "best": [2, 5]}})
    mix = torch.randn(1, 800)
    for spec in (ckpt, run):
        loaded = load_model(spec)
        assert loaded.presets == {"fast": (1, 1), "balanced": (2, 3), "best": (2, 5)}
        with torch.no_grad():
            assert torch.equal(loaded.model(mix), model(mix))
    import_model(ckpt, "tiny-import")
    with torch.no_grad():
        assert torch.equal(load_model("tiny-import").model(mix), model(mix))


def test_import_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="registry model"):
        import_model(tmp_path, "wsj0-2mix")
    with pytest.raises(ModelError, match="invalid model name"):
        import_model(tmp_path, "../x")
    with pytest.raises(ModelNotFoundError, match="not a model folder"):
        import_model(tmp_path, "empty")
    with pytest.raises(ModelNotFoundError, match="no such file"):
        import_model(tmp_path / "absent.safetensors", "absent")


def test_default_offline_without_bundled_model_errors_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TISDISS_REGISTRY",
        str(
            write_registry(
                tmp_path / "r.toml",
                {
                    "tisdiss-small-8k": {"file": "not-there.safetensors"},
                },
            )
        ),
    )
    with pytest.raises(ModelNotFoundError, match="wsj0-2mix.*no bundled model.*TISDISS_OFFLINE"):
        load_model()


def test_default_offline_falls_back_to_bundled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    small = save_checkpoint(tiny_model(), tmp_path / "small.safetensors")
    monkeypatch.setenv(
        "TISDISS_REGISTRY",
        str(
            write_registry(
                tmp_path / "r.toml",
                {
                    "tisdiss-small-8k": {
                        "file": "small.safetensors",
                        "size": small.stat().st_size,
                        "sha256": hashlib.sha256(small.read_bytes()).hexdigest(),
                    },
                },
            )
        ),
    )
    with caplog.at_level(logging.WARNING):
        loaded = load_model()
    assert loaded.name == "tisdiss-small-8k"
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "tisdiss models download wsj0-2mix" in record.getMessage() and "\n" not in record.getMessage()
    with pytest.raises(OfflineError):  # named explicitly: never falls back
        load_model("wsj0-2mix")
    with pytest.raises(ModelError, match="bundled"):
        remove_model("tisdiss-small-8k")


@pytest.fixture()
def golden_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    """wsj0-2mix pointed at a local server that serves the golden ESPnet checkpoint."""
    need(GOLDEN / "state_dict.pt")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    buffer = tmp_path / "served.pth"
    torch.save(torch.load(GOLDEN / "state_dict.pt", weights_only=True), buffer)
    data = buffer.read_bytes()
    srv = FileServer()
    srv.files["valid.loss.ave_5best.pth"] = data
    config = config_from_espnet(json.loads((GOLDEN / "config.json").read_text())).to_dict()
    monkeypatch.setenv(
        "TISDISS_REGISTRY",
        str(
            write_registry(
                tmp_path / "r.toml",
                {
                    "wsj0-2mix": {
                        "url": srv.url("valid.loss.ave_5best.pth"),
                        "git_blob": blob_id(data),
                        "config": config,
                    },
                },
            )
        ),
    )
    yield srv
    srv.close()


def test_default_downloads_converts_once_then_works_offline(
    golden_zoo: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TISDISS_OFFLINE", "0")
    loaded = load_model()
    assert loaded.name == "wsj0-2mix" and loaded.presets["best"] == (2, 8)
    out, expected = golden_output(loaded.model, 2, 3)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    assert checkpoint_path("wsj0-2mix").is_file()
    monkeypatch.setenv("TISDISS_OFFLINE", "1")
    again = load_model("wsj0-2mix").model.double()  # from the converted cache entry
    assert again.state_dict().keys() == loaded.model.state_dict().keys()
    pairs = zip(again.state_dict().values(), loaded.model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert len(golden_zoo.requests) == 1
    [status] = [s for s in model_status() if s.name == "wsj0-2mix"]
    assert status.available and status.size > 0
    remove_model("wsj0-2mix")
    assert not checkpoint_path("wsj0-2mix").exists()


def test_corrupt_registry_download_is_not_loaded(golden_zoo: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TISDISS_OFFLINE", "0")
    golden_zoo.mode = "corrupt"
    with pytest.raises(DownloadError, match="git blob id mismatch"):
        download_model("wsj0-2mix")
    assert not checkpoint_path("wsj0-2mix").exists()


def test_espnet_folder_rule_prefers_the_averaged_model(tmp_path: Path) -> None:
    """One rule for every ESPnet folder (separate --model, models import, train --init-from)."""
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "config.yaml").write_text("separator: tisdiss\n")
    for name in ("1epoch.pth", "checkpoint.pth", "valid.loss.best.pth", "valid.loss.ave_5best.pth"):
        (folder / name).write_bytes(b"")
    assert espnet_files(folder) == (folder / "config.yaml", folder / "valid.loss.ave_5best.pth")
    (folder / "valid.loss.ave_5best.pth").unlink()
    assert espnet_files(folder)[1].name == "valid.loss.best.pth"
    (folder / "valid.loss.best.pth").unlink()
    with pytest.raises(ModelNotFoundError, match="several .pth files"):
        espnet_files(folder)  # 1epoch.pth or checkpoint.pth (optimiser state): never a silent choice
    (folder / "1epoch.pth").unlink()
    assert espnet_files(folder)[1].name == "checkpoint.pth"
    assert espnet_files(tmp_path) is None


def test_bundled_file_of_the_wrong_size_is_called_damaged_not_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = save_checkpoint(tiny_model(), tmp_path / "w.safetensors")
    size = weights.stat().st_size
    extra = tmp_path / "extra.toml"
    extra.write_text(
        f'[models.short]\nbundled = true\nfile = "{weights.name}"\nsize = {size + 48}\n'
        '[models.gone]\nbundled = true\nfile = "nowhere.safetensors"\n'
    )
    monkeypatch.setenv("TISDISS_REGISTRY", str(extra))
    with pytest.raises(
        ModelNotFoundError,
        match=rf"'short' is damaged: .*w\.safetensors is {size} bytes, the registry expects {size + 48}",
    ):
        download_model("short")
    with pytest.raises(ModelNotFoundError, match=r"'gone' is not installed \(no nowhere\.safetensors in the package\)"):
        download_model("gone")
