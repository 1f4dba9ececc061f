"""How counts are worded in what the tool prints: one helper, so that no message says
"1 errors" or "2 file"."""

from __future__ import annotations

from typing import Optional


def plural(n: int, word: str, many: Optional[str] = None) -> str:
    """``1 file``, ``2 files``, ``1 match``, ``2 matches``: the one way counts are worded.

    ``many`` gives an irregular plural (``plural(2, 'entry', 'entries')``).
    """
    if n == 1:
        return f"{n} {word}"
    if many is None:
        many = word + ("es" if word.endswith(("s", "sh", "ch", "x")) else "s")
    return f"{n} {many}"
