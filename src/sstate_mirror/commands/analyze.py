"""``analyze``: why did a build not reuse the mirror?

Plan (pure): every task signature of the local cache is a task bitbake ran. Tasks that are
*sstate tasks* — a task name that has an archive anywhere in the local cache or on the mirror
(OE's populate_sysroot, package_write_*, ...; Isar's dpkg_build, rootfs_install, ...) — are
checked the way bitbake checks them: a hit when the mirror holds the *archive* with the same
recipe, task and hash below the same directory prefix (``universal/``, ``debian-12/``: bitbake's
``NATIVELSBSTRING`` for native recipes; the hash directories may differ, and a flat copy, which
keeps no prefix, matches any). The same archive below another prefix only is a miss bitbake
really has, with its own cause. Other tasks (compile,
configure, ...) never have archives; they are only used to follow dependencies, or, with
``--all-tasks``, reported by the presence of their signature. For each miss the mirror's
signatures of the same recipe, arch and task are the candidates, newest first, at most
``max_candidates`` of them.

Execute: the local signatures of the misses and their candidates are read in parallel; the
candidate with the fewest differences is compared with the local signature (old -> new) as
``bitbake-diffsigs`` would, following changed dependencies through both the local cache and
the mirror; and the root causes of all misses are collected from structured comparisons
(:mod:`.rootcause`) and grouped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Set, Tuple

from ..errors import BackendError, SstateMirrorError
from ..naming import Artifact, Kind, directory_prefix, layout_of
from ..signatures.compare import compare_signatures
from ..signatures.finder import Recursor
from ..signatures.model import Signature
from ..transfer import Progress
from .listing import Selection
from .rootcause import (
    Cause,
    ExplanationGraph,
    Finding,
    NodeId,
    RootCause,
    archive_missing_cause,
    causes_at,
    difference_score,
    group_root_causes,
    hash_equivalence_diverged,
    name_field_cause,
    no_candidate_cause,
    other_directory_cause,
    signature_missing_cause,
    unreadable_cause,
)
from .sigstore import Location, SignatureStore, UnionFinder

LOCAL = "local"
MIRROR = "mirror"

DEFAULT_MAX_CANDIDATES = 5

HIT = "hit"
MISS = "miss"


@dataclass(frozen=True)
class AnalyzeOptions:
    selection: Selection = field(default_factory=Selection)
    tasks: Optional[FrozenSet[str]] = None
    """Task names without ``do_`` (None: all)."""
    all_tasks: bool = False
    max_candidates: int = DEFAULT_MAX_CANDIDATES


def normalize_task(name: str) -> str:
    """``do_populate_sysroot`` and ``populate_sysroot`` both name the task as files do."""
    return name[3:] if name.startswith("do_") else name


@dataclass
class TaskCheck:
    """One local task signature and what the mirror has for it."""

    siginfo: Artifact
    sstate: bool
    status: str
    candidates: List[Artifact] = field(default_factory=list)
    """Mirror signatures of the same recipe, arch and task (newest first, capped)."""
    total_candidates: int = 0
    same_hash_siginfo: Optional[Artifact] = None
    """The mirror's signature with this very hash, when its archive is missing."""
    elsewhere: Optional[Artifact] = None
    """The mirror's archive with this very hash below another directory prefix."""

    @property
    def key(self) -> str:
        return f"{self.siginfo.pn}:do_{self.siginfo.task}"

    @property
    def hash(self) -> str:
        return self.siginfo.hash

    @property
    def task_id(self) -> str:
        """``ARCH:PN:do_TASK`` (no arch for software-only tasks)."""
        arch = self.siginfo.arch
        return f"{arch}:{self.key}" if arch else self.key


