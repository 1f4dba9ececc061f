"""Root causes of cache misses, from structured signature comparisons (pure, no I/O).

A miss is explained by comparing the mirror's closest signature (old) with the local one
(new). Most differences are consequences: a task's hash changes because a dependency's hash
changed, whose hash changed because *its* dependency's did, down to the task where something
real changed — a variable, a file, a dependency added. Those are the root causes; a user
needs them, not the three hundred diffs they produce.

Unlike the printed diff (which, as bitbake does, follows only the first changed dependency
that explains something), the causes follow *every* changed dependency: a task whose hash
changed because of two independent edits has two causes. The comparisons form a graph whose
nodes are ``(pn:do_task, old hash, new hash)``; the I/O layer builds it level by level
(fetching each level's signatures in parallel) with :func:`causes_at`, and
:func:`findings_for` collects the causes below a node. A cause found at several places is
*first in* the one furthest down the dependency chain from the misses, i.e. the earliest task
in build order, where the change entered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Set, Tuple

from ..signatures.changes import Change, ChangeKind, compare_structured
from ..signatures.finder import split_key
from ..signatures.model import Signature

#: A comparison in the explanation graph: (``pn:do_task``, old hash, new hash).
NodeId = Tuple[str, str, str]

# Kinds of causes (stable names for --json).
VARIABLE = "variable"
VARIABLE_DEPS = "variable-deps"
TASKDEPS = "taskdeps"
IGNORE_LIST = "ignore-list"
FILE_CHECKSUM = "file-checksum"
TASK_DEPENDENCY = "task-dependency"
PR = "pr"
PV = "pv"
BASEHASH = "basehash"
TAINT = "taint"
HASH_EQUIVALENCE = "hash-equivalence"
SERVER_EQUIVALENT = "server-equivalent"
SERVER_UNKNOWN = "server-unknown"
SERVER_OTHER_UNIHASH = "server-other-unihash"
NO_CANDIDATE = "no-candidate"
ARCHIVE_MISSING = "archive-missing"
OTHER_DIRECTORY = "other-directory"
SIGNATURE_MISSING = "signature-missing"
UNREADABLE = "unreadable"
UNEXPLAINED = "unexplained"


@dataclass(frozen=True)
class Cause:
    """One reason for hash changes; equal causes found in several places are grouped."""

    kind: str
    detail: str
    text: str = field(compare=False)

    def to_dict(self) -> Dict[str, str]:
        return {"cause": self.text, "kind": self.kind, "detail": self.detail}


def _cause(kind: str, detail: str, text: str) -> Cause:
    return Cause(kind, detail, text)


def hash_equivalence_cause() -> Cause:
    return _cause(HASH_EQUIVALENCE, "", "hash equivalence diverged (same taskhash, different"
                  " unihash): the builds do not share one hash equivalence server")


def server_equivalent_cause() -> Cause:
    """The server maps the build's taskhash to a unihash whose archive the mirror has."""
    return _cause(SERVER_EQUIVALENT, "", "hash equivalence: the hash server now gives this task"
                  " a unihash whose archive is on the mirror; the build got another one (it"
                  " asked before the equivalence was known, or asked another server)")


def server_unknown_cause() -> Cause:
    """The server has no unihash for the build's taskhash."""
    return _cause(SERVER_UNKNOWN, "", "the hash server does not know this taskhash: the"
                  " build's result was never reported to it, or was swept since")


def server_other_unihash_cause() -> Cause:
    """The server hands out another unihash, but the mirror has no archive of that either."""
    return _cause(SERVER_OTHER_UNIHASH, "", "the hash server gives this task another unihash,"
                  " and the mirror has no archive of that one either")


def no_candidate_cause() -> Cause:
    return _cause(NO_CANDIDATE, "", "no candidate on the mirror (no signature of the same"
                  " recipe, arch and task)")


def archive_missing_cause() -> Cause:
    return _cause(ARCHIVE_MISSING, "", "archive missing on the mirror (its signature is there)")


def other_directory_cause(mirror_prefix: str, local_prefix: str) -> Cause:
    """The mirror has the archive, but below another directory than the build looks in."""
    def shown(prefix: str) -> str:
        return f"{prefix}/" if prefix else "the top level"
    return _cause(OTHER_DIRECTORY, f"{mirror_prefix or '.'} -> {local_prefix or '.'}",
                  f"archive on the mirror under {shown(mirror_prefix)}, the build looks under"
                  f" {shown(local_prefix)} (NATIVELSBSTRING differs)")


def unreadable_cause() -> Cause:
    return _cause(UNREADABLE, "", "signature file could not be read")


def signature_missing_cause(key: str) -> Cause:
    return _cause(SIGNATURE_MISSING, key,
                  f"signature of changed dependency {key} not found: cannot follow it")


