"""``info``: what a mirror holds, how big and how old — one pass over the listing."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from ..catalog import OTHER, Catalog, Head
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
    """All statistics in one linear pass.

    The pass reads a :class:`~sstate_mirror.catalog.Catalog`'s columns: it counts files,
    bytes and times per part of a name (head, tail, directory) and folds those into the
    tallies at the end, so the cost per file is a few additions and no object. A tally's
    keys are made in the order their first file is listed, as a pass over
    :class:`Artifact` objects would make them.
    """
    catalog = Catalog.of(artifacts)
    report = InfoReport(now=now)
    for _, label in AGE_BUCKETS:
        report.by_age[label] = Tally()
    bounds = [bound for bound, _ in AGE_BUCKETS]
    age_files = [0] * len(bounds)
    age_bytes = [0] * len(bounds)
    heads, tails, dirs = catalog.heads, catalog.tails, catalog.dirs
    head_files, head_bytes = [0] * len(heads), [0] * len(heads)
    head_oldest, head_newest = [math.inf] * len(heads), [-math.inf] * len(heads)
    head_archives = [0] * len(heads)
    tail_files, tail_bytes = [0] * len(tails), [0] * len(tails)
    dir_files, dir_bytes = [0] * len(dirs), [0] * len(dirs)
    is_archive = [tail.kind is Kind.ARCHIVE for tail in tails]
    archive_tasks: Dict[Tuple[str, str], int] = {}  # (pn, task) -> archives
    archives: Set[Union[bytes, str]] = set()  # group keys of archives
    siginfo_keys: Set[str] = set()
    hashes = catalog.hashes
    columns = zip(catalog.head, catalog.tail, catalog.dir, catalog.size, catalog.mtime)
    for row, (hd, tl, dr, size, mtime) in enumerate(columns):
        if hd == OTHER:
            _add_artifact(report, catalog.others[row], archives, siginfo_keys)
            continue
        if not tail_files[tl]:
            report.by_kind.setdefault(tails[tl].kind.value, Tally())
            report.by_task.setdefault(tails[tl].task, Tally())
        if not head_files[hd]:
            head = heads[hd]
            report.by_arch.setdefault(head.pkgarch or NO_ARCH, Tally())
            if head.pn not in report.recipes:
                report.recipes[head.pn] = RecipeInfo(head.pn)
        if not dir_files[dr]:
            report.by_prefix.setdefault(dirs[dr].prefix or NO_PREFIX, Tally())
            report.by_layout.setdefault(dirs[dr].layout, Tally())
        if not head_files[hd]:
            report.by_version.setdefault(heads[hd].version, Tally())
        head_files[hd] += 1
        head_bytes[hd] += size
        if mtime < head_oldest[hd]:
            head_oldest[hd] = mtime
        if mtime > head_newest[hd]:
            head_newest[hd] = mtime
        tail_files[tl] += 1
        tail_bytes[tl] += size
        dir_files[dr] += 1
        dir_bytes[dr] += size
        bucket = bisect.bisect_right(bounds, now - mtime)
        age_files[bucket] += 1
        age_bytes[bucket] += size
        if is_archive[tl]:
            head_archives[hd] += 1
            key = (heads[hd].pn, tails[tl].task)
            archive_tasks[key] = archive_tasks.get(key, 0) + 1
            archives.add(bytes(hashes[32 * row: 32 * row + 32])
                         + (dr << 64 | hd << 32 | tl).to_bytes(12, "little"))
    for hd, head in enumerate(heads):
        if head_files[hd]:
            _fold_head(report, head, head_files[hd], head_bytes[hd], head_oldest[hd],
                       head_newest[hd], head_archives[hd])
    for (pn, task), n in archive_tasks.items():
        tasks = report.recipes[pn].tasks
        tasks[task] = tasks.get(task, 0) + n
    for tail, n, size in zip(tails, tail_files, tail_bytes):
        _add(report.by_kind, tail.kind.value, n, size)
        _add(report.by_task, tail.task, n, size)
    for where, n, size in zip(dirs, dir_files, dir_bytes):
        _add(report.by_prefix, where.prefix or NO_PREFIX, n, size)
        _add(report.by_layout, where.layout, n, size)
    for (_, label), n, size in zip(AGE_BUCKETS, age_files, age_bytes):
        _add(report.by_age, label, n, size)
    siginfo_tails = {tl: tail.archive for tl, tail in enumerate(tails)
                     if tail.kind is Kind.SIGINFO}
    for row, (hd, tl, dr) in enumerate(zip(catalog.head, catalog.tail, catalog.dir)):
        if hd != OTHER and tl in siginfo_tails:
            archives.discard(bytes(hashes[32 * row: 32 * row + 32])
                             + (dr << 64 | hd << 32 | siginfo_tails[tl]).to_bytes(12, "little"))
    report.archives_without_siginfo = sum(1 for key in archives if key not in siginfo_keys)
    return report


def _add(tallies: Dict[str, Tally], key: str, files: int, size: int) -> None:
    if files:
        tally = tallies[key]
        tally.files += files
        tally.bytes += size


def _fold_head(report: InfoReport, head: Head, files: int, size: int, oldest: float,
               newest: float, archives: int) -> None:
    """Count ``files`` files with ``head`` (``size`` bytes in all) in its tallies."""
    report.total.files += files
    report.total.bytes += size
    _add(report.by_arch, head.pkgarch or NO_ARCH, files, size)
    _add(report.by_version, head.version, files, size)
    report.oldest = oldest if report.oldest is None else min(report.oldest, oldest)
    report.newest = newest if report.newest is None else max(report.newest, newest)
    recipe = report.recipes[head.pn]
    recipe.files += files
    recipe.bytes += size
    if archives:
        recipe.archives += archives
        arch = head.pkgarch or NO_ARCH
        recipe.archs[arch] = recipe.archs.get(arch, 0) + archives
    recipe.oldest = min(recipe.oldest, oldest)
    recipe.newest = max(recipe.newest, newest)


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
