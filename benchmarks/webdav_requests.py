"""Count the requests sstate-mirror sends for the WebDAV benchmark's jobs, by method.

Seconds on a shared or busy machine are noise; request counts are not. This runs the jobs of
``bench_webdav.py`` (same caches, same commands) once each against nginx and Apache with an
access log, and prints how many requests of each method the server saw. Give
``--src DIR`` (a ``src/`` directory of another checkout) to count another version, for a
before/after comparison in the same run.

    python benchmarks/webdav_requests.py [--server nginx apache] [--files 5000] [--big 20000]
        [--src /path/to/other/src ...]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchlib  # noqa: E402
import gencache  # noqa: E402
from benchlib import TOOL  # noqa: E402

#: The request line in nginx's default log format (quoted) and in Apache's ``%r`` (first).
_REQUEST = re.compile(r'(?:^|")([A-Z]+) \S+ HTTP/')


def count(log: Path, start: int) -> Dict[str, int]:
    """Requests by method in the access log after byte ``start``."""
    with open(log, "rb") as f:
        f.seek(start)
        lines = f.read().decode("latin-1").splitlines()
    methods = collections.Counter(m.group(1) for m in map(_REQUEST.search, lines) if m)
    return dict(sorted(methods.items()))


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", nargs="+", choices=("nginx", "apache"),
                    default=["nginx", "apache"])
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--big", type=int, default=20000)
    ap.add_argument("--src", nargs="*", default=[str(benchlib.ROOT / "src")],
                    help="src/ directories of the versions to count (default: this one)")
    args = ap.parse_args(argv)
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="sstate-bench-davreq-", dir=shm))
    os.chmod(work, 0o755)
    os.umask(0)
    try:
        now = int(time.time())
        plan = benchlib.scenarios(work, args.files, args.big, now, noun="files",
                                  stored=", sparse")
        pristine_up, pristine_big = work / "mirror-90", work / "big"
        gencache.write_cache(pristine_up, plan.first, sparse=True)
        gencache.write_cache(pristine_big, plan.big, sparse=True)
        docroot = work / "docroot"
        (docroot / "sstate").mkdir(parents=True)
        os.chmod(docroot / "sstate", 0o777)
        print("| server | job | version | requests | by method | seconds (shared machine) |")
        print("| --- | --- | --- | ---: | --- | ---: |")
        for name in args.server:
            start = benchlib.nginx if name == "nginx" else benchlib.apache
            server = start(docroot, work, access_log=True)
            log = work / name / "access.log"
            try:
                for scenario in ("upload", "clean", "info"):
                    prefix = "up" if scenario == "upload" else "big"
                    pristine = pristine_up if scenario == "upload" else pristine_big
                    mirror = f"{server.url}{prefix}/"
                    cmd = {
                        "upload": f"{TOOL} upload -q --no-touch --no-netrc {plan.local} {mirror}",
                        "clean": f"{TOOL} clean -q --no-netrc --max-age 30d {mirror}",
                        "info": f"{TOOL} info --no-netrc {mirror} > /dev/null",
                    }[scenario]
                    for src in args.src:
                        target = docroot / "sstate" / prefix
                        shutil.rmtree(target, ignore_errors=True)
                        subprocess.run(["cp", "-al", str(pristine), str(target)], check=True)
                        size = log.stat().st_size if log.exists() else 0
                        env = dict(os.environ, PYTHONPATH=src)
                        t0 = time.monotonic()
                        subprocess.run(cmd, shell=True, check=True, env=env)
                        seconds = time.monotonic() - t0
                        time.sleep(0.5)  # let the server write its log
                        methods = count(log, size)
                        total = sum(methods.values())
                        shown = ", ".join(f"{m} {n}" for m, n in methods.items())
                        print(f"| {name} | {scenario} | {src} | {total} | {shown} |"
                              f" {seconds:.2f} |", flush=True)
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
