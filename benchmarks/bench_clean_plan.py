#!/usr/bin/env python3
"""CPU of ``clean``'s plan alone, per set of options, on a directory mirror listed once.

``clean --dry-run`` on a large mirror is the listing, then the plan: this measures the plan
(``plan_clean`` over the listing's catalog, in process, no I/O) for the rules that cost the
most, so that two versions of the code can be compared on the same listing. Each plan is
made ``--repeat`` times and the least CPU time is kept (the machine may be shared: CPU time
is steadier than wall time). Each plan is also summed up as a digest of its deletions (rows,
rules, order) and of what it keeps, pins and counts: the digests of two versions of the code
are equal when their plans are.

``now`` is the newest mtime of the listing (a mirror made by ``gencache.py`` is as old as
its newest file), so the plans do not change from one day to the next.

Usage::

    python benchmarks/bench_clean_plan.py MIRROR_DIR [--json benchmarks/results/clean-plan.json]
    # the same with another version of the code (its ``src`` directory):
    git archive COMMIT src | tar -x -C /tmp/old
    python benchmarks/bench_clean_plan.py MIRROR_DIR --src /tmp/old/src
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
DAY = 86400


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mirror", help="a directory mirror (read only: nothing is deleted)")
    ap.add_argument("--src", default=str(HERE.parent / "src"),
                    help="the code to measure (default: this checkout's src)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    sys.path.insert(0, args.src)
    from array import array

    from sstate_mirror.backends.local import LocalBackend
    from sstate_mirror.catalog import Catalog
    from sstate_mirror.commands.clean import CleanOptions, Deletions, plan_clean
    from sstate_mirror.commands.pins import PinSet

    gc.disable()  # as the listing's passes run: no cycles, no collections
    catalog = Catalog()
    for batch in LocalBackend(args.mirror).list_batches():
        catalog.extend(*batch)
    now = max(catalog.mtime)
    total = sum(catalog.size)
    pins = PinSet(pins=[], now=now)
    every = max(1, len(catalog) // 2000)
    pins.add_keep("--keep", {catalog.hash_bytes(row).hex(): ("pn", "do_task")
                             for row in range(0, len(catalog), every)})
    cases = [
        ("--max-age 60d", CleanOptions(max_age=60 * DAY), None),
        ("--max-size half the mirror", CleanOptions(max_size=total // 2), None),
        ("--max-versions 2", CleanOptions(max_versions=2), None),
        ("--max-age 60d --max-size a third --max-versions 3",
         CleanOptions(max_age=60 * DAY, max_size=total // 3, max_versions=3), None),
        ("the same, with 2,000 hashes kept (--keep)",
         CleanOptions(max_age=60 * DAY, max_size=total // 3, max_versions=3), pins),
    ]
    results: List[Dict[str, Any]] = []
    for name, options, keep in cases:
        best = float("inf")
        for _ in range(args.repeat):
            start = time.process_time()
            plan = plan_clean(catalog, options, now, keep)
            best = min(best, time.process_time() - start)
        digest = hashlib.sha256()
        deletions = plan.deletions
        assert isinstance(deletions, Deletions)
        digest.update(array("q", deletions.rows).tobytes())
        digest.update(bytes(deletions.rules))
        digest.update(repr((plan.kept, plan.kept_bytes, plan.counts, plan.size_before,
                            plan.protected_bytes, plan.versions_protected, plan.pinned_bytes,
                            [(p.path, p.rule, p.pin) for p in plan.pinned],
                            [a.path for a in plan.unknown])).encode())
        results.append({"options": name, "files": len(catalog), "cpu_s": round(best, 2),
                        "deletions": len(plan.deletions), "pinned": len(plan.pinned),
                        "digest": digest.hexdigest()[:16]})
        print(f"{name}: {best:.2f} s CPU, {len(plan.deletions):,} deletions,"
              f" {len(plan.pinned):,} pinned, plan {results[-1]['digest']}", flush=True)
        del plan
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
