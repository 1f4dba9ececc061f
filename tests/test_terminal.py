"""Colour on a terminal, and ``NO_COLOR`` (https://no-color.org) honoured.

The command runs as a child process whose output goes to a real terminal (a pseudo-terminal),
as a person would see it: ``--color auto`` colours there, and not when ``NO_COLOR`` is set.
"""

from __future__ import annotations

from typing import Dict

from runcli import run_in_terminal
from signature_helpers import index_pairs, pair_files


def _on_a_terminal(env: Dict[str, str]) -> str:
    """What ``diffsigs`` of a changed task prints on a terminal, with ``env``."""
    pair = next(p for p in index_pairs()
                if p["pn"] == "gamma-native" and p["task"] == "do_populate_sysroot")
    a, b = pair_files(pair)
    code, data = run_in_terminal(["diffsigs", str(a), str(b)], env=env)
    assert code == 0, data
    return data.decode()


def test_colour_on_a_terminal_and_no_color_honoured() -> None:
    coloured = _on_a_terminal({})
    assert "\x1b[" in coloured  # a terminal gets colour: the check below can fail
    plain = _on_a_terminal({"NO_COLOR": "1"})
    assert "\x1b[" not in plain
    assert plain.strip() and len(plain.splitlines()) == len(coloured.splitlines())
