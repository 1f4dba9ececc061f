"""What changed between two signatures, as data: the facts ``bitbake-diffsigs`` prints.

:func:`compare_structured` finds every difference between an old and a new signature and
returns them as :class:`Change` values, in the order bitbake prints its sections.
:mod:`.compare` renders these into bitbake's exact lines; ``analyze`` reads them to name the
root cause of a cache miss without parsing any printed text. One computation serves both, so
what is printed and what is counted can never disagree.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from typing import (
    AbstractSet,
    Any,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
)

from .model import NameCollection, Signature


class ChangeKind(str, enum.Enum):
    """One kind of difference; the values are stable names for JSON output."""

    IGNORE_VARS = "ignore-vars"
    """``basehash_ignore_vars`` differs (old/new: the collections)."""
    IGNORE_TASKS = "ignore-tasks"
    """``taskhash_ignore_tasks`` differs (old/new: the regular expressions)."""
    TASKDEPS = "taskdeps"
    """The set of variables the task depends on differs (old/new: sorted lists)."""
    BASEHASH = "basehash"
    """The base hash differs: a consequence of the variable changes, if any are listed."""
    VARIABLE_DEPS = "variable-deps"
    """What variable ``name`` depends on changed (old/new: the collections)."""
    VARIABLE_DEP_ADDED = "variable-dep-added"
    VARIABLE_DEP_REMOVED = "variable-dep-removed"
    VARIABLE = "variable"
    """The value of variable ``name`` changed (old/new: the values)."""
    FILE_CHECKSUM = "file-checksum"
    """The checksum of local file ``name`` changed (old/new: the checksums)."""
    FILE_ADDED = "file-added"
    FILE_REMOVED = "file-removed"
    RUNTASKDEPS = "runtaskdeps"
    """The list of task dependencies or their hashes changed (old/new: the lists)."""
    TASK_ADDED = "task-added"
    """Task dependency ``name`` was added (new: its hash)."""
    TASK_REMOVED = "task-removed"
    """Task dependency ``name`` was removed (old: its hash)."""
    TASK_HASH = "task-hash"
    """The hash of task dependency ``name`` changed (old/new: the hashes)."""
    TAINT = "taint"
    """The taint of a forced or invalidated task changed (old/new: the taints)."""


#: Kinds that only restate other changes (a changed value changes the basehash; changed
#: dependency hashes change the runtaskdeps): never a cause of their own when others are there.
DERIVED_KINDS = frozenset({ChangeKind.BASEHASH, ChangeKind.RUNTASKDEPS})


@dataclass(frozen=True)
class Change:
    """One difference between an old and a new signature.

    ``pairs`` is used by :attr:`ChangeKind.RUNTASKDEPS` only: the dependencies whose hashes
    differ, position by position, as (old dep, old hash, new dep, new hash); ``None`` when the
    number of dependencies changed.
    """

    kind: ChangeKind
    name: Optional[str] = None
    old: Any = None
    new: Any = None
    pairs: Optional[Tuple[Tuple[str, str, str, str], ...]] = None

    @property
    def derived(self) -> bool:
        return self.kind in DERIVED_KINDS


def as_set(value: Iterable[str]) -> AbstractSet[str]:
    return value if isinstance(value, (set, frozenset)) else set(value)


def names_differ(a: NameCollection, b: NameCollection) -> bool:
    """Lists (bitbake 2.0-2.2, legacy) and sets (newer) with the same names are equal."""
    if isinstance(a, list) != isinstance(b, list):
        return set(a) != set(b)
    return a != b


def dict_diff(a: Dict[str, Any], b: Dict[str, Any], ignored: AbstractSet[str] = frozenset()
              ) -> Tuple[Set[str], Set[str], Set[str]]:
    """Keys whose values differ (unless ignored), keys only in ``b``, keys only in ``a``."""
    changed = {k for k in a.keys() & b.keys() if a[k] != b[k] and k not in ignored}
    return changed, set(b.keys() - a.keys()), set(a.keys() - b.keys())


Pair = Tuple[str, Optional[str]]
ChecksumChange = Tuple[str, Optional[str], Optional[str]]


def checksums_diff(a: Sequence[Pair], b: Sequence[Pair]
                   ) -> Tuple[List[ChecksumChange], List[str], List[str]]:
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
    changed: List[ChecksumChange] = []
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


def compare_structured(a: Signature, b: Signature) -> List[Change]:
    """Every difference from ``a`` (old) to ``b`` (new), in bitbake-diffsigs' order.

    Dependencies whose hash changed are listed (sorted by ``pn:do_task``) but not followed:
    recursion is the caller's choice (see :class:`.finder.Recursor` for bitbake's).
    """
    out: List[Change] = []
    _ignore_lists(a, b, out)
    if names_differ(a.taskdeps, b.taskdeps):
        out.append(Change(ChangeKind.TASKDEPS, old=sorted(a.taskdeps), new=sorted(b.taskdeps)))
    if a.basehash != b.basehash:
        out.append(Change(ChangeKind.BASEHASH, old=a.basehash, new=b.basehash))
    _variable_deps(a, b, out)
    changed, _added, _removed = dict_diff(a.varvals, b.varvals)
    out.extend(Change(ChangeKind.VARIABLE, var, a.varvals[var], b.varvals[var])
               for var in sorted(changed))
    _file_checksums(a, b, out)
    _runtaskdeps(a, b, out)
    _task_hashes(a, b, out)
    if a.taint != b.taint:
        out.append(Change(ChangeKind.TAINT, old=a.taint, new=b.taint))
    return out


def _ignore_lists(a: Signature, b: Signature, out: List[Change]) -> None:
    if names_differ(a.basehash_ignore_vars, b.basehash_ignore_vars):
        out.append(Change(ChangeKind.IGNORE_VARS, old=a.basehash_ignore_vars,
                          new=b.basehash_ignore_vars))
    if a.taskhash_ignore_tasks != b.taskhash_ignore_tasks:
        out.append(Change(ChangeKind.IGNORE_TASKS, old=a.taskhash_ignore_tasks,
                          new=b.taskhash_ignore_tasks))


def _variable_deps(a: Signature, b: Signature, out: List[Change]) -> None:
    ignored = as_set(a.basehash_ignore_vars) & as_set(b.basehash_ignore_vars)
    changed, added, removed = dict_diff(a.gendeps, b.gendeps, ignored)
    out.extend(Change(ChangeKind.VARIABLE_DEPS, var, a.gendeps[var], b.gendeps[var])
               for var in sorted(changed))
    out.extend(Change(ChangeKind.VARIABLE_DEP_ADDED, var) for var in sorted(added))
    out.extend(Change(ChangeKind.VARIABLE_DEP_REMOVED, var) for var in sorted(removed))


def _file_checksums(a: Signature, b: Signature, out: List[Change]) -> None:
    changed, added, removed = checksums_diff(a.file_checksum_values or [],
                                             b.file_checksum_values or [])
    out.extend(Change(ChangeKind.FILE_CHECKSUM, name, old, new) for name, old, new in changed)
    out.extend(Change(ChangeKind.FILE_ADDED, name) for name in added)
    out.extend(Change(ChangeKind.FILE_REMOVED, name) for name in removed)


def _runtaskdeps(a: Signature, b: Signature, out: List[Change]) -> None:
    deps_a, deps_b = a.runtaskdeps or [], b.runtaskdeps or []
    hashes_a, hashes_b = a.runtaskhashes or {}, b.runtaskhashes or {}
    pairs: Optional[Tuple[Tuple[str, str, str, str], ...]] = None
    if len(deps_a) == len(deps_b):
        pairs = tuple((da, hashes_a[da], db, hashes_b[db]) for da, db in zip(deps_a, deps_b)
                      if hashes_a[da] != hashes_b[db])
        if not pairs:
            return
    out.append(Change(ChangeKind.RUNTASKDEPS, old=list(deps_a), new=list(deps_b), pairs=pairs))


def _task_hashes(a: Signature, b: Signature, out: List[Change]) -> None:
    if a.runtaskhashes is None or b.runtaskhashes is None:
        return
    ha, hb = a.runtaskhashes, b.runtaskhashes
    changed, added, removed = dict_diff(ha, hb)
    # A dependency removed and another added with the same hash is a rename: not reported.
    for dep in sorted(added):
        if not any(hb[dep] == ha[old] for old in removed):
            out.append(Change(ChangeKind.TASK_ADDED, dep, new=hb[dep]))
    for dep in sorted(removed):
        if not any(hb[new] == ha[dep] for new in added):
            out.append(Change(ChangeKind.TASK_REMOVED, dep, old=ha[dep]))
    out.extend(Change(ChangeKind.TASK_HASH, dep, ha[dep], hb[dep]) for dep in sorted(changed))
