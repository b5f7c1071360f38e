"""The layer contract in pyproject.toml ([tool.importlinter]) rejects an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("importlinter", reason="import-linter is in the dev extra")

LINT = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True))"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the copy in ``root`` (PYTHONPATH puts it before the installed package)."""
    return subprocess.run(
        [sys.executable, "-c", LINT],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "tisdiss_cli", tmp_path / "tisdiss_cli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("util/fileio.py", "from ..model import network"),  # the bottom layer reaching up one floor
        ("separation/adaptive.py", "from ..training.losses import multi_loss"),  # the old upward import
        ("model/network.py", "from ..zoo import registry"),
    ],
)
def test_an_upward_import_breaks_the_contract(copy: Path, module: str, upward: str) -> None:
    clean = _lint(copy)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    path = copy / "tisdiss_cli" / module
    path.write_text(path.read_text() + f"\n{upward}  # injected\n")
    broken = _lint(copy)
    assert broken.returncode != 0
    importer = "tisdiss_cli." + module.removesuffix(".py").replace("/", ".")
    assert "BROKEN" in broken.stdout and importer in broken.stdout, broken.stdout
