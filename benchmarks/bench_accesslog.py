"""``touch --access-log`` on a generated access log of millions of lines: speed and memory.

The log is what a busy nginx in front of a directory mirror writes (``combined`` format):
bitbake's requests for the mirror's objects (a ``HEAD`` at the existence check, then ``HEAD``
and ``GET`` of the archive and of its ``.siginfo``, ``:`` sent as ``%3A``), misses (404),
and other clients' requests of other pages, each with a unique path (so that memory that grew
with distinct paths would show). The mirror is a sparse copy of a ``gencache.py`` cache.

Measured, each as a child process whose peak RSS comes from ``wait4``:

* ``sstate-mirror touch MIRROR --access-log LOG --dry-run`` on the plain log and on its gzip;
* the floor of any reader: ``wc -l`` and ``grep -c`` (count lines), ``awk`` selecting the
  successful GET/HEAD lines, on the plain log, and ``zcat | awk`` on the gzip.

    python benchmarks/bench_accesslog.py --lines 5000000 --markdown

``--write-log FILE`` (``-`` = stdout) only writes a log, for the memory test of the suite.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gencache  # noqa: E402

#: Lines of one second of log: the time advances by one second every this many lines.
LINES_PER_SECOND = 200


def mirror_paths(files: int, seed: int) -> List[str]:
    return [e.path for e in gencache.plan(files, seed=seed, now=1_764_547_200)
            if e.kind == "archive"]


def write_log(out: IO[bytes], lines: int, archives: Sequence[str], *, seed: int = 1,
              start: float = 1_764_547_200, prefix: str = "/sstate/",
              long_line: int = 0) -> None:
    """``lines`` lines of a ``combined`` log: bitbake restoring ``archives``, and others.

    ``long_line`` > 0 adds one line of that many bytes half way (a broken writer).
    """
    rng = random.Random(seed)
    agents = {"HEAD": "bitbake/2.18.0", "GET": "Wget/1.21.3"}
    encoded = [prefix + a.replace(":", "%3A") for a in archives]
    written = 0
    t = start
    buf: List[str] = []
    while written < lines:
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))
        for i in range(min(LINES_PER_SECOND, lines - written)):
            roll = rng.random()
            path = encoded[rng.randrange(len(encoded))]
            if roll < 0.5:
                method, status, size = "HEAD", 200, 0
            elif roll < 0.7:
                method, status, size = "GET", 200, 84213
            elif roll < 0.8:
                method, status, size, path = "GET", 200, 2113, path + ".siginfo"
            elif roll < 0.9:
                method, status, size = "HEAD", 404, 153
                path = path.replace("%3A", "%3Amissing", 1)
            else:
                method, status, size = "GET", 200, 5120
                path = f"/wiki/page-{written + i}.html?from=search"
            buf.append(f'10.0.{i % 250}.{(written // 997) % 250} - - [{stamp}] "{method} {path}'
                       f' HTTP/1.1" {status} {size} "-" "{agents[method]}"\n')
        before = written
        written += min(LINES_PER_SECOND, lines - written)
        t += 1
        if long_line and before < lines // 2 <= written:
            out.write("".join(buf).encode())
            buf.clear()
            chunk = b"x" * (1 << 20)
            for _ in range(long_line >> 20):
                out.write(chunk)
            out.write(b"x" * (long_line & ((1 << 20) - 1)) + b"\n")
        if len(buf) >= 20_000:
            out.write("".join(buf).encode())
            buf.clear()
    out.write("".join(buf).encode())


def run_child(argv: List[str], *, shell: bool = False) -> Tuple[float, float, Optional[int]]:
    """Wall seconds, CPU seconds and peak RSS (KiB; None without GNU time) of one command.

    The peak RSS comes from GNU ``time -f %M`` (the largest process of a pipeline): the
    ``ru_maxrss`` of a child forked from this process would count this process's pages.
    """
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    cmd: List[str] = ["sh", "-c", argv[0]] if shell else list(argv)
    if gnu_time:
        cmd = [gnu_time, "-f", "%M %U %S", *cmd]
    before = os.times()
    started = time.perf_counter()
    # stdout to a pipe, not /dev/null: GNU grep stops at the first match when its output is
    # /dev/null
    proc = subprocess.run(cmd, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed with {proc.returncode}: {proc.stderr[-500:]!r}")
    cpu = (after.children_user - before.children_user
           + after.children_system - before.children_system)
    rss = None
    if gnu_time:
        fields = proc.stderr.split()[-3:]
        rss, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
    return elapsed, max(cpu, 0.01), rss


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--files", type=int, default=20_000,
                        help="files of the generated mirror (default: 20000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write-log", metavar="FILE",
                        help="only write the log to FILE ('-' = stdout) and exit")
    parser.add_argument("--long-line", type=int, default=0, metavar="BYTES",
                        help="with --write-log: add one line this long half way")
    parser.add_argument("--floors-only", action="store_true",
                        help="measure only wc, grep, awk and zcat (not sstate-mirror)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    archives = mirror_paths(args.files, args.seed)
    if args.write_log:
        if args.write_log == "-":
            write_log(sys.stdout.buffer, args.lines, archives, seed=args.seed,
                      long_line=args.long_line)
            sys.stdout.buffer.flush()
        else:
            with open(args.write_log, "wb") as f:
                write_log(f, args.lines, archives, seed=args.seed, long_line=args.long_line)
        return 0

    work = Path(tempfile.mkdtemp(prefix="bench-accesslog-"))
    try:
        mirror = work / "mirror"
        gencache.write_cache(str(mirror), gencache.plan(args.files, seed=args.seed,
                                                        now=1_764_547_200), sparse=True)
        log = work / "access.log"
        with open(log, "wb") as f:
            write_log(f, args.lines, archives, seed=args.seed)
        subprocess.run(["gzip", "-k", "-6", str(log)], check=True)
        gz = Path(str(log) + ".gz")
        tool = [sys.executable, "-m", "sstate_mirror", "touch", str(mirror), "--dry-run",
                "-q", "--access-log"]
        awk = "awk '($6==\"\\\"GET\" || $6==\"\\\"HEAD\") && $9 ~ /^2/ {n++} END {print n}'"
        runs = [
            ("sstate-mirror touch --access-log (plain)", [*tool, str(log)], False),
            ("sstate-mirror touch --access-log (gzip)", [*tool, str(gz)], False),
            ("wc -l (plain)", ["wc", "-l", str(log)], False),
            ("grep -c '\" 200 ' (plain)", ["grep", "-c", '" 200 ', str(log)], False),
            ("awk: successful GET/HEAD (plain)", [f"{awk} {log}"], True),
            ("zcat \\| awk (gzip)", [f"zcat {gz} | {awk}"], True),
        ]
        if args.floors_only:
            runs = runs[2:]
        rows = []
        for name, cmd, shell in runs:
            elapsed, cpu, rss = run_child(cmd, shell=shell)  # type: ignore[arg-type]
            rows.append((name, elapsed, cpu, args.lines / cpu, rss))
        size = log.stat().st_size
        head = (f"{args.lines:,} lines ({size / 2**20:.0f} MiB plain,"
                f" {gz.stat().st_size / 2**20:.0f} MiB gzip), mirror of {args.files:,} files")
        def mib(rss: Optional[int]) -> str:
            return "-" if rss is None else f"{rss / 1024:.0f} MiB"

        if args.markdown:
            print(head + "\n")
            print("| reader | wall s | CPU s | lines per CPU second | peak RSS |")
            print("| --- | ---: | ---: | ---: | ---: |")
            for name, elapsed, cpu, rate, rss in rows:
                print(f"| {name} | {elapsed:.1f} | {cpu:.1f} | {rate:,.0f} | {mib(rss)} |")
        else:
            print(head)
            for name, elapsed, cpu, rate, rss in rows:
                print(f"{name:45s} {elapsed:7.1f} s {cpu:7.1f} s CPU {rate:12,.0f} lines/s"
                      f" {mib(rss):>8s}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
