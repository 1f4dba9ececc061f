"""Keeping a hash equivalence server in step with the mirror (``--hashserve``).

With hash equivalence an archive is named by its task's *unihash*, which a build gets from the
server (``BB_HASHSERVE``). A unihash the server forgot is one no build asks for again: its
archive is dead weight. A unihash whose archive is gone makes the server grow for nothing.

- ``clean``: after the mirror's clean, every unihash of an archive still on the mirror is
  marked on the server (``gc-mark-stream`` under a mark of this run), the rest swept
  (``gc-sweep``), then output hashes nothing refers to removed (``clean-unused``). The mark
  covers the whole mirror, whatever ``--filter``/``--arch`` chose to clean. Nothing is swept
  when the mirror holds no archive with a unihash (an empty listing is far more likely a wrong
  TARGET than a wish to empty the server), nor when the server knows none of the mirror's
  unihashes but holds others (a wrong ``--hashserve``).
- ``info``/``verify``: how many archives have a unihash the server knows (``exists-stream``).
- ``analyze``: what the server answers for a missed task's taskhash.

Plans are pure; execution talks to the server only through :class:`HashIndex`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Protocol

from ..naming import Artifact, Kind
from .analyze import LOCAL, AnalysisReport
from .clean import CleanPlan, CleanResult
from .rootcause import (
    Cause,
    Finding,
    group_root_causes,
    server_equivalent_cause,
    server_other_unihash_cause,
    server_unknown_cause,
)
from .sigstore import SignatureStore

#: Marks this tool sets start with this, so ``gc-status`` shows whose collection it is.
MARK_PREFIX = "sstate-mirror-"


class GcState(Protocol):
    @property
    def keep(self) -> int: ...

    @property
    def remove(self) -> int: ...

    @property
    def mark(self) -> str: ...


class HashIndex(Protocol):
    """What commands need of a hash equivalence server."""

    def gc_status(self) -> GcState: ...

    def unihashes_exist(self, unihashes: Sequence[str]) -> List[bool]: ...

    def get_unihashes(self, method: str, taskhashes: Sequence[str]) -> List[Optional[str]]: ...

    def gc_mark(self, mark: str, unihashes: Sequence[str]) -> int: ...

    def gc_sweep(self, mark: str) -> int: ...

    def clean_unused(self) -> int: ...


def new_mark(now: float) -> str:
    """A mark of its own for each run: a sweep removes exactly what this run did not mark."""
    return f"{MARK_PREFIX}{int(now)}-{secrets.token_hex(4)}"


def archive_unihashes(artifacts: Iterable[Artifact]) -> Dict[str, List[Artifact]]:
    """Archives by the unihash their names carry (archives whose name carries none left out)."""
    out: Dict[str, List[Artifact]] = {}
    for art in artifacts:
        if art.kind is Kind.ARCHIVE and art.name is not None and art.name.unihash:
            out.setdefault(art.name.unihash, []).append(art)
    return out


def surviving_archives(listed: Iterable[Artifact], plan: CleanPlan,
                       result: Optional[CleanResult]) -> List[Artifact]:
    """Archives on the mirror after the clean: listed, minus those deleted.

    ``result`` None (a dry run) counts every planned deletion as done. A deletion that failed
    counts as not done: marking a unihash whose archive did go costs one row, sweeping one
    whose archive stayed costs a rebuild.
    """
    gone = {d.path for d in plan.deletions if d.artifact.kind is Kind.ARCHIVE}
    if result is not None:
        gone -= set(result.failed)
    return [a for a in listed if a.kind is Kind.ARCHIVE and a.path not in gone]


@dataclass
class ServerCleanPlan:
    """What the server keeps: the unihashes of the archives left on the mirror."""

    mark: str
    unihashes: List[str]
    archives: int
    archives_without_unihash: int
    refusal: Optional[str] = None
    """Why nothing may be swept (then nothing is marked either)."""

    def to_dict(self) -> Dict[str, Any]:
        return {"mark": self.mark, "unihashes_to_keep": len(self.unihashes),
                "archives": self.archives,
                "archives_without_unihash": self.archives_without_unihash,
                "refusal": self.refusal}


def plan_server_clean(surviving: Sequence[Artifact], mark: str) -> ServerCleanPlan:
    """Pure: which unihashes to mark, or why the server must be left alone."""
    by_unihash = archive_unihashes(surviving)
    archives = [a for a in surviving if a.kind is Kind.ARCHIVE]
    plan = ServerCleanPlan(mark=mark, unihashes=sorted(by_unihash), archives=len(archives),
                           archives_without_unihash=len(archives) - sum(
                               len(v) for v in by_unihash.values()))
    if not plan.unihashes:
        plan.refusal = ("the mirror holds no archive named by a unihash: sweeping would"
                        " empty the server")
    return plan


@dataclass
class ServerCleanResult:
    """What the server did (``dry_run``: what it knows, nothing changed)."""

    dry_run: bool
    rows_before: int
    known: Optional[int] = None
    """Dry run: how many of the unihashes to keep the server knows."""
    marked_rows: int = 0
    swept_rows: int = 0
    unused_outhashes_removed: int = 0
    refusal: Optional[str] = None
    """Why the server was marked but not swept."""

    def to_dict(self) -> Dict[str, Any]:
        return {"dry_run": self.dry_run, "refusal": self.refusal,
                "rows_before": self.rows_before,
                "unihashes_known": self.known, "marked_rows": self.marked_rows,
                "swept_rows": self.swept_rows,
                "unused_outhashes_removed": self.unused_outhashes_removed}


def execute_server_clean(plan: ServerCleanPlan, server: HashIndex, *,
                         dry_run: bool) -> ServerCleanResult:
    """Mark, sweep, clean unused; a dry run only asks which unihashes the server knows.

    Any failure raises before the sweep: an incomplete mark must never be swept. The server
    cannot say how many rows a sweep would remove without the mark being set, so a dry run
    reports the rows it holds and how many of the unihashes to keep it knows.
    """
    if plan.refusal is not None:
        raise ValueError(plan.refusal)
    status = server.gc_status()
    result = ServerCleanResult(dry_run=dry_run, rows_before=status.keep + status.remove)
    if dry_run:
        result.known = sum(server.unihashes_exist(plan.unihashes))
        return result
    result.marked_rows = server.gc_mark(plan.mark, plan.unihashes)
    if result.marked_rows == 0 and result.rows_before > 0:
        # not one archive of this mirror is known there: another team's server, most likely
        result.refusal = (f"the server knows none of the {len(plan.unihashes)} unihashes of"
                          f" the mirror's archives but holds {result.rows_before} rows: not"
                          " sweeping a server that does not belong with this mirror")
        return result
    result.swept_rows = server.gc_sweep(plan.mark)
    result.unused_outhashes_removed = server.clean_unused()
    return result


@dataclass
class KnownTally:
    known: int = 0
    unknown: int = 0

    def to_dict(self) -> Dict[str, int]:
        return {"known": self.known, "unknown": self.unknown}


@dataclass
class ServerKnowledge:
    """Archives whose unihash the server knows, and not (builds will not find the latter)."""

    total: KnownTally = field(default_factory=KnownTally)
    without_unihash: int = 0
    by_recipe: Dict[str, KnownTally] = field(default_factory=dict)

    def to_dict(self, detail: bool = False) -> Dict[str, Any]:
        out: Dict[str, Any] = {**self.total.to_dict(),
                               "archives_without_unihash": self.without_unihash}
        if detail:
            out["by_recipe"] = {pn: t.to_dict() for pn, t in sorted(self.by_recipe.items())}
        return out


def summarize_knowledge(artifacts: Iterable[Artifact],
                        known: Mapping[str, bool]) -> ServerKnowledge:
    """Pure: count archives by whether ``known`` (unihash -> bool) says the server has them."""
    report = ServerKnowledge()
    for art in artifacts:
        if art.kind is not Kind.ARCHIVE:
            continue
        unihash = art.name.unihash if art.name is not None else None
        if unihash is None:
            report.without_unihash += 1
            continue
        tally = report.by_recipe.setdefault(art.pn, KnownTally())
        if known.get(unihash, False):
            report.total.known += 1
            tally.known += 1
        else:
            report.total.unknown += 1
            tally.unknown += 1
    return report


def ask_server(artifacts: Sequence[Artifact], server: HashIndex) -> ServerKnowledge:
    """Which archives' unihashes ``server`` knows (one batched query per distinct unihash)."""
    unihashes = sorted(archive_unihashes(artifacts))
    answers = server.unihashes_exist(unihashes)
    return summarize_knowledge(artifacts, dict(zip(unihashes, answers)))


