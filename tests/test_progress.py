"""What a person sees: a live display on a terminal, plain lines in logs and pipes."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runcli import run_in_terminal
from sstate_mirror.cli.progress import LineProgress, QuietProgress, RichProgress, make_progress
from sstate_mirror.cli.ui import UI

SRC = str(Path(__file__).parents[1] / "src")


def test_choice_of_display() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_progress(UI(out=io.StringIO(), err=io.StringIO())), LineProgress)
    assert isinstance(make_progress(UI(out=io.StringIO(), err=Tty())), RichProgress)
    assert isinstance(make_progress(UI(quiet=True, out=io.StringIO(), err=Tty())), QuietProgress)
    assert isinstance(make_progress(UI(json_mode=True, out=io.StringIO(), err=Tty())),
                      LineProgress)


def test_line_progress_heartbeat_and_summary() -> None:
    out = io.StringIO()
    p = LineProgress(UI(out=out, err=io.StringIO()), heartbeat=0)
    p.phase("uploading archives", 2, 3 << 20)
    p.advance(1, 1 << 20)
    p.advance(1, 2 << 20)
    p.done()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("uploading archives: 1/2 files, 1.0 MiB/3.0 MiB")
    assert lines[-1].startswith("uploading archives: 2/2 files, 3.0 MiB/3.0 MiB")
    assert "\x1b" not in out.getvalue()


def test_short_phases_are_quiet_without_verbose() -> None:
    out = io.StringIO()
    p = LineProgress(UI(out=out, err=io.StringIO()), heartbeat=30)
    p.phase("listing", 0)
    p.advance(5)
    p.done()
    assert out.getvalue() == ""


def _pty_output(argv: list[str], columns: int, rows: int = 40) -> tuple[int, bytes]:
    """Run the command under a pseudo-terminal of this size; its exit code and output."""
    return run_in_terminal(argv, columns, rows)


def _run_in_pty(argv: list[str]) -> tuple[int, str]:
    code, data = _pty_output(argv, 160)
    return code, data.decode(errors="replace")


def test_terminal_shows_live_progress(tmp_path: Path, oe_cache_a: Path) -> None:
    code, screen = _run_in_pty(["upload", str(oe_cache_a), str(tmp_path / "m")])
    assert code == 0
    assert "uploading archives" in screen and "26/26" in screen and "files" in screen
    assert "\x1b[" in screen  # drawn with terminal control sequences
    # the summary comes after the last bar, not in the middle of a redraw
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert plain.rstrip().splitlines()[-1].startswith("upload: 93 files")
    assert "uploading archives" in plain.splitlines()[-2]  # the last phase: no clean ran


def test_pipe_output_stays_plain(tmp_path: Path, oe_cache_a: Path) -> None:
    env = dict(os.environ, PYTHONPATH=SRC, TERM="xterm-256color")
    res = subprocess.run([sys.executable, "-m", "sstate_mirror", "upload", str(oe_cache_a),
                          str(tmp_path / "m")], capture_output=True, text=True, env=env)
    assert res.returncode == 0
    assert "\x1b" not in res.stdout + res.stderr
    assert res.stdout.splitlines()[-1].startswith("upload: 93 files (426.1 KiB) uploaded")


def _screen(argv: list[str], columns: int) -> tuple[int, list[str]]:
    """Run under a pseudo-terminal ``columns`` wide and return what the screen shows at the
    end (pyte plays the bytes as a terminal would, redraws and erasures included)."""
    import pyte

    code, data = _pty_output(argv, columns, rows=200)
    screen = pyte.Screen(columns, 200)
    pyte.ByteStream(screen).feed(data)
    return code, [line.rstrip() for line in screen.display if line.strip()]


@pytest.mark.parametrize("columns", [80, 70])
def test_bars_fit_the_terminal_without_cutting_counts(tmp_path: Path, oe_cache_a: Path,
                                                      columns: int) -> None:
    code, lines = _screen(["upload", str(oe_cache_a), str(tmp_path / "m")], columns)
    assert code == 0
    text = "\n".join(lines)
    for count in ("93/93 files", "67/67 files", "26/26 files"):  # listing, both uploads
        assert count in text, text
    assert not re.search(r"\d…|…\d|… files", text), text
    assert "upload: 93 files" in text


@pytest.mark.parametrize("columns", [80, 70])
def test_rounds_of_one_phase_leave_one_line(tmp_path: Path, oe_cache_a: Path,
                                            oe_cache_b: Path, columns: int) -> None:
    mirror = tmp_path / "m"
    subprocess.run([sys.executable, "-m", "sstate_mirror", "upload", "-q", str(oe_cache_a),
                    str(mirror)], check=True, env=dict(os.environ, PYTHONPATH=SRC))
    code, lines = _screen(["analyze", str(oe_cache_b), str(mirror), "--color", "never"],
                          columns)
    assert code == 0
    reading = [line for line in lines if "reading signatures" in line]
    assert len(reading) == 1, "\n".join(lines)
    assert not re.search(r"\d…|…\d|… files", "\n".join(lines))


def test_line_progress_prints_status_while_a_phase_waits() -> None:
    class Lines(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.seen = threading.Event()

        def write(self, text: str) -> int:
            if "waiting phase" in text:
                self.seen.set()
            return super().write(text)

    out = Lines()
    p = LineProgress(UI(out=out, err=io.StringIO()), heartbeat=0.05)
    p.phase("waiting phase", 10)
    # no advance(): the status line comes from the timer alone
    assert out.seen.wait(30)
    p.done()
    p.close()
    assert out.getvalue().startswith("waiting phase: 0/10 files")
