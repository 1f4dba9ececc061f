"""Benchmark upload, clean and info on a directory mirror, side by side with the usual tools.

What people use instead on a directory (NFS) mirror: ``rsync -a`` or ``cp -r`` to publish a
cache, ``find -mtime +N -delete`` to clean it, ``du``/``find | wc -l`` to size it. Each
scenario prepares the same state before every run (hard-linked copies of a pristine tree, so
preparation is cheap and runs cannot influence each other) and is timed by hyperfine.

Scenarios (sizes as in the project's issue; override with options):
- ``upload-incremental``: a 20,000-file cache whose mirror already holds 90 % of it;
- ``upload-full``: the same cache into an empty mirror;
- ``clean``: a 100,000-file mirror built over 60 days, clean everything older than 30 days;
- ``info``: describe that 100,000-file mirror.

Needs: hyperfine and rsync (Debian packages). Results: printed as a Markdown table and written
as JSON next to this file (``results/fs.json``); ``docs/benchmarks.md`` records them.

    python benchmarks/bench_fs.py [--work DIR] [--files 20000] [--big 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import gencache  # noqa: E402

TOOL = f"{shlex.quote(sys.executable)} -m sstate_mirror"


def sh(cmd: str) -> None:
    subprocess.run(cmd, shell=True, check=True)


def hyperfine(name: str, prepare: str, commands: Dict[str, str], runs: int,
              out: Path) -> List[Tuple[str, float, float]]:
    """Time each command after ``prepare``; return (label, mean, stddev) in seconds."""
    json_out = out / f"{name}.hyperfine.json"
    args = ["hyperfine", "--runs", str(runs), "--warmup", "1", "--prepare", prepare,
            "--export-json", str(json_out), "--style", "basic"]
    for label, cmd in commands.items():
        args += ["--command-name", label, cmd]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    subprocess.run(args, check=True, env=env)
    data = json.loads(json_out.read_text())
    return [(r["command"], r["mean"], r["stddev"] or 0.0) for r in data["results"]]


def check_tools() -> None:
    missing = [t for t in ("hyperfine", "rsync") if shutil.which(t) is None]
    if missing:
        names = " ".join(missing)
        raise SystemExit(f"missing tools: {names} (apt-get install {names})")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", help="scratch directory (default: a temporary one)")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--big", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=None, help="sstate-mirror --jobs")
    ap.add_argument("--only", nargs="*", help="scenarios to run")
    args = ap.parse_args(argv)
    check_tools()
    work = Path(args.work or tempfile.mkdtemp(prefix="sstate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    jobs = f" -j {args.jobs}" if args.jobs else ""
    now = int(time.time())
    rows: Dict[str, List[Tuple[str, float, float]]] = {}
    want = set(args.only or ["upload-incremental", "upload-full", "clean", "info"])

    if want & {"upload-incremental", "upload-full"}:
        first = gencache.plan(args.files, seed=1, now=now - 3600)
        second = gencache.derive(first, 0.1, seed=2)
        mirror0, local = work / "mirror-90", work / "local"
        for d in (mirror0, local):
            shutil.rmtree(d, ignore_errors=True)
        gencache.write_cache(mirror0, first)
        gencache.write_cache(local, second)
        present = sum(1 for e in second if (mirror0 / e.path).exists())
        print(f"local cache: {len(second)} files, {present} already on the mirror", flush=True)
        m = work / "m"
        if "upload-incremental" in want:
            prep = f"rm -rf {m} && cp -al {mirror0} {m} && sync"
            rows["upload-incremental"] = hyperfine("upload-incremental", prep, {
                "sstate-mirror upload": f"{TOOL} upload -q{jobs} {local} {m}",
                # the same job without marking the 18k used files on the mirror as used
                "sstate-mirror upload --no-touch": f"{TOOL} upload -q --no-touch{jobs}"
                                                   f" {local} {m}",
                "rsync -a": f"rsync -a {local}/ {m}/",
                "rsync -a --ignore-existing": f"rsync -a --ignore-existing {local}/ {m}/",
            }, args.runs, results_dir)
        if "upload-full" in want:
            prep = f"rm -rf {m} && sync"
            rows["upload-full"] = hyperfine("upload-full", prep, {
                "sstate-mirror upload": f"{TOOL} upload -q{jobs} {local} {m}",
                "rsync -a": f"rsync -a {local}/ {m}/",
                "cp -r": f"cp -r {local} {m}",
            }, args.runs, results_dir)

    if want & {"clean", "info"}:
        big0 = work / "big"
        shutil.rmtree(big0, ignore_errors=True)
        entries = gencache.plan(args.big, seed=3, now=now, mtime_spread=60)
        gencache.write_cache(big0, entries, sparse=True)
        expired = sum(1 for e in entries if now - e.mtime >= 30 * 86400)
        print(f"big mirror: {len(entries)} files, {expired} older than 30 days", flush=True)
        b = work / "b"
        if "clean" in want:
            prep = f"rm -rf {b} && cp -al {big0} {b}"
            rows["clean"] = hyperfine("clean", prep, {
                "sstate-mirror clean": f"{TOOL} clean -q{jobs} --max-age 30d {b}",
                "find -mtime +30 -delete": (f"find {b} -type f -mtime +30 -delete &&"
                                            f" find {b} -mindepth 1 -type d -empty -delete"),
            }, args.runs, results_dir)
        if "info" in want:
            rows["info"] = hyperfine("info", "true", {
                "sstate-mirror info": f"{TOOL} info {big0} > /dev/null",
                "du -s + find | wc -l": (f"du -s {big0} > /dev/null &&"
                                         f" find {big0} -type f | wc -l > /dev/null"),
            }, args.runs, results_dir)

    (results_dir / "fs.json").write_text(json.dumps(
        {k: [{"command": c, "mean_s": m, "stddev_s": s} for c, m, s in v] for k, v in rows.items()},
        indent=2) + "\n")
    print("\n| scenario | command | mean | ± |")
    print("| --- | --- | ---: | ---: |")
    for scenario, res in rows.items():
        for cmd, mean, sd in res:
            print(f"| {scenario} | {cmd} | {mean:.2f} s | {sd:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
