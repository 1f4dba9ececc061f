"""``info``: what a mirror holds, how big and how old — one pass over the listing.

The summary of a million-file mirror must cost about a second: a Python step per file and
per tally is several times that. So the pass over a :class:`~sstate_mirror.catalog.Catalog`
keeps only its sums per row in Python and leaves the rest to the standard library's C
iterators over the columns (``Counter``, ``itertools.compress``, ``struct.iter_unpack``,
``memoryview`` copies). This is hand-written rather than a dataframe library's group-by: the
groups are the catalog's own parts (heads, tails, directories), and no such library is a
dependency of the tool.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from ..catalog import Catalog, Head, collector_paused
from ..naming import GROUPED_KINDS, Artifact, Kind, directory_prefix, layout_of

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
#: One file in a packed tally: the files above bit 64, the bytes (their sum) below.
_FILE = 1 << 64
#: The group key of a row: its hash, directory, head and archive tail (11 words).
_RECORD = struct.Struct("44s")
#: The last three words of a group key (native order, as the catalog's ``array("I")``).
_IDS = struct.Struct("=III")


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
    """All statistics in one linear pass (see :func:`_summarize`), with the cycle collector
    paused (:func:`~sstate_mirror.catalog.collector_paused`: the summary makes a recipe,
    three objects, per recipe and no cycle)."""
    with collector_paused():
        return _summarize(artifacts, now)


def _summarize(artifacts: Iterable[Artifact], now: float) -> InfoReport:
    """All statistics in one linear pass.

    The pass reads a :class:`~sstate_mirror.catalog.Catalog`'s columns: it sums files,
    bytes and times per part of a name (head, tail, directory) and folds those into the
    tallies at the end. A tally's keys are made in the order their first file is listed, as
    a pass over :class:`Artifact` objects would make them.

    Per row, the only Python code is the sums themselves (bytes and times per head, bytes
    per tail, directory and age bucket); the files per part and the order of first files
    come from ``Counter`` (which keeps its keys in the order first counted), the archives
    per recipe and task from ``Counter`` over packed pairs, and the group keys of archives
    and ``.siginfo`` files from :func:`_group_keys` (matched by :class:`_Unmatched`).
    The catalog is read ``_BLOCK`` rows at a time, so what the pass makes per row is
    bounded whatever the mirror's size.
    """
    catalog = Catalog.of(artifacts)
    report = InfoReport(now=now)
    for _, label in AGE_BUCKETS:
        report.by_age[label] = Tally()
    heads, tails, dirs = catalog.heads, catalog.tails, catalog.dirs
    others = sorted(catalog.others.items())
    others_rows = [row for row, _ in others]
    n_heads, n_tails, n_dirs, n_others = len(heads), len(tails), len(dirs), len(others)
    # Bytes per part; the slots past the parts are the rows kept whole (see _blocks): they
    # are summed like the others, and not read. The files per part are counted (in C) by the
    # Counters, which keep the parts in the order their first file is listed.
    head_sums, tail_sums = [0] * (n_heads + n_others), [0] * (n_tails + n_others)
    dir_sums = [0] * (n_dirs + n_others)
    head_files: Counter[int] = Counter()
    tail_files: Counter[int] = Counter()
    dir_files: Counter[int] = Counter()
    head_oldest = [math.inf] * (n_heads + n_others)
    head_newest = [-math.inf] * (n_heads + n_others)
    age_sums = [0] * len(AGE_BUCKETS)  # packed tallies: _FILE per file plus its size
    thresholds = _age_thresholds(now)
    # archives per head, and per (recipe, task) as recipe << 32 | task, by their numbers here
    pn_index: Dict[str, int] = {}
    task_index: Dict[str, int] = {}
    head_pn = [pn_index.setdefault(head.pn, len(pn_index)) for head in heads]
    tail_task = [task_index.setdefault(tail.task, len(task_index)) for tail in tails]
    is_archive = [tail.kind is Kind.ARCHIVE for tail in tails] + [False] * n_others
    is_siginfo = [tail.kind is Kind.SIGINFO for tail in tails] + [False] * n_others
    archive_of = [tail.archive for tail in tails] + [0] * n_others
    unmatched = _Unmatched()
    head_archives: Counter[int] = Counter()
    task_archives: Counter[int] = Counter()
    bucket, one = bisect_left, _FILE
    for start, stop, hd_col, tl_col, dr_col in _blocks(catalog, others_rows):
        head_files.update(hd_col)
        tail_files.update(tl_col)
        dir_files.update(dr_col)
        for hd, tl, dr, size, mtime in zip(hd_col, tl_col, dr_col, catalog.size[start:stop],
                                           catalog.mtime[start:stop]):
            head_sums[hd] += size
            if mtime < head_oldest[hd]:
                head_oldest[hd] = mtime
            if mtime > head_newest[hd]:
                head_newest[hd] = mtime
            tail_sums[tl] += size
            dir_sums[dr] += size
            age_sums[bucket(thresholds, mtime)] += size + one
        archive = bytes(map(is_archive.__getitem__, tl_col))
        archive_heads = array("I", compress(hd_col, archive))
        head_archives.update(archive_heads)
        task_archives.update(_pairs(array("I", map(head_pn.__getitem__, archive_heads)),
                                    array("I", map(tail_task.__getitem__,
                                                   compress(tl_col, archive)))))
        keys = _group_keys(catalog, start, stop, hd_col, dr_col,
                           array("I", map(archive_of.__getitem__, tl_col)))
        unmatched.add(set(compress(keys, archive)),
                      set(compress(keys, map(is_siginfo.__getitem__, tl_col))))
        del keys
    if unmatched.unmatched:
        heads_left = {_IDS.unpack_from(key, 32)[1] for key in unmatched.unmatched}
        unmatched.remove(_siginfo_keys(catalog, others_rows, heads_left, is_siginfo,
                                       archive_of))
    for row in others_rows:  # summed above as if it were a row like the others
        age_sums[bisect_left(thresholds, catalog.mtime[row])] -= catalog.size[row] + _FILE

    arts = [art for _, art in others]
    grouped = [art.name is not None and art.kind in GROUPED_KINDS for art in arts]
    _make_keys(report, catalog, head_files, tail_files, dir_files, arts, grouped)
    archives: Set[Union[bytes, str]] = set()  # group keys of the rows kept whole
    siginfo_keys: Set[str] = set()
    for art in arts:
        _add_artifact(report, art, archives, siginfo_keys)
    _fold_heads(report, heads, head_files, head_sums, head_oldest, head_newest, head_archives)
    _fold_tasks(report, list(pn_index), list(task_index), task_archives)
    for tl, (tail, size) in enumerate(zip(tails, tail_sums)):
        _add(report.by_kind, tail.kind.value, tail_files[tl], size)
        _add(report.by_task, tail.task, tail_files[tl], size)
    for dr, (where, size) in enumerate(zip(dirs, dir_sums)):
        _add(report.by_prefix, where.prefix or NO_PREFIX, dir_files[dr], size)
        _add(report.by_layout, where.layout, dir_files[dr], size)
    for (_, label), packed in zip(AGE_BUCKETS, reversed(age_sums)):
        files, size = _unpack(packed)
        _add(report.by_age, label, files, size)
    report.archives_without_siginfo = (
        len(unmatched.unmatched) + sum(1 for key in archives if key not in siginfo_keys))
    return report


def _add(tallies: Dict[str, Tally], key: str, files: int, size: int) -> None:
    if files:
        tally = tallies[key]
        tally.files += files
        tally.bytes += size


def _fold_heads(report: InfoReport, heads: List[Head], files: Counter[int], sums: List[int],
                oldest: List[float], newest: List[float], archives: Counter[int]) -> None:
    """Count each head's files and bytes in its tallies, in the heads' order."""
    total = 0
    by_arch: Dict[str, int] = {}
    by_version: Dict[str, int] = {}
    recipes = report.recipes
    lowest: List[float] = [] if report.oldest is None else [report.oldest]
    highest: List[float] = [] if report.newest is None else [report.newest]
    for hd, (head, size, low, high) in enumerate(zip(heads, sums, oldest, newest)):
        count = files.get(hd, 0)
        if not count:
            continue
        packed = count * _FILE + size
        total += packed
        arch = head.pkgarch or NO_ARCH
        by_arch[arch] = by_arch.get(arch, 0) + packed
        by_version[head.version] = by_version.get(head.version, 0) + packed
        lowest.append(low)
        highest.append(high)
        recipe = recipes[head.pn]
        recipe.files += count
        recipe.bytes += size
        count = archives.get(hd, 0)
        if count:
            recipe.archives += count
            recipe.archs[arch] = recipe.archs.get(arch, 0) + count
        if low < recipe.oldest:
            recipe.oldest = low
        if high > recipe.newest:
            recipe.newest = high
    count, size = _unpack(total)
    report.total.files += count
    report.total.bytes += size
    for arch, packed in by_arch.items():
        _add(report.by_arch, arch, *_unpack(packed))
    for version, packed in by_version.items():
        _add(report.by_version, version, *_unpack(packed))
    if lowest:
        report.oldest, report.newest = min(lowest), max(highest)


def _fold_tasks(report: InfoReport, pns: List[str], tasks: List[str],
                archives: Counter[int]) -> None:
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


def _add_artifact(report: InfoReport, art: Artifact, archives: Set[Union[bytes, str]],
                  siginfo_keys: Set[str]) -> None:
    """Count one file the catalog keeps whole (leftovers, unknown files, legacy names)."""
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
    if art.kind is Kind.ARCHIVE:
        archives.add(art.group_key)
    elif art.kind is Kind.SIGINFO:
        siginfo_keys.add(art.group_key)


def _unpack(packed: int) -> Tuple[int, int]:
    """The files and bytes of a packed tally (see ``_FILE``)."""
    files = (packed + (_FILE >> 1)) >> 64
    return files, packed - (files << 64)


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


def _pairs(high: array[int], low: array[int]) -> memoryview:
    """``high[i] << 32 | low[i]`` for each row, made by copying words, not by arithmetic."""
    out = array("Q", [0]) * len(high)
    with memoryview(out) as view, view.cast("B") as raw, raw.cast("I") as words:
        lo, hi = (0, 1) if sys.byteorder == "little" else (1, 0)
        words[lo::2] = low
        words[hi::2] = high
    return memoryview(out)


def _siginfo_keys(catalog: Catalog, others_rows: List[int], heads: Set[int],
                  is_siginfo: List[bool], archive_of: List[int]) -> Iterator[bytes]:
    """The group keys (as :func:`_group_keys` makes them) of the ``.siginfo`` files with
    one of ``heads``: the rows are picked in C, and only theirs are made one at a time."""
    for start, stop, hd_col, tl_col, dr_col in _blocks(catalog, others_rows):
        for row in compress(range(start, stop), map(heads.__contains__, hd_col)):
            i = row - start
            if is_siginfo[tl_col[i]]:
                yield (bytes(catalog.hashes[32 * row: 32 * row + 32])
                       + _IDS.pack(dr_col[i], hd_col[i], archive_of[tl_col[i]]))


def _group_keys(catalog: Catalog, start: int, stop: int, hd_col: array[int],
                dr_col: array[int], archive_col: array[int]) -> List[bytes]:
    """The group key of each of rows ``start:stop``: the archive's, for a companion."""
    return list(map(itemgetter(0), _RECORD.iter_unpack(
        _group_records(catalog, start, stop, hd_col, dr_col, archive_col))))


