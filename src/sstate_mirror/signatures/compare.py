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
from typing import Any, Callable, Collection, List, Optional, Union

from .changes import Change, ChangeKind, as_set, compare_structured
from .model import Signature
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


def _changed_items(a: Collection[str], b: Collection[str]) -> str:
    # frozenset ^ frozenset stays a frozenset (2.x files), set ^ set a set (legacy pickles)
    return "changed items: " + stable_repr(as_set(a) ^ as_set(b))


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
    return render_changes(compare_structured(a, b), recurse_cb, color)


def render_changes(changes: List[Change], recurse_cb: Optional[RecurseCallback] = None,
                   color: bool = False) -> List[str]:
    """bitbake-diffsigs' entries for the changes :func:`.changes.compare_structured` found.

    Recursion as in bitbake: the first dependency whose hash changed and whose callback
    says something replaces everything before it, and no further dependency is followed.
    """
    paint = _Painter(color)
    out: List[str] = []
    explained = False
    for change in changes:
        if change.kind is ChangeKind.TASK_HASH:
            if explained:
                continue
            out.append(paint("{title}Hash for task dependency %s changed{default} from %s to %s",
                             change.name, change.old, change.new))
            if recurse_cb is not None:
                nested = recurse_cb(str(change.name), change.old, change.new)
                if nested:
                    out = [out[-1], *nested]
                    explained = True
            continue
        out.extend(_render(change, paint, color))
    return out


def _render(change: Change, paint: _Painter, color: bool) -> List[str]:
    kind, name, old, new = change.kind, change.name, change.old, change.new
    if kind is ChangeKind.IGNORE_VARS:
        lines = [paint("{title}basehash_ignore_vars changed{default} from '%s' to '%s'",
                       stable_repr(old), stable_repr(new))]
        if old and new:
            lines.append(_changed_items(old, new))
        return lines
    if kind is ChangeKind.IGNORE_TASKS:
        # A regular expression (a string): there are no "items" to list, unlike bitbake,
        # which fails at this point.
        return [paint("{title}taskhash_ignore_tasks changed{default} from '%s' to '%s'",
                      old, new)]
    if kind is ChangeKind.TASKDEPS:
        return [paint("{title}Task dependencies changed{default} from:\n%s\nto:\n%s",
                      stable_repr(old), stable_repr(new))]
    if kind is ChangeKind.BASEHASH:
        return [paint("{title}basehash changed{default} from %s to %s", old, new)]
    if kind is ChangeKind.VARIABLE_DEPS:
        lines = [paint("{title}List of dependencies for variable %s changed from "
                       "'{default}%s{title}' to '{default}%s{title}'",
                       name, stable_repr(old), stable_repr(new))]
        if old and new:
            lines.append(_changed_items(old, new))
        return lines
    if kind is ChangeKind.VARIABLE_DEP_ADDED:
        return [paint("{title}Dependency on variable %s was added", name)]
    if kind is ChangeKind.VARIABLE_DEP_REMOVED:
        return [paint("{title}Dependency on Variable %s was removed", name)]
    if kind is ChangeKind.VARIABLE:
        return [_variable_value(str(name), old, new, paint, color)]
    if kind is ChangeKind.FILE_CHECKSUM:
        return [paint("{title}Checksum for file %s changed{default} from %s to %s",
                      name, old, new)]
    if kind is ChangeKind.FILE_ADDED:
        return [paint("{title}Dependency on checksum of file %s was added", name)]
    if kind is ChangeKind.FILE_REMOVED:
        return [paint("{title}Dependency on checksum of file %s was removed", name)]
    if kind is ChangeKind.RUNTASKDEPS:
        return _runtaskdeps(change, paint)
    if kind is ChangeKind.TASK_ADDED:
        return [paint("{title}Dependency on task %s was added{default} with hash %s", name, new)]
    if kind is ChangeKind.TASK_REMOVED:
        return [paint("{title}Dependency on task %s was removed{default} with hash %s",
                      name, old)]
    if kind is ChangeKind.TAINT:
        return [paint("{title}Taint (by forced/invalidated task) changed{default} from %s to %s",
                      _shown_taint(old), _shown_taint(new))]
    raise AssertionError(f"no rendering for {kind}")  # pragma: no cover - every kind is above


def _variable_value(var: str, old: Any, new: Any, paint: _Painter, color: bool) -> str:
    both_text = isinstance(old, str) and isinstance(new, str) and bool(old) and bool(new)
    if both_text and ("\n" in old or "\n" in new):
        lines = list(difflib.unified_diff(str(old).splitlines(), str(new).splitlines(),
                                          lineterm=""))[2:]
        if color:
            lines = [paint("{add}{line}", line=ln) if ln.startswith("+")
                     else paint("{remove}{line}", line=ln) if ln.startswith("-") else ln
                     for ln in lines]
        return paint("{title}Variable {var} value changed:{default}\n{diff}",
                     var=var, diff="\n".join(lines))
    if both_text and (" " in old or " " in new):
        return paint("{title}Variable {var} value changed:{default}\n{diff}",
                     var=var, diff=word_diff(str(old), str(new), paint.colors))
    return paint("{title}Variable {var} value changed from '{default}{old}{title}'"
                 " to '{default}{new}{title}'{default}", var=var, old=old, new=new)


def _runtaskdeps(change: Change, paint: _Painter) -> List[str]:
    deps_a: List[str] = change.old
    deps_b: List[str] = change.new
    if change.pairs is None:
        changed = ["Number of task dependencies changed"]
    else:
        changed = [f"{da} with hash {ha}\n changed to\n{db} with hash {hb}"
                   for da, ha, db, hb in change.pairs]
    if deps_a != deps_b:
        first = paint("{title}runtaskdeps changed:{default}\n%s",
                      list_diff(deps_a, deps_b, paint.colors))
    else:
        first = paint("{title}runtaskdeps changed:")
    return [first, "\n".join(changed)]


def _shown_taint(taint: Optional[str]) -> Optional[str]:
    if taint and taint.startswith("nostamp:"):
        return taint.replace("nostamp:", "nostamp(uuid4):")
    return taint


def diff_text(lines: List[str]) -> str:
    """What bitbake-diffsigs writes: the entries joined by newlines, nothing when empty."""
    return "\n".join(lines) + "\n" if lines else ""
