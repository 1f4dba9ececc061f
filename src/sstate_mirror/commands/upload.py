"""``upload``: copy what the mirror lacks from a local sstate cache, companions first.

Plan: every archive, ``.siginfo`` and ``.sig`` under SOURCE (after ``--filter``/``--arch``)
whose path is missing on the mirror, or present with a different size (a truncated copy left
by an interrupted upload of another tool), is to be sent. Temporary, partial and unknown files
are never sent; they are reported as skipped.

Execute: all companions first, then the archives, each through the backend's atomic put. An
archive whose companion failed to upload is held back (a mirror must never offer an archive
whose signature is missing), and reported as failed. The source is only ever read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Pattern

from ..backends.base import Backend
from ..errors import BackendError, PermanentError
from ..naming import Artifact, Kind, group_key
from ..transfer import Progress, run_parallel


@dataclass(frozen=True)
class Selection:
    """Which artifacts a command looks at: ``--filter`` on PN, ``--arch`` on SSTATE_PKGARCH."""

    pn_filter: Optional[Pattern[str]] = None
    arch: Optional[str] = None

    def matches(self, art: Artifact) -> bool:
        if self.pn_filter is not None and not self.pn_filter.match(art.pn):
            return False
        return self.arch is None or art.arch == self.arch


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
            "already_present": self.present,
            "already_present_bytes": self.present_bytes,
            "not_selected": self.not_selected,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
        }


_SKIP_REASONS = {
    Kind.TEMP: "temporary or partial file",
    Kind.UNKNOWN: "not an sstate file",
}


def plan_upload(
    local: Iterable[Artifact],
    remote_sizes: Mapping[str, int],
    selection: Selection = Selection(),
) -> UploadPlan:
    """What to send from ``local`` to a mirror whose files have ``remote_sizes`` (path -> size).

    Pure: no I/O, no clock. ``remote_sizes`` may hold only the paths that were probed.
    """
    plan = UploadPlan()
    for art in sorted(local, key=lambda a: a.path):
        if art.kind in _SKIP_REASONS:
            plan.skipped.append(Skipped(art.path, _SKIP_REASONS[art.kind]))
            continue
        if not selection.matches(art):
            plan.not_selected += 1
            continue
        remote = remote_sizes.get(art.path)
        if remote == art.size:
            plan.present += 1
            plan.present_bytes += art.size
            continue
        transfer = Transfer(art, remote)
        if art.kind is Kind.ARCHIVE:
            plan.archives.append(transfer)
        else:
            plan.companions.append(transfer)
    return plan


@dataclass
class UploadResult:
    uploaded: int = 0
    uploaded_bytes: int = 0
    failed: Dict[str, BackendError] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "uploaded": self.uploaded,
            "uploaded_bytes": self.uploaded_bytes,
            "failed": {path: str(err) for path, err in sorted(self.failed.items())},
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

    def send(t: Transfer) -> None:
        with source.open(t.path) as stream:
            target.put(t.path, stream, t.size)

    def run_phase(name: str, transfers: List[Transfer]) -> None:
        if not transfers:
            return
        progress.phase(name, len(transfers), sum(t.size for t in transfers))
        failures = run_parallel(
            transfers, send, jobs=jobs, describe=lambda t: t.path, weight=lambda t: t.size,
            progress=progress, retries=retries,
        )
        progress.done()
        for i, t in enumerate(transfers):
            if i in failures:
                result.failed[t.path] = failures[i]
            else:
                result.uploaded += 1
                result.uploaded_bytes += t.size

    run_phase("uploading signatures", plan.companions)
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
    run_phase("uploading archives", archives)
    return result

