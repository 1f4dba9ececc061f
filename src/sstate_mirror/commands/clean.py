"""``clean``: delete what a mirror no longer needs, decided by a pure plan.

Rules (each deletion records the rule that chose it):

``max-age``
    an archive whose age (time since its mtime: upload, or last recorded use) is at least
    ``--max-age`` goes.
``with-archive``
    the ``.siginfo`` and ``.sig`` of an archive that goes, go with it.
``max-sig-age``
    a ``.siginfo`` with no archive on the mirror (the signature of a task that is not an
    sstate task, or of a deleted archive) goes when at least ``--max-sig-age`` old.
    ``--max-sig-age`` defaults to ``--max-age`` and may not be smaller: signatures are kept
    at least as long as archives, so that ``analyze`` can explain misses.
``stale-temp``
    temporary and partial files (interrupted uploads, ``sigtask.*``) older than a day.

Deliberate refinement of isar-sstate's rule "siginfo older than max-sig-age goes": a
``.siginfo`` or ``.sig`` whose archive stays, stays. Deleting the signature of a live archive
would only break ``analyze`` and the GPG check of consumers that verify signatures.

Unknown files are never deleted. Execution deletes archives before their companions, so an
interrupted clean can leave a signature without archive (removed by the next run) but never
an archive without its signature.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..backends.base import Backend
from ..errors import BackendError, UsageError
from ..naming import Artifact, Kind, group_artifacts
from ..transfer import Progress, batched, run_parallel

DEFAULT_TEMP_AGE = 86400


@dataclass(frozen=True)
class CleanOptions:
    max_age: int
    max_sig_age: Optional[int] = None
    temp_age: int = DEFAULT_TEMP_AGE

    def __post_init__(self) -> None:
        if self.max_age < 0:
            raise UsageError("--max-age must not be negative")
        if self.max_sig_age is not None and self.max_sig_age < self.max_age:
            raise UsageError(
                "--max-sig-age may not be smaller than --max-age: signatures are kept at"
                " least as long as the archives they describe"
            )

    @property
    def effective_max_sig_age(self) -> int:
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

    @property
    def bytes_to_free(self) -> int:
        return sum(d.artifact.size for d in self.deletions)

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
                 "rule": d.rule}
                for d in self.deletions
            ],
            "files_to_delete": len(self.deletions),
            "bytes_to_free": self.bytes_to_free,
            "by_rule": self.by_rule(),
            "kept": self.kept,
            "kept_bytes": self.kept_bytes,
            "unknown_files": [a.path for a in self.unknown],
            "scanned": self.counts,
        }


def plan_clean(artifacts: Iterable[Artifact], options: CleanOptions, now: float) -> CleanPlan:
    """Decide what to delete. Pure: the listing, the options and ``now`` are all it sees."""
    arts = list(artifacts)
    plan = CleanPlan()
    for art in arts:
        plan.counts[art.kind.value] = plan.counts.get(art.kind.value, 0) + 1
    chosen: Dict[str, Deletion] = {}

    def choose(art: Artifact, rule: str) -> None:
        if art.path not in chosen:
            chosen[art.path] = Deletion(art, rule)

    sig_age = options.effective_max_sig_age
    for group in group_artifacts(arts).values():
        archive = group.archive
        if archive is not None:
            if archive.age(now) >= options.max_age:
                choose(archive, "max-age")
                for companion in (group.siginfo, group.sig):
                    if companion is not None:
                        choose(companion, "with-archive")
            continue
        if group.siginfo is not None and group.siginfo.age(now) >= sig_age:
            choose(group.siginfo, "max-sig-age")
    for art in arts:
        if art.kind is Kind.TEMP and art.age(now) >= options.temp_age:
            choose(art, "stale-temp")
        elif art.kind is Kind.UNKNOWN:
            plan.unknown.append(art)
    # archives first: an interrupted run must not leave an archive without its signature
    order = {Kind.ARCHIVE: 0, Kind.SIGINFO: 1, Kind.SIG: 1, Kind.TEMP: 2, Kind.UNKNOWN: 3}
    plan.deletions = sorted(chosen.values(), key=lambda d: (order[d.artifact.kind], d.path))
    for art in arts:
        if art.path not in chosen:
            plan.kept += 1
            plan.kept_bytes += art.size
    return plan


@dataclass
class CleanResult:
    deleted: int = 0
    freed_bytes: int = 0
    failed: Dict[str, BackendError] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "deleted": self.deleted,
            "freed_bytes": self.freed_bytes,
            "failed": {p: str(e) for p, e in sorted(self.failed.items())},
        }


def execute_clean(
    plan: CleanPlan,
    target: Backend,
    *,
    jobs: int,
    retries: int = 2,
    progress: Optional[Progress] = None,
) -> CleanResult:
    """Delete the plan's files in batches: archives first, then everything else."""
    progress = progress or Progress()
    result = CleanResult()
    archives = [d for d in plan.deletions if d.artifact.kind is Kind.ARCHIVE]
    others = [d for d in plan.deletions if d.artifact.kind is not Kind.ARCHIVE]
    failed_archive_groups: set[str] = set()
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
            failures = target.delete([d.path for d in batch])
            lost.update(failures)
            progress.advance(len(batch) - len(failures),
                             sum(d.artifact.size for d in batch if d.path not in failures))

        errors = run_parallel(batches, delete_batch, jobs=jobs,
                              describe=lambda b: f"delete batch starting at {b[0].path}",
                              retries=retries)
        for index, error in errors.items():
            for d in batches[index]:
                lost.setdefault(d.path, error)
        progress.done()
        for d in deletions:
            if d.path in lost:
                result.failed[d.path] = lost[d.path]
                if d.artifact.kind is Kind.ARCHIVE:
                    failed_archive_groups.add(d.artifact.group_key)
            else:
                result.deleted += 1
                result.freed_bytes += d.artifact.size
    return result
