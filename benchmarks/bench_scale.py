#!/usr/bin/env python3
"""In-process cost per object of listing, ``info`` and ``clean`` planning, at any scale.

A mirror of millions of objects is planned on one machine (a CI runner with 4-8 GiB): what
matters is the time and the memory *per object* of the project's own functions, with no I/O.
This feeds a synthetic OE listing (``gencache.plan``) through the same calls the commands
make — ``list_artifacts`` on a backend that yields entries, ``select``, ``summarize`` and
``plan_clean`` — and prints, per phase, the seconds and the bytes per object.

The listing is never built in memory as a whole: ``gencache`` plans a block of
``--block`` files once, and the stream repeats it with new hashes (the last eight hex digits
of each hash changed per round), as a mirror collects the builds of the same recipes for
months. The block is made before the measurement starts: the peak measured is what the
project's representation and planning add.

Each size runs in a fresh interpreter (``ru_maxrss`` is a high-water mark per process).
Memory is the peak resident size over the interpreter's size before the listing, divided by
the number of objects; ``--tracemalloc`` measures Python allocations instead (exact, but
slows everything down several times, so its seconds mean nothing).

Usage::

    python benchmarks/bench_scale.py 100000 1000000          # one line per size
    python benchmarks/bench_scale.py 10000000 --json benchmarks/results/scale.json

Times are given as wall-clock and CPU seconds of this process (CPU is steadier on a shared
machine).

The ``upload`` stage runs in an interpreter of its own: ``upload``'s plan for a local build
cache of ``--local`` files (half of them already on the mirror, the rest new builds of the
same recipes, each used within the day) against the same listing of the mirror, read the
way ``upload`` reads it (``remote_artifacts`` on a store that lists, then ``plan_upload``
with use marking). Its bytes per object are over the interpreter's size before the
listing, divided by the mirror's objects.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

NOW = 1_780_000_000
DAY = 86400


Row = Tuple[str, str, int, float]


def _block(count: int, seed: int) -> List[Row]:
    """One planned block of files: (path, 64-hex hash or '', size, mtime)."""
    import gencache

    rows = []
    for e in gencache.plan(count, seed=seed, mtime_spread=90, now=NOW):
        base = e.path.rsplit("/", 1)[-1]
        fields = base.split(":")
        h = fields[-1].split("_", 1)[0] if base.startswith("sstate:") and len(fields) > 7 else ""
        rows.append((e.path, h if len(h) == 64 else "", e.size, float(e.mtime)))
    return rows


def _entries(count: int, rows: List[Row]) -> Iterator[Any]:
    """``count`` backend entries: the block of files, repeated with new hashes."""
    from sstate_mirror.backends.base import Entry

    made = 0
    round_ = 0
    while made < count:
        for path, h, size, mtime in rows:
            if made == count:
                return
            if round_ and h:
                path = path.replace(h, h[:56] + f"{round_:08x}")
            elif round_:
                path = f"{path}.{round_}"
            yield Entry(path, size, mtime - (round_ % 120) * DAY / 4)
            made += 1
        round_ += 1


class _StreamBackend:
    """Just enough of a backend for ``list_artifacts`` and ``remote_artifacts``: a URL, a
    ``list()``, its batches and a lookup by listing."""

    url = "bench://synthetic"

    def __init__(self, count: int, rows: List[Row]) -> None:
        self.count, self.rows = count, rows

    def list(self, prefix: str = "", on_skip: Any = None) -> Iterator[Any]:
        return _entries(self.count, self.rows)

    def list_batches(self, prefix: str = "", on_skip: Any = None) -> Iterator[Any]:
        from sstate_mirror.backends.base import Backend
        return Backend.list_batches(self, prefix, on_skip)  # type: ignore[arg-type]

    def choose_lookup(self, local_count: int) -> str:
        return "list"


def _rss() -> int:
    """Peak resident size of this process so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _current_rss() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return _rss()


