"""Static checks as part of the suite: lint (with the Python 3.9 floor) and strict typing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from realparts import module

ROOT = Path(__file__).parents[1]


def _tool(name: str) -> list[str]:
    """``python -m name`` with this interpreter: found whether or not the venv is on PATH."""
    module(name, "pip install -e '.[test]'; scripts/test installs it")
    return [sys.executable, "-m", name]


def test_ruff() -> None:
    res = subprocess.run([*_tool("ruff"), "check", "src", "tests", "benchmarks", "docs"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_strict() -> None:
    res = subprocess.run([*_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
