"""Process-wide allocator tuning (tisdiss_cli.util.runtime)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CODE = "from tisdiss_cli.util.runtime import tune_allocator; print(tune_allocator(), tune_allocator())"


def _run(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TISDISS_NO_ALLOCATOR_TUNING"} | env_extra
    return subprocess.run(
        [sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_tune_allocator_applies_once_on_glibc() -> None:
    assert _run({}) == "True True"


def test_tune_allocator_can_be_disabled() -> None:
    assert _run({"TISDISS_NO_ALLOCATOR_TUNING": "1"}) == "False False"