@dataclass
class AnalysisPlan:
    checks: List[TaskCheck] = field(default_factory=list)
    sstate_tasks: FrozenSet[str] = frozenset()
    not_selected: int = 0
    not_sstate: int = 0
    """Local signatures of tasks without archives, not checked (see ``--all-tasks``)."""

    @property
    def hits(self) -> List[TaskCheck]:
        return [c for c in self.checks if c.status == HIT]

    @property
    def misses(self) -> List[TaskCheck]:
        return [c for c in self.checks if c.status == MISS]


def _identity(art: Artifact) -> Tuple[str, str, str]:
    return (art.pn, art.task, art.hash)


def _prefix(art: Artifact) -> Optional[str]:
    """The directory prefix of an artifact; None in a flat copy, which does not keep it."""
    if art.name is None or layout_of(art.path, art.name) == "flat":
        return None
    return directory_prefix(art.path, art.name)


def plan_analysis(local: Iterable[Artifact], remote: Iterable[Artifact],
                  options: AnalyzeOptions = AnalyzeOptions()) -> AnalysisPlan:
    """Decide hit or miss for every selected local task signature. Pure."""
    local = [a for a in local if a.name is not None]
    remote = [a for a in remote if a.name is not None]
    sstate_tasks = frozenset(a.task for a in (*local, *remote) if a.kind is Kind.ARCHIVE)
    remote_archives: Dict[Tuple[str, str, str], Dict[Optional[str], Artifact]] = {}
    for a in remote:
        if a.kind is Kind.ARCHIVE:
            remote_archives.setdefault(_identity(a), {}).setdefault(_prefix(a), a)
    remote_sigs: Dict[Tuple[str, str, str], Artifact] = {}
    by_group: Dict[Tuple[str, str, str], List[Artifact]] = {}
    for art in remote:
        if art.kind is Kind.SIGINFO:
            remote_sigs.setdefault(_identity(art), art)
            by_group.setdefault((art.pn, art.arch, art.task), []).append(art)
    for group in by_group.values():
        group.sort(key=lambda a: (-a.mtime, a.path))
    plan = AnalysisPlan(sstate_tasks=sstate_tasks)
    seen: Set[Tuple[str, str, str]] = set()
    for art in sorted(local, key=lambda a: (a.pn, a.task, a.arch, a.hash, a.path)):
        if art.kind is not Kind.SIGINFO or _identity(art) in seen:
            continue
        seen.add(_identity(art))
        if not options.selection.matches(art) or (
                options.tasks is not None and art.task not in options.tasks):
            plan.not_selected += 1
            continue
        sstate = art.task in sstate_tasks
        if not sstate and not options.all_tasks:
            plan.not_sstate += 1
            continue
        elsewhere: Optional[Artifact] = None
        if sstate:
            archives = remote_archives.get(_identity(art), {})
            prefix = _prefix(art)
            if prefix in archives or None in archives or (prefix is None and archives):
                plan.checks.append(TaskCheck(art, sstate, HIT))
                continue
            if archives:  # the same archive, below another prefix only
                elsewhere = archives[min(p for p in archives if p is not None)]
        elif _identity(art) in remote_sigs:
            plan.checks.append(TaskCheck(art, sstate, HIT))
            continue
        others = [c for c in by_group.get((art.pn, art.arch, art.task), [])
                  if c.hash != art.hash]
        plan.checks.append(TaskCheck(
            art, sstate, MISS, candidates=others[: max(0, options.max_candidates)],
            total_candidates=len(others), same_hash_siginfo=remote_sigs.get(_identity(art)),
            elsewhere=elsewhere))
    return plan