def measure(count: int, block: int, seed: int, use_tracemalloc: bool) -> Dict[str, Any]:
    """Run every phase once on ``count`` objects; seconds and bytes per phase."""
    from sstate_mirror.commands.clean import CleanOptions, plan_clean
    from sstate_mirror.commands.info import summarize
    from sstate_mirror.commands.listing import EVERYTHING, list_artifacts, select

    backend = _StreamBackend(count, _block(min(block, count), seed))
    t, c = time.perf_counter(), time.process_time()
    fed = sum(1 for _ in backend.list())
    feed, feed_cpu = time.perf_counter() - t, time.process_time() - c
    assert fed == count

    base = _current_rss()
    if use_tracemalloc:
        tracemalloc.start()
    out: Dict[str, Any] = {"objects": count, "block": block, "feed_s": round(feed, 2),
                           "feed_cpu_s": round(feed_cpu, 2)}
    c0 = 0.0

    def phase(name: str, t0: float) -> None:
        out[f"{name}_s"] = round(time.perf_counter() - t0, 2)
        out[f"{name}_cpu_s"] = round(time.process_time() - c0, 2)
        if use_tracemalloc:
            current, peak = tracemalloc.get_traced_memory()
            out[f"{name}_held_bytes_per_object"] = round(current / count, 1)
            out[f"{name}_peak_bytes_per_object"] = round(peak / count, 1)
        else:
            out[f"{name}_peak_bytes_per_object"] = round((_rss() - base) / count, 1)

    t0, c0 = time.perf_counter(), time.process_time()
    listing = list_artifacts(backend)  # type: ignore[arg-type]
    phase("list", t0)
    t0, c0 = time.perf_counter(), time.process_time()
    artifacts = select(listing, EVERYTHING)
    report = summarize(artifacts, float(NOW))
    phase("info", t0)
    total = report.total.bytes
    t0, c0 = time.perf_counter(), time.process_time()
    plan = plan_clean(artifacts, CleanOptions(max_age=60 * DAY, max_size=total // 2),
                      float(NOW))
    phase("clean", t0)
    out["deletions"] = len(plan.deletions)
    out["files"] = report.total.files
    out["peak_rss_mib"] = round(_rss() / 2**20, 1)
    return out


def measure_upload(count: int, block: int, seed: int, local: int) -> Dict[str, Any]:
    """``upload``'s plan for a cache of ``local`` files against a mirror of ``count``."""
    from sstate_mirror.commands.listing import EVERYTHING, remote_artifacts
    from sstate_mirror.commands.upload import SENDABLE, plan_upload
    from sstate_mirror.naming import make_artifact

    rows = _block(min(block, count), seed)
    backend = _StreamBackend(count, rows)
    named = [r for r in rows if r[1]]
    cache = []
    for i, (path, h, size, _) in enumerate(named[:local]):
        if i % 2:  # a new build: a hash the mirror has never seen
            path = path.replace(h, h[:56] + "ffffffff")
        cache.append(make_artifact(path, size, NOW - 3600.0))
    wanted = [a for a in cache if a.kind in SENDABLE]
    base = _current_rss()
    t0, c0 = time.perf_counter(), time.process_time()
    remote = remote_artifacts(backend, wanted, jobs=1)  # type: ignore[arg-type]
    plan = plan_upload(cache, remote, EVERYTHING, now=float(NOW), used_within=DAY,
                       refresh_after=DAY)
    return {"objects": count, "local": len(cache),
            "upload_s": round(time.perf_counter() - t0, 2),
            "upload_cpu_s": round(time.process_time() - c0, 2),
            "upload_peak_bytes_per_object": round((_rss() - base) / count, 1),
            "upload_peak_over_start_mib": round((_rss() - base) / 2**20, 1),
            "to_send": len(plan.transfers), "present": plan.present,
            "touches": len(plan.touches), "fresh_groups": plan.fresh_groups}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sizes", nargs="+", type=int, help="numbers of objects")
    ap.add_argument("--block", type=int, default=200_000,
                    help="files gencache plans once and the stream repeats (default 200000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tracemalloc", action="store_true",
                    help="measure Python allocations (exact bytes; times are meaningless)")
    ap.add_argument("--local", type=int, default=4000,
                    help="files of the local cache in the upload stage (default 4000)")
    ap.add_argument("--stages", default="plans,upload",
                    help="what to run per size: plans (list, info, clean), upload, or both")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--one", choices=("plans", "upload"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one == "plans":
        print(json.dumps(measure(args.sizes[0], args.block, args.seed, args.tracemalloc)))
        return 0
    if args.one == "upload":
        print(json.dumps(measure_upload(args.sizes[0], args.block, args.seed, args.local)))
        return 0
    stages = args.stages.split(",")
    results: List[Dict[str, Any]] = []
    for n in args.sizes:
        r: Dict[str, Any] = {}
        for stage in ("plans", "upload"):
            if stage not in stages:
                continue
            cmd = [sys.executable, __file__, str(n), "--one", stage, "--block",
                   str(args.block), "--seed", str(args.seed), "--local", str(args.local)]
            cmd += ["--tracemalloc"] if args.tracemalloc else []
            r.update(json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                               text=True).stdout))
        results.append(r)
        line = f"{n:>11,} objects:"
        if "plans" in stages:
            line += "".join(
                f" | {p} {r[p + '_s']:.2f} s ({r[p + '_cpu_s']:.2f} s CPU)"
                f" {r[p + '_peak_bytes_per_object']:.0f} B/obj"
                for p in ("list", "info", "clean"))
            line += f" | peak {r['peak_rss_mib']} MiB (the entries alone: {r['feed_cpu_s']} s CPU)"
        if "upload" in stages:
            line += (f" | upload plan, {r['local']} local files: {r['upload_s']:.2f} s"
                     f" ({r['upload_cpu_s']:.2f} s CPU) {r['upload_peak_bytes_per_object']:.1f}"
                     f" B/obj ({r['upload_peak_over_start_mib']} MiB)")
        print(line, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
