"""``info``: what a mirror holds, how big and how old — one pass over the listing.

The summary of a million-file mirror must cost well under a second: a Python step per file
costs several. So the pass over a :class:`~sstate_mirror.catalog.Catalog` sums its columns
per part of a name (head, tail, directory) and per age bucket with numpy, block by block,
and leaves to Python only what is per part (tens of thousands of heads, a few dozen tails).
The parts are the catalog's own, numbered densely, so a sum by part is a ``bincount`` or an
``add.at``; the archives without a ``.siginfo`` are found among the groups ``clean`` reads
(:class:`~sstate_mirror.commands.cleancolumns.Groups`): one way of grouping for both.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union, cast

import numpy as np
from numpy.typing import NDArray

from ..catalog import OTHER, Catalog, Head, collector_paused
from ..naming import GROUPED_KINDS, Artifact, Kind, directory_prefix, layout_of
from .cleancolumns import NONE, Groups, column

#: Age buckets (upper bound in seconds, label); the last one is open-ended.
AGE_BUCKETS: List[Tuple[float, str]] = [
    (86400, "< 1 day"),
    (7 * 86400, "1-7 days"),
    (30 * 86400, "7-30 days"),
    (90 * 86400, "30-90 days"),
    (365 * 86400, "90-365 days"),
    (float("inf"), ">= 1 year"),
]

NO_ARCH = "(none)"
NO_PREFIX = "(top level)"

#: Rows of a catalog read at a time: what the summary makes per row is bounded by it.
_BLOCK = 1 << 16


@dataclass
class Tally:
    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size

    def to_dict(self) -> Dict[str, int]:
        return {"files": self.files, "bytes": self.bytes}


@dataclass
class RecipeInfo:
    """Per-recipe detail (``-v``)."""

    pn: str
    files: int = 0
    bytes: int = 0
    archives: int = 0
    tasks: Dict[str, int] = field(default_factory=dict)
    archs: Dict[str, int] = field(default_factory=dict)
    oldest: float = float("inf")
    newest: float = 0.0

    def add(self, art: Artifact) -> None:
        self.files += 1
        self.bytes += art.size
        if art.kind is Kind.ARCHIVE:
            self.archives += 1
            self.tasks[art.task] = self.tasks.get(art.task, 0) + 1
            arch = art.arch or NO_ARCH
            self.archs[arch] = self.archs.get(arch, 0) + 1
        self.oldest = min(self.oldest, art.mtime)
        self.newest = max(self.newest, art.mtime)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "pn": self.pn,
            "files": self.files,
            "bytes": self.bytes,
            "archives": self.archives,
            "archives_by_task": dict(sorted(self.tasks.items())),
            "archives_by_arch": dict(sorted(self.archs.items())),
            "oldest_mtime": self.oldest,
            "newest_mtime": self.newest,
        }


@dataclass
class InfoReport:
    now: float
    total: Tally = field(default_factory=Tally)
    by_kind: Dict[str, Tally] = field(default_factory=dict)
    by_arch: Dict[str, Tally] = field(default_factory=dict)
    by_task: Dict[str, Tally] = field(default_factory=dict)
    by_prefix: Dict[str, Tally] = field(default_factory=dict)
    by_layout: Dict[str, Tally] = field(default_factory=dict)
    by_version: Dict[str, Tally] = field(default_factory=dict)
    by_age: Dict[str, Tally] = field(default_factory=dict)
    recipes: Dict[str, RecipeInfo] = field(default_factory=dict)
    oldest: Optional[float] = None
    newest: Optional[float] = None
    archives_without_siginfo: int = 0

    def top_recipes(self, n: int) -> List[RecipeInfo]:
        return sorted(self.recipes.values(), key=lambda r: (-r.bytes, r.pn))[:n]

    def to_dict(self, *, top: int = 10, detail: bool = False) -> Dict[str, Any]:
        def tallies(d: Dict[str, Tally]) -> Dict[str, Dict[str, int]]:
            return {k: v.to_dict() for k, v in sorted(d.items(), key=lambda kv: -kv[1].bytes)}

        out: Dict[str, Any] = {
            "files": self.total.files,
            "bytes": self.total.bytes,
            "oldest_mtime": self.oldest,
            "newest_mtime": self.newest,
            "by_kind": tallies(self.by_kind),
            "by_arch": tallies(self.by_arch),
            "by_task": tallies(self.by_task),
            "by_prefix": tallies(self.by_prefix),
            "by_layout": tallies(self.by_layout),
            "by_sstate_version": tallies(self.by_version),
            "by_age": {label: self.by_age[label].to_dict() for _, label in AGE_BUCKETS},
            "recipes": len(self.recipes),
            "archives_without_siginfo": self.archives_without_siginfo,
            "top_recipes": [
                {"pn": r.pn, "files": r.files, "bytes": r.bytes} for r in self.top_recipes(top)
            ],
        }
        if detail:
            out["recipe_detail"] = [r.to_dict() for r in sorted(self.recipes.values(),
                                                                  key=lambda r: r.pn)]
        return out


def summarize(artifacts: Iterable[Artifact], now: float) -> InfoReport:
    """All statistics in one linear pass (see :class:`Summary`)."""
    catalog = Catalog.of(artifacts)
    summary = Summary(now)
    return summary.report(catalog)


class Summary:
    """``info``'s statistics of a catalog, summed as its rows are listed.

    The rows are read ``_BLOCK`` at a time: files, bytes and times are summed per part of a
    name (head, tail, directory) and per age bucket with numpy (``bincount``, ``add.at``,
    ``fmin.at``: a few nanoseconds a row), and folded into the tallies, per part, at the
    end. A tally's keys are made in the order their first file is listed, as a pass over
    :class:`Artifact` objects would make them: each part's first row is kept
    (``minimum.at``) and the parts are read in that order, with the rows kept whole (few,
    counted one by one) where they are listed. The archives per recipe and task are counted
    over packed pairs, in the order each pair is first listed. The archives without a
    ``.siginfo`` are counted at the end, over the catalog's groups as ``clean`` finds them
    (:class:`~sstate_mirror.commands.cleancolumns.Groups`: by sorting, a few bytes a row).
    What a block makes per row is bounded by the block, whatever the mirror's size.

    :meth:`feed` sums the rows listed since it was last called: a listing calls it as it
    goes, so that the sums are made while other processes walk the rest of the tree.
    :meth:`report` sums what is left and makes the report. A catalog's rows never change
    once listed; its tables of parts grow, and the sums grow with them. The cycle
    collector is paused meanwhile (:func:`~sstate_mirror.catalog.collector_paused`: the
    summary makes a recipe, three objects, per recipe and no cycle).
    """

    def __init__(self, now: float) -> None:
        self.now = now
        self._thresholds = _age_thresholds(now)
        self._bounds = np.array(self._thresholds, np.float64)
        self._start(None)

    def _start(self, catalog: Optional[Catalog]) -> None:
        """Sums of no row of ``catalog`` yet."""
        self._source = catalog
        self._done = 0  # rows summed
        self._heads = _PartSums(times=True)
        self._tails = _PartSums()
        self._dirs = _PartSums()
        self._head_archives = np.zeros(0, np.int64)
        self._age_files = np.zeros(len(AGE_BUCKETS), np.int64)
        self._age_bytes = np.zeros(len(AGE_BUCKETS), np.int64)
        self._fields = _Fields()
        # by tail number: its task's number here, and whether it is an archive's
        self._task_index: Dict[str, int] = {}
        self._tail_task = np.zeros(0, np.int64)
        self._is_archive: List[bool] = []
        # archives per (recipe, task) as recipe << 32 | task, by their numbers here
        self._task_archives = _PairCounts()

    def feed(self, catalog: Catalog) -> None:
        """Sum the rows of ``catalog`` listed since the last call."""
        with collector_paused():
            self._feed(catalog)

    def report(self, catalog: Catalog) -> InfoReport:
        """The report of every row of ``catalog`` (the one fed, or else one read whole)."""
        with collector_paused():
            self._feed(catalog)
            return self._report(catalog)

    def _grow(self, catalog: Catalog) -> None:
        """Sums and numbers for the parts added to ``catalog``'s tables."""
        tails = catalog.tails
        self._fields.extend(catalog.heads)
        self._heads.grow(len(catalog.heads))
        self._tails.grow(len(tails))
        self._dirs.grow(len(catalog.dirs))
        self._head_archives = _grown(self._head_archives, len(catalog.heads), 0)
        new = tails[len(self._is_archive):]
        if new:
            index = self._task_index
            self._tail_task = np.concatenate([self._tail_task, np.array(
                [index.setdefault(tail.task, len(index)) for tail in new], np.int64)])
            self._is_archive += [tail.kind is Kind.ARCHIVE for tail in new]

    def _feed(self, catalog: Catalog) -> None:
        if catalog is not self._source:  # the sums are of another catalog's rows, if any
            self._start(catalog)
        stop = len(catalog)
        if stop <= self._done:
            return
        self._grow(catalog)
        is_archive = np.array(self._is_archive, np.bool_)
        # views of the columns, gone when this returns (the catalog grows after)
        heads, tails = column(catalog.head, np.uint32), column(catalog.tail, np.uint32)
        dirs, sizes = column(catalog.dir, np.uint32), column(catalog.size, np.int64)
        mtimes = column(catalog.mtime, np.float64)
        for start in range(self._done, stop, _BLOCK):
            end = min(stop, start + _BLOCK)
            named = heads[start:end] != OTHER  # not kept whole: those are counted one by one
            rows = np.arange(start, end, dtype=np.int64)[named]
            hd = heads[start:end][named].astype(np.intp)
            tl = tails[start:end][named].astype(np.intp)
            dr = dirs[start:end][named].astype(np.intp)
            size = sizes[start:end][named]
            mtime = mtimes[start:end][named]
            self._heads.add(hd, rows, size, mtime)
            self._tails.add(tl, rows, size)
            self._dirs.add(dr, rows, size)
            # bisect_left over the thresholds, which puts a NaN (no time) in the first bucket
            bucket = np.searchsorted(self._bounds, mtime, side="left")
            bucket[np.isnan(mtime)] = 0
            self._age_files += np.bincount(bucket, minlength=len(AGE_BUCKETS))
            np.add.at(self._age_bytes, bucket, size)
            archive = is_archive[tl]
            archive_heads = hd[archive]
            self._head_archives += np.bincount(archive_heads,
                                               minlength=len(self._head_archives))
            self._task_archives.add(
                (self._fields.head_pn[archive_heads] << 32) | self._tail_task[tl[archive]],
                rows[archive])
        self._done = stop

    def _report(self, catalog: Catalog) -> InfoReport:
        report = InfoReport(now=self.now)
        for _, label in AGE_BUCKETS:
            report.by_age[label] = Tally()
        tails, dirs = catalog.tails, catalog.dirs
        others = sorted(catalog.others.items())
        others_rows = [row for row, _ in others]
        arts = [art for _, art in others]
        grouped = [art.name is not None and art.kind in GROUPED_KINDS for art in arts]
        _make_keys(report, catalog, self._fields, self._heads.order(others_rows),
                   self._tails.order(others_rows), self._dirs.order(others_rows), arts,
                   grouped)
        for art in arts:
            _add_artifact(report, art)
        _fold_heads(report, self._fields, self._heads, self._head_archives)
        _fold_tasks(report, list(self._fields.pn), list(self._task_index),
                    self._task_archives.result())
        for tail, files, size in zip(tails, self._tails.files.tolist(),
                                     self._tails.bytes.tolist()):
            _add(report.by_kind, tail.kind.value, files, size)
            _add(report.by_task, tail.task, files, size)
        for where, files, size in zip(dirs, self._dirs.files.tolist(),
                                      self._dirs.bytes.tolist()):
            _add(report.by_prefix, where.prefix or NO_PREFIX, files, size)
            _add(report.by_layout, where.layout, files, size)
        for (_, label), files, size in zip(AGE_BUCKETS, reversed(self._age_files.tolist()),
                                           reversed(self._age_bytes.tolist())):
            _add(report.by_age, label, files, size)
        # the groups (an archive and its companions: the rows kept whole grouped by their
        # keys) that have an archive and no .siginfo
        groups = Groups(catalog)
        report.archives_without_siginfo = int(np.count_nonzero(
            (groups.archive != NONE) & (groups.siginfo == NONE)))
        return report