@dataclass
class TaskResult:
    """The outcome for one checked task."""

    check: TaskCheck
    candidate: Optional[Artifact] = None
    differences: Optional[int] = None
    examined: int = 0
    findings: List[Finding] = field(default_factory=list)
    diff: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.check.status

    @property
    def causes(self) -> List[Cause]:
        return [f.cause for f in self.findings]

    def to_dict(self, shorten: bool = False) -> Dict[str, Any]:
        art = self.check.siginfo
        return {
            "pn": art.pn,
            "arch": art.arch,
            "task": f"do_{art.task}",
            "hash": art.hash,
            "path": art.path,
            "sstate": self.check.sstate,
            "status": self.status,
            "candidate": None if self.candidate is None else {
                "path": self.candidate.path, "hash": self.candidate.hash,
                "differences": self.differences},
            "candidates_examined": self.examined,
            "candidates_total": self.check.total_candidates,
            "causes": [{**f.cause.to_dict(), "in": f.origin, "depth": f.distance}
                       for f in self.findings],
            "notes": list(self.notes),
            "diff": [shorten_hashes(line) if shorten else line for line in self.diff],
        }


@dataclass
class AnalysisReport:
    plan: AnalysisPlan
    results: List[TaskResult] = field(default_factory=list)
    root_causes: List[RootCause] = field(default_factory=list)
    errors: Dict[str, SstateMirrorError] = field(default_factory=dict)
    """Signature files that could not be used: name -> error."""

    @property
    def misses(self) -> List[TaskResult]:
        return [r for r in self.results if r.status == MISS]

    @property
    def hits(self) -> List[TaskResult]:
        return [r for r in self.results if r.status == HIT]

    @property
    def backend_errors(self) -> bool:
        return any(isinstance(e, BackendError) for e in self.errors.values())

    def to_dict(self, shorten: bool = False) -> Dict[str, Any]:
        return {
            "checked": len(self.results),
            "hits": len(self.hits),
            "misses": len(self.misses),
            "not_selected": self.plan.not_selected,
            "not_sstate": self.plan.not_sstate,
            "sstate_tasks": sorted(self.plan.sstate_tasks),
            "tasks": [r.to_dict(shorten) for r in self.results],
            "root_causes": [g.to_dict() for g in self.root_causes],
            "errors": [{"file": name, "error": str(err)}
                       for name, err in sorted(self.errors.items())],
        }


_LONG_HASH = re.compile(r"(?<![0-9a-f])([0-9a-f]{8})[0-9a-f]{56}(?![0-9a-f])")


def shorten_hashes(text: str) -> str:
    """64-hex hashes cut to their first 8 characters, as people compare them by eye."""
    return _LONG_HASH.sub(r"\1", text)


def execute_analysis(plan: AnalysisPlan, store: SignatureStore,
                     local: Iterable[Artifact], remote: Iterable[Artifact], *,
                     jobs: int, color: bool = False,
                     progress: Optional[Progress] = None) -> AnalysisReport:
    """Read what the misses need, explain each one, and group the causes."""
    progress = progress or Progress()
    report = AnalysisReport(plan)
    finder = UnionFinder(store, [(LOCAL, local), (MIRROR, remote)])
    misses = plan.misses
    store.prefetch([(LOCAL, c.siginfo.path) for c in misses]
                   + [(MIRROR, a.path) for c in misses for a in c.candidates],
                   jobs=jobs, progress=progress)
    results: List[TaskResult] = []
    pending: List[Tuple[TaskResult, Signature, Signature]] = []
    for check in plan.checks:
        result = TaskResult(check)
        results.append(result)
        if check.status == MISS:
            pair = _choose_candidate(result, store)
            if pair is not None:
                pending.append((result, *pair))
    graph = _explain(pending, store, finder, jobs=jobs, progress=progress)
    recursor = Recursor(finder, color=color)
    for result, old, new in pending:
        found = list(graph.findings(_root_node(result)))
        name_causes = _name_causes(result)
        for cause in name_causes:
            if cause not in [f.cause for f in found]:
                found.insert(0, Finding(cause, result.check.key, 0))
        result.findings = found
        if hash_equivalence_diverged(old, new):
            result.notes.append(
                f"the mirror has the same taskhash {new.taskhash} under unihash {old.unihash},"
                f" the local build used unihash {new.unihash}")
        else:
            result.diff = compare_signatures(old, new, recursor, color=color)
    report.results = results
    report.errors = {store.source_of(loc): err for loc, err in store.errors.items()}
    report.root_causes = group_root_causes(
        (r.check.task_id, r.findings) for r in results if r.status == MISS)
    return report


