"""``info``: what a mirror holds, how big and how old — one pass over the listing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..naming import Artifact, Kind, directory_prefix, layout_of

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
    """All statistics in one linear pass."""
    report = InfoReport(now=now)
    for _, label in AGE_BUCKETS:
        report.by_age[label] = Tally()
    archives: Dict[str, bool] = {}  # group key -> has siginfo
    siginfo_keys: set[str] = set()
    for art in artifacts:
        report.total.add(art.size)
        report.by_kind.setdefault(art.kind.value, Tally()).add(art.size)
        if art.kind is Kind.META:
            continue  # the mirror's own data (pins): counted, but no artifact
        report.oldest = art.mtime if report.oldest is None else min(report.oldest, art.mtime)
        report.newest = art.mtime if report.newest is None else max(report.newest, art.mtime)
        age = art.age(now)
        for bound, label in AGE_BUCKETS:
            if age < bound:
                report.by_age[label].add(art.size)
                break
        if art.name is None or art.kind not in (Kind.ARCHIVE, Kind.SIGINFO, Kind.SIG):
            continue
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
            archives[art.group_key] = True
        elif art.kind is Kind.SIGINFO:
            siginfo_keys.add(art.group_key)
    report.archives_without_siginfo = sum(1 for key in archives if key not in siginfo_keys)
    return report
