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

import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union, overload

from ..backends.base import Backend
from ..catalog import OTHER, Catalog
from ..errors import BackendError, UsageError
from ..naming import GROUPED_KINDS, Artifact, Kind
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
_NONE = -1
_FIBONACCI = 0x9E3779B97F4A7C15  # 2**64 / the golden ratio
_WORD = (1 << 64) - 1


class _Groups:
    """The artifact groups of a catalog, by columns: a group is a number, its members rows.

    One object per group would cost more than the whole catalog; the planner needs of a group
    only its members, its last use and, for a few rules, its name and key.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.archive = array("q")
        self.siginfo = array("q")
        self.sig = array("q")
        self.last_used = array("d")
        first = array("q")  # a member of each group, whose key the others are compared with
        spill: Dict[str, int] = {}  # groups of the few rows kept whole, by their key
        # the group of each row, found by open addressing in one array of group numbers
        # (slot: the whole key, the hash's four words and the numbers of head, directory
        # and archive, folded by Fibonacci hashing, so that keys that differ in a few bits
        # are spread too), not in a dictionary, which would cost over a hundred bytes per
        # group; a row whose key is the previous row's (every listing of a directory or a
        # sorted key space gives a group's files next to each other) needs no look-up at
        # all, but no order is assumed
        rows = len(catalog)
        bits = max(3, (rows + rows // 2).bit_length())
        mask, shift = (1 << bits) - 1, 64 - bits
        table = array("i", [_NONE]) * (mask + 1)
        tails = catalog.tails
        tail_kind = [t.kind for t in tails]
        tail_archive = [t.archive for t in tails]
        heads, dirs, tails_of = catalog.head, catalog.dir, catalog.tail
        words = memoryview(catalog.hashes).cast("Q")  # a hash is words 4*row .. 4*row + 3
        prev = prev_g = _NONE
        try:
            for row, (hd, tl, dr) in enumerate(zip(heads, tails_of, dirs)):
                g: Optional[int]
                if hd == OTHER:
                    art = catalog.others[row]
                    kind = art.kind
                    if kind not in GROUPED_KINDS:
                        continue
                    g = spill.get(art.group_key)
                    if g is None:
                        g = spill[art.group_key] = self._new(row, first)
                else:
                    kind = tail_kind[tl]
                    w = 4 * row
                    low, high = words[w], words[w + 3]
                    arch = tail_archive[tl]
                    if (prev != _NONE and words[4 * prev] == low and words[4 * prev + 3] == high
                            and words[4 * prev + 1] == words[w + 1]
                            and words[4 * prev + 2] == words[w + 2] and heads[prev] == hd
                            and dirs[prev] == dr and tail_archive[tails_of[prev]] == arch):
                        g = prev_g
                    else:
                        slot = (low ^ words[w + 1] ^ words[w + 2] ^ high
                                ^ hd << 43 ^ dr << 21 ^ arch)
                        slot = (slot * _FIBONACCI & _WORD) >> shift
                        while True:
                            g = table[slot]
                            if g == _NONE:
                                g = table[slot] = self._new(row, first)
                                break
                            o = first[g]
                            if (words[4 * o] == low and words[4 * o + 3] == high
                                    and words[4 * o + 1] == words[w + 1]
                                    and words[4 * o + 2] == words[w + 2] and heads[o] == hd
                                    and dirs[o] == dr and tail_archive[tails_of[o]] == arch):
                                break
                            slot = (slot + 1) & mask
                    prev, prev_g = row, g
                if kind is Kind.ARCHIVE:
                    self.archive[g] = row
                elif kind is Kind.SIGINFO:
                    self.siginfo[g] = row
                else:
                    self.sig[g] = row
        finally:
            words.release()
        del table, first
        mtime, atime = catalog.mtime, catalog.atime
        for a, i, s in zip(self.archive, self.siginfo, self.sig):
            times = [mtime[r] for r in (a, i, s) if r != _NONE]
            if i != _NONE and atime is not None and not math.isnan(atime[i]):
                times.append(atime[i])
            self.last_used.append(max(times) if times else 0.0)

    def _new(self, row: int, first: array[int]) -> int:
        first.append(row)
        self.archive.append(_NONE)
        self.siginfo.append(_NONE)
        self.sig.append(_NONE)
        return len(self.archive) - 1

    def __len__(self) -> int:
        return len(self.archive)

    def members(self, g: int) -> List[int]:
        """Present members, companions first (as :meth:`~sstate_mirror.naming.Group.members`)."""
        return [r for r in (self.siginfo[g], self.sig[g], self.archive[g]) if r != _NONE]

    def first(self, g: int) -> int:
        """The member whose name names the group: the archive, else the siginfo, else sig."""
        a = self.archive[g]
        return a if a != _NONE else self.siginfo[g] if self.siginfo[g] != _NONE else self.sig[g]

    def key(self, g: int) -> str:
        """The group's key: the path of its archive (present or not)."""
        row = self.first(g)
        catalog = self.catalog
        if catalog.head[row] == OTHER:
            return catalog.others[row].group_key
        return catalog.path(row, tail=catalog.tails[catalog.tail[row]].archive)


