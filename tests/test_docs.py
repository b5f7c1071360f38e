"""The README and docs/: every relative link and anchor resolves, every page of docs/ is listed in the
README, the README stays short, and its quickstart is the one users have been copying (issue 42)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = sorted((REPO / "docs").glob("*.md"))
DOCUMENTS = [REPO / "README.md", REPO / "ARCHITECTURE.md", REPO / "CHANGELOG.md", *PAGES]
DOCUMENTS += sorted((REPO / "models" / "cards").glob("*.md")) + [REPO / "models" / "examples" / "README.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
QUICKSTART = (
    '```bash\npip install torch==2.13.0 -e ".[test]" && tisdiss separate models/examples/two_speakers.wav'
    " --model tisdiss-small-8k\n```",
    "```bash\npython -m pytest -q\n```",
)


def prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path: Path) -> set[str]:
    """The anchors GitHub makes of a Markdown file's headings: lower case, punctuation dropped, spaces
    as hyphens (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", prose(path.read_text()), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def relative_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(prose(path.read_text())) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(document: Path) -> None:
    broken = []
    for link in relative_links(document):
        target, _, anchor = link.partition("#")
        path = (document.parent / target).resolve() if target else document
        if not path.exists():
            broken.append(f"{link}: no {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{link}: no heading #{anchor} in {path.relative_to(REPO)}")
    assert not broken, f"{document.relative_to(REPO)}: " + "; ".join(broken)


def test_the_link_check_finds_a_broken_link_and_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n## Two words\n\n[ok](#two-words) [gone](#three) [file](nope.md) `[code](x.md)`\n")
    assert relative_links(page) == ["#two-words", "#three", "nope.md"]
    assert anchors(page) == {"a-page", "two-words"}


def test_every_docs_page_is_listed_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    listed = set(relative_links(REPO / "README.md"))
    assert PAGES, "docs/ has no pages"
    missing = [p.name for p in PAGES if f"docs/{p.name}" not in listed]
    assert not missing, f"docs pages not linked from README.md's Documentation list: {missing}"
    assert "## Documentation" in readme


def test_the_readme_is_short_and_its_quickstart_unchanged() -> None:
    readme = (REPO / "README.md").read_text()
    assert readme.count("\n") < 200
    for block in QUICKSTART:
        assert block in readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
