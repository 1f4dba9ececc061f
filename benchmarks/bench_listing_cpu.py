#!/usr/bin/env python3
"""The CPU a listing of a directory mirror costs, in every process it runs in.

``list_artifacts(LocalBackend(DIR))`` walks and catalogues a large mirror on the machine's
cores (``commands/listing_parts.py``): this process, a ``forkserver`` and its workers. The
machine's busy time (``/proc/stat``) counts them all but also anything else running; here
each is counted apart: this process's CPU, and the server's with that of the workers it
forked and reaped (its ``utime + stime + cutime + cstime``). On a machine shared with other
jobs these CPU seconds are far steadier than wall seconds, which are printed beside them.

Each run is a fresh interpreter (the pool, the server and their imports are part of the
cost), alternating between ``--src`` checkouts when several are given, so that their loads
compare::

    git archive main src | tar -x -C /tmp/before
    python benchmarks/bench_listing_cpu.py /srv/m1m --src /tmp/before/src --src src --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent

_ONE_RUN = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[2])

def busy():
    with open("/proc/stat") as stat:
        v = [int(x) for x in stat.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")

def reaped(pid):
    with open(f"/proc/{pid}/stat") as stat:
        v = stat.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in v[11:15]) / os.sysconf("SC_CLK_TCK")

if __name__ == "__main__":
    machine, wall, cpu = busy(), time.time(), time.process_time()
    from multiprocessing import forkserver
    from sstate_mirror.backends.local import LocalBackend
    from sstate_mirror.commands.listing import list_artifacts
    rows = len(list_artifacts(LocalBackend(sys.argv[1])))
    wall, cpu = time.time() - wall, time.process_time() - cpu
    server = forkserver._forkserver._forkserver_pid
    workers = reaped(server) if server else 0.0
    print(json.dumps({"rows": rows, "wall_s": round(wall, 2), "parent_cpu_s": round(cpu, 2),
                      "workers_cpu_s": round(workers, 2), "cpu_s": round(cpu + workers, 2),
                      "machine_cpu_s": round(busy() - machine, 2),
                      "load_avg": round(os.getloadavg()[0], 2)}))
"""


def one_run(mirror: str, src: str) -> Dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _ONE_RUN, mirror, src], check=True,
                         capture_output=True, text=True).stdout
    result: Dict[str, float] = json.loads(out.splitlines()[-1])
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mirror", help="a directory mirror (only read)")
    ap.add_argument("--src", action="append",
                    help="a checkout's src to measure (again for each; default: this one's)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    sources: List[str] = args.src or [str(HERE.parent / "src")]
    rows: Dict[str, List[Dict[str, float]]] = {src: [] for src in sources}
    for run in range(args.runs):
        for src in sources:
            rows[src].append(one_run(args.mirror, src))
            print(f"run {run + 1} {src}: {json.dumps(rows[src][-1])}", flush=True)
    for src, runs in rows.items():
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"median {src}: {json.dumps(median)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