def name_field_cause(field_name: str, old: str, new: str) -> Cause:
    """PR or PV changed (from the file name or the variable)."""
    return _cause(PR if field_name == "PR" else PV, f"{old} -> {new}",
                  f"{field_name} changed from {old} to {new}")


def _change_cause(change: Change) -> Optional[Cause]:
    """The cause a (non-derived, non-dependency-hash) change stands for."""
    kind, name = change.kind, str(change.name)
    if kind is ChangeKind.VARIABLE:
        if name in ("PR", "PV") and isinstance(change.old, str) and isinstance(change.new, str):
            return name_field_cause(name, change.old, change.new)
        return _cause(VARIABLE, name, f"variable {name} changed")
    if kind is ChangeKind.VARIABLE_DEPS:
        return _cause(VARIABLE_DEPS, name, f"dependencies of variable {name} changed")
    if kind is ChangeKind.VARIABLE_DEP_ADDED:
        return _cause(VARIABLE_DEPS, name, f"dependency on variable {name} added")
    if kind is ChangeKind.VARIABLE_DEP_REMOVED:
        return _cause(VARIABLE_DEPS, name, f"dependency on variable {name} removed")
    if kind is ChangeKind.TASKDEPS:
        added = sorted(set(change.new) - set(change.old))
        removed = sorted(set(change.old) - set(change.new))
        detail = " ".join([*(f"+{v}" for v in added), *(f"-{v}" for v in removed)])
        return _cause(TASKDEPS, detail, f"variables the task depends on changed ({detail})")
    if kind is ChangeKind.IGNORE_VARS:
        return _cause(IGNORE_LIST, "BB_BASEHASH_IGNORE_VARS",
                      "BB_BASEHASH_IGNORE_VARS changed")
    if kind is ChangeKind.IGNORE_TASKS:
        return _cause(IGNORE_LIST, "BB_TASKHASH_IGNORE_TASKS",
                      "BB_TASKHASH_IGNORE_TASKS changed")
    if kind is ChangeKind.FILE_CHECKSUM:
        return _cause(FILE_CHECKSUM, name, f"file checksum of {name} changed")
    if kind is ChangeKind.FILE_ADDED:
        return _cause(FILE_CHECKSUM, name, f"file checksum of {name} added")
    if kind is ChangeKind.FILE_REMOVED:
        return _cause(FILE_CHECKSUM, name, f"file checksum of {name} removed")
    if kind is ChangeKind.TASK_ADDED:
        return _cause(TASK_DEPENDENCY, f"+{name}", f"task dependency {name} added")
    if kind is ChangeKind.TASK_REMOVED:
        return _cause(TASK_DEPENDENCY, f"-{name}", f"task dependency {name} removed")
    if kind is ChangeKind.TAINT:
        return _cause(TAINT, "", "taint changed (a task was forced or invalidated)")
    return None


def hash_equivalence_diverged(old: Signature, new: Signature) -> bool:
    """Same inputs (taskhash) but different unihash: the equivalence servers disagree."""
    return (old.taskhash is not None and old.taskhash == new.taskhash
            and old.unihash is not None and new.unihash is not None
            and old.unihash != new.unihash)


def causes_at(old: Signature, new: Signature, key: str) -> Tuple[List[Cause], List[NodeId]]:
    """The causes found in this comparison itself, and the changed dependencies to follow.

    Derived changes (basehash, runtaskdeps) are causes only when nothing else explains the
    change: a basehash that changed with no variable change listed is reported as such.
    """
    if hash_equivalence_diverged(old, new):
        return [hash_equivalence_cause()], []
    changes = compare_structured(old, new)
    causes: List[Cause] = []
    follow: List[NodeId] = []
    for change in changes:
        if change.kind is ChangeKind.TASK_HASH:
            follow.append((str(change.name), str(change.old), str(change.new)))
            continue
        cause = None if change.derived else _change_cause(change)
        if cause is not None and cause not in causes:
            causes.append(cause)
    if any(c.kind is ChangeKind.BASEHASH for c in changes) and not any(
            c.kind in _BASEHASH_INPUTS for c in changes):
        causes.append(_cause(BASEHASH, "", "basehash changed with no variable change to"
                             " explain it"))
    if not causes and not follow and changes:
        causes.append(_cause(UNEXPLAINED, "", "task hash changed with no visible cause"))
    return causes, follow


_BASEHASH_INPUTS = frozenset({
    ChangeKind.VARIABLE, ChangeKind.TASKDEPS, ChangeKind.IGNORE_VARS,
    ChangeKind.VARIABLE_DEPS, ChangeKind.VARIABLE_DEP_ADDED, ChangeKind.VARIABLE_DEP_REMOVED,
})


