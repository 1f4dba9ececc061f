"""``upload``: copy what the mirror lacks from a local sstate cache, companions first.

Plan: every archive, ``.siginfo`` and ``.sig`` under SOURCE (after ``--filter``/``--arch``)
whose path is missing on the mirror, or present with a different size (a truncated copy left
by an interrupted upload of another tool), is to be sent. Temporary, partial and unknown files
are never sent; they are reported as skipped (``hashserv.db*``, the hash equivalence database
bitbake-setup keeps in SSTATE_DIR, under a reason of its own).

Execute: all companions first, then the archives, each through the backend's atomic put. An
archive whose companion failed to upload is held back (a mirror must never offer an archive
whose signature is missing), and reported as failed. The source is only ever read.

Use is recorded on the way: the groups this build used — with a local copy that bitbake wrote
or refreshed within ``--used-within`` (it refreshes local sstate files on every hit) — are
marked on the mirror, so that ``clean --max-age`` keeps what builds still use. Nothing is
re-sent for that, and the marks cost as little as the store allows (:mod:`.usemark`): one
file per group, and only for groups whose last use on the mirror, read from the listing this
plan makes anyway, is older than ``--refresh-interval``. A group the upload sends a file of
needs no mark: the new file is one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..backends.base import Backend
from ..errors import BackendError, PermanentError
from ..naming import Artifact, Kind, group_artifacts, group_key, is_hashserv_database
from ..transfer import Progress, TransferInterrupted, batched, run_parallel
from .cleanlease import clean_may_have_run, list_leases
from .listing import EVERYTHING, Selection, list_artifacts, remote_artifacts
from .usemark import plan_marks


@dataclass(frozen=True)
class Transfer:
    """One file to send; ``remote_size`` is set when it replaces a differing copy."""

    artifact: Artifact
    remote_size: Optional[int] = None

    @property
    def path(self) -> str:
        return self.artifact.path

    @property
    def size(self) -> int:
        return self.artifact.size


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class UploadPlan:
    companions: List[Transfer] = field(default_factory=list)
    archives: List[Transfer] = field(default_factory=list)
    touches: List[str] = field(default_factory=list)
    """Mirror paths to mark as used: one per used group whose mark on the mirror is stale."""
    fresh_groups: int = 0
    """Used groups the mirror already knows as recently used: not marked again."""
    present: int = 0
    present_bytes: int = 0
    not_selected: int = 0
    skipped: List[Skipped] = field(default_factory=list)

    @property
    def transfers(self) -> List[Transfer]:
        """In execution order: companions, then archives."""
        return self.companions + self.archives

    @property
    def bytes_to_send(self) -> int:
        return sum(t.size for t in self.transfers)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "to_upload": [
                {"path": t.path, "size": t.size, "kind": t.artifact.kind.value,
                 "replaces_size": t.remote_size}
                for t in self.transfers
            ],
            "files_to_upload": len(self.transfers),
            "bytes_to_upload": self.bytes_to_send,
            "to_touch": list(self.touches),
            "used_groups_fresh": self.fresh_groups,
            "already_present": self.present,
            "already_present_bytes": self.present_bytes,
            "not_selected": self.not_selected,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
        }


#: What upload ever sends (and so what a planner needs to know about on the mirror).
SENDABLE = frozenset({Kind.ARCHIVE, Kind.SIGINFO, Kind.SIG})

#: Why ``hashserv.db*`` is skipped: named apart, since bitbake-setup puts it in SSTATE_DIR.
HASHSERV_DB_REASON = "hash equivalence database (never uploaded)"

_SKIP_REASONS = {
    Kind.TEMP: "temporary or partial file",
    Kind.UNKNOWN: "not an sstate file",
    Kind.META: "the mirror's own data (pins are made with 'pin', never copied)",
}


def plan_upload(
    local: Iterable[Artifact],
    remote: Mapping[str, Artifact],
    selection: Selection = EVERYTHING,
    *,
    now: float = 0.0,
    used_within: Optional[float] = None,
    refresh_after: float = 0.0,
    touch_cost: str = "flat",
    uploading: bool = True,
) -> UploadPlan:
    """What to send from ``local`` to a mirror that holds ``remote`` (path -> its artifact).

    With ``used_within`` (seconds), also what to mark as used: for each selected group whose
    newest local file is at most that old at ``now``, one member on the mirror if the
    group's last use there is more than ``refresh_after`` ago (see :func:`.usemark.
    plan_marks`; ``touch_cost`` is the store's). With ``uploading``, a group that gets a file
    sent needs no mark. Pure: no I/O, no hidden clock. ``remote`` may hold only the paths
    that were probed.
    """
    plan = UploadPlan()
    local = list(local)
    sent_groups = set()
    # the companions of an archive that is sent are sent with it, even when the mirror has
    # them: a clean running now may be about to delete them (it deleted the archive)
    resent_groups = {a.group_key for a in local
                     if a.kind is Kind.ARCHIVE and selection.matches(a)
                     and (remote[a.path].size if a.path in remote else None) != a.size}
    for art in sorted(local, key=lambda a: a.path):
        if art.kind in _SKIP_REASONS:
            reason = (HASHSERV_DB_REASON if is_hashserv_database(art.path)
                      else _SKIP_REASONS[art.kind])
            plan.skipped.append(Skipped(art.path, reason))
            continue
        if not selection.matches(art):
            plan.not_selected += 1
            continue
        mirror_copy = remote.get(art.path)
        remote_size = mirror_copy.size if mirror_copy is not None else None
        if remote_size == art.size and (art.kind is Kind.ARCHIVE
                                        or art.group_key not in resent_groups):
            plan.present += 1
            plan.present_bytes += art.size
            continue
        transfer = Transfer(art, remote_size)
        sent_groups.add(art.group_key)
        if art.kind is Kind.ARCHIVE:
            plan.archives.append(transfer)
        else:
            plan.companions.append(transfer)
    if used_within is None:
        return plan
    used = {group.key for group in group_artifacts(local).values()
            if now - group.last_used <= used_within and selection.matches(group.members()[0])}
    if uploading:
        used -= sent_groups
    mirror = group_artifacts(a for a in remote.values() if a.group_key in used)
    marks = plan_marks(used, mirror, now=now, refresh_after=refresh_after,
                       touch_cost=touch_cost)
    plan.touches = marks.marks
    plan.fresh_groups = marks.fresh
    return plan


@dataclass
class SourceListing:
    """A cache's files, and those its listing passed over (dangling links, loops)."""

    artifacts: Sequence[Artifact]
    skipped: List[Skipped]


def list_source(source: Backend, progress: Optional[Progress] = None) -> SourceListing:
    skipped: List[Skipped] = []
    local = list_artifacts(source, progress=progress,
                           on_skip=lambda p, why: skipped.append(Skipped(p, why)))
    return SourceListing(local, skipped)


def plan_against_mirror(
    source: Backend,
    target: Backend,
    selection: Selection,
    *,
    now: float,
    used_within: Optional[float],
    jobs: int,
    refresh_after: float = 0.0,
    uploading: bool = True,
    mirror_exists: bool = True,
    progress: Optional[Progress] = None,
    listing: Optional[SourceListing] = None,
) -> UploadPlan:
    """List the cache (unless ``listing`` has it), learn what the mirror holds of it, and
    plan (upload and marks).

    Files the cache listing passes over (dangling links, loops) are in ``plan.skipped``.
    """
    if listing is None:
        listing = list_source(source, progress)
    local, skipped = listing.artifacts, listing.skipped
    wanted = [a for a in local if a.kind in SENDABLE and selection.matches(a)]
    remote = (remote_artifacts(target, wanted, jobs=jobs, progress=progress)
              if mirror_exists else {})
    plan = plan_upload(local, remote, selection, now=now, used_within=used_within,
                       refresh_after=refresh_after, touch_cost=target.properties.touch_cost,
                       uploading=uploading)
    plan.skipped.extend(skipped)
    return plan


@dataclass
class UploadResult:
    uploaded: int = 0
    uploaded_bytes: int = 0
    touched: int = 0
    failed: Dict[str, BackendError] = field(default_factory=dict)
    touch_failed: Dict[str, BackendError] = field(default_factory=dict)
    interrupted: bool = False
    """Ctrl-C: in-flight files were finished, the rest was not started."""

    def to_dict(self) -> Dict[str, Any]:
        return {
            "interrupted": self.interrupted,
            "uploaded": self.uploaded,
            "uploaded_bytes": self.uploaded_bytes,
            "touched": self.touched,
            "failed": {path: str(err) for path, err in sorted(self.failed.items())},
            "touch_failed": {p: str(e) for p, e in sorted(self.touch_failed.items())},
        }


def execute_upload(
    plan: UploadPlan,
    source: Backend,
    target: Backend,
    *,
    jobs: int,
    retries: int = 2,
    progress: Optional[Progress] = None,
) -> UploadResult:
    """Send the plan's files: companions, then archives whose companions all arrived."""
    progress = progress or Progress()
    result = UploadResult()
    # the cleans that announced themselves before the first companion is sent (see
    # companions_gone); only needed when archives are sent
    leases_before = list_leases(target) if plan.archives else None
    started = time.monotonic()

    def send(t: Transfer) -> None:
        with source.open(t.path) as stream:
            target.put(t.path, stream, t.size)

    def run_phase(name: str, transfers: List[Transfer]) -> List[Transfer]:
        """Send ``transfers``; return the ones that arrived."""
        if not transfers:
            return []
        progress.phase(name, len(transfers), sum(t.size for t in transfers))
        try:
            failures = run_parallel(
                transfers, send, jobs=jobs, describe=lambda t: t.path, weight=lambda t: t.size,
                progress=progress, retries=retries,
            )
            done = set(range(len(transfers)))
        except TransferInterrupted as stop:
            failures, done = stop.failures, stop.done
            result.interrupted = True
        progress.done()
        arrived = []
        for i, t in enumerate(transfers):
            if i in failures:
                result.failed[t.path] = failures[i]
            elif i in done:
                result.uploaded += 1
                result.uploaded_bytes += t.size
                arrived.append(t)
        return arrived

    run_phase("uploading signatures", plan.companions)
    if result.interrupted:
        return result
    failed_groups = {group_key(p) for p in result.failed}
    archives = []
    for t in plan.archives:
        if t.artifact.group_key in failed_groups:
            result.failed[t.path] = PermanentError(
                f"{t.path}: not uploaded because its .siginfo/.sig failed to upload",
                path=t.path,
            )
        else:
            archives.append(t)
    sent = run_phase("uploading archives", archives)
    if sent and not result.interrupted and clean_may_have_run(
            leases_before, list_leases(target), now=time.time(),
            elapsed=time.monotonic() - started):
        gone = companions_gone(plan, sent, target, result, jobs=jobs, retries=retries,
                               progress=progress)
        run_phase("sending signatures a clean removed meanwhile", gone)
    if plan.touches and not result.interrupted:
        touched, failed = execute_touch(plan.touches, target, jobs=jobs, retries=retries,
                                        progress=progress)
        result.touched = touched
        result.touch_failed = failed
    return result


def companions_gone(plan: UploadPlan, sent: List[Transfer], target: Backend,
                    result: UploadResult, *, jobs: int, retries: int,
                    progress: Progress) -> List[Transfer]:
    """The companions of the archives just sent that are no longer on the mirror.

    A clean running at the same time may have deleted them after they were sent (it deletes
    an archive, then its signatures, then checks the archive again). Checking *after* the
    archive arrived closes the race from this side: either this check sees the signature
    gone and sends it again, or the clean's check sees the archive and deletes it again; no
    archive stays without its signature (docs/reliability.md).

    Called only when a clean may have run meanwhile (:mod:`.cleanlease`: each clean
    announces itself on the mirror, and the upload lists those announcements before its
    first companion and after its archives, two requests instead of one per companion).
    """
    groups = {t.artifact.group_key for t in sent}
    companions = [t for t in plan.companions
                  if t.artifact.group_key in groups and t.path not in result.failed]
    if not companions:
        return []
    present: Dict[str, int] = {}

    def probe(t: Transfer) -> None:
        entry = target.stat(t.path)
        if entry is not None:
            present[t.path] = entry.size

    progress.phase("confirming the signatures of the archives sent", len(companions))
    failures = run_parallel(companions, probe, jobs=jobs, retries=retries,
                            describe=lambda t: f"check {t.path}", progress=progress)
    progress.done()
    for index, error in failures.items():
        result.failed[companions[index].path] = error
    return [t for i, t in enumerate(companions)
            if i not in failures and present.get(t.path) != t.size]


#: Paths per touch() call: small, because stores touch one object per request.
TOUCH_BATCH = 16


def execute_touch(
    paths: List[str],
    target: Backend,
    *,
    jobs: int,
    retries: int = 2,
    progress: Optional[Progress] = None,
) -> Tuple[int, Dict[str, BackendError]]:
    """Mark ``paths`` as used now; return how many were touched and the failures."""
    progress = progress or Progress()
    failed: Dict[str, BackendError] = {}
    batches = batched(paths, TOUCH_BATCH)
    progress.phase("marking as used", len(paths))

    def touch(batch: List[str]) -> None:
        errors = target.touch(batch)
        failed.update(errors)
        progress.advance(len(batch) - len(errors))

    errors = run_parallel(batches, touch, jobs=jobs, describe=lambda b: f"touch {b[0]}",
                          retries=retries)
    for index, error in errors.items():
        for path in batches[index]:
            failed.setdefault(path, error)
    progress.done()
    return len(paths) - len(failed), failed

