"""Every ``sstate-mirror ...`` command shown in the README and docs/ exists as shown.

Command lines are taken from fenced code blocks (where a line, a YAML item or a shell operator
starts them) and from inline code that starts with ``sstate-mirror``. A concrete command in a
block (``sstate-mirror clean /srv/sstate --max-age 30d``) must be accepted by the real argument
parser; a synopsis (``sstate-mirror clean TARGET [--max-age AGE]``, recognised by its ``[...]``
or an elision ``...``) and inline code in prose, which abbreviates, must name only options the
command has.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest
import yaml

from sstate_mirror.cli import COMMANDS, build_parser

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# where a command starts: start of line, or after a prompt, a YAML list item or key `run:`, a
# shell operator (`&&`, `;`, `|`, `(`, `$(`, a backquote)
_START = re.compile(r"(?:^\s*(?:\$\s+|-\s+|run:\s+)?|(?<=[;&|(`])\s*)sstate-mirror(?=\s|$)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE = re.compile(r"`(sstate-mirror [^`]+)`")
# shell syntax that ends the command's own words
_SHELL_END = re.compile(r"\s(?:\d?>>?|&>|\|\|?|&&|;|#)(?=\s|\S)")
_OPTION = re.compile(r"(?<![\w\-/.])(--?[A-Za-z][\w-]*)")


def _code_lines(text: str) -> Iterator[Tuple[int, List[str]]]:
    """(line number, lines) of each fenced code block."""
    block: List[str] = []
    start = 0
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            if inside:
                yield start, block
                block = []
            else:
                start = number + 1
            inside = not inside
        elif inside:
            block.append(line)


def _commands_in_block(lines: List[str]) -> Iterator[Tuple[int, str]]:
    """Each command of a block with its continuation lines (``\\`` or a synopsis's ``[``)."""
    i = 0
    while i < len(lines):
        line = lines[i]
        matches = [m for m in _START.finditer(line)
                   if not re.search(r"(^|\s)#", line[:m.start()])]  # not in a comment
        if not matches or line.lstrip().startswith("usage:"):
            i += 1
            continue
        offset = i
        for m in matches[:-1]:
            yield offset, line[m.end() - len("sstate-mirror"):].strip()
        text = line[matches[-1].end() - len("sstate-mirror"):]
        while i + 1 < len(lines) and (text.rstrip().endswith("\\")
                                      or re.match(r"\s+\[", lines[i + 1])):
            if not text.rstrip().endswith("\\"):  # a synopsis: drop a comment before [
                text = re.sub(r"\s#\s.*$", "", text)
            text = text.rstrip().rstrip("\\").rstrip() + " " + lines[i + 1].strip()
            i += 1
        yield offset, text
        i += 1


INLINE_MARK = "inline: "


def doc_commands() -> List[Tuple[str, str]]:
    """(where, command text) for every command shown in the docs."""
    found: List[Tuple[str, str]] = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT)
        for start, lines in _code_lines(text):
            for offset, command in _commands_in_block(lines):
                found.append((f"{rel}:{start + offset}", command))
        for number, line in enumerate(text.splitlines(), 1):
            for m in _INLINE.finditer(line):  # prose abbreviates: check option names only
                found.append((f"{rel}:{number}", INLINE_MARK + m.group(1)))
    return found


