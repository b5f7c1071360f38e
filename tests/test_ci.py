"""What .ci/run does before the tests: every optional extra is installed before mypy, so that the type
check sees the libraries the code calls whatever happens to be installed (issue 42), and the test
command is the README's."""

from __future__ import annotations

import re

import tomllib

from tests.conftest import REPO


def _installed_extras(script: str) -> set[str]:
    return {
        e.strip() for group in re.findall(r'pip install [^\n]*-e "\.\[([^\]]*)\]"', script) for e in group.split(",")
    }


def test_ci_installs_every_optional_extra_before_mypy() -> None:
    script = (REPO / ".ci" / "run").read_text()
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    before_mypy = script.split("\nmypy\n", 1)[0]
    assert "\nmypy\n" in script
    assert _installed_extras(before_mypy) == extras


def test_ci_runs_the_readme_test_command() -> None:
    script = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    command = "python -m pytest -q"
    assert f"```bash\n{command}\n```" in readme
    assert f"\n{command}\n" in script