def _grown(column: NDArray[Any], n: int, value: float) -> NDArray[Any]:
    """``column`` with ``value`` added up to ``n`` entries."""
    if len(column) >= n:
        return column
    return np.concatenate([column, np.full(n - len(column), value, column.dtype)])


class _PartSums:
    """Files, bytes, first row (and oldest and newest mtime) per part number, summed block
    after block."""

    def __init__(self, times: bool = False) -> None:
        self.times = times
        self.files = np.zeros(0, np.int64)
        self.bytes = np.zeros(0, np.int64)
        self.first = np.zeros(0, np.int64)
        self.oldest = np.zeros(0, np.float64)
        self.newest = np.zeros(0, np.float64)

    def grow(self, parts: int) -> None:
        self.files = _grown(self.files, parts, 0)
        self.bytes = _grown(self.bytes, parts, 0)
        self.first = _grown(self.first, parts, np.iinfo(np.int64).max)
        if self.times:
            self.oldest = _grown(self.oldest, parts, np.inf)
            self.newest = _grown(self.newest, parts, -np.inf)

    def add(self, parts: NDArray[np.intp], rows: NDArray[np.int64], size: NDArray[np.int64],
            mtime: Optional[NDArray[np.float64]] = None) -> None:
        self.files += np.bincount(parts, minlength=len(self.files))
        np.add.at(self.bytes, parts, size)
        np.minimum.at(self.first, parts, rows)
        if mtime is not None:  # fmin and fmax pass over a NaN (no time), as a comparison does
            np.fmin.at(self.oldest, parts, mtime)
            np.fmax.at(self.newest, parts, mtime)

    def order(self, whole: List[int]) -> List[int]:
        """The parts with files in the order of their first rows, with the rows kept whole
        (``whole``, ascending) among them where they are listed, numbered past the parts."""
        used = np.flatnonzero(self.files)
        numbers = np.concatenate([used, len(self.files) + np.arange(len(whole))])
        firsts = np.concatenate([self.first[used], np.array(whole, np.int64)])
        return cast(List[int], numbers[np.argsort(firsts, kind="stable")].tolist())


