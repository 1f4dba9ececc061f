"""Running the command line in tests: in this process (fast, output captured by pytest's
``capsys``) or as a child process (signals, concurrency, file-mode checks, a terminal).

The child runs this checkout's code (``PYTHONPATH=src``), not an installed copy.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest

from sstate_mirror.cli import main

SRC = str(Path(__file__).parents[1] / "src")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    """``sstate-mirror ARGV`` in this process: exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, Dict[str, Any], str]:
    """``sstate-mirror --json ARGV``: exit code, the JSON document ({} when none), stderr."""
    code, out, err = run(capsys, "--json", *argv)
    return code, (json.loads(out) if out.strip() else {}), err


def child_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of a child process running this checkout's code."""
    return {**os.environ, "PYTHONPATH": SRC, **(extra or {})}


def command(*argv: str, prefix: Sequence[str] = ()) -> List[str]:
    """The argv of ``sstate-mirror ARGV`` run by this interpreter (after ``prefix``)."""
    return [*prefix, sys.executable, "-m", "sstate_mirror", *argv]


def run_process(*argv: str, prefix: Sequence[str] = (), timeout: float = 120,
                env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    """``sstate-mirror ARGV`` as a child process, output captured."""
    return subprocess.run(command(*argv, prefix=prefix), capture_output=True, text=True,
                          timeout=timeout, env=child_env(env), check=False)


def run_in_terminal(argv: Sequence[str], columns: int = 160, rows: int = 40,
                    env: Optional[Dict[str, str]] = None) -> Tuple[int, bytes]:
    """``sstate-mirror ARGV`` on a pseudo-terminal of this size, as a person runs it: its
    exit code and everything it wrote there. ``NO_COLOR``, ``COLUMNS`` and ``LINES`` are
    unset unless ``env`` gives them."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    base = {k: v for k, v in child_env().items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    proc = subprocess.Popen(command(*argv), stdin=slave, stdout=slave, stderr=slave,
                            env={**base, "TERM": "xterm-256color", **(env or {})},
                            close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    return proc.returncode, b"".join(chunks)


def writable_copy(src: Path, dst: Path) -> Path:
    """A copy of the cache or mirror ``src`` at ``dst`` that a test may change.

    The test data is read-only in a checkout made by another user; the copy's directories
    and files get the modes a build user's cache has.
    """
    shutil.copytree(src, dst)
    for d, _dirs, files in os.walk(dst):
        os.chmod(d, 0o755)
        for f in files:
            if not os.path.islink(os.path.join(d, f)):
                os.chmod(os.path.join(d, f), 0o644)
    return dst