class _Chooser:
    """Collects deletions by row; the first rule that picks a file is the one reported.

    Files of a pinned group are never chosen: they are noted as spared instead.
    """

    def __init__(self, groups: _Groups, pinned: Dict[int, str]) -> None:
        self.groups = groups
        self.size = groups.catalog.size
        self.rule = bytearray(len(groups.catalog))  # row -> rule code, 0: kept
        self.pinned = pinned
        self.spared: Dict[int, Tuple[str, str]] = {}  # row -> (rule, pin)
        self.chosen_bytes = 0

    def file(self, row: int, g: int, rule: str) -> None:
        pin = self.pinned.get(g) if self.pinned else None
        if pin is not None:
            self.spared.setdefault(row, (rule, pin))
        elif not self.rule[row]:
            self.rule[row] = _RULE_CODES[rule]
            self.chosen_bytes += self.size[row]

    def group(self, g: int, rule: str) -> None:
        groups = self.groups
        archive = groups.archive[g]
        if archive == _NONE:
            for row in groups.members(g):
                self.file(row, g, rule)
            return
        self.file(archive, g, rule)
        for companion in (groups.siginfo[g], groups.sig[g]):
            if companion != _NONE:
                self.file(companion, g, "with-archive")

    def remaining(self, g: int) -> int:
        return sum(self.size[r] for r in self.groups.members(g) if not self.rule[r])

    def gone(self, g: int) -> bool:
        return all(self.rule[r] for r in self.groups.members(g))


def plan_clean(artifacts: Iterable[Artifact], options: CleanOptions, now: float,
               pins: Optional[PinSet] = None) -> CleanPlan:
    """Decide what to delete. Pure: the listing, the options, ``now`` and the mirror's pins
    are all it sees.

    It works on the listing's :class:`~sstate_mirror.catalog.Catalog` by rows and on groups
    by number (:class:`_Groups`), so that a mirror of millions of files is planned in a few
    dozen bytes per file; only the files it deletes or spares become :class:`Artifact`
    objects in the plan.
    """
    catalog = Catalog.of(artifacts)
    plan = CleanPlan(max_size=options.max_size)
    tails = catalog.tails
    for hd, tl in zip(catalog.head, catalog.tail):
        if hd != OTHER:
            kind = tails[tl].kind.value
            plan.counts[kind] = plan.counts.get(kind, 0) + 1
    for art in catalog.others.values():
        plan.counts[art.kind.value] = plan.counts.get(art.kind.value, 0) + 1
    plan.counts = {kind: plan.counts[kind] for kind in _first_seen(catalog, plan.counts)}
    plan.size_before = sum(catalog.size)
    groups = _Groups(catalog)
    last_used = groups.last_used
    sstate_tasks = {_task(catalog, groups.archive[g]) for g in range(len(groups))
                    if groups.archive[g] != _NONE}
    pinned = _pinned_groups(groups, pins)
    plan.pinned_bytes = sum(catalog.size[r] for g in pinned for r in groups.members(g))
    pick = _Chooser(groups, pinned)

    def age(g: int) -> float:
        return max(0.0, now - last_used[g])

    def protected(g: int) -> bool:
        return age(g) < options.min_age

    if options.max_age is not None:
        for g in range(len(groups)):
            if (groups.archive[g] != _NONE and age(g) >= options.max_age
                    and not protected(g)):
                pick.group(g, "max-age")

    sig_age = options.effective_max_sig_age
    for g in range(len(groups)):
        if groups.archive[g] != _NONE:
            continue
        sig, siginfo = groups.sig[g], groups.siginfo[g]
        if sig != _NONE and not protected(g):
            pick.file(sig, g, "orphan-sig")
        if (siginfo != _NONE and sig_age is not None and age(g) >= sig_age
                and not protected(g)):
            orphan = _task(catalog, siginfo) in sstate_tasks
            pick.file(siginfo, g, "orphan-siginfo" if orphan else "max-sig-age")

    if options.max_versions is not None:
        versions: Dict[Tuple[str, str, str], List[int]] = {}
        for g in range(len(groups)):
            if groups.archive[g] != _NONE and not pick.gone(g):
                versions.setdefault(_version_key(catalog, groups.archive[g]), []).append(g)
        for same in versions.values():
            if len(same) <= options.max_versions:
                continue
            same.sort(key=lambda g: (-last_used[g], groups.key(g)))
            for g in same[options.max_versions:]:
                if not protected(g):
                    pick.group(g, "max-versions")
                else:
                    plan.versions_protected += 1

    for row, art in catalog.others.items():
        if art.kind is Kind.TEMP and art.age(now) >= options.temp_age:
            pick.file(row, _NONE, "stale-temp")
        elif art.kind is Kind.UNKNOWN:
            plan.unknown.append(art)

    if options.max_size is not None:
        _evict_to_fit(groups, pick, pinned, plan, options.max_size, protected)

    # archives first: an interrupted run must not leave an archive without its signature
    chosen = _deletion_order(catalog, (row for row, code in enumerate(pick.rule) if code))
    plan.deletions = Deletions(catalog, chosen, bytes(pick.rule[row] for row in chosen))
    plan.pinned = sorted((Spared(catalog[row], rule, pin)
                          for row, (rule, pin) in pick.spared.items()), key=lambda p: p.path)
    plan.kept = len(catalog) - len(chosen)
    del chosen
    plan.kept_bytes = plan.size_before - pick.chosen_bytes
    return plan


