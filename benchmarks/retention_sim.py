"""Replay months of CI builds against a mirror under different retention policies.

Why: "delete what is older than 30 days" sounds safe, but on a mirror where nothing records
use it deletes the toolchain every build needs (it has not changed in months) while keeping
a month of short-lived branch artifacts. This simulation shows the effect in numbers, using
the tool's own clean planner (:func:`sstate_mirror.commands.clean.plan_clean`), so what is
measured is what ``sstate-mirror clean`` would do.

Model (deterministic for a seed):
- recipes in three classes: a *toolchain* that changes rarely (compiler, libc, binutils:
  large archives), *core* recipes that change every few weeks, *app* recipes that change every
  few days; each recipe has four sstate tasks;
- every day a number of CI builds on the main branch (each needs the current hash of every
  task) and of feature branches (which also change a few app recipes of their own);
- a build looks every artifact up on the mirror: a hit is recorded (and, for policies that
  record use, the group is touched, as ``sstate-mirror upload`` does), a miss is rebuilt and
  uploaded;
- every night ``clean`` runs with the policy under test.

Usage: ``python benchmarks/retention_sim.py [--days 180] [--seed 1] [--markdown]``
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sstate_mirror.commands.clean import CleanOptions, plan_clean
from sstate_mirror.naming import Artifact, make_artifact
from sstate_mirror.units import format_size

DAY = 86400.0
TASKS = ("populate_sysroot", "package_write_rpm", "packagedata", "populate_lic")
MiB = 1 << 20


@dataclass
class Recipe:
    pn: str
    klass: str
    change_every_days: float
    base_size: int
    version: int = 0

    def hash(self, task: str, variant: str = "") -> str:
        seed = f"{self.pn}:{self.version}:{task}:{variant}"
        return hashlib.sha256(seed.encode()).hexdigest()


@dataclass
class Policy:
    name: str
    touch: bool
    options: Optional[CleanOptions]


@dataclass
class Stats:
    lookups: int = 0
    hits: int = 0
    toolchain_misses: int = 0
    """Rebuilds of toolchain artifacts that had been on the mirror (cleaned too early)."""
    avoidable: int = 0
    """Rebuilds of any artifact that had been on the mirror before."""
    avoidable_bytes: int = 0
    sizes: List[int] = field(default_factory=list)
    files: List[int] = field(default_factory=list)
    clean_seconds: float = 0.0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0


def make_recipes(rng: random.Random) -> List[Recipe]:
    recipes = []
    for i in range(40):
        recipes.append(Recipe(f"toolchain{i}", "toolchain", rng.uniform(90, 240),
                              int(rng.lognormvariate(math.log(80 * MiB), 0.6))))
    for i in range(260):
        recipes.append(Recipe(f"core{i}", "core", rng.uniform(14, 60),
                              int(rng.lognormvariate(math.log(2 * MiB), 1.0))))
    for i in range(100):
        recipes.append(Recipe(f"app{i}", "app", rng.uniform(2, 8),
                              int(rng.lognormvariate(math.log(1 * MiB), 1.0))))
    return recipes


def path_for(r: Recipe, task: str, h: str) -> str:
    return (f"{h[:2]}/{h[2:4]}/sstate:{r.pn}:core2-64-poky-linux:1.0:r{r.version}:core2-64:14:"
            f"{h}_{task}.tar.zst")


class Mirror:
    """path -> (size, mtime); groups are archive + siginfo."""

    def __init__(self) -> None:
        self.files: Dict[str, Tuple[int, float]] = {}

    def has(self, path: str) -> bool:
        return path in self.files

    def upload(self, path: str, size: int, now: float) -> None:
        self.files[path + ".siginfo"] = (max(1024, size // 400), now)
        self.files[path] = (size, now)

    def touch(self, path: str, now: float) -> None:
        for p in (path, path + ".siginfo"):
            if p in self.files:
                self.files[p] = (self.files[p][0], now)

    def artifacts(self) -> List[Artifact]:
        return [make_artifact(p, s, m) for p, (s, m) in self.files.items()]

    def size(self) -> int:
        return sum(s for s, _ in self.files.values())


def simulate(policy: Policy, days: int, seed: int, builds_per_day: int,
             branch_builds_per_day: int) -> Stats:
    rng = random.Random(seed)
    recipes = make_recipes(rng)
    mirror = Mirror()
    stats = Stats()
    seen: set = set()
    t0 = 1_700_000_000.0
    warmup = 30
    for day in range(days):
        # recipes change
        for r in recipes:
            if rng.random() < 1.0 / r.change_every_days:
                r.version += 1
        builds = [""] * builds_per_day + [f"branch-{day}-{i}" for i in
                                          range(branch_builds_per_day)]
        for b, variant in enumerate(builds):
            now = t0 + day * DAY + (b + 1) * DAY / (len(builds) + 2)
            changed = set(rng.sample(range(300, 400), 5)) if variant else set()
            for idx, r in enumerate(recipes):
                v = variant if idx in changed else ""
                for task in TASKS:
                    path = path_for(r, task, r.hash(task, v))
                    size = r.base_size if task != "populate_lic" else 20_000
                    hit = mirror.has(path)
                    if day >= warmup:
                        stats.lookups += 1
                        stats.hits += hit
                        if not hit and path in seen:
                            stats.avoidable += 1
                            stats.avoidable_bytes += size
                            if r.klass == "toolchain":
                                stats.toolchain_misses += 1
                    if hit:
                        if policy.touch:
                            mirror.touch(path, now)
                    else:
                        mirror.upload(path, size, now)
                        seen.add(path)
        # nightly clean
        night = t0 + (day + 1) * DAY - 60
        if policy.options is not None:
            start = time.perf_counter()
            plan = plan_clean(mirror.artifacts(), policy.options, night)
            stats.clean_seconds += time.perf_counter() - start
            for d in plan.deletions:
                mirror.files.pop(d.path, None)
        if day >= warmup:
            stats.sizes.append(mirror.size())
            stats.files.append(len(mirror.files))
    return stats


def policies(budget: int) -> List[Policy]:
    thirty = int(30 * DAY)
    return [
        Policy("no clean (unbounded)", True, None),
        Policy("age by upload time: --max-age 30d, no touch (isar-sstate, plain S3/HTTP)",
               False, CleanOptions(max_age=thirty)),
        Policy("age by last use: --max-age 30d, upload touches used artifacts",
               True, CleanOptions(max_age=thirty)),
        Policy(f"size budget: --max-size {format_size(budget)}, LRU by last use",
               True, CleanOptions(max_size=budget)),
        Policy(f"last use + budget: --max-age 30d --max-size {format_size(budget)}",
               True, CleanOptions(max_age=thirty, max_size=budget)),
    ]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--builds-per-day", type=int, default=4)
    ap.add_argument("--branch-builds-per-day", type=int, default=3)
    ap.add_argument("--budget", default="20G", help="size budget for the size policies")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)
    from sstate_mirror.units import parse_size

    budget = parse_size(args.budget)
    rows = []
    for policy in policies(budget):
        s = simulate(policy, args.days, args.seed, args.builds_per_day,
                     args.branch_builds_per_day)
        rows.append((policy.name, s))
        if not args.markdown:
            print(f"{policy.name}: hit rate {s.hit_rate:.1%}, avoidable rebuilds {s.avoidable}"
                  f" ({format_size(s.avoidable_bytes)}), of the toolchain {s.toolchain_misses},"
                  f" mirror avg {format_size(sum(s.sizes) / len(s.sizes))}"
                  f" max {format_size(max(s.sizes))}, plan time {s.clean_seconds:.1f}s",
                  flush=True)
    if args.markdown:
        print(f"{args.days} days (first 30 = warm-up, not counted), {args.builds_per_day} main +"
              f" {args.branch_builds_per_day} branch builds a day, 400 recipes x"
              f" {len(TASKS)} sstate tasks, seed {args.seed}\n")
        print("| policy | hit rate | rebuilds of cleaned artifacts | rebuilt data |"
              " of which toolchain | mirror size (avg) | mirror size (max) | files (avg) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, s in rows:
            print(f"| {name} | {s.hit_rate:.2%} | {s.avoidable} | {format_size(s.avoidable_bytes)}"
                  f" | {s.toolchain_misses} |"
                  f" {format_size(sum(s.sizes) / len(s.sizes))} | {format_size(max(s.sizes))} |"
                  f" {sum(s.files) // len(s.files)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
