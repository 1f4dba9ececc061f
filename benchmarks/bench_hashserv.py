#!/usr/bin/env python3
"""Talking to a hash equivalence server: sstate-mirror's client beside bitbake's own.

What is measured, on the real ``bitbake-hashserv`` holding N unihashes (reported as builds
report them), directly on 127.0.0.1 and through :mod:`latencyproxy` with a round trip of
``--rtt`` ms:

- *exists*: which of the N unihashes the server knows (``info --hashserve``), against
  bitbake's ``unihash_exists_batch`` (``bitbake-hashclient unihash-exists``);
- *mark*: marking the N unihashes for garbage collection (``clean --hashserve``), against
  bitbake's ``gc_mark_stream`` (``bitbake-hashclient gc-mark-stream``, what OE-core's
  ``clean-hashserver-database`` runs).

Both send the same N stream lines plus two mode switches; they differ in round trips:
sstate-mirror sends windows of 256 queries and reads their answers (N/256 round trips),
bitbake sends everything while a second task reads (one). Times are the median of --runs.

    python benchmarks/bench_hashserv.py [--unihashes 10000] [--rtt 2] [--runs 3]

Needs the server (``../shared/tools/bitbake-hashserv`` or ``$SSTATE_MIRROR_TEST_HASHSERV``)
and bitbake's ``bb`` package (``pip install bitbake-setup==2.19.0``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

from benchlib import free_port, wait_for_port  # noqa: E402
from latencyproxy import LatencyProxy  # noqa: E402

from sstate_mirror.hashserv import connect  # noqa: E402
from sstate_mirror.hashserv.client import WINDOW  # noqa: E402

METHOD = "oe.sstatesig.OEOuthashBasic"


def _h(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def _median(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unihashes", type=int, default=10000)
    ap.add_argument("--rtt", type=float, default=2.0, help="round trip of the proxy, ms")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "hashserv.json")
    args = ap.parse_args(argv)

    where = Path(os.environ.get("SSTATE_MIRROR_TEST_HASHSERV")
                 or ROOT.parent / "shared" / "tools" / "bitbake-hashserv")
    sys.path.insert(0, str(where / "lib"))
    import hashserv  # bitbake's client, the peer

    work = Path(tempfile.mkdtemp(prefix="bench-hashserv-"))
    port = free_port()
    with open(work / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(where / "bin" / "bitbake-hashserv"), "--bind",
             f"127.0.0.1:{port}", "--database", str(work / "db")],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        unihashes = [_h("u", i) for i in range(args.unihashes)]
        start = time.perf_counter()
        with hashserv.create_client(f"127.0.0.1:{port}") as c:
            for i, u in enumerate(unihashes):
                c.report_unihash(_h("t", i), METHOD, _h("o", i), u)
        fill_s = time.perf_counter() - start
        rows: Dict[str, Dict[str, float]] = {}
        for rtt in (0.0, args.rtt):
            proxy = LatencyProxy(port, rtt) if rtt else None
            p = proxy.start() if proxy else port
            address = f"127.0.0.1:{p}"
            try:
                with connect(address) as ours, hashserv.create_client(address) as theirs:
                    assert all(ours.unihashes_exist(unihashes))
                    assert all(theirs.unihash_exists_batch(unihashes))
                    rows[f"rtt {rtt:g} ms"] = {
                        "sstate-mirror exists": _median(
                            lambda: ours.unihashes_exist(unihashes), args.runs),
                        "bitbake exists": _median(
                            lambda: theirs.unihash_exists_batch(unihashes), args.runs),
                        "sstate-mirror mark": _median(
                            lambda: ours.gc_mark("bench", unihashes), args.runs),
                        "bitbake mark": _median(
                            lambda: theirs.gc_mark_stream(
                                "bench", (f"unihash {u}" for u in unihashes)), args.runs),
                    }
            finally:
                if proxy:
                    proxy.stop()
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    lines = args.unihashes + 2
    result = {
        "unihashes": args.unihashes, "runs": args.runs, "fill_s": round(fill_s, 2),
        "stream_lines_each": lines,
        "round_trips": {"sstate-mirror": math.ceil(args.unihashes / WINDOW) + 2,
                        "bitbake": 3},
        "seconds": {k: {t: round(v, 3) for t, v in r.items()} for k, r in rows.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