def _choose_candidate(result: TaskResult, store: SignatureStore
                      ) -> Optional[Tuple[Signature, Signature]]:
    """Pick the candidate with the fewest differences; record causes found without one."""
    check = result.check
    local = store.load((LOCAL, check.siginfo.path))
    if local is None:
        result.findings = [Finding(unreadable_cause(), check.key, 0)]
        return None
    if check.elsewhere is not None:
        result.candidate = check.elsewhere
        result.findings = [Finding(other_directory_cause(_prefix(check.elsewhere) or "",
                                                         _prefix(check.siginfo) or ""),
                                   check.key, 0)]
        return None
    if check.same_hash_siginfo is not None:
        result.candidate = check.same_hash_siginfo
        result.findings = [Finding(archive_missing_cause(), check.key, 0)]
        return None
    best: Optional[Tuple[int, Artifact, Signature]] = None
    for art in check.candidates:
        sig = store.load((MIRROR, art.path))
        if sig is None:
            continue
        result.examined += 1
        score = difference_score(sig, local)
        if best is None or score < best[0]:
            best = (score, art, sig)
    if best is None:
        result.findings = [Finding(no_candidate_cause(), check.key, 0)]
        if check.candidates:
            result.notes.append("no candidate signature on the mirror could be read")
        return None
    result.differences, result.candidate = best[0], best[1]
    return best[2], local


def _name_causes(result: TaskResult) -> List[Cause]:
    """PR and PV changes seen in the file names (they are in the hash too)."""
    causes: List[Cause] = []
    if result.candidate is None or result.candidate.name is None:
        return causes
    old, new = result.candidate.name, result.check.siginfo.name
    if new is None:
        return causes
    if old.pr != new.pr:
        causes.append(name_field_cause("PR", old.pr, new.pr))
    if old.pv != new.pv:
        causes.append(name_field_cause("PV", old.pv, new.pv))
    return causes


def _explain(pending: List[Tuple[TaskResult, Signature, Signature]], store: SignatureStore,
             finder: UnionFinder, *, jobs: int, progress: Progress) -> ExplanationGraph:
    """Build the explanation graph level by level, each level's files read in parallel."""
    graph = ExplanationGraph()
    frontier: List[NodeId] = []
    for result, old, new in pending:
        node = _root_node(result)
        if node in graph.nodes:
            continue
        causes, children = causes_at(old, new, result.check.key)
        graph.add(node, causes, children)
        frontier.extend(children)
    while frontier:
        todo = graph.missing(frontier)
        store.prefetch([loc for key, h1, h2 in todo
                        for loc in _first_locations(finder, key, h1, h2)],
                       jobs=jobs, progress=progress)
        frontier = []
        for key, h1, h2 in todo:
            old_sig, new_sig = finder.find(key, h1), finder.find(key, h2)
            if old_sig is None or new_sig is None:
                graph.add((key, h1, h2), [signature_missing_cause(key)])
                continue
            causes, children = causes_at(old_sig, new_sig, key)
            graph.add((key, h1, h2), causes, children)
            frontier.extend(children)
    return graph


def _root_node(result: TaskResult) -> NodeId:
    """A miss as a node of the graph: the names' hashes are the unihashes dependents see."""
    old = result.candidate.hash if result.candidate is not None else ""
    return (result.check.key, old, result.check.hash)


def _first_locations(finder: UnionFinder, key: str, h1: str, h2: str) -> List[Location]:
    out: List[Location] = []
    for h in (h1, h2):
        locations = finder.locations(key, h)
        if locations:
            out.append(locations[0])
    return out
