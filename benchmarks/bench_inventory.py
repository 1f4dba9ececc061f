#!/usr/bin/env python3
"""Reading an S3 Inventory report (CSV.gz, Parquet) instead of listing the bucket.

A report of ``--objects`` objects of a synthetic OE mirror (``gencache.plan``) is written in
each format as S3 writes it (a manifest with its ``fileSchema``, ``manifest.checksum``, one
data file), into moto's S3 running in this process. ``sstate-mirror info BUCKET --inventory
MANIFEST`` then runs in a fresh process per format: its wall-clock and CPU seconds, its peak
resident size, and the requests moto answered (GETs of the manifest, its checksum and the data
file, and the few requests ``info`` makes to the mirror itself).

The listing it replaces is ``ceil(objects / 1000)`` ListObjectsV2 requests, for
sstate-mirror and for ``aws s3 ls --recursive`` alike (1,000 keys a page is S3's maximum).
With ``--listing-objects N`` the same mirror of N objects is also seeded into moto and
listed by ``sstate-mirror info`` and ``aws s3 ls --recursive`` (if installed), timed and
counted, so that seconds per LIST page can be set beside the report's seconds (moto answers a
page in about the time S3 does from a nearby machine; the count is what does not depend on
the machine).

Usage::

    python benchmarks/bench_inventory.py --objects 1000000 --listing-objects 100000 \\
        --json benchmarks/results/inventory.json

Needs pyarrow (``pip install 'sstate-mirror[inventory]'``) and ``moto[server]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchlib  # noqa: E402
import gencache  # noqa: E402
from bench_s3 import ACCESS, BUCKET, SECRET, MotoState, peer_env  # noqa: E402

NOW = 1_780_000_000
PREFIX = "mirror"
DEST = "inventories"
CSV_SCHEMA = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass"
PARQUET_SCHEMA = ("message s3.inventory { required binary bucket (UTF8); required binary key"
                  " (UTF8); optional int64 size; optional int64 last_modified_date"
                  " (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); optional binary"
                  " storage_class (UTF8);}")
ETAG = "d41d8cd98f00b204e9800998ecf8427e"


def _iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def write_csv(path: Path, entries: Sequence[gencache.Entry]) -> None:
    with gzip.open(path, "wb", compresslevel=6) as out:
        for e in entries:
            key = urllib.parse.quote_plus(f"{PREFIX}/{e.path}", safe="")
            out.write(f'"{BUCKET}","{key}","{e.size}","{_iso(e.mtime)}","{ETAG}",'
                      f'"STANDARD"\n'.encode())


def _table(entries: Sequence[gencache.Entry], unit: str) -> Any:
    import pyarrow as pa

    n = len(entries)
    return pa.table({
        "bucket": pa.array([BUCKET] * n), "key": pa.array([f"{PREFIX}/{e.path}" for e in entries]),
        "size": pa.array([e.size for e in entries], pa.int64()),
        "last_modified_date": pa.array([int(e.mtime) * 1000 for e in entries], pa.int64())
        .cast(pa.timestamp("ms", tz="UTC")).cast(pa.timestamp(unit, tz="UTC")),
        "e_tag": pa.array([ETAG] * n), "storage_class": pa.array(["STANDARD"] * n)})


def write_parquet(path: Path, entries: Sequence[gencache.Entry]) -> None:
    import pyarrow.parquet as pq

    pq.write_table(_table(entries, "ms"), str(path), compression="snappy")


FORMATS = {"CSV": ("csv.gz", CSV_SCHEMA, write_csv),
           "Parquet": ("parquet", PARQUET_SCHEMA, write_parquet)}


def put_report(client: Any, fmt: str, data: Path) -> str:
    """The report of one data file, as S3 lays it out; the manifest's URL."""
    ext, schema, _ = FORMATS[fmt]
    base = f"{BUCKET}/{fmt.lower()}"
    stamp = dt.datetime.fromtimestamp(NOW - 600, dt.timezone.utc).strftime("%Y-%m-%dT%H-%MZ")
    key = f"{base}/data/{stamp}-0.{ext}"
    digest = hashlib.md5()
    with open(data, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    client.upload_file(str(data), DEST, key)
    manifest = json.dumps({
        "sourceBucket": BUCKET, "destinationBucket": f"arn:aws:s3:::{DEST}",
        "version": "2016-11-30", "creationTimestamp": str((NOW - 600) * 1000),
        "fileFormat": fmt, "fileSchema": schema,
        "files": [{"key": key, "size": data.stat().st_size,
                   "MD5checksum": digest.hexdigest()}]}, indent=4).encode()
    client.put_object(Bucket=DEST, Key=f"{base}/{stamp}/manifest.json", Body=manifest)
    client.put_object(Bucket=DEST, Key=f"{base}/{stamp}/manifest.checksum",
                      Body=hashlib.md5(manifest).hexdigest().encode())
    return f"s3://{DEST}/{base}/{stamp}/manifest.json"


_WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.monotonic()\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True)\n"
    "wall = time.monotonic() - t\n"
    "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'rc': p.returncode, 'out': p.stdout.decode(errors='replace')[-4000:],"
    " 'err': p.stderr.decode(errors='replace')[-2000:], 'wall': wall,"
    " 'cpu': r.ru_utime + r.ru_stime, 'peak_mib': r.ru_maxrss / 1024}))\n")


