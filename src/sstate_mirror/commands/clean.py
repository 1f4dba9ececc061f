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

import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple, Union, overload

import numpy as np

from ..backends.base import Backend
from ..catalog import OTHER, Catalog
from ..errors import BackendError, UsageError
from ..naming import GROUPED_KINDS, Artifact, Kind
from ..transfer import Progress, TransferInterrupted, batched, run_parallel
from .cleancolumns import (
    KIND_CODE,
    NONE,
    Groups,
    Mask,
    PathOrder,
    Picks,
    Rows,
    aged,
    column,
    deletion_order,
    first_seen,
    hash_words,
    tasks_of_archives,
    ties_by_key,
)
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
    deletions: Sequence[Deletion] = field(default_factory=list)
    """In deletion order; a :class:`Deletions` (objects made as they are read) from
    :func:`plan_clean`."""
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
        return sum(size for _, size in _rules_and_sizes(self.deletions))

    @property
    def size_after(self) -> int:
        return self.size_before - self.bytes_to_free

    @property
    def budget_unmet(self) -> bool:
        return self.max_size is not None and self.size_after > self.max_size

    def by_rule(self) -> Dict[str, Dict[str, int]]:
        out: Dict[str, Dict[str, int]] = {}
        for rule, size in _rules_and_sizes(self.deletions):
            slot = out.setdefault(rule, {"files": 0, "bytes": 0})
            slot["files"] += 1
            slot["bytes"] += size
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


_RULE_CODES = {rule: code for code, rule in enumerate(RULES, 1)}
_RULE_NAMES = {code: rule for rule, code in _RULE_CODES.items()}


class Deletions(Sequence[Deletion]):
    """The files a plan deletes, in deletion order, by row of the listing's catalog.

    A clean of a large mirror deletes hundreds of thousands of files: each is made a
    :class:`Deletion` only when it is read, and their rules and sizes are read without
    any object (:func:`_rules_and_sizes`).
    """

    def __init__(self, catalog: Catalog, rows: Sequence[int], rules: bytes) -> None:
        self.catalog = catalog
        self.rows = rows if isinstance(rows, array) else array("q", rows)
        self.rules = rules  # rule code per entry of ``rows``

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> Deletion: ...

    @overload
    def __getitem__(self, index: slice) -> List[Deletion]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Deletion, List[Deletion]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return Deletion(self.catalog[self.rows[index]], _RULE_NAMES[self.rules[index]])

    def __iter__(self) -> Iterator[Deletion]:
        for i in range(len(self.rows)):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Deletions, list)):
            return list(self) == list(other)
        return NotImplemented

    def rules_and_sizes(self) -> Iterator[Tuple[str, int]]:
        size = self.catalog.size
        return ((_RULE_NAMES[code], size[row]) for row, code in zip(self.rows, self.rules))


def _rules_and_sizes(deletions: Sequence[Deletion]) -> Iterator[Tuple[str, int]]:
    if isinstance(deletions, Deletions):
        return deletions.rules_and_sizes()
    return ((d.rule, d.artifact.size) for d in deletions)
_KIND_ORDER = {Kind.ARCHIVE: 0, Kind.SIGINFO: 1, Kind.SIG: 1, Kind.TEMP: 2, Kind.UNKNOWN: 3}
_KIND_OF_CODE = {code: kind.value for kind, code in KIND_CODE.items()}