def explain_misses(report: AnalysisReport, store: SignatureStore, remote: Iterable[Artifact],
                   server: HashIndex, method: str) -> int:
    """Add what the server answers for each missed sstate task's taskhash; misses explained.

    A miss the signatures cannot explain may be hash equivalence at work: the server maps the
    build's taskhash to a unihash the mirror holds (the build asked before the equivalence was
    known, or another server), or knows nothing of it (swept, or never reported). The local
    signatures were read by the analysis; only the taskhash lookups go to the server, batched.
    """
    archives = {(a.pn, a.task, a.hash) for a in remote if a.kind is Kind.ARCHIVE}
    asked: List[Any] = []
    for result in report.misses:
        if not result.check.sstate:
            continue
        sig = store.load((LOCAL, result.check.siginfo.path))
        if sig is not None and sig.taskhash:
            asked.append((result, sig.taskhash, sig.unihash or result.check.hash))
    answers = server.get_unihashes(method, [taskhash for _, taskhash, _ in asked])
    explained = 0
    for (result, taskhash, local_unihash), unihash in zip(asked, answers):
        check = result.check
        cause: Optional[Cause]
        if unihash is None:
            cause = server_unknown_cause()
            result.notes.append(f"the hash server has no unihash for taskhash {taskhash}")
        elif unihash != local_unihash:
            on_mirror = (check.siginfo.pn, check.siginfo.task, unihash) in archives
            cause = server_equivalent_cause() if on_mirror else server_other_unihash_cause()
            result.notes.append(f"the hash server maps taskhash {taskhash} to unihash"
                                f" {unihash}, the build used {local_unihash}")
        else:
            cause = None
        if cause is not None:
            result.findings.insert(0, Finding(cause, check.key, 0))
            explained += cause.kind == server_equivalent_cause().kind
    report.root_causes = group_root_causes(
        (r.check.task_id, r.findings) for r in report.misses)
    return explained
