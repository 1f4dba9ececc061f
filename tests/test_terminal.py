"""Colour on a terminal, and ``NO_COLOR`` (https://no-color.org) honoured.

The command runs as a child process whose stdout is a real terminal (a pseudo-terminal), as
a person would see it: ``--color auto`` colours there, and not when ``NO_COLOR`` is set.
"""

from __future__ import annotations

import os
import pty
import subprocess
from typing import Dict

from runcli import child_env, command
from signature_helpers import index_pairs, pair_files


def _on_a_terminal(env: Dict[str, str]) -> str:
    """What ``diffsigs`` of a changed task prints on a terminal, with ``env``."""
    pair = next(p for p in index_pairs()
                if p["pn"] == "gamma-native" and p["task"] == "do_populate_sysroot")
    a, b = pair_files(pair)
    main_fd, tty_fd = pty.openpty()
    try:
        proc = subprocess.Popen(command("diffsigs", str(a), str(b)), stdout=tty_fd,
                                stderr=subprocess.PIPE, env=env)
        os.close(tty_fd)
        chunks = []
        while True:
            try:
                data = os.read(main_fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    finally:
        os.close(main_fd)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_and_no_color_honoured() -> None:
    env = child_env({"TERM": "xterm"})
    env.pop("NO_COLOR", None)
    coloured = _on_a_terminal(env)
    assert "\x1b[" in coloured  # a terminal gets colour: the check below can fail
    plain = _on_a_terminal({**env, "NO_COLOR": "1"})
    assert "\x1b[" not in plain
    assert plain.strip() and len(plain.splitlines()) == len(coloured.splitlines())
