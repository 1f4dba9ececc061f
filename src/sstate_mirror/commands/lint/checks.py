"""What makes one signature machine-specific: a pure function from a signature to findings.

Only what enters the task hash is looked at, because only that decides whether another
machine computes the same hash and so finds the same object on the mirror:

* ``varvals`` of the task itself (its function body) and of every name in ``taskdeps`` (the
  variables and functions it depends on, of any case, whatever the value looks like), minus
  the names bitbake ignores (``basehash_ignore_vars``: ``TOPDIR``, ``TMPDIR``, ``WORKDIR``, ...
  are full of the build directory, harmlessly);
* ``SRC_URI`` is one of those variables: a ``file:///home/u/x.patch`` entry is found there;
* the *names* in ``file_checksum_values`` (a name holding ``./`` enters the hash; an absolute
  name shows that the task tracks a file by one machine's path);
* ``taint``.

``runtaskdeps`` are not looked at: legacy files name dependencies by their recipe's absolute
path, but only the dependencies' hashes enter the task hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

from ...signatures.model import Signature
from .paths import ABSOLUTE, Dir, PathHit, context_of, find_paths

#: Pseudo-variable names for the fields that are not variables.
FILE_CHECKSUMS = "file_checksum_values"
TAINT = "taint"


@dataclass(frozen=True)
class LintOptions:
    """What to look for."""

    dirs: Tuple[Dir, ...] = ()
    pedantic: bool = False
    excluded_tasks: FrozenSet[str] = frozenset()
    """Task names without ``do_`` (``fetch``, ``rootfs_install``)."""


@dataclass(frozen=True)
class Occurrence:
    """One machine-specific path in one signature."""

    variable: str
    kind: str
    path: str
    """The grouping pattern: the directory, ``/...`` standing for what varies below it."""
    found: str
    """The path exactly as it stands in the value."""
    context: str


def task_base(task: str) -> str:
    """``do_compile_setscene`` -> ``compile``: the form ``--task``/``--excluded-tasks`` use."""
    task = task.strip()
    if task.startswith("do_"):
        task = task[3:]
    if task.endswith("_setscene"):
        task = task[: -len("_setscene")]
    return task


def parse_task_list(text: Optional[str]) -> FrozenSet[str]:
    """``"do_fetch, unpack"`` -> ``{"fetch", "unpack"}`` (with or without ``do_``)."""
    if not text:
        return frozenset()
    return frozenset(task_base(t) for t in text.split(",") if t.strip())


def pattern_of(hit: PathHit) -> str:
    """What groups a path with the same path of other recipes: the directory it lies in
    (its recipe-specific rest cut to ``/...``), or for any other absolute path its first two
    components."""
    if hit.kind == ABSOLUTE:
        parts = hit.path.split("/")
        return "/".join(parts[:3]) + ("/..." if len(parts) > 3 else "")
    return hit.root + ("/..." if len(hit.path) > len(hit.root) else "")


def hashed_names(sig: Signature) -> List[str]:
    """The ``varvals`` names that enter the basehash: the task first, then its dependencies
    in sorted order, without the names bitbake is told to ignore."""
    ignored = set(sig.basehash_ignore_vars)
    names = [sig.task] if sig.task and sig.task in sig.varvals else []
    names += sorted(n for n in set(sig.taskdeps) if n != sig.task)
    return [n for n in names if n not in ignored and n in sig.varvals]


def check_signature(sig: Signature, options: LintOptions) -> List[Occurrence]:
    """The machine-specific paths in what ``sig``'s task hash is computed from: the first
    occurrence of each (variable, kind, path pattern), in the order the hash reads them."""
    found: List[Occurrence] = []
    seen: Set[Tuple[str, str, str]] = set()

    def scan(variable: str, text: str) -> None:
        for hit in find_paths(text, options.dirs, options.pedantic):
            key = (variable, hit.kind, pattern_of(hit))
            if key not in seen:
                seen.add(key)
                found.append(Occurrence(variable, hit.kind, key[2], hit.path,
                                        context_of(text, hit.start, hit.end)))

    for name in hashed_names(sig):
        value = sig.varvals[name]
        if isinstance(value, str):
            scan(name, value)
    for name, _checksum in sig.file_checksum_values or []:
        scan(FILE_CHECKSUMS, name)
    if sig.taint:
        scan(TAINT, sig.taint)
    return found


@dataclass(frozen=True)
class TaskRef:
    """One task (one signature file) a finding affects."""

    pn: str
    task: str
    file: str
    found: str
    context: str


@dataclass
class Finding:
    """One machine-specific path pattern in one variable, with every task it affects."""

    variable: str
    kind: str
    path: str
    tasks: List[TaskRef] = field(default_factory=list)

    @property
    def task_count(self) -> int:
        return len({(t.pn, t.task) for t in self.tasks})

    @property
    def recipe_count(self) -> int:
        return len({t.pn for t in self.tasks})

    def to_dict(self) -> Dict[str, Any]:
        return {
            "variable": self.variable,
            "kind": self.kind,
            "path": self.path,
            "tasks": [{"pn": t.pn, "task": t.task, "file": t.file, "path": t.found,
                       "context": t.context} for t in self.tasks],
        }


@dataclass(frozen=True)
class FileResult:
    """What one signature file holds: who it belongs to and what was found in it."""

    file: str
    pn: str
    task: str
    occurrences: Tuple[Occurrence, ...]


def group_findings(results: Iterable[FileResult]) -> List[Finding]:
    """One :class:`Finding` per (variable, kind, path pattern), most affected tasks first.

    A variable that a class sets for 200 recipes is one finding listing 200 tasks; a file
    with the same pattern twice in one variable counts once.
    """
    groups: Dict[Tuple[str, str, str], Finding] = {}
    for result in results:
        seen = set()
        for occ in result.occurrences:
            key = (occ.variable, occ.kind, occ.path)
            if key in seen:
                continue
            seen.add(key)
            finding = groups.get(key)
            if finding is None:
                finding = groups[key] = Finding(occ.variable, occ.kind, occ.path)
            finding.tasks.append(TaskRef(result.pn, result.task, result.file, occ.found,
                                         occ.context))
    findings: List[Finding] = list(groups.values())
    for f in findings:
        f.tasks.sort(key=lambda t: (t.pn, t.task, t.file))
    findings.sort(key=lambda f: (-f.task_count, f.variable, f.kind, f.path))
    return findings


def sorted_results(results: Sequence[FileResult]) -> List[FileResult]:
    return sorted(results, key=lambda r: (r.pn, r.task, r.file))
