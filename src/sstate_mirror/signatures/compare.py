"""Compare two signatures into the lines ``bitbake-diffsigs A B`` prints.

The order of the sections, their wording, and the colour escapes follow bitbake 2.x
(``bb.siggen.compare_sigfiles``) so that people who know bitbake's output read ours the same
way and tools that parse it keep working. Legacy (pickle) files are compared with the same
2.x rules; their dependency names are then full recipe-file task ids.

Recursion: for each dependency whose hash changed (in ``pn:do_task`` order) the line
``Hash for task dependency X changed from A to B`` is printed and, when a ``recurse``
callback is given, it is asked for the explanation of that change. The first dependency whose
callback returns lines ends the comparison: everything printed so far is replaced by that one
line plus the callback's lines, because the dependency's change is, in all likelihood, the
cause of this task's change too.
"""

from __future__ import annotations

import difflib
import os
from collections import Counter
from typing import (
    AbstractSet,
    Any,
    Callable,
    Collection,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from .model import NameCollection, Signature
from .pyrepr import stable_repr
from .reader import read_signature_file
from .textdiff import colors_for, list_diff, word_diff

#: ``recurse(key, old_hash, new_hash) -> lines``: explain why dependency ``key``
#: (``pn:do_task``) changed hash; an empty list means "nothing to add".
RecurseCallback = Callable[[str, str, str], List[str]]

SignatureSource = Union[Signature, str, "os.PathLike[str]"]


class _Painter:
    """bitbake's colour formatting: ``{title}`` etc. in a template, which always ends by
    resetting the colour (bitbake appends ``{default}`` when a template does not end with
    it, so coloured lines end with an extra reset — reproduced for identical bytes)."""

    def __init__(self, color: bool) -> None:
        self.colors = colors_for(color)

    def __call__(self, template: str, *args: Any, **values: Any) -> str:
        if not template.endswith("{default}"):
            template += "{default}"
        if values:
            return template.format(**self.colors, **values)
        return template.format(**self.colors) % args


def _as_set(value: Iterable[str]) -> AbstractSet[str]:
    return value if isinstance(value, (set, frozenset)) else set(value)


def _names_differ(a: NameCollection, b: NameCollection) -> bool:
    """Lists (bitbake 2.0-2.2, legacy) and sets (newer) with the same names are equal."""
    if isinstance(a, list) != isinstance(b, list):
        return set(a) != set(b)
    return a != b


def _changed_items(a: Collection[str], b: Collection[str]) -> str:
    # frozenset ^ frozenset stays a frozenset (2.x files), set ^ set a set (legacy pickles)
    return "changed items: " + stable_repr(_as_set(a) ^ _as_set(b))


def _dict_diff(a: Dict[str, Any], b: Dict[str, Any], ignored: AbstractSet[str] = frozenset()
               ) -> Tuple[Set[str], Set[str], Set[str]]:
    """Keys whose values differ (unless ignored), keys only in ``b``, keys only in ``a``."""
    changed = {k for k in a.keys() & b.keys() if a[k] != b[k] and k not in ignored}
    return changed, set(b.keys() - a.keys()), set(a.keys() - b.keys())


Pair = Tuple[str, Optional[str]]
Change = Tuple[str, Optional[str], Optional[str]]


def _checksums_diff(a: Sequence[Pair], b: Sequence[Pair]
                    ) -> Tuple[List[Change], List[str], List[str]]:
    """Changed (same file name, new checksum), added and removed file checksums.

    Entries are compared as a multiset so a file listed twice is handled; an entry removed
    and one added with the same file name are one change.
    """
    only_a = Counter(a)
    only_a.subtract(b)
    only_b = Counter(b)
    only_b.subtract(a)
    added: List[Pair] = []
    for item in b:
        if only_b[item] > 0:
            only_b[item] -= 1
            added.append(item)
    removed: List[Pair] = []
    changed: List[Change] = []
    for item in a:
        if only_a[item] > 0:
            only_a[item] -= 1
            for other in added:
                if other[0] == item[0]:
                    changed.append((item[0], item[1], other[1]))
                    added.remove(other)
                    break
            else:
                removed.append(item)
    return changed, [x[0] for x in added], [x[0] for x in removed]


def _load(source: SignatureSource) -> Signature:
    return source if isinstance(source, Signature) else read_signature_file(source)


def compare_sigfiles(a: SignatureSource, b: SignatureSource,
                     recurse_cb: Optional[RecurseCallback] = None,
                     color: bool = False) -> List[str]:
    """What changed from ``a`` (old) to ``b`` (new), as bitbake-diffsigs' output entries.

    ``a`` and ``b`` are signatures or paths of signature files. An entry may hold several
    lines (a unified diff, the runtaskdeps details); print them joined by newlines.
    """
    return compare_signatures(_load(a), _load(b), recurse_cb, color)


def compare_signatures(a: Signature, b: Signature,
                       recurse_cb: Optional[RecurseCallback] = None,
                       color: bool = False) -> List[str]:
    """:func:`compare_sigfiles` on parsed signatures."""
    paint = _Painter(color)
    out: List[str] = []
    _ignore_lists(a, b, paint, out)
    if _names_differ(a.taskdeps, b.taskdeps):
        out.append(paint("{title}Task dependencies changed{default} from:\n%s\nto:\n%s",
                         stable_repr(sorted(a.taskdeps)), stable_repr(sorted(b.taskdeps))))
    if a.basehash != b.basehash:
        out.append(paint("{title}basehash changed{default} from %s to %s", a.basehash, b.basehash))
    _variable_deps(a, b, paint, out)
    _variable_values(a, b, paint, color, out)
    _file_checksums(a, b, paint, out)
    _runtaskdeps(a, b, paint, out)
    out = _task_hashes(a, b, paint, recurse_cb, out)
    _taint(a, b, paint, out)
    return out


def _ignore_lists(a: Signature, b: Signature, paint: _Painter, out: List[str]) -> None:
    if _names_differ(a.basehash_ignore_vars, b.basehash_ignore_vars):
        out.append(paint("{title}basehash_ignore_vars changed{default} from '%s' to '%s'",
                         stable_repr(a.basehash_ignore_vars), stable_repr(b.basehash_ignore_vars)))
        if a.basehash_ignore_vars and b.basehash_ignore_vars:
            out.append(_changed_items(a.basehash_ignore_vars, b.basehash_ignore_vars))
    if a.taskhash_ignore_tasks != b.taskhash_ignore_tasks:
        # A regular expression (a string): there are no "items" to list, unlike bitbake,
        # which fails at this point.
        out.append(paint("{title}taskhash_ignore_tasks changed{default} from '%s' to '%s'",
                         a.taskhash_ignore_tasks, b.taskhash_ignore_tasks))


def _variable_deps(a: Signature, b: Signature, paint: _Painter, out: List[str]) -> None:
    ignored = _as_set(a.basehash_ignore_vars) & _as_set(b.basehash_ignore_vars)
    changed, added, removed = _dict_diff(a.gendeps, b.gendeps, ignored)
    for var in sorted(changed):
        old, new = a.gendeps[var], b.gendeps[var]
        out.append(paint("{title}List of dependencies for variable %s changed from "
                         "'{default}%s{title}' to '{default}%s{title}'",
                         var, stable_repr(old), stable_repr(new)))
        if old and new:
            out.append(_changed_items(old, new))
    for var in sorted(added):
        out.append(paint("{title}Dependency on variable %s was added", var))
    for var in sorted(removed):
        out.append(paint("{title}Dependency on Variable %s was removed", var))


def _variable_values(a: Signature, b: Signature, paint: _Painter, color: bool,
                     out: List[str]) -> None:
    changed, _added, _removed = _dict_diff(a.varvals, b.varvals)
    for var in sorted(changed):
        old, new = a.varvals[var], b.varvals[var]
        both_text = isinstance(old, str) and isinstance(new, str) and bool(old) and bool(new)
        if both_text and ("\n" in old or "\n" in new):  # type: ignore[operator]
            lines = list(difflib.unified_diff(str(old).splitlines(), str(new).splitlines(),
                                              lineterm=""))[2:]
            if color:
                lines = [paint("{add}{line}", line=ln) if ln.startswith("+")
                         else paint("{remove}{line}", line=ln) if ln.startswith("-") else ln
                         for ln in lines]
            out.append(paint("{title}Variable {var} value changed:{default}\n{diff}",
                             var=var, diff="\n".join(lines)))
        elif both_text and (" " in old or " " in new):  # type: ignore[operator]
            out.append(paint("{title}Variable {var} value changed:{default}\n{diff}",
                             var=var, diff=word_diff(str(old), str(new), paint.colors)))
        else:
            out.append(paint("{title}Variable {var} value changed from '{default}{old}{title}'"
                             " to '{default}{new}{title}'{default}", var=var, old=old, new=new))


def _file_checksums(a: Signature, b: Signature, paint: _Painter, out: List[str]) -> None:
    changed, added, removed = _checksums_diff(a.file_checksum_values or [],
                                              b.file_checksum_values or [])
    for name, old, new in changed:
        out.append(paint("{title}Checksum for file %s changed{default} from %s to %s",
                         name, old, new))
    for name in added:
        out.append(paint("{title}Dependency on checksum of file %s was added", name))
    for name in removed:
        out.append(paint("{title}Dependency on checksum of file %s was removed", name))


def _runtaskdeps(a: Signature, b: Signature, paint: _Painter, out: List[str]) -> None:
    deps_a, deps_b = a.runtaskdeps or [], b.runtaskdeps or []
    hashes_a, hashes_b = a.runtaskhashes or {}, b.runtaskhashes or {}
    if len(deps_a) != len(deps_b):
        changed = ["Number of task dependencies changed"]
    else:
        changed = [f"{da} with hash {hashes_a[da]}\n changed to\n{db} with hash {hashes_b[db]}"
                   for da, db in zip(deps_a, deps_b) if hashes_a[da] != hashes_b[db]]
    if not changed:
        return
    if deps_a != deps_b:
        out.append(paint("{title}runtaskdeps changed:{default}\n%s",
                         list_diff(deps_a, deps_b, paint.colors)))
    else:
        out.append(paint("{title}runtaskdeps changed:"))
    out.append("\n".join(changed))


def _task_hashes(a: Signature, b: Signature, paint: _Painter,
                 recurse_cb: Optional[RecurseCallback], out: List[str]) -> List[str]:
    if a.runtaskhashes is None or b.runtaskhashes is None:
        return out
    ha, hb = a.runtaskhashes, b.runtaskhashes
    changed, added, removed = _dict_diff(ha, hb)
    # A dependency removed and another added with the same hash is a rename: not reported.
    for dep in sorted(added):
        if not any(hb[dep] == ha[old] for old in removed):
            out.append(paint("{title}Dependency on task %s was added{default} with hash %s",
                             dep, hb[dep]))
    for dep in sorted(removed):
        if not any(hb[new] == ha[dep] for new in added):
            out.append(paint("{title}Dependency on task %s was removed{default} with hash %s",
                             dep, ha[dep]))
    for dep in sorted(changed):
        out.append(paint("{title}Hash for task dependency %s changed{default} from %s to %s",
                         dep, ha[dep], hb[dep]))
        if recurse_cb is not None:
            nested = recurse_cb(dep, ha[dep], hb[dep])
            if nested:
                return [out[-1], *nested]
    return out


def _taint(a: Signature, b: Signature, paint: _Painter, out: List[str]) -> None:
    if a.taint == b.taint:
        return

    def shown(taint: Optional[str]) -> Optional[str]:
        if taint and taint.startswith("nostamp:"):
            return taint.replace("nostamp:", "nostamp(uuid4):")
        return taint

    out.append(paint("{title}Taint (by forced/invalidated task) changed{default} from %s to %s",
                     shown(a.taint), shown(b.taint)))


def diff_text(lines: List[str]) -> str:
    """What bitbake-diffsigs writes: the entries joined by newlines, nothing when empty."""
    return "\n".join(lines) + "\n" if lines else ""