def plan_clean(artifacts: Iterable[Artifact], options: CleanOptions, now: float,
               pins: Optional[PinSet] = None) -> CleanPlan:
    """Decide what to delete. Pure: the listing, the options, ``now`` and the mirror's pins
    are all it sees.

    It works on the listing's :class:`~sstate_mirror.catalog.Catalog` by rows and on groups
    by number (:class:`~.cleancolumns.Groups`), each rule a few numpy passes over their
    columns (:mod:`.cleancolumns`), so that a mirror of millions of files is planned in a
    few dozen bytes and well under a microsecond per file; only the files it deletes or
    spares become :class:`Artifact` objects in the plan.
    """
    catalog = Catalog.of(artifacts)
    plan = CleanPlan(max_size=options.max_size)
    groups = Groups(catalog)
    kinds = groups.kinds
    tally = np.bincount(kinds, minlength=256)
    plan.counts = {_KIND_OF_CODE[code]: int(tally[code]) for code in first_seen(kinds)}
    plan.size_before = int(column(catalog.size, np.int64).sum())
    ages = now - groups.last_used
    pinned = _pinned_groups(groups, pins)
    plan.pinned_bytes = sum(catalog.size[r] for g in pinned for r in groups.members(g))
    pick = Picks(groups, pinned, _RULE_NAMES)
    has_archive = groups.archive >= 0
    not_protected = aged(ages, options.min_age)
    order = PathOrder(catalog)

    if options.max_age is not None:
        pick.whole(np.flatnonzero(has_archive & aged(
            ages, max(options.max_age, options.min_age))), _RULE_CODES["max-age"],
            _RULE_CODES["with-archive"])

    alone = np.flatnonzero(~has_archive)
    sigs = alone[(groups.sig[alone] >= 0) & not_protected[alone]]
    code = _RULE_CODES["orphan-sig"]
    spared = pick.is_pinned(sigs)
    for g in sigs[spared].tolist():
        pick.file(int(groups.sig[g]), g, code)
    pick.rows(groups.sig[sigs[~spared]], code)
    sig_age = options.effective_max_sig_age
    if sig_age is not None:
        old = aged(ages, max(sig_age, options.min_age))
        infos = alone[old[alone] & (groups.siginfo[alone] >= 0)]
        tasks = tasks_of_archives(groups)
        orphan, task_sig = _RULE_CODES["orphan-siginfo"], _RULE_CODES["max-sig-age"]
        code_of_tail = np.array([orphan if t.task in tasks else task_sig
                                 for t in catalog.tails], np.uint8)
        spared = pick.is_pinned(infos)
        for g in infos[spared].tolist():
            row = int(groups.siginfo[g])
            pick.file(row, g, orphan if _task(catalog, row) in tasks else task_sig)
        rows = groups.siginfo[infos[~spared]]
        if len(code_of_tail):
            pick.rule[rows] = code_of_tail[column(catalog.tail, np.uint32)[rows]]
        for row in rows.tolist() if groups.spilled else ():
            if catalog.head[row] == OTHER:
                pick.rule[row] = orphan if _task(catalog, row) in tasks else task_sig

    if options.max_versions is not None:
        plan.versions_protected = _beyond_versions(groups, pick, order, has_archive,
                                                   not_protected, options.max_versions)

    for row, art in catalog.others.items():
        if art.kind is Kind.TEMP and art.age(now) >= options.temp_age:
            pick.file(row, NONE, _RULE_CODES["stale-temp"])
        elif art.kind is Kind.UNKNOWN:
            plan.unknown.append(art)

    if options.max_size is not None:
        _evict_to_fit(groups, pick, order, not_protected, plan, options.max_size)

    # archives first: an interrupted run must not leave an archive without its signature
    chosen = deletion_order(catalog, groups, order, pick.rule,
                            lambda rows: _deletion_order(catalog, rows))
    listed = array("q")
    listed.frombytes(chosen.astype(np.int64, copy=False).tobytes())
    plan.deletions = Deletions(catalog, listed, pick.rule[chosen].tobytes())
    plan.pinned = sorted((Spared(catalog[row], rule, pin)
                          for row, (rule, pin) in pick.spared.items()), key=lambda p: p.path)
    plan.kept = len(catalog) - len(chosen)
    del chosen
    plan.kept_bytes = plan.size_before - pick.chosen_bytes()
    return plan