def measured(argv: List[str], env: Dict[str, str], moto: MotoState) -> Dict[str, Any]:
    """One run of ``argv`` in a fresh process: seconds, peak RSS and moto's requests."""
    mark = moto.mark()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True,
                          env=env, check=True)
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result['err']}")
    result["requests"] = moto.since(mark)
    for key in ("out", "err", "rc"):
        result.pop(key)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--listing-objects", type=int, default=0,
                    help="also seed a mirror of this many objects and time its listing")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-inventory-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"planning {args.objects} objects ...", flush=True)
    entries = gencache.plan(args.objects, seed=1, mtime_spread=90, now=NOW)
    moto = MotoState()
    env = peer_env(moto.endpoint, work)
    import boto3

    client = boto3.session.Session(aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                                   region_name="us-east-1").client(
        "s3", endpoint_url=moto.endpoint)
    client.create_bucket(Bucket=DEST)
    sstate = [sys.executable, "-m", "sstate_mirror"]
    mirror = f"s3://{BUCKET}/{PREFIX}"
    results: Dict[str, Any] = {"objects": args.objects, "formats": {}}
    try:
        for fmt, (ext, _schema, write) in FORMATS.items():
            data = work / f"report.{ext}"
            t = time.monotonic()
            write(data, entries)
            print(f"{fmt}: {data.stat().st_size / 2**20:.1f} MiB written in"
                  f" {time.monotonic() - t:.1f} s", flush=True)
            url = put_report(client, fmt, data)
            got = measured([*sstate, "info", mirror, "--inventory", url, "--json"], env, moto)
            got["data_file_mib"] = round(data.stat().st_size / 2**20, 1)
            results["formats"][fmt] = got
            print(f"  info --inventory: {got['wall']:.1f} s wall, {got['cpu']:.1f} s CPU,"
                  f" peak {got['peak_mib']:.0f} MiB, requests {got['requests']}", flush=True)
            data.unlink()
        del entries  # the listing's mirror is planned anew, smaller
        results["listing_requests"] = math.ceil(args.objects / 1000)
        if args.listing_objects:
            n = args.listing_objects
            print(f"seeding {n} objects for the listing ...", flush=True)
            moto.restore(PREFIX, gencache.plan(n, seed=1, mtime_spread=90, now=NOW))
            listing: Dict[str, Any] = {"objects": n}
            listing["sstate-mirror info"] = measured([*sstate, "info", mirror, "--json"],
                                                     env, moto)
            if shutil.which("aws"):
                listing["aws s3 ls --recursive"] = measured(
                    ["aws", "s3", "ls", "--recursive", f"{mirror}/"], env, moto)
            results["listing"] = listing
            for name, got in listing.items():
                if isinstance(got, dict):
                    print(f"listing {n}: {name}: {got['wall']:.1f} s wall,"
                          f" {got['cpu']:.1f} s CPU, peak {got['peak_mib']:.0f} MiB,"
                          f" requests {got['requests']}", flush=True)
    finally:
        moto.stop()
    results["machine"] = benchlib.machine()
    results["load_average"] = os.getloadavg()
    results["own_peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
