"""Shared test fixtures: no test touches the network or the user's real cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GOLDEN = SHARED / "golden"
DEV2MIX = SHARED / "data" / "dev2mix"


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TISDISS_OFFLINE", "1")
    monkeypatch.setenv("TISDISS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("TISDISS_REGISTRY", raising=False)
    torch.set_num_threads(1)


def need(path: Path) -> Path:
    """Skip the calling test when an optional shared resource is absent."""
    if not path.exists():
        pytest.skip(f"{path.name} not available (../shared absent)")
    return path
