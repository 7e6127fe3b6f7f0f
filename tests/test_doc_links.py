"""Every relative link in the repository's Markdown resolves, anchors included."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", *REPO.glob("*.md"), *(REPO / "docs").rglob("*.md")])


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors."""
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    }


@pytest.mark.parametrize("doc", sorted(set(DOCS)), ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(doc: Path) -> None:
    text = doc.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.exists(), f"{doc.name}: {target}"
        if anchor:
            assert anchor in anchors(linked.read_text()), f"{doc.name}: {target}"