def _group_records(catalog: Catalog, start: int, stop: int, hd_col: array[int],
                   dr_col: array[int], archive_col: array[int]) -> array[int]:
    """Rows ``start:stop`` as 44-byte records: hash, directory, head, archive's tail."""
    out = array("I", [0]) * (11 * (stop - start))
    hashes = catalog.hashes[32 * start: 32 * stop]
    with memoryview(out) as view, memoryview(hashes) as raw, raw.cast("I") as words:
        for k in range(8):
            view[k::11] = words[k::8]
        view[8::11] = dr_col
        view[9::11] = hd_col
        view[10::11] = archive_col
    return out


def _blocks(catalog: Catalog, others_rows: List[int]
            ) -> Iterator[Tuple[int, int, array[int], array[int], array[int]]]:
    """The head, tail and directory columns, ``_BLOCK`` rows at a time, rows kept whole marked.

    The ``i``-th row kept whole (``others_rows`` is ascending) reads as head ``len(heads) +
    i``, tail ``len(tails) + i`` and directory ``len(dirs) + i``: a part of its own.
    """
    n_heads, n_tails, n_dirs = len(catalog.heads), len(catalog.tails), len(catalog.dirs)
    rows = len(catalog)
    marked = 0
    for start in range(0, rows, _BLOCK):
        stop = min(rows, start + _BLOCK)
        hd_col, tl_col = catalog.head[start:stop], catalog.tail[start:stop]
        dr_col = catalog.dir[start:stop]
        while marked < len(others_rows) and others_rows[marked] < stop:
            row = others_rows[marked] - start
            hd_col[row] = n_heads + marked
            tl_col[row] = n_tails + marked
            dr_col[row] = n_dirs + marked
            marked += 1
        yield start, stop, hd_col, tl_col, dr_col