def difference_score(old: Signature, new: Signature) -> int:
    """How far apart two signatures of one task are: the number of real differences.

    Cheap (no text diff, no recursion), so every candidate can be ranked. Identical inputs
    under another unihash score 0: that candidate is the one to show.
    """
    if hash_equivalence_diverged(old, new):
        return 0
    return sum(1 for c in compare_structured(old, new) if not c.derived)


@dataclass
class Node:
    """One comparison of the explanation graph."""

    causes: List[Cause]
    children: List[NodeId]


@dataclass(frozen=True)
class Finding:
    """A cause, where it was found (``pn:do_task``) and how many dependency levels below."""

    cause: Cause
    origin: str
    distance: int


class ExplanationGraph:
    """Comparisons by :data:`NodeId`; built by the I/O layer, read by :meth:`findings`."""

    def __init__(self) -> None:
        self.nodes: Dict[NodeId, Node] = {}
        self._memo: Dict[NodeId, List[Finding]] = {}

    def add(self, node_id: NodeId, causes: List[Cause], children: Iterable[NodeId] = ()
            ) -> None:
        self.nodes[node_id] = Node(list(causes), list(children))

    def missing(self, ids: Iterable[NodeId]) -> List[NodeId]:
        """The ids not yet in the graph, without duplicates, in a stable order."""
        seen: Set[NodeId] = set()
        out = []
        for node_id in ids:
            if node_id not in self.nodes and node_id not in seen:
                seen.add(node_id)
                out.append(node_id)
        return out

    def findings(self, node_id: NodeId) -> List[Finding]:
        """Every cause at or below ``node_id``, each once, at its greatest distance.

        Walked without recursion (real dependency chains run to hundreds of tasks); an edge
        back to a task being walked (a cycle, only in crafted files) adds nothing.
        """
        if node_id not in self.nodes:
            return []
        if node_id in self._memo:
            return list(self._memo[node_id])
        stack: List[Tuple[NodeId, Iterator[NodeId]]] = [
            (node_id, iter(self.nodes[node_id].children))]
        active = {node_id}
        while stack:
            current, children = stack[-1]
            for child in children:
                if child in self.nodes and child not in self._memo and child not in active:
                    active.add(child)
                    stack.append((child, iter(self.nodes[child].children)))
                    break
            else:
                stack.pop()
                active.discard(current)
                self._memo[current] = self._combine(current)
        return list(self._memo[node_id])

    def _combine(self, node_id: NodeId) -> List[Finding]:
        node = self.nodes[node_id]
        best: Dict[Cause, Finding] = {}
        for cause in node.causes:
            best.setdefault(cause, Finding(cause, node_id[0], 0))
        for child in node.children:
            for f in self._memo.get(child, []):
                moved = Finding(f.cause, f.origin, f.distance + 1)
                if f.cause not in best or _deeper(moved, best[f.cause]):
                    best[f.cause] = moved
        return sorted(best.values(), key=lambda f: (-f.distance, f.cause.text))


def _deeper(a: Finding, b: Finding) -> bool:
    return (a.distance, b.origin) > (b.distance, a.origin)


def pn_of(key: str) -> str:
    """The recipe of a task id; for a legacy recipe-file id, the PN its file name gives."""
    split = split_key(key)
    who = split[0] if split else key
    if "/" in who or who.endswith(".bb"):
        base = who.rsplit("/", 1)[-1]
        return (base[:-3] if base.endswith(".bb") else base).split("_", 1)[0]
    return who


@dataclass
class RootCause:
    """A cause with the misses it explains."""

    cause: Cause
    tasks: List[str] = field(default_factory=list)
    first: Optional[Finding] = None

    @property
    def misses(self) -> int:
        return len(self.tasks)

    @property
    def first_in(self) -> str:
        return pn_of(self.first.origin) if self.first else ""

    def to_dict(self) -> Dict[str, object]:
        out: Dict[str, object] = dict(self.cause.to_dict())
        out.update({"misses": self.misses, "first_in": self.first_in,
                    "first_task": self.first.origin if self.first else None,
                    "tasks": list(self.tasks)})
        return out


def group_root_causes(misses: Iterable[Tuple[str, List[Finding]]]) -> List[RootCause]:
    """Group the misses (task id, findings) by cause; most misses first."""
    groups: Dict[Cause, RootCause] = {}
    for task_id, findings in misses:
        for f in findings:
            group = groups.setdefault(f.cause, RootCause(f.cause))
            if task_id not in group.tasks:
                group.tasks.append(task_id)
            if group.first is None or _deeper(f, group.first):
                group.first = f
    return sorted(groups.values(), key=lambda g: (-g.misses, g.cause.text))
