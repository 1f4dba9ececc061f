"""The two inline diffs bitbake-diffsigs prints: words of a value, entries of a list.

bitbake computes them with the "longest common run first" algorithm (take the longest
stretch both sequences share, then diff what lies left and right of it). A different diff
algorithm (difflib's) finds equally valid but differently split changes, so this one is
reimplemented with the same tie-breaking: the earliest run in the new sequence wins, then the
earliest in the old one; where nothing is shared, removals come before additions.

The algorithm costs up to len(old) x len(new) steps when items repeat. Signature files come
from mirrors, so a crafted value must not stall a comparison: once a work budget is spent,
what is left is shown as removed-then-added, which is still a correct (if coarse) diff.
"""

from __future__ import annotations

from typing import Dict, Hashable, List, Optional, Sequence, Tuple, TypeVar

T = TypeVar("T", bound=Hashable)

#: One piece of a diff: ``"="`` shared, ``"-"`` only in old, ``"+"`` only in new.
Piece = Tuple[str, List[T]]

#: The escapes bitbake uses with ``--color``; all empty when colour is off.
ANSI_COLORS = {
    "title": "\033[1m",
    "default": "\033[0m",
    "add": "\033[0;32m",
    "remove": "\033[0;31m",
}
NO_COLORS = {k: "" for k in ANSI_COLORS}


def colors_for(enabled: bool) -> Dict[str, str]:
    return dict(ANSI_COLORS if enabled else NO_COLORS)


#: Steps (pairs of equal items visited) one diff may take before it turns coarse.
WORK_BUDGET = 20_000_000


def _work(old: Sequence[T], new: Sequence[T]) -> Tuple[Dict[T, List[int]], int]:
    """Where each item of ``old`` sits, and how many steps a run search over both costs."""
    positions: Dict[T, List[int]] = {}
    for i, item in enumerate(old):
        positions.setdefault(item, []).append(i)
    return positions, len(old) + len(new) + sum(len(positions.get(x, ())) for x in new)


def _longest_common_run(old: Sequence[T], new: Sequence[T], positions: Dict[T, List[int]]
                        ) -> Tuple[int, int, int]:
    """(start in old, start in new, length) of the longest run both share (length 0: none)."""
    best_old = best_new = best_len = 0
    run_ending_at: Dict[int, int] = {}
    for j, item in enumerate(new):
        current: Dict[int, int] = {}
        for i in positions.get(item, ()):
            length = run_ending_at.get(i - 1, 0) + 1
            current[i] = length
            if length > best_len:
                best_old, best_new, best_len = i - length + 1, j - length + 1, length
        run_ending_at = current
    return best_old, best_new, best_len


def sequence_diff(old: Sequence[T], new: Sequence[T], budget: int = WORK_BUDGET
                  ) -> List[Piece[T]]:
    """Diff two sequences into ``=``/``-``/``+`` pieces (iterative: no recursion limit)."""
    result: List[Piece[T]] = []
    # A stack of pending work: a pair of slices to diff, or a finished piece to emit.
    stack: List[Tuple[Optional[Piece[T]], Sequence[T], Sequence[T]]] = [(None, old, new)]
    while stack:
        piece, a, b = stack.pop()
        if piece is not None:
            result.append(piece)
            continue
        positions, cost = _work(a, b)
        budget -= cost
        io, jn, length = _longest_common_run(a, b, positions) if budget >= 0 else (0, 0, 0)
        if length == 0:
            if a:
                result.append(("-", list(a)))
            if b:
                result.append(("+", list(b)))
            continue
        stack.append((None, a[io + length :], b[jn + length :]))
        stack.append((("=", list(b[jn : jn + length])), (), ()))
        stack.append((None, a[:io], b[:jn]))
    return result


def word_diff(old: str, new: str, colors: Optional[Dict[str, str]] = None) -> str:
    """A value's change as ``"kept [-removed-] {+added+}"`` over space-separated words."""
    c = colors or NO_COLORS
    parts = []
    for op, words in sequence_diff(old.split(" "), new.split(" ")):
        text = " ".join(words)
        if op == "=":
            parts.append(text)
        elif op == "+":
            parts.append(f"{c['add']}{{+{text}+}}{c['default']}")
        else:
            parts.append(f"{c['remove']}[-{text}-]{c['default']}")
    note = ""
    if old != new and " ".join(old.split()) == " ".join(new.split()):
        note = " (whitespace changed)"
    return '"{}"{}'.format(" ".join(parts), note)


def list_diff(old: Sequence[str], new: Sequence[str],
              colors: Optional[Dict[str, str]] = None) -> str:
    """A list's change as ``['kept', +added, -removed]``."""
    c = colors or NO_COLORS
    parts = []
    for op, items in sequence_diff(list(old), list(new)):
        text = " ".join(items)
        if op == "=":
            parts.append(f"'{text}'")
        elif op == "+":
            parts.append(f"{c['add']}+{text}{c['default']}")
        else:
            parts.append(f"{c['remove']}-{text}{c['default']}")
    return "[{}]".format(", ".join(parts))