def _options_by_command() -> Dict[str, Set[str]]:
    parser = build_parser()
    top = {o for a in parser._actions for o in a.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {name: top | {o for a in sub._actions for o in a.option_strings}
                    for name, sub in action.choices.items()}
    raise AssertionError("no subcommands")


OPTIONS = _options_by_command()
TOP_OPTIONS = {o for a in build_parser()._actions for o in a.option_strings}


def _words(command: str) -> List[str]:
    """The command's arguments, without shell syntax, placeholders made concrete."""
    m = _SHELL_END.search(command)
    if m:
        command = command[:m.start()]
    command = re.sub(r"<[^<>]*>", "PLACEHOLDER", command)
    words = shlex.split(command, comments=True)
    assert words[0] == "sstate-mirror"
    return words[1:]


def _is_synopsis(command: str) -> bool:
    """A synopsis (``[--option]``), an elided command (``...``), a bare command name, or
    inline code in prose (``clean --max-age`` names an option, not a whole command)."""
    if command.startswith(INLINE_MARK):
        return True
    words = command.split("#", 1)[0].split()
    if len(words) == 2 and words[1].startswith("-"):  # sstate-mirror --help
        return False
    return "[" in command.split("#", 1)[0] or len(words) <= 2 or any(
        w in ("...", "…") for w in words)


def check(command: str) -> str:
    """'' when the command is right, else what is wrong."""
    if _is_synopsis(command):
        command = command.removeprefix(INLINE_MARK)
        words = command.split()
        name = words[1] if len(words) > 1 else ""
        if name.startswith("-") or name == "COMMAND":  # --help, --version; the general shape
            unknown = [o for o in _OPTION.findall(command) if o not in TOP_OPTIONS]
            return f"unknown options {unknown}" if unknown else ""
        if name not in OPTIONS:
            return f"unknown command {name!r}"
        unknown = [o for o in _OPTION.findall(command.split("#", 1)[0]) if o not in OPTIONS[name]]
        return f"unknown options {unknown}" if unknown else ""
    words = _words(command)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(words)
    except SystemExit as exc:
        if exc.code not in (0, None):  # --help and --version exit 0
            return err.getvalue().strip().splitlines()[-1]
    return ""


COMMAND_LINES = doc_commands()


def test_docs_show_commands() -> None:
    shown = {_words(c)[0] for _, c in COMMAND_LINES if not _is_synopsis(c)}
    shown = {w for w in shown if not w.startswith("-")}
    assert set(COMMANDS) <= shown, set(COMMANDS) - shown
    assert len(COMMAND_LINES) > 50


@pytest.mark.parametrize(("where", "command"), COMMAND_LINES,
                         ids=[w for w, _ in COMMAND_LINES])
def test_command_parses(where: str, command: str) -> None:
    problem = check(command)
    assert not problem, f"{where}: {command}\n{problem}"


@pytest.mark.parametrize(("command", "ok"), [
    ("sstate-mirror clean /srv/sstate --max-age 30d --max-size 500G", True),
    ("sstate-mirror clean /srv/sstate --max-days 30", False),
    ("sstate-mirror upload build/sstate-cache \"$MIRROR\" -j 16 > upload.log 2>&1 || true", True),
    ("sstate-mirror analyze <cache> <mirror> --json > analyze.json", True),
    ("sstate-mirror verify TARGET [--sample N | --all] [--seed N]", True),
    ("sstate-mirror verify TARGET [--sample N | --everything]", False),
    ("sstate-mirror frobnicate /srv/sstate", False),
    ("sstate-mirror frobnicate", False),
    ("sstate-mirror touch", True),
    ("sstate-mirror --help", True),
    ("sstate-mirror --helpme", False),
    ("inline: sstate-mirror --version", True),
    ("inline: sstate-mirror --dry-run", False),
    ("inline: sstate-mirror clean --dry-run --json", True),
    ("inline: sstate-mirror clean --fix", False),
    ("sstate-mirror upload https://dav.example.com/sstate/ ... --jobs 4", True),
    ("sstate-mirror upload https://dav.example.com/sstate/ ... --job-count 4", False),
    ("sstate-mirror lint --lint-stamps \"$BUILDDIR/tmp\"  # stamps of the last build", True),
])
def test_checker_itself(command: str, ok: bool) -> None:
    assert (check(command) == "") is ok


def test_extractor_joins_continuations_and_skips_comments() -> None:
    block = ["# bitbake writes here, sstate-mirror uploads from here",
             "sstate-mirror clean /srv/sstate \\",
             "    --max-age 30d   # a month",
             "sstate-mirror verify TARGET   # the synopsis",
             "        [--sample N | --all]",
             "  - sstate-mirror info \"$MIRROR\" > info.txt",
             "  resource_group: sstate-mirror      # a name, not a command",
             "pip install . && sstate-mirror info /srv/a && sstate-mirror info /srv/b"]
    assert [c for _, c in _commands_in_block(block)] == [
        "sstate-mirror clean /srv/sstate --max-age 30d   # a month",
        "sstate-mirror verify TARGET [--sample N | --all]",
        "sstate-mirror info \"$MIRROR\" > info.txt",
        "sstate-mirror info /srv/a && sstate-mirror info /srv/b",
        "sstate-mirror info /srv/b"]


def _yaml_blocks() -> List[Tuple[str, str]]:
    blocks = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
            line = text[: m.start()].count("\n") + 1
            blocks.append((f"{path.relative_to(ROOT)}:{line}", m.group(1)))
    return blocks


def _steps(node: object) -> Iterator[object]:
    """Every GitLab ``script`` item and GitHub ``run`` value in a parsed recipe."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("script", "before_script", "after_script") and isinstance(value, list):
                yield from value
            elif key == "run":
                yield value
            else:
                yield from _steps(value)
    elif isinstance(node, list):
        for item in node:
            yield from _steps(item)


YAML_BLOCKS = _yaml_blocks()


@pytest.mark.parametrize(("where", "block"), YAML_BLOCKS, ids=[w for w, _ in YAML_BLOCKS])
def test_yaml_recipes_parse(where: str, block: str) -> None:
    """CI recipes are valid YAML, and each script line stays one string (no stray ': ')."""
    data = yaml.safe_load(block)
    assert isinstance(data, (dict, list)), where
    for step in _steps(data):
        assert isinstance(step, str), f"{where}: {step!r} is not a command line"
        res = subprocess.run(["bash", "-n"], input=step, text=True, capture_output=True)
        assert res.returncode == 0, f"{where}: {step!r}: {res.stderr}"
