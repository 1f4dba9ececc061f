"""Exit codes live in one place (``sstate_mirror.errors``), are listed by ``--help`` from
there, and a bug (an unexpected exception) is one line, exit 1, with its traceback at
``-vv`` only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from runcli import run
from sstate_mirror import errors
from sstate_mirror.cli import info as info_command

SRC = Path(__file__).parents[1] / "src" / "sstate_mirror"


def test_exit_codes_are_defined_only_in_errors() -> None:
    """No module names an exit code of its own, and no command returns a bare number."""
    own = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and path != SRC / "errors.py":
                own += [f"{path.relative_to(SRC)}:{node.lineno}" for t in node.targets
                        if isinstance(t, ast.Name) and t.id.startswith("EXIT_")]
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "exit_code" for t in node.targets) \
                    and isinstance(node.value, ast.Constant):
                own.append(f"{path.relative_to(SRC)}:{node.lineno} exit_code = number")
            if path.parent.name == "cli" and isinstance(node, ast.Return) and isinstance(
                    node.value, ast.Constant) and type(node.value.value) is int:
                own.append(f"{path.relative_to(SRC)}:{node.lineno} return {node.value.value}")
    assert own == []


def test_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    text = " ".join(out.split())
    for number, meaning in errors.EXIT_MEANINGS:
        assert f"{number} {meaning}" in text
    assert {n for n, _ in errors.EXIT_MEANINGS} == {
        errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_USAGE, errors.EXIT_BACKEND,
        errors.EXIT_INTERRUPTED}


def test_vv_prints_the_traceback_of_an_unexpected_error(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    def bug(*args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(info_command.Summary, "report", bug)
    (tmp_path / "m").mkdir()
    code, _, err = run(capsys, "info", str(tmp_path / "m"))
    assert code == errors.EXIT_FAILED
    assert "unexpected ZeroDivisionError: a bug" in err and "Traceback" not in err
    assert "-vv" in err  # the hint says how to see where
    code, _, err = run(capsys, "-vv", "info", str(tmp_path / "m"))
    assert code == errors.EXIT_FAILED
    assert "Traceback (most recent call last)" in err and "in bug" in err
