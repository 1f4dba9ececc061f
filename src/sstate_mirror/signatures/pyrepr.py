"""Python ``repr`` / ``str`` as bitbake prints values, with sets in a stable order.

bitbake formats values with ``"%s" % value``. For lists, tuples, strings and numbers our own
``repr`` is already identical. For sets it is not reproducible: CPython orders set elements by
string hash, which changes with ``PYTHONHASHSEED`` from one run to the next, so bitbake's own
output differs between two runs on the same files. Here set elements are printed sorted — the
same elements in the same ``{...}`` / ``frozenset({...})`` shape, in an order that never
changes. This is the one place where our output intentionally differs from bitbake's.
"""

from __future__ import annotations

from typing import Any


def _sort_key(value: Any) -> Any:
    # Sets of names hold strings; anything else is ordered by type name, then its repr.
    if isinstance(value, str):
        return (0, value, "")
    return (1, type(value).__name__, stable_repr(value))


def stable_repr(value: Any) -> str:
    """``repr(value)``, except that set elements come out sorted."""
    if isinstance(value, (set, frozenset)):
        if not value:
            return "frozenset()" if isinstance(value, frozenset) else "set()"
        body = "{" + ", ".join(stable_repr(v) for v in sorted(value, key=_sort_key)) + "}"
        return f"frozenset({body})" if isinstance(value, frozenset) else body
    if isinstance(value, list):
        return "[" + ", ".join(stable_repr(v) for v in value) + "]"
    if isinstance(value, tuple):
        if len(value) == 1:
            return "(" + stable_repr(value[0]) + ",)"
        return "(" + ", ".join(stable_repr(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{stable_repr(k)}: {stable_repr(v)}"
                               for k, v in value.items()) + "}"
    return repr(value)


def stable_str(value: Any) -> str:
    """``"%s" % value`` with :func:`stable_repr` for containers."""
    if isinstance(value, (set, frozenset, list, tuple, dict)):
        return stable_repr(value)
    return str(value)
