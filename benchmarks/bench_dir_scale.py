#!/usr/bin/env python3
"""End to end on a directory mirror of a million files: ``info`` and ``clean --dry-run``
against ``find`` printing every file's size, time and path (the floor: one ``stat`` per file).

Each command runs under ``/usr/bin/time`` for wall and CPU seconds and peak RSS, after one
untimed ``find`` has warmed the page cache; the load average is recorded next to every run,
because on a shared machine seconds mean little without it. ``--src`` measures another
checkout's ``src`` with the same interpreter (the code before a change, back to back)::

    python benchmarks/bench_dir_scale.py --files 1000000 --mirror /srv/m --keep --label after
    git archive main src | tar -x -C /tmp/before
    python benchmarks/bench_dir_scale.py --mirror /srv/m --src /tmp/before/src --label before

The mirror is ``gencache.py --files N --sparse --mtime-spread 90`` (sizes without data); it is
made in a temporary directory and deleted afterwards unless ``--mirror`` names one to make (or
reuse) and ``--keep`` keeps it. Results: ``results/dir-scale.json``, one entry per label.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchlib  # noqa: E402
import gencache  # noqa: E402

RESULT = benchlib.RESULTS / "dir-scale.json"
FORMAT = "%e %U %S %M"


def commands(mirror: Path) -> Dict[str, List[str]]:
    tool = [sys.executable, "-m", "sstate_mirror"]
    return {
        "find": ["find", str(mirror), "-type", "f", "-printf", r"%s %T@ %p\n"],
        "info": [*tool, "info", str(mirror)],
        "clean --dry-run": [*tool, "clean", str(mirror), "--max-age", "60d", "--dry-run"],
    }


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``; 0 elsewhere).

    ``/usr/bin/time`` counts a command and the children it waits for, not the worker
    processes a listing of many files starts (a server process's children): the machine's
    busy time across the run counts them, and, on a quiet machine, nothing else.
    """
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed(argv: Sequence[str], env: Dict[str, str]) -> Dict[str, float]:
    """One run: wall, user and system seconds, peak RSS in MiB, the machine's busy CPU
    seconds meanwhile (worker processes included) and the load average before."""
    load = os.getloadavg()[0]
    with tempfile.NamedTemporaryFile("r") as out:
        busy = busy_seconds()
        subprocess.run(["/usr/bin/time", "-o", out.name, "-f", FORMAT, *argv], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        busy = busy_seconds() - busy
        wall, user, system, rss_kib = out.read().split()[-4:]
    return {"wall_s": float(wall), "user_s": float(user), "sys_s": float(system),
            "cpu_s": round(float(user) + float(system), 2), "machine_cpu_s": round(busy, 2),
            "peak_rss_mib": round(int(rss_kib) / 1024, 1), "load_avg": round(load, 2)}


def measure(mirror: Path, runs: int, src: Optional[str]) -> Dict[str, List[Dict[str, float]]]:
    env = dict(os.environ, PYTHONPATH=src or str(HERE.parent / "src"))
    cmds = commands(mirror)
    subprocess.run(cmds["find"], check=True, stdout=subprocess.DEVNULL)  # warm the cache
    out: Dict[str, List[Dict[str, float]]] = {name: [] for name in cmds}
    for run in range(runs):
        for name, argv in cmds.items():  # back to back, so that the loads compare
            out[name].append(timed(argv, env))
            row = out[name][-1]
            print(f"run {run + 1} {name:16} {row['wall_s']:6.2f} s wall, {row['cpu_s']:6.2f} s"
                  f" CPU ({row['machine_cpu_s']:6.2f} s on the machine),"
                  f" {row['peak_rss_mib']:7.1f} MiB, load {row['load_avg']}", flush=True)
    return out


def summary(rows: Dict[str, List[Dict[str, float]]]) -> Dict[str, Dict[str, float]]:
    """The median run of each command, and its ratio to find's median wall and CPU."""
    med = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
           for name, runs in rows.items()}
    floor = med["find"]
    for row in med.values():
        row["x_find_wall"] = round(row["wall_s"] / floor["wall_s"], 2)
        row["x_find_cpu"] = round(row["cpu_s"] / floor["cpu_s"], 2)
        if floor.get("machine_cpu_s"):
            row["x_find_machine_cpu"] = round(row["machine_cpu_s"] / floor["machine_cpu_s"], 2)
    return med


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--mirror", type=Path, help="make the mirror here (or reuse it if it exists)")
    ap.add_argument("--keep", action="store_true", help="keep the mirror afterwards")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--src", help="measure this checkout's src instead of this one's")
    ap.add_argument("--label", default="current", help="the results' key (before, after...)")
    args = ap.parse_args(argv)
    mirror = args.mirror or Path(tempfile.mkdtemp(prefix="dir-scale-")) / "mirror"
    made = not mirror.exists()
    try:
        if made:
            started = time.monotonic()
            gencache.generate(mirror, args.files, sparse=True, mtime_spread=90)
            print(f"made {args.files} files in {time.monotonic() - started:.0f} s", flush=True)
        rows = measure(mirror, args.runs, args.src)
    finally:
        if not args.keep and (made or args.mirror is None):
            shutil.rmtree(mirror.parent if args.mirror is None else mirror)
    doc = json.loads(RESULT.read_text()) if RESULT.exists() else {}
    doc[args.label] = {"meta": {"files": args.files, "machine": benchlib.machine(),
                                "src": args.src or "this checkout",
                                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
                       "median": summary(rows), "runs": rows}
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(doc, indent=2) + "\n")
    for name, row in doc[args.label]["median"].items():
        print(f"{name:16} {row['wall_s']:6.2f} s wall ({row['x_find_wall']}x find), "
              f"{row['cpu_s']:6.2f} s CPU ({row['x_find_cpu']}x), "
              f"{row.get('machine_cpu_s', 0):6.2f} s on the machine, {row['peak_rss_mib']} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