def _beyond_versions(groups: Groups, pick: Picks, order: PathOrder, has_archive: Mask,
                     not_protected: Mask, max_versions: int) -> int:
    """``max-versions``: of each (PN, SSTATE_PKGARCH, task), the archives beyond the
    ``max_versions`` most recently used (then by key); the number kept as protected."""
    catalog = groups.catalog
    candidates = np.flatnonzero(has_archive & ~pick.gone())
    archives = groups.archive[candidates]
    names: Dict[Tuple[str, str], int] = {}
    head_of = np.array([names.setdefault((h.pn, h.pkgarch), len(names))
                        for h in catalog.heads], np.int64)
    tasks: Dict[str, int] = {}
    task_of = np.array([tasks.setdefault(t.task, len(tasks)) for t in catalog.tails],
                       np.int64)
    if groups.spilled:
        for art in catalog.others.values():
            names.setdefault((art.pn, art.arch), len(names))
            tasks.setdefault(art.task, len(tasks))
    width = len(tasks)
    if not groups.spilled:
        version = (head_of[column(catalog.head, np.uint32)[archives]] * width
                   + task_of[column(catalog.tail, np.uint32)[archives]])
    else:
        version = np.array([
            names[catalog.others[row].pn, catalog.others[row].arch] * width
            + tasks[catalog.others[row].task] if catalog.head[row] == OTHER
            else head_of[catalog.head[row]] * width + task_of[catalog.tail[row]]
            for row in archives.tolist()], np.int64)
    del archives
    _, inverse, many = np.unique(version, return_inverse=True, return_counts=True)
    keep = many[inverse] > max_versions
    if not keep.any():
        return 0
    candidates, version = candidates[keep], version[keep]
    del keep, inverse, many
    version_of = np.zeros(len(groups), np.int64)
    version_of[candidates] = version
    last_used = groups.last_used

    def resort(chosen: Rows) -> Rows:
        """By version, then most recently used first (stably)."""
        ordered: Rows = chosen[np.lexsort((-last_used[chosen], version_of[chosen]))]
        return ordered

    ranked = resort(candidates)
    versions = version_of[ranked]
    used = last_used[ranked]
    ties_by_key(groups, order, ranked, (versions[1:] == versions[:-1]) & (used[1:] == used[:-1]),
                resort)
    del used
    place = np.arange(len(ranked), dtype=np.int64)
    starts = np.concatenate(([True], versions[1:] != versions[:-1]))
    first = np.maximum.accumulate(np.where(starts, place, 0))
    beyond = ranked[place - first >= max_versions]
    evict = beyond[not_protected[beyond]]
    pick.whole(evict, _RULE_CODES["max-versions"], _RULE_CODES["with-archive"])
    return len(beyond) - len(evict)


def _evict_to_fit(groups: Groups, pick: Picks, order: PathOrder, not_protected: Mask,
                  plan: CleanPlan, max_size: int) -> None:
    """``max-size``: least recently used groups first (then by key) until the mirror fits.

    A group's eviction frees what is left of it unless a pin or ``--min-age`` keeps it: the
    running total of those is summed by numpy, and the eviction stops at the first group
    that makes the mirror fit (found by bisection). Groups last used at the same time are
    put in key order only up to the last one the eviction reaches.
    """
    need = plan.size_before - pick.chosen_bytes() - max_size
    if need <= 0:
        return
    left = pick.left()
    candidates = np.flatnonzero(left)
    last_used = groups.last_used
    ranked = candidates[np.argsort(last_used[candidates], kind="stable")]
    del candidates
    free = not_protected.copy()
    free[pick.pinned_groups] = False

    def reach(ranked: Rows) -> int:
        """How many of ``ranked`` the eviction goes through."""
        freed = np.cumsum(np.where(free[ranked], left[ranked], 0))
        return int(np.searchsorted(freed, need, side="left")) + 1

    used = last_used[ranked]
    end = reach(ranked)
    if end < len(ranked):  # the last one's equals in last use may come before it by key
        cut = int(np.searchsorted(used, used[end - 1], side="right"))
        ranked, used = ranked[:cut], used[:cut]
    ties_by_key(groups, order, ranked, used[1:] == used[:-1],
                lambda chosen: chosen[np.argsort(last_used[chosen], kind="stable")])
    del used
    reached = ranked[: reach(ranked)]
    del ranked
    code = _RULE_CODES["max-size"]
    pick.unpinned(reached, code, _RULE_CODES["with-archive"])  # spares the pinned ones
    kept = reached[~free[reached]]
    plan.protected_bytes += int(left[kept[~pick.is_pinned(kept)]].sum())
    pick.whole(reached[free[reached]], code, _RULE_CODES["with-archive"])


