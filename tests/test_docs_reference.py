"""The command reference (docs/reference/) is the real ``--help`` output and covers every command."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from sstate_mirror.cli import COMMANDS, build_parser

ROOT = Path(__file__).parents[1]
REFERENCE = ROOT / "docs" / "reference"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference_generate",
                                                  REFERENCE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _subparser(name: str) -> argparse.ArgumentParser:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            parser: argparse.ArgumentParser = action.choices[name]
            return parser
    raise AssertionError("no subcommands")


def test_every_command_has_a_page() -> None:
    pages = {p.stem for p in REFERENCE.glob("*.md")} - {"README"}
    assert sorted(pages) == sorted(COMMANDS)
    index = (REFERENCE / "README.md").read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f"]({name}.md)" in index


def test_committed_pages_are_the_real_help(tmp_path: Path) -> None:
    out = tmp_path / "reference"
    shutil.copytree(REFERENCE, out)
    gen = _generator()
    assert gen.main(["--out", str(out)]) == 0
    stale = [p.name for p in sorted(REFERENCE.glob("*.md"))
             if p.read_text(encoding="utf-8") != (out / p.name).read_text(encoding="utf-8")]
    assert not stale, (f"docs/reference pages differ from the real --help: {stale};"
                       " run python docs/reference/generate.py")


def test_check_mode_finds_a_stale_page(tmp_path: Path) -> None:
    out = tmp_path / "reference"
    shutil.copytree(REFERENCE, out)
    page = out / "clean.md"
    page.write_text(page.read_text(encoding="utf-8").replace("--max-age AGE", "--max-age DAYS"),
                    encoding="utf-8")
    gen = _generator()
    assert gen.main(["--out", str(out), "--check"]) == 1
    assert gen.main(["--out", str(out)]) == 0
    assert gen.main(["--out", str(out), "--check"]) == 0
    assert page.read_text(encoding="utf-8") == (REFERENCE / "clean.md").read_text(encoding="utf-8")


def test_hand_written_part_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "reference"
    shutil.copytree(REFERENCE, out)
    page = out / "info.md"
    text = page.read_text(encoding="utf-8")
    gen = _generator()
    page.write_text(text.replace(gen.END, "A new example.\n" + gen.END), encoding="utf-8")
    assert gen.main(["--out", str(out)]) == 0
    assert "A new example.\n" + gen.END in page.read_text(encoding="utf-8")


def test_help_does_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _generator()
    monkeypatch.setenv("COLUMNS", "40")
    narrow = gen.help_texts()
    monkeypatch.setenv("COLUMNS", "250")
    assert gen.help_texts() == narrow
    assert max(len(line) for text in narrow.values() for line in text.splitlines()) <= 100


@pytest.mark.parametrize("name", COMMANDS)
def test_page_names_every_option(name: str) -> None:
    """Whatever the Python version: every option and metavar of the parser is on the page."""
    text = (REFERENCE / f"{name}.md").read_text(encoding="utf-8")
    generated = text.split("## `--help`", 1)[1]
    for action in _subparser(name)._actions:
        for option in action.option_strings:
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", generated), option
        if action.metavar and isinstance(action.metavar, str):
            assert action.metavar in generated, action.metavar
