"""Relative links in README.md and docs/ point at files (and headings) that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks."""
    out, inside = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            inside = not inside
        elif not inside:
            out.append(line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


_ANCHORS: Dict[Path, Set[str]] = {}


def anchors(path: Path) -> Set[str]:
    if path not in _ANCHORS:
        headings = re.findall(r"^#{1,6}\s+(.*)$", _prose(path.read_text(encoding="utf-8")),
                              re.MULTILINE)
        _ANCHORS[path] = {slug(h) for h in headings}
    return _ANCHORS[path]


def links() -> List[Tuple[str, Path, str]]:
    found = []
    for path in DOCS:
        for target in _LINK.findall(_prose(path.read_text(encoding="utf-8"))):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            found.append((f"{path.relative_to(ROOT)} -> {target}", path, target))
    return found


LINKS = links()


def test_slug() -> None:
    assert slug("Reading `analyze.json`") == "reading-analyzejson"
    assert slug("WebDAV: 401, 403, 405, 409, 413") == "webdav-401-403-405-409-413"
    assert slug("Through the `s3://` fetcher (private buckets)") == (
        "through-the-s3-fetcher-private-buckets")


@pytest.mark.parametrize(("name", "source", "target"), LINKS, ids=[n for n, _, _ in LINKS])
def test_link_resolves(name: str, source: Path, target: str) -> None:
    file_part, _, anchor = target.partition("#")
    dest = (source.parent / file_part).resolve() if file_part else source
    assert dest.exists(), f"{name}: no such file"
    if anchor and dest.suffix == ".md":
        assert anchor in anchors(dest), f"{name}: no heading #{anchor} in {dest.name}"