def _deletion_order(catalog: Catalog, rows: Iterable[int]) -> array[int]:
    """``rows`` by kind (archives first) and path, with no path held for more than a moment.

    The order when the columns cannot give it (:class:`~.cleancolumns.PathOrder`), made
    from each row's path: each row is sorted by one integer, its kind's rank, the first eight
    bytes of its path (UTF-8 keeps the order of the text) and the row; only rows whose eight
    bytes are the same are then put in order by their whole paths.
    """
    keyed = sorted(
        _KIND_ORDER[_kind(catalog, row)] << 104
        | int.from_bytes(_path(catalog, row).encode()[:8].ljust(8, b"\0"), "big") << 40
        | row
        for row in rows
    )
    out = array("q")
    start = 0
    while start < len(keyed):
        end = start + 1
        while end < len(keyed) and keyed[end] >> 40 == keyed[start] >> 40:
            end += 1
        run = [key & _ROW_MASK for key in keyed[start:end]]
        if len(run) > 1:
            run.sort(key=lambda row: _path(catalog, row))
        out.extend(run)
        start = end
    return out


_ROW_MASK = (1 << 40) - 1


def _kind(catalog: Catalog, row: int) -> Kind:
    if catalog.head[row] == OTHER:
        return catalog.others[row].kind
    return catalog.tails[catalog.tail[row]].kind


def _path(catalog: Catalog, row: int) -> str:
    return catalog.others[row].path if catalog.head[row] == OTHER else catalog.path(row)


def _task(catalog: Catalog, row: int) -> str:
    if catalog.head[row] == OTHER:
        return catalog.others[row].task
    return catalog.tails[catalog.tail[row]].task


def _pinned_groups(groups: Groups, pins: Optional[PinSet]) -> Dict[int, str]:
    """Group number -> the pin that keeps it."""
    if pins is None or not pins.keep:
        return {}
    catalog = groups.catalog
    by_bytes: Dict[bytes, str] = {}
    for h, pin in pins.keep.items():
        try:
            raw = bytes.fromhex(h)
        except ValueError:
            continue
        if len(raw) == 32 and raw.hex() == h:
            by_bytes[raw] = pin
    rows = groups.any_member(np.arange(len(groups), dtype=np.int64))
    # the groups whose hash begins as a pinned one's, then each of them by its whole hash
    starts = np.array([int.from_bytes(raw[:8], sys.byteorder) for raw in by_bytes], np.uint64)
    maybe = np.flatnonzero(np.isin(hash_words(catalog)[rows, 0], starts))
    out: Dict[int, str] = {}
    for g, row in zip(maybe.tolist(), rows[maybe].tolist()):
        found = by_bytes.get(catalog.hash_bytes(row))
        if found is not None:
            out[g] = found
    for row, art in catalog.others.items() if groups.spilled else ():
        g = int(groups.group[row])
        if g != NONE and max(groups.archive[g], groups.siginfo[g], groups.sig[g]) == row:
            out.pop(g, None)
            kept_by = pins.keep.get(art.hash)
            if kept_by is not None:
                out[g] = kept_by
    return out


def spare_pinned(plan: CleanPlan, pins: PinSet) -> List[Spared]:
    """Drop from ``plan`` the deletions of groups ``pins`` keep (pins read again just before
    deleting: a pin made while the clean was planning); the files spared that way."""
    keep: List[Deletion] = []
    spared: List[Spared] = []
    for d in plan.deletions:
        pin = pins.keep.get(d.artifact.hash) if d.artifact.name is not None else None
        if pin is None or d.artifact.kind not in GROUPED_KINDS:
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