class _PairCounts:
    """Counts of packed pairs, made block by block, in the order each pair is first listed.

    A block's distinct pairs are kept as arrays and summed with the others' now and then:
    what is held is at most about twice the distinct pairs (and a block), however many
    blocks there are.
    """

    def __init__(self) -> None:
        self.pairs: List[NDArray[np.int64]] = []
        self.firsts: List[NDArray[np.int64]] = []
        self.counts: List[NDArray[np.int64]] = []
        self._held = 0
        self._limit = 1 << 16

    def add(self, pairs: NDArray[np.int64], rows: NDArray[np.int64]) -> None:
        """A block's pairs, listed at ``rows`` (ascending)."""
        unique, first, number = np.unique(pairs, return_index=True, return_counts=True)
        self.pairs.append(unique)
        self.firsts.append(rows[first])
        self.counts.append(number.astype(np.int64))
        self._held += len(unique)
        if self._held > self._limit:
            self._sum()
            self._limit = max(self._limit, 2 * self._held)

    def _sum(self) -> None:
        """The blocks' counts as one block's."""
        unique, which = np.unique(np.concatenate(self.pairs), return_inverse=True)
        first = np.full(len(unique), np.iinfo(np.int64).max, np.int64)
        np.minimum.at(first, which, np.concatenate(self.firsts))
        counts = np.zeros(len(unique), np.int64)
        np.add.at(counts, which, np.concatenate(self.counts))
        self.pairs, self.firsts, self.counts = [unique], [first], [counts]
        self._held = len(unique)

    def result(self) -> Dict[int, int]:
        if not self.pairs:
            return {}
        self._sum()
        unique, first, counts = self.pairs[0], self.firsts[0], self.counts[0]
        order = np.argsort(first, kind="stable")
        return dict(zip(unique[order].tolist(), counts[order].tolist()))