def _make_keys(report: InfoReport, catalog: Catalog, head_order: Iterable[int],
               tail_order: Iterable[int], dir_order: Iterable[int], arts: List[Artifact],
               grouped: List[bool]) -> None:
    """Make the tallies' keys in the order their first file is listed.

    The orders are of the parts' numbers as :func:`_blocks` gives them: a row kept whole
    comes in them where it is listed.
    """
    heads, tails, dirs = catalog.heads, catalog.tails, catalog.dirs
    for hd in head_order:
        if hd < len(heads):
            head = heads[hd]
            arch, version, pn = head.pkgarch, head.version, head.pn
        elif grouped[hd - len(heads)]:
            art = arts[hd - len(heads)]
            assert art.name is not None
            arch, version, pn = art.arch, art.name.version, art.pn
        else:
            continue
        _key(report.by_arch, arch or NO_ARCH)
        _key(report.by_version, version)
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


def _key(tallies: Dict[str, Tally], key: str) -> None:
    if key not in tallies:
        tallies[key] = Tally()


class _Unmatched:
    """Archives with no ``.siginfo`` beside them, over blocks of rows: exact, in any order.

    The archives' keys are all kept (a key listed twice is one archive, as in a set), as the
    previous summary kept them; besides them, only the archives no ``.siginfo`` in the same
    block or a later one has matched. Those few (a file's companions are listed next to it)
    are then looked for among every ``.siginfo`` (:meth:`remove`), only when there are any.
    """

    def __init__(self) -> None:
        self.seen: Set[bytes] = set()
        self.unmatched: Set[bytes] = set()

    def add(self, archives: Set[bytes], siginfos: Set[bytes]) -> None:
        """The keys of a block's archives and ``.siginfo`` files, block after block."""
        new = archives - self.seen
        self.seen |= new
        if self.unmatched:
            self.unmatched = self.unmatched - siginfos  # iterates the smaller set
        self.unmatched |= new - siginfos

    def remove(self, siginfos: Iterable[bytes]) -> None:
        """The keys of ``.siginfo`` files, any of them (those listed before their archive)."""
        self.unmatched.difference_update(siginfos)