def _evict_to_fit(groups: _Groups, pick: _Chooser, pinned: Dict[int, str], plan: CleanPlan,
                  max_size: int, protected: Callable[[int], bool]) -> None:
    """``max-size``: least recently used groups first (then by key) until the mirror fits.

    Groups are sorted by last use only; the few with the same last use are put in key order
    when the eviction reaches them, so no key is made for groups it never reaches.
    """
    size = plan.size_before - pick.chosen_bytes
    last_used = groups.last_used
    order = sorted(range(len(groups)), key=last_used.__getitem__)
    start = 0
    while start < len(order) and size > max_size:
        end = start + 1
        while end < len(order) and last_used[order[end]] == last_used[order[start]]:
            end += 1
        run = order[start:end]
        if len(run) > 1:
            run.sort(key=groups.key)
        for g in run:
            if size <= max_size:
                break
            left = pick.remaining(g)
            if left == 0:
                continue
            if g in pinned:
                pick.group(g, "max-size")  # noted as spared, not chosen
                continue
            if protected(g):
                plan.protected_bytes += left
                continue
            pick.group(g, "max-size")
            size -= left
        start = end


def _first_seen(catalog: Catalog, counts: Dict[str, int]) -> List[str]:
    """The kinds of ``counts`` in the order of their first file in the listing."""
    seen: List[str] = []
    tails = catalog.tails
    for row, (hd, tl) in enumerate(zip(catalog.head, catalog.tail)):
        kind = (catalog.others[row] if hd == OTHER else tails[tl]).kind.value
        if kind not in seen:
            seen.append(kind)
            if len(seen) == len(counts):
                break
    return seen


def _deletion_order(catalog: Catalog, rows: Iterable[int]) -> array[int]:
    """``rows`` by kind (archives first) and path, with no path held for more than a moment.

    Millions of deletions with their paths as sort keys would take more memory than the whole
    catalog: each row is sorted by one integer, its kind's rank, the first eight bytes of its
    path (UTF-8 keeps the order of the text) and the row; only rows whose eight bytes are the
    same are then put in order by their whole paths.
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


def _version_key(catalog: Catalog, row: int) -> Tuple[str, str, str]:
    """(PN, SSTATE_PKGARCH, task) of an archive: the hashes ``--max-versions`` counts."""
    if catalog.head[row] == OTHER:
        art = catalog.others[row]
        return (art.pn, art.arch, art.task)
    head = catalog.heads[catalog.head[row]]
    return (head.pn, head.pkgarch, catalog.tails[catalog.tail[row]].task)


def _pinned_groups(groups: _Groups, pins: Optional[PinSet]) -> Dict[int, str]:
    """Group number -> the pin that keeps it."""
    if pins is None or not pins.keep:
        return {}
    out: Dict[int, str] = {}
    catalog = groups.catalog
    for g in range(len(groups)):
        row = groups.first(g)
        h = (catalog.others[row].hash if catalog.head[row] == OTHER
             else catalog.hashes[32 * row: 32 * row + 32].hex())
        pin = pins.keep.get(h)
        if pin is not None:
            out[g] = pin
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