def _add(tallies: Dict[str, Tally], key: str, files: int, size: int) -> None:
    if files:
        tally = tallies[key]
        tally.files += files
        tally.bytes += size


class _Fields:
    """The recipe, arch and SSTATE_VERSION of each head, as numbers: each field's values
    numbered in the order first met (the keys of ``pn``, ``arch``, ``version``)."""

    def __init__(self) -> None:
        self.pn: Dict[str, int] = {}
        self.arch: Dict[str, int] = {}
        self.version: Dict[str, int] = {}
        self.head_pn = np.zeros(0, np.int64)
        self.head_arch = np.zeros(0, np.int64)
        self.head_version = np.zeros(0, np.int64)

    def extend(self, heads: List[Head]) -> None:
        """Number the heads past those numbered."""
        new = heads[len(self.head_pn):]
        if new:
            self.head_pn = self._codes(self.head_pn, self.pn, [head.pn for head in new])
            self.head_arch = self._codes(self.head_arch, self.arch,
                                         [head.pkgarch or NO_ARCH for head in new])
            self.head_version = self._codes(self.head_version, self.version,
                                            [head.version for head in new])

    @staticmethod
    def _codes(codes: NDArray[np.int64], index: Dict[str, int], values: List[str]
               ) -> NDArray[np.int64]:
        return np.concatenate([codes, np.array(
            [index.setdefault(value, len(index)) for value in values], np.int64)])


