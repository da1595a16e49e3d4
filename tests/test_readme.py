"""The README stays a true front door: its set-up commands exist, every cap is documented, every link resolves,
every docs page is reachable from it, and no paragraph is kept in two places."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tools.config import Limits

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = [ROOT / "README.md", ROOT / "tools" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK_RE = re.compile(r"\]\(([^)\s]+)\)|<img src=\"([^\"]+)\"")


def _links(page: Path) -> list[str]:
    return [a or b for a, b in LINK_RE.findall(page.read_text(encoding="utf-8"))]


def _anchors(page: Path) -> set[str]:
    heads = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in heads}


def test_readme_documents_every_limit_with_its_default():
    for name, field in Limits.model_fields.items():
        assert f"| `{name}` | {field.default} |" in README, name


def test_readme_commands_exist_and_are_executable():
    assert "./dev.sh serve" in README and "./dev.sh test" in README
    assert os.access(ROOT / "dev.sh", os.X_OK)
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_readme_is_a_short_front_door():
    assert len(README.splitlines()) < 250


def test_every_local_link_and_picture_resolves():
    for page in PAGES:
        for link in _links(page):
            if re.match(r"[a-z]+:", link):  # https:, mailto:, ...
                continue
            target, _, anchor = link.partition("#")
            path = (page.parent / target).resolve() if target else page
            assert path.exists(), f"{page.relative_to(ROOT)}: {link}"
            if anchor and path.suffix == ".md":
                assert anchor in _anchors(path), f"{page.relative_to(ROOT)}: {link} (no such heading)"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in _links(ROOT / "README.md")}
    for page in (ROOT / "docs").glob("*.md"):
        assert page.resolve() in linked, f"{page.name} is not linked from README.md"


def test_no_paragraph_is_kept_in_both_the_readme_and_the_docs():
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    docs = " ".join(docs.split())
    for paragraph in README.split("\n\n"):
        text = " ".join(paragraph.split())
        if len(text) > 120 and not text.startswith(("|", "```")):
            assert text not in docs, f"README paragraph duplicated in docs/: {text[:80]}..."
