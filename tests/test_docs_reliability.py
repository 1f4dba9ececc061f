"""docs/reliability.md names, for each guarantee, the test that proves it: each one exists.

Every test or test file named in the page (anywhere in it: the table of guarantees and the
limits that cite a test) is looked up in tests/: ``file.py::test_name`` must be a test
function of that file, a bare ``test_name`` one of any file, ``test_prefix_*`` must match at
least one, ``tests/file.py`` must exist. A renamed or deleted test fails here until the page
says what proves the guarantee now.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).parents[1]
TESTS = ROOT / "tests"
PAGE = ROOT / "docs" / "reliability.md"

_QUALIFIED = re.compile(r"`(?:tests/)?(\w+\.py)::(test_\w+\*?)(?:\[[^\]`]*\])?`")
_BARE = re.compile(r"`(test_\w+\*?)(?:\[[^\]`]*\])?`")
_FILE = re.compile(r"`(tests/\w+\.py)`")


def _tests_by_file() -> Dict[str, Set[str]]:
    found: Dict[str, Set[str]] = {}
    for path in TESTS.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found[path.name] = {node.name for node in tree.body
                            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                            and node.name.startswith("test_")}
    return found


def _exists(name: str, names: Set[str]) -> bool:
    if name.endswith("*"):
        return any(n.startswith(name[:-1]) for n in names)
    return name in names


def test_the_page_has_a_table_of_guarantees() -> None:
    text = PAGE.read_text(encoding="utf-8")
    table = text.split("## How the tests prove it", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) > 20
    for row in rows[1:]:
        tests = row.rsplit("|", 2)[-2]
        assert _QUALIFIED.search(tests) or _FILE.search(tests), f"no test named: {row[:80]}"


def test_every_test_named_in_the_page_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    by_file = _tests_by_file()
    everywhere = set().union(*by_file.values())
    missing: List[str] = []
    for file, name in _QUALIFIED.findall(text):
        if file not in by_file or not _exists(name, by_file[file]):
            missing.append(f"{file}::{name}")
    qualified = {name for _, name in _QUALIFIED.findall(text)}
    for name in _BARE.findall(text):
        if name not in qualified and not _exists(name, everywhere):
            missing.append(name)
    for file in _FILE.findall(text):
        if not (ROOT / file).is_file():
            missing.append(file)
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"


@pytest.mark.parametrize("reference", ["`test_faults.py::test_no_such_test`",
                                       "`test_no_such_test_anywhere`", "`tests/test_nope.py`"])
def test_a_missing_test_would_be_found(reference: str) -> None:
    by_file = _tests_by_file()
    everywhere = set().union(*by_file.values())
    for file, name in _QUALIFIED.findall(reference):
        assert not _exists(name, by_file[file])
    for name in _BARE.findall(reference):
        assert not _exists(name, everywhere)
    for file in _FILE.findall(reference):
        assert not (ROOT / file).is_file()