def _fold_heads(report: InfoReport, fields: _Fields, sums: _PartSums,
                archives: NDArray[np.int64]) -> None:
    """Count the heads' files, bytes and times in their tallies and recipes (each head's
    archives in its recipe's archs, in the heads' order)."""
    n = len(fields.head_pn)
    files, size, archived = sums.files[:n], sums.bytes[:n], archives[:n]
    used = np.flatnonzero(files)
    if not len(used):
        return
    report.total.files += int(files.sum())
    report.total.bytes += int(size.sum())
    for codes, index, tallies in ((fields.head_arch, fields.arch, report.by_arch),
                                  (fields.head_version, fields.version, report.by_version)):
        for name, count, total in zip(index, *_sum_by(codes[used], len(index),
                                                      files[used], size[used])):
            _add(tallies, name, count, total)
    low = float(sums.oldest[used].min())
    high = float(sums.newest[used].max())
    report.oldest = low if report.oldest is None else min(report.oldest, low)
    report.newest = high if report.newest is None else max(report.newest, high)
    pns = fields.head_pn[used]
    counts, totals, archive_counts = _sum_by(pns, len(fields.pn), files[used], size[used],
                                             archived[used])
    oldest = np.full(len(fields.pn), np.inf)
    newest = np.full(len(fields.pn), -np.inf)
    np.minimum.at(oldest, pns, sums.oldest[used])
    np.maximum.at(newest, pns, sums.newest[used])
    recipes = report.recipes
    for pn, count, total, archive_count, low, high in zip(
            fields.pn, counts, totals, archive_counts, oldest.tolist(), newest.tolist()):
        if not count:
            continue
        recipe = recipes[pn]
        recipe.files += count
        recipe.bytes += total
        recipe.archives += archive_count
        if low < recipe.oldest:
            recipe.oldest = low
        if high > recipe.newest:
            recipe.newest = high
    # the archs of a recipe's archives, in the order of the first head with each
    with_archives = used[archived[used] > 0]
    if len(with_archives):
        n_archs = len(fields.arch)
        pairs = fields.head_pn[with_archives] * n_archs + fields.head_arch[with_archives]
        unique, first, which = np.unique(pairs, return_index=True, return_inverse=True)
        counted = np.zeros(len(unique), np.int64)
        np.add.at(counted, which, archived[with_archives])
        order = np.argsort(first, kind="stable")
        pn_names, arch_names = list(fields.pn), list(fields.arch)
        for pair, count in zip(unique[order].tolist(), counted[order].tolist()):
            recipe = recipes[pn_names[pair // n_archs]]
            arch = arch_names[pair % n_archs]
            recipe.archs[arch] = recipe.archs.get(arch, 0) + count


def _sum_by(codes: NDArray[np.int64], n: int, *columns: NDArray[np.int64]
            ) -> List[List[int]]:
    """Each column summed by code (``n`` codes)."""
    out = []
    for values in columns:
        total = np.zeros(n, np.int64)
        np.add.at(total, codes, values)
        out.append(cast(List[int], total.tolist()))
    return out


def _fold_tasks(report: InfoReport, pns: List[str], tasks: List[str],
                archives: Dict[int, int]) -> None:
    """Count the archives per (recipe, task) (``archives``, by ``pn << 32 | task``)."""
    keys = array("Q", archives)
    with memoryview(keys) as view, view.cast("B") as raw, raw.cast("I") as words:
        lo, hi = (0, 1) if sys.byteorder == "little" else (1, 0)
        pn_ids, task_ids = array("I", words[hi::2]), array("I", words[lo::2])
    found: List[Dict[str, int]] = [{} for _ in pns]
    deque(map(dict.__setitem__, map(found.__getitem__, pn_ids),
              map(tasks.__getitem__, task_ids), archives.values()), maxlen=0)
    for pn, counts in zip(pns, found):
        if not counts:
            continue
        recipe = report.recipes[pn]
        if not recipe.tasks:
            recipe.tasks = counts
            continue
        for task, count in counts.items():  # after the rows kept whole, as they are listed
            recipe.tasks[task] = recipe.tasks.get(task, 0) + count


def _add_artifact(report: InfoReport, art: Artifact,
                  archives: Optional[Set[Union[bytes, str]]] = None,
                  siginfo_keys: Optional[Set[str]] = None) -> None:
    """Count one file the catalog keeps whole (leftovers, unknown files, legacy names);
    the group keys of archives and ``.siginfo`` files go to ``archives`` and
    ``siginfo_keys`` where given."""
    report.total.add(art.size)
    report.by_kind.setdefault(art.kind.value, Tally()).add(art.size)
    if art.kind is Kind.META:
        return  # the mirror's own data (pins): counted, but no artifact
    report.oldest = art.mtime if report.oldest is None else min(report.oldest, art.mtime)
    report.newest = art.mtime if report.newest is None else max(report.newest, art.mtime)
    age = art.age(now=report.now)
    for bound, label in AGE_BUCKETS:
        if age < bound:
            report.by_age[label].add(art.size)
            break
    if art.name is None or art.kind not in GROUPED_KINDS:
        return
    report.by_arch.setdefault(art.arch or NO_ARCH, Tally()).add(art.size)
    report.by_task.setdefault(art.task, Tally()).add(art.size)
    layout = layout_of(art.path, art.name)
    prefix = directory_prefix(art.path, art.name, layout)
    report.by_prefix.setdefault(prefix or NO_PREFIX, Tally()).add(art.size)
    report.by_layout.setdefault(layout, Tally()).add(art.size)
    report.by_version.setdefault(art.name.version, Tally()).add(art.size)
    recipe = report.recipes.get(art.pn)
    if recipe is None:
        recipe = report.recipes[art.pn] = RecipeInfo(art.pn)
    recipe.add(art)
    if art.kind is Kind.ARCHIVE and archives is not None:
        archives.add(art.group_key)
    elif art.kind is Kind.SIGINFO and siginfo_keys is not None:
        siginfo_keys.add(art.group_key)


def _age_thresholds(now: float) -> List[float]:
    """The mtimes where the age buckets change, ascending, as exact as ``now - mtime``.

    A file is in bucket ``i`` (of :data:`AGE_BUCKETS`) when ``now - mtime`` is under the
    ``i``-th bound and not the one before. The rounded difference only grows as ``mtime``
    falls, so each bound is crossed at one mtime: the largest ``m`` with ``now - m >=
    bound``, found by stepping from ``now - bound`` to the neighbouring floats. Then
    ``bisect_left(thresholds, mtime)`` counts the bounds a file is *not* past, with no
    subtraction per file.
    """
    out = []
    for bound, _ in AGE_BUCKETS[:-1]:
        m = now - bound
        while now - m < bound:
            m = math.nextafter(m, -math.inf)
        while now - math.nextafter(m, math.inf) >= bound:
            m = math.nextafter(m, math.inf)
        out.append(m)
    return sorted(out)


def _make_keys(report: InfoReport, catalog: Catalog, fields: _Fields,
               head_order: Iterable[int], tail_order: Iterable[int], dir_order: Iterable[int],
               arts: List[Artifact], grouped: List[bool]) -> None:
    """Make the tallies' keys in the order their first file is listed.

    The orders are of the parts' numbers as :meth:`_PartSums.order` gives them: the
    ``i``-th row kept whole is numbered ``i`` past the parts and comes where it is listed.
    """
    heads, tails, dirs = catalog.heads, catalog.tails, catalog.dirs
    order = np.array(head_order, np.int64)
    whole = [arts[hd - len(heads)] if hd >= len(heads) and grouped[hd - len(heads)] else None
             for hd in order[order >= len(heads)].tolist()]  # few: the rows kept whole
    for arch in _first_listed(order, fields.head_arch, fields.arch, whole, _arch):
        _key(report.by_arch, arch)
    for version in _first_listed(order, fields.head_version, fields.version, whole, _version):
        _key(report.by_version, version)
    for pn in _first_listed(order, fields.head_pn, fields.pn, whole, _pn):
        if pn not in report.recipes:
            report.recipes[pn] = RecipeInfo(pn)
    for tl in tail_order:
        if tl < len(tails):
            tail = tails[tl]
            _key(report.by_kind, tail.kind.value)
            _key(report.by_task, tail.task)
        else:
            art = arts[tl - len(tails)]
            _key(report.by_kind, art.kind.value)
            if grouped[tl - len(tails)]:
                _key(report.by_task, art.task)
    for dr in dir_order:
        if dr < len(dirs):
            prefix, layout = dirs[dr].prefix, dirs[dr].layout
        elif grouped[dr - len(dirs)]:
            art = arts[dr - len(dirs)]
            assert art.name is not None
            layout = layout_of(art.path, art.name)
            prefix = directory_prefix(art.path, art.name, layout)
        else:
            continue
        _key(report.by_prefix, prefix or NO_PREFIX)
        _key(report.by_layout, layout)


def _first_listed(order: NDArray[np.int64], codes: NDArray[np.int64], index: Dict[str, int],
                  whole: List[Optional[Artifact]], value: Callable[[Artifact], str]
                  ) -> List[str]:
    """The values of a field (``codes`` by head, numbered in ``index``) in the order
    first listed, for the heads in ``order``: a head numbered past ``codes`` is a row kept
    whole (the ``whole`` of them, in order; None: no such field), numbered here."""
    listed = np.full(len(order), -1, np.int64)
    real = order < len(codes)
    listed[real] = codes[order[real]]
    listed[~real] = [-1 if art is None else index.setdefault(value(art), len(index))
                     for art in whole]
    names = list(index)
    return [names[code] for code in dict.fromkeys(listed[listed >= 0].tolist())]


def _arch(art: Artifact) -> str:
    return art.arch or NO_ARCH


def _pn(art: Artifact) -> str:
    return art.pn


def _version(art: Artifact) -> str:
    assert art.name is not None  # a grouped artifact
    return art.name.version


def _key(tallies: Dict[str, Tally], key: str) -> None:
    if key not in tallies:
        tallies[key] = Tally()
