"""``clean``: delete what a mirror no longer needs, decided by a pure plan.

The unit of retention is the artifact *group*: an archive with its ``.siginfo`` and ``.sig``.
A group's *last use* is the newest mtime of its members — the upload, or the last ``touch``
by ``upload``/``touch`` of a build that used it — and, on a directory mirror, the access time
of its ``.siginfo``, which bitbake itself updates when it uses the mirror.

Rules, in the order they are applied (each deletion records the rule that chose it):

``max-age``
    a group whose last use is at least ``--max-age`` ago goes: the archive by this rule,
``with-archive``
    its ``.siginfo`` and ``.sig`` with it.
``max-sig-age``
    a task signature with no archive (tasks that are not sstate tasks: compile, configure...)
    at least ``--max-sig-age`` old (default and minimum: ``--max-age``).
``orphan-siginfo``
    the signature of an sstate task whose archive is gone, at least ``--max-sig-age`` old.
``orphan-sig``
    a ``.sig`` whose archive is gone.
``max-versions``
    beyond the ``--max-versions`` most recently used hashes of one (recipe, arch, task).
``max-size``
    least recently used groups first, until the mirror fits in ``--max-size``.
``stale-temp``
    temporary and partial files (interrupted uploads, ``sigtask.*``) older than a day.

A group whose hash a live pin (``sstate-mirror pin``) or a ``--keep`` set names is never
deleted, whatever the rule: the plan reports it as *pinned* with the rule that would have
taken it, and ``--max-size`` counts its bytes without evicting them.

Groups used within ``--min-age`` (default an hour) are never chosen by any rule but
``stale-temp``: they may belong to an upload or a build running right now. So ``--max-age 0s``
deletes what was not used for ``--min-age``, not what a build used seconds ago; going below
takes an explicit ``--min-age``.

A ``.siginfo`` or ``.sig`` whose archive stays, stays (isar-sstate deleted old signatures of
live archives, which only breaks ``analyze`` and consumers that verify signatures). Unknown
files are never deleted. Execution deletes archives before their companions, so an interrupted
clean can leave a signature without archive (removed by a later run as an orphan) but never an
archive without its signature.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

from ..backends.base import Backend
from ..errors import BackendError, UsageError
from ..naming import Artifact, Group, Kind, group_artifacts
from ..transfer import Progress, TransferInterrupted, batched, run_parallel
from .cleanlease import CleanLease
from .listing import remote_artifacts
from .pins import PinSet

DEFAULT_TEMP_AGE = 86400
DEFAULT_MIN_AGE = 3600

#: rule -> what it means, for reports and --help
RULES: Dict[str, str] = {
    "max-age": "archive not used for --max-age",
    "with-archive": "signature of an archive that goes",
    "max-sig-age": "task signature without archive older than --max-sig-age",
    "orphan-siginfo": "signature of an sstate task whose archive is gone",
    "orphan-sig": ".sig whose archive is gone",
    "max-versions": "older than the --max-versions most recently used hashes",
    "max-size": "least recently used, evicted to fit --max-size",
    "stale-temp": "temporary file of an interrupted upload",
}


@dataclass(frozen=True)
class CleanOptions:
    max_age: Optional[int] = None
    max_sig_age: Optional[int] = None
    max_size: Optional[int] = None
    max_versions: Optional[int] = None
    min_age: int = DEFAULT_MIN_AGE
    temp_age: int = DEFAULT_TEMP_AGE

    def __post_init__(self) -> None:
        if self.max_age is None and self.max_size is None and self.max_versions is None:
            raise UsageError("say what to clean: --max-age, --max-size and/or --max-versions")
        for name in ("max_age", "max_sig_age", "max_size", "min_age", "temp_age"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"--{name.replace('_', '-')} must not be negative")
        if self.max_versions is not None and self.max_versions < 1:
            raise UsageError("--max-versions must be at least 1")
        if (self.max_sig_age is not None and self.max_age is not None
                and self.max_sig_age < self.max_age):
            raise UsageError(
                "--max-sig-age may not be smaller than --max-age: signatures are kept at"
                " least as long as the archives they describe"
            )

    @property
    def effective_max_sig_age(self) -> Optional[int]:
        return self.max_age if self.max_sig_age is None else self.max_sig_age


@dataclass(frozen=True)
class Deletion:
    artifact: Artifact
    rule: str

    @property
    def path(self) -> str:
        return self.artifact.path


@dataclass
class CleanPlan:
    deletions: List[Deletion] = field(default_factory=list)
    kept: int = 0
    kept_bytes: int = 0
    unknown: List[Artifact] = field(default_factory=list)
    counts: Dict[str, int] = field(default_factory=dict)
    size_before: int = 0
    max_size: Optional[int] = None
    protected_bytes: int = 0
    """Bytes the size rule could not evict because they were used within --min-age."""
    versions_protected: int = 0
    """Hashes beyond --max-versions kept because they were used within --min-age."""
    pinned: List[Spared] = field(default_factory=list)
    """Files a rule would have deleted, kept because a pin or --keep names their group."""
    pinned_bytes: int = 0
    """Bytes of every pinned group on the mirror (what pins alone keep)."""

    @property
    def bytes_to_free(self) -> int:
        return sum(d.artifact.size for d in self.deletions)

    @property
    def size_after(self) -> int:
        return self.size_before - self.bytes_to_free

    @property
    def budget_unmet(self) -> bool:
        return self.max_size is not None and self.size_after > self.max_size

    def by_rule(self) -> Dict[str, Dict[str, int]]:
        out: Dict[str, Dict[str, int]] = {}
        for d in self.deletions:
            slot = out.setdefault(d.rule, {"files": 0, "bytes": 0})
            slot["files"] += 1
            slot["bytes"] += d.artifact.size
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {
            "to_delete": [
                {"path": d.path, "size": d.artifact.size, "kind": d.artifact.kind.value,
                 "rule": d.rule, "mtime": d.artifact.mtime}
                for d in self.deletions
            ],
            "files_to_delete": len(self.deletions),
            "bytes_to_free": self.bytes_to_free,
            "by_rule": self.by_rule(),
            "kept": self.kept,
            "kept_bytes": self.kept_bytes,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "max_size": self.max_size,
            "budget_unmet": self.budget_unmet,
            "protected_bytes": self.protected_bytes,
            "versions_protected": self.versions_protected,
            "pinned": [{"path": p.path, "rule": p.rule, "pin": p.pin} for p in self.pinned],
            "pinned_bytes": self.pinned_bytes,
            "unknown_files": [a.path for a in self.unknown],
            "scanned": self.counts,
        }


@dataclass(frozen=True)
class Spared:
    """A file a rule chose, kept by the pin (or ``--keep`` set) named ``pin``."""

    artifact: Artifact
    rule: str
    pin: str

    @property
    def path(self) -> str:
        return self.artifact.path


class _Chooser:
    """Collects deletions; the first rule that picks a file is the one reported.

    Files of a pinned group are never chosen: they are noted as spared instead.
    """

    def __init__(self, pinned: Optional[Dict[str, str]] = None) -> None:
        self.chosen: Dict[str, Deletion] = {}
        self.pinned = pinned or {}
        self.spared: Dict[str, Spared] = {}

    def file(self, art: Artifact, rule: str) -> None:
        pin = self.pinned.get(art.group_key) if self.pinned else None
        if pin is not None:
            self.spared.setdefault(art.path, Spared(art, rule, pin))
        elif art.path not in self.chosen:
            self.chosen[art.path] = Deletion(art, rule)

    def group(self, group: Group, rule: str) -> None:
        if group.archive is None:
            for member in group.members():
                self.file(member, rule)
            return
        self.file(group.archive, rule)
        for companion in (group.siginfo, group.sig):
            if companion is not None:
                self.file(companion, "with-archive")

    def remaining(self, group: Group) -> int:
        return sum(m.size for m in group.members() if m.path not in self.chosen)

    def gone(self, group: Group) -> bool:
        return all(m.path in self.chosen for m in group.members())


def plan_clean(artifacts: Iterable[Artifact], options: CleanOptions, now: float,
               pins: Optional[PinSet] = None) -> CleanPlan:
    """Decide what to delete. Pure: the listing, the options, ``now`` and the mirror's pins
    are all it sees."""
    arts = list(artifacts)
    plan = CleanPlan(max_size=options.max_size)
    for art in arts:
        plan.counts[art.kind.value] = plan.counts.get(art.kind.value, 0) + 1
        plan.size_before += art.size
    groups = sorted(group_artifacts(arts).values(), key=lambda g: g.key)
    sstate_tasks = {g.archive.task for g in groups if g.archive is not None}
    pinned = _pinned_groups(groups, pins)
    plan.pinned_bytes = sum(g.size for g in groups if g.key in pinned)
    pick = _Chooser(pinned)

    def age(g: Group) -> float:
        return max(0.0, now - g.last_used)

    def protected(g: Group) -> bool:
        return age(g) < options.min_age

    if options.max_age is not None:
        for g in groups:
            if g.archive is not None and age(g) >= options.max_age and not protected(g):
                pick.group(g, "max-age")

    sig_age = options.effective_max_sig_age
    for g in groups:
        if g.archive is not None:
            continue
        if g.sig is not None and not protected(g):
            pick.file(g.sig, "orphan-sig")
        if (g.siginfo is not None and sig_age is not None and age(g) >= sig_age
                and not protected(g)):
            orphan = g.siginfo.task in sstate_tasks
            pick.file(g.siginfo, "orphan-siginfo" if orphan else "max-sig-age")

    if options.max_versions is not None:
        versions: Dict[Tuple[str, str, str], List[Group]] = {}
        for g in groups:
            if g.archive is not None and not pick.gone(g):
                key = (g.archive.pn, g.archive.arch, g.archive.task)
                versions.setdefault(key, []).append(g)
        for same in versions.values():
            same.sort(key=lambda g: (-g.last_used, g.key))
            for g in same[options.max_versions:]:
                if not protected(g):
                    pick.group(g, "max-versions")
                else:
                    plan.versions_protected += 1

    for art in arts:
        if art.kind is Kind.TEMP and art.age(now) >= options.temp_age:
            pick.file(art, "stale-temp")
        elif art.kind is Kind.UNKNOWN:
            plan.unknown.append(art)

    if options.max_size is not None:
        size = plan.size_before - sum(d.artifact.size for d in pick.chosen.values())
        for g in sorted(groups, key=lambda g: (g.last_used, g.key)):
            if size <= options.max_size:
                break
            left = pick.remaining(g)
            if left == 0:
                continue
            if g.key in pinned:
                pick.group(g, "max-size")  # noted as spared, not chosen
                continue
            if protected(g):
                plan.protected_bytes += left
                continue
            pick.group(g, "max-size")
            size -= left

    # archives first: an interrupted run must not leave an archive without its signature
    order = {Kind.ARCHIVE: 0, Kind.SIGINFO: 1, Kind.SIG: 1, Kind.TEMP: 2, Kind.UNKNOWN: 3}
    plan.deletions = sorted(pick.chosen.values(),
                            key=lambda d: (order[d.artifact.kind], d.path))
    plan.pinned = sorted(pick.spared.values(), key=lambda p: p.path)
    for art in arts:
        if art.path not in pick.chosen:
            plan.kept += 1
            plan.kept_bytes += art.size
    return plan


def _pinned_groups(groups: Iterable[Group], pins: Optional[PinSet]) -> Dict[str, str]:
    """Group key -> the pin that keeps it."""
    if pins is None or not pins.keep:
        return {}
    out: Dict[str, str] = {}
    for g in groups:
        pin = pins.protecting(g)
        if pin is not None:
            out[g.key] = pin
    return out


def spare_pinned(plan: CleanPlan, pins: PinSet) -> List[Spared]:
    """Drop from ``plan`` the deletions of groups ``pins`` keep (pins read again just before
    deleting: a pin made while the clean was planning); the files spared that way."""
    keep: List[Deletion] = []
    spared: List[Spared] = []
    for d in plan.deletions:
        pin = pins.keep.get(d.artifact.hash) if d.artifact.name is not None else None
        if pin is None or d.artifact.kind not in (Kind.ARCHIVE, Kind.SIGINFO, Kind.SIG):
            keep.append(d)
        else:
            spared.append(Spared(d.artifact, d.rule, pin))
    plan.deletions = keep
    plan.pinned.extend(spared)
    plan.kept += len(spared)
    plan.kept_bytes += sum(s.artifact.size for s in spared)
    return spared


@dataclass
class CleanResult:
    deleted: int = 0
    freed_bytes: int = 0
    failed: Dict[str, BackendError] = field(default_factory=dict)
    interrupted: bool = False
    """Ctrl-C: batches in flight were finished, the rest was not started."""
    deleted_again: List[str] = field(default_factory=list)
    """Archives an upload sent again during the clean, deleted again with their signatures."""

    def to_dict(self) -> Dict[str, Any]:
        return {
            "interrupted": self.interrupted,
            "deleted": self.deleted,
            "freed_bytes": self.freed_bytes,
            "failed": {p: str(e) for p, e in sorted(self.failed.items())},
            "deleted_again": sorted(self.deleted_again),
        }


def execute_clean(
    plan: CleanPlan,
    target: Backend,
    *,
    jobs: int,
    retries: int = 2,
    progress: Optional[Progress] = None,
) -> CleanResult:
    """Delete the plan's files in batches: archives first, then everything else.

    The run announces itself on the mirror first (:mod:`.cleanlease`: uploads check their
    signatures only when a clean ran next to them) and records its end last.
    """
    progress = progress or Progress()
    result = CleanResult()
    if not plan.deletions:
        return result
    lease = CleanLease(target)
    lease.start()
    try:
        _delete_all(plan, target, result, lease, jobs=jobs, retries=retries,
                    progress=progress)
    finally:
        lease.end()
    return result


def _delete_all(plan: CleanPlan, target: Backend, result: CleanResult, lease: CleanLease, *,
                jobs: int, retries: int, progress: Progress) -> None:
    archives = [d for d in plan.deletions if d.artifact.kind is Kind.ARCHIVE]
    others = [d for d in plan.deletions if d.artifact.kind is not Kind.ARCHIVE]
    failed_archive_groups: set[str] = set()
    gone: Set[str] = set()
    for name, deletions in (("deleting archives", archives), ("deleting the rest", others)):
        if name == "deleting the rest" and failed_archive_groups:
            # an archive that could not be deleted keeps its companions
            deletions = [d for d in deletions
                         if d.artifact.group_key not in failed_archive_groups]
        if not deletions:
            continue
        batches = batched(deletions, target.properties.delete_batch)
        progress.phase(name, len(deletions), sum(d.artifact.size for d in deletions))
        lost: Dict[str, BackendError] = {}

        def delete_batch(batch: List[Deletion], lost: Dict[str, BackendError] = lost) -> None:
            lease.keep_alive()
            failures = target.delete([d.path for d in batch])
            lost.update(failures)
            progress.advance(len(batch) - len(failures),
                             sum(d.artifact.size for d in batch if d.path not in failures))

        not_started: Set[int] = set()
        try:
            errors = run_parallel(batches, delete_batch, jobs=jobs,
                                  describe=lambda b: f"delete batch starting at {b[0].path}",
                                  retries=retries)
        except TransferInterrupted as stop:
            errors = stop.failures
            not_started = set(range(len(batches))) - stop.done - set(errors)
            result.interrupted = True
        skipped = {d.path for i in not_started for d in batches[i]}
        for index, error in errors.items():
            for d in batches[index]:
                lost.setdefault(d.path, error)
        progress.done()
        for d in deletions:
            if d.path in skipped:
                continue
            if d.path in lost:
                result.failed[d.path] = lost[d.path]
                if d.artifact.kind is Kind.ARCHIVE:
                    failed_archive_groups.add(d.artifact.group_key)
            else:
                result.deleted += 1
                result.freed_bytes += d.artifact.size
                gone.add(d.path)
        if result.interrupted:
            break  # an archive's companions stay when the archive's deletion did not run
    if not result.interrupted:
        _delete_returned_archives(archives, others, gone, target, result, lease, jobs=jobs,
                                  progress=progress)


def _delete_returned_archives(archives: List[Deletion], others: List[Deletion], gone: Set[str],
                              target: Backend, result: CleanResult, lease: CleanLease, *,
                              jobs: int, progress: Progress) -> None:
    """Delete again the archives an upload sent back while their signatures were deleted.

    An upload that listed the mirror after this clean deleted an archive sends the archive
    again (and its companions first); if this clean then deleted the companions, the archive
    would stay without its signature. So the archives whose companions were deleted are
    looked for once more, *after* those deletions (one listing, or a stat each when that is
    fewer requests), and deleted again when they are back. The upload checks its companions
    after sending the archive, so one side always sees the other: see docs/reliability.md.
    """
    companions_gone = {d.artifact.group_key for d in others if d.path in gone}
    check = [d.artifact for d in archives
             if d.path in gone and d.artifact.group_key in companions_gone]
    if not check:
        return
    try:
        back = remote_artifacts(target, check, jobs=jobs, progress=progress)
    except BackendError as exc:
        for art in check:
            result.failed[art.path] = exc
        return
    returned = [art.path for art in check if art.path in back]
    if not returned:
        return
    progress.phase("deleting archives an upload sent again", len(returned))
    for batch in batched(returned, target.properties.delete_batch):
        lease.keep_alive()
        failures = target.delete(batch)
        result.failed.update(failures)
        result.deleted_again += [p for p in batch if p not in failures]
        progress.advance(len(batch) - len(failures))
    progress.done()
