"""Faults during transfer and listing, injected on the wire in front of real servers.

Every test runs the real command line against a real S3 (moto), WebDAV (nginx, wsgidav),
Google Cloud Storage (fake-gcs-server) or Azure Blob (Azurite) server through :mod:`faultproxy`, and checks what a shared mirror needs after a failure:

* the command exits non-zero and names what failed;
* no partial archive (or companion) is visible at its final name: every file on the mirror
  has exactly the bytes of the source;
* ``--retries N`` means N + 1 attempts of a request on the wire, no more;
* running the command again once the server is healthy completes the job;
* a listing cut half-way makes ``clean`` delete nothing and ``info`` print no numbers.

Apache is left out here: mod_dav refuses a MOVE whose Destination names another port than
its own (the proxy's), which says nothing about fault handling.

The directory backend has no server and no wire, so its faults are injected at the OS call
boundary instead (see ``test_dir_*``).
"""

from __future__ import annotations

import errno
import functools
import io
import os
import random
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Set, Tuple

import pytest

from faultproxy import Fault, FaultProxy, Request
from mirrors import Mirror, make_mirror
from runcli import run_json as run
from sstate_mirror import retry
from sstate_mirror.backends import local as local_backend
from sstate_mirror.backends import open_backend
from sstate_mirror.cli import common as cli_common
from sstate_mirror.cli import main, progress
from sstate_mirror.naming import Kind, classify
from webdav_servers import settle_probe

PROXIED_KINDS = ["s3-moto", "dav-nginx", "dav-wsgidav", "gcs", "azure"]
DAV_KINDS = ["dav-nginx", "dav-wsgidav"]
DAY = 86400


@dataclass
class Proxied:
    """A mirror reached through a fault proxy (``url``/``args``) and directly (``mirror``)."""

    mirror: Mirror
    proxy: FaultProxy
    url: str
    args: List[str]


@pytest.fixture(params=PROXIED_KINDS)
def proxied(request: pytest.FixtureRequest) -> Iterator[Proxied]:
    yield from _proxied(request, request.param)


def _proxied(request: pytest.FixtureRequest, kind: str) -> Iterator[Proxied]:
    m = make_mirror(request, kind)
    by_endpoint = m.cli_args[:1] == ["--endpoint-url"]  # object stores; WebDAV by its URL
    if by_endpoint:
        port = urllib.parse.urlsplit(m.cli_args[1]).port
    else:
        port = urllib.parse.urlsplit(m.url).port
    assert port is not None
    with FaultProxy(port) as proxy:
        if by_endpoint:
            endpoint = m.cli_args[1].replace(f":{port}", f":{proxy.port}", 1)
            yield Proxied(m, proxy, m.url, ["--endpoint-url", endpoint])
        else:
            yield Proxied(m, proxy, m.url.replace(f":{port}/", f":{proxy.port}/"), [])


def source_files(root: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_no_partial_file(m: Mirror, source: Path, *, temp_may_remain: bool = False
                           ) -> Dict[str, int]:
    """Every file at a final name is complete (same bytes as the source); no temp files.

    ``temp_may_remain``: after a connection reset, a server may finish writing a temporary
    upload after the client's DELETE of it (wsgidav does, under load). Such a leftover is a
    ``temp`` file, never at a final name, and ``clean`` removes it; it is left out here.
    """
    with m.backend() as b:
        sizes = {e.path: e.size for e in b.list()}
        for path in list(sizes):
            if os.path.basename(path).startswith(".sstate-mirror-"):
                assert temp_may_remain and classify(path) is Kind.TEMP, path
                del sizes[path]
                continue
            assert b.read(path, 1 << 24) == (source / path).read_bytes(), f"{path} is partial"
    return sizes


def is_put(r: Request) -> bool:
    """An upload request: PUT, or GCS's POST of a multipart upload."""
    return r.method == "PUT" or (r.method == "POST" and r.path.startswith("/upload/"))


ZETA = ["--filter", "zeta"]


def zeta_files(cache: Path) -> Dict[str, bytes]:
    return {p: d for p, d in source_files(cache).items() if ":zeta:" in p}


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_failing_server_answers_are_retried_bounded_then_rerun_completes(
        proxied: Proxied, status: int, oe_cache_a: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # 429/408 without an S3 error code: botocore may not retry it, the transfer layer does
    proxied.proxy.add(Fault("status", status=status, match=is_put))
    code, report, err = run(capsys, "upload", str(oe_cache_a), proxied.url, *ZETA,
                            "--retries", "2", "-j", "4", *proxied.args)
    assert code == 1
    failed = report["result"]["failed"]
    assert set(failed) == set(zeta_files(oe_cache_a))  # every file named
    assert all(path in err for path in failed)
    # --retries 2: three attempts of each PUT on the wire, no more (was 9 before the fix);
    # archives are held back when their signature failed, so only companions are tried
    companions = [p for p in failed if not p.endswith(".tar.zst")]
    # (on WebDAV, a 500 to the first PUT into a new collection may also mean "make the
    # parent first", as nginx says it: that one PUT is sent again after a MKCOL, once a run)
    once = 1 if status == 500 and proxied.mirror.kind.startswith("dav-") else 0
    assert 3 * len(companions) <= proxied.proxy.count(is_put) <= 3 * len(companions) + once
    assert assert_no_partial_file(proxied.mirror, oe_cache_a) == {}
    proxied.proxy.clear()
    code, report, err = run(capsys, "upload", str(oe_cache_a), proxied.url, *ZETA,
                            *proxied.args)
    assert code == 0, err
    assert set(assert_no_partial_file(proxied.mirror, oe_cache_a)) == set(zeta_files(oe_cache_a))


def test_connection_reset_mid_upload_is_retried(proxied: Proxied, oe_cache_a: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The server goes away after part of the body: the upload is sent again, whole."""
    proxied.proxy.add(Fault("reset", after_bytes=700, times=3, match=is_put))
    code, _, err = run(capsys, "upload", str(oe_cache_a), proxied.url, *ZETA,
                       "--retries", "3", "-j", "1", *proxied.args)
    assert code == 0, err
    assert proxied.proxy.count(lambda r: r.fault == "reset") == 3
    assert set(assert_no_partial_file(proxied.mirror, oe_cache_a)) == set(zeta_files(oe_cache_a))


def test_server_killed_mid_upload_leaves_nothing_partial(
        proxied: Proxied, oe_cache_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every upload is cut after 300 bytes, always: failure, named, nothing half-written."""
    proxied.proxy.add(Fault("reset", after_bytes=300, match=is_put))
    code, report, err = run(capsys, "upload", str(oe_cache_a), proxied.url, *ZETA,
                            "--retries", "1", *proxied.args)
    assert code == 1
    assert report["result"]["uploaded"] == 0 or proxied.mirror.kind.startswith("dav")
    assert report["result"]["failed"]
    assert all(path in err for path in report["result"]["failed"])
    assert_no_partial_file(proxied.mirror, oe_cache_a, temp_may_remain=True)
    proxied.proxy.clear()
    code, _, err = run(capsys, "upload", str(oe_cache_a), proxied.url, *ZETA, *proxied.args)
    assert code == 0, err
    complete = assert_no_partial_file(proxied.mirror, oe_cache_a, temp_may_remain=True)
    assert set(complete) == set(zeta_files(oe_cache_a))


def test_stalled_server_times_out_and_is_retried_bounded(
        proxied: Proxied, oe_cache_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A server that takes a request and never answers: --timeout catches it, per attempt."""
    first: List[Tuple[str, str]] = []

    def first_put(r: Request) -> bool:
        # GCS sends every upload to one path (the name is in the body): the size tells
        # one file's upload from the others
        if not is_put(r):
            return False
        if not first:
            first.append((r.path, r.headers.get("content-length", "")))
        return (r.path, r.headers.get("content-length", "")) == first[0]

    proxied.proxy.add(Fault("stall", stall=60, match=first_put))
    # every request has this timeout, and moto answers from this very process: leave it
    # room on a loaded machine (1 s was too close); the stalled request costs 2 x 4 s
    code, report, err = run(capsys, "upload", str(oe_cache_a), proxied.url, *ZETA,
                            "--retries", "1", "--timeout", "4", "-j", "1", *proxied.args)
    assert code == 1
    assert proxied.proxy.count(lambda r: r.fault == "stall") == 2  # first try + 1 retry
    failed = report["result"]["failed"]
    assert len(failed) in (1, 2)  # the stalled file (and the archive it holds back)
    assert all(path in err for path in failed)
    assert_no_partial_file(proxied.mirror, oe_cache_a)
    proxied.proxy.clear()
    code, _, err = run(capsys, "upload", str(oe_cache_a), proxied.url, *ZETA, *proxied.args)
    assert code == 0, err
    assert set(assert_no_partial_file(proxied.mirror, oe_cache_a)) == set(zeta_files(oe_cache_a))


# -- listings that fail half-way ------------------------------------------------------------


def _listing_cut(kind: str) -> Callable[[Request], bool]:
    """The requests to cut so that a listing fails after it has returned some entries.

    On GCS and Azure a second page would need 1,000 and 5,000 objects, each back-dated on
    the emulator: there the first page is cut, which no more than a later one may read as
    the end of the listing.
    """
    if kind.startswith("s3"):
        return lambda r: r.method == "GET" and "continuation-token" in r.query
    # (not the one-name listing that checks the mirror is there)
    if kind == "gcs":
        return lambda r: r.method == "GET" and r.path.endswith("/o") and "maxResults=1&" \
            not in r.query + "&"
    if kind == "azure":
        return lambda r: r.method == "GET" and "comp=list" in r.query and "maxresults=1&" \
            not in r.query + "&"
    # Depth: 1 walk (nginx has no Depth: infinity): a sub-collection; where there is Depth:
    # infinity (wsgidav), its answer too (one cut short goes on with the walk)
    return lambda r: r.method == "PROPFIND" and (
        r.headers.get("depth") == "infinity"
        or (r.headers.get("depth") == "1" and r.path.rstrip("/").count("/") >= 4))


@pytest.fixture
def old_full_mirror(proxied: Proxied, oe_cache_a: Path,
                    capsys: pytest.CaptureFixture[str]) -> Proxied:
    """A mirror holding cache-a, everything 40 days old; on S3 enough keys for 2+ pages."""
    m = proxied.mirror
    assert main(["-q", "upload", str(oe_cache_a), m.url, *m.cli_args]) == 0
    if m.kind.startswith("s3"):
        from s3_servers import _moto_seed

        bucket = m.url[len("s3://"):].split("/")[0]
        _moto_seed(bucket, {f"sstate/zz/filler-{i:05d}.txt": b"x" for i in range(1200)})
    m.age_all(40 * DAY)
    capsys.readouterr()
    return proxied


def test_listing_cut_half_way_clean_deletes_nothing(
        old_full_mirror: Proxied, capsys: pytest.CaptureFixture[str]) -> None:
    p = old_full_mirror
    before = p.mirror.sizes()
    p.proxy.add(Fault("cut", after_bytes=1500, match=_listing_cut(p.mirror.kind)))
    code, report, err = run(capsys, "clean", "--max-age", "30d", "--retries", "1", p.url,
                            *p.args)
    assert code == 3, err
    # the one JSON document holds the error, and no plan or partial numbers
    assert set(report) == {"command", "exit_code", "error"}, report
    assert report["exit_code"] == 3 and report["error"]["message"]
    assert "error:" in err and "list" in err
    assert p.proxy.count(lambda r: r.fault == "cut") >= 1
    assert p.proxy.count(lambda r: r.method in ("DELETE", "POST")) == 0
    assert p.mirror.sizes() == before


@pytest.mark.parametrize("proxied", ["dav-wsgidav"], indirect=True)
def test_infinity_listing_cut_half_way_goes_on_with_depth_1(
        proxied: Proxied, old_full_mirror: Proxied) -> None:
    """A Depth: infinity answer that breaks off (Apache's does when a concurrent clean removes
    a collection during its walk) is completed by a Depth: 1 walk: every file, once."""
    p = old_full_mirror
    before = p.mirror.sizes()
    p.proxy.add(Fault("cut", after_bytes=1500, times=1, match=lambda r: (
        r.method == "PROPFIND" and r.headers.get("depth") == "infinity")))
    with open_backend(p.url, p.mirror.options) as b:
        paths = [e.path for e in b.list()]
    assert p.proxy.count(lambda r: r.fault == "cut") == 1
    assert len(paths) == len(set(paths))
    assert set(paths) == set(before)


@pytest.mark.parametrize("command", ["info", "analyze", "verify", "lint", "touch"])
def test_listing_cut_half_way_is_reported_not_counted(
        old_full_mirror: Proxied, command: str, oe_cache_b: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # the plain-line progress prints a status line (files listed so far) once a phase has
    # run 30 s, which a loaded machine reaches: that status is not the result checked here
    monkeypatch.setattr(cli_common, "make_progress",
                        functools.partial(progress.make_progress, heartbeat=3600.0))
    _listing_cut_reported(old_full_mirror, command, oe_cache_b, capsys)


def _may_change(url: str) -> Callable[[Request], bool]:
    """Whether a request to the mirror at ``url`` may change it: anything but a read and
    what a writing command asks a WebDAV server before it plans, which writes nothing (a
    ``MOVE`` of a temporary name never written, a ``PROPPATCH`` setting the mirror's own
    time to what it is; see ``WebDAVBackend.settle``)."""
    root = urllib.parse.urlsplit(url).path.rstrip("/")
    probe = settle_probe(url)

    def may_change(r: Request) -> bool:
        if r.method in ("GET", "HEAD", "PROPFIND", "OPTIONS"):
            return False
        if r.method == "MOVE" and probe.fullmatch(r.path):
            return False
        return not (r.method == "PROPPATCH" and r.path.rstrip("/") == root)

    return may_change


def _listing_cut_reported(p: Proxied, command: str, oe_cache_b: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    before = p.mirror.sizes()
    p.proxy.add(Fault("cut", after_bytes=1500, match=_listing_cut(p.mirror.kind)))
    argv = {"info": ["info", p.url], "analyze": ["analyze", str(oe_cache_b), p.url],
            "verify": ["verify", "--all", "--fix", p.url], "touch": ["touch", str(oe_cache_b), p.url],
            "lint": ["lint", "--pedantic", p.url]}[command]
    code = main([*argv, "--retries", "1", *p.args])
    out, err = capsys.readouterr()
    assert code == 3, out + err
    assert "error:" in err
    # no partial numbers: nothing on stdout that looks like a count of files or bytes
    assert "files" not in out and " B" not in out, out
    assert p.proxy.count(lambda r: r.fault == "cut") >= 1
    # nothing changed on the mirror: no deletion (verify --fix), no refresh (touch)
    assert [f"{r.method} {r.path}" for r in p.proxy.seen(_may_change(p.url))] == []
    assert p.mirror.sizes() == before


# -- the directory backend: faults at the OS call boundary -----------------------------------


def test_dir_disk_full_mid_write_leaves_nothing_partial(
        tmp_path: Path, oe_cache_a: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """ENOSPC half-way through writing an archive.

    There is no server in front of a directory, so the fault is injected where the OS would
    raise it: the backend's copy loop writes half of the file and then fails as a full disk
    does (a real tiny tmpfs needs root).
    """
    mirror = tmp_path / "mirror"
    real_copy = local_backend._copy
    hit: List[str] = []

    def full_disk(src, out, size):  # type: ignore[no-untyped-def]
        if size > 2000 and len(hit) < 2:
            out.write(src.read(size // 2))
            out.flush()
            hit.append(out.name)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(src, out, size)

    monkeypatch.setattr(local_backend, "_copy", full_disk)
    code, report, err = run(capsys, "upload", str(oe_cache_a), str(mirror), *ZETA, "-j", "1")
    assert code == 1
    assert len(report["result"]["failed"]) >= 2
    assert all(path in err for path in report["result"]["failed"])
    assert "No space left on device" in err
    files = source_files(mirror)
    assert not [p for p in files if ".sstate-mirror-" in p]  # temp files removed
    for path, data in files.items():
        assert data == (oe_cache_a / path).read_bytes(), path
    monkeypatch.setattr(local_backend, "_copy", real_copy)
    assert run(capsys, "upload", str(oe_cache_a), str(mirror), *ZETA)[0] == 0
    assert source_files(mirror) == zeta_files(oe_cache_a)


def test_dir_rename_failure_leaves_no_temp_file(
        tmp_path: Path, oe_cache_a: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """EIO from the final rename (a flaky NFS server): retried, then reported; no leftovers.

    Injected by replacing ``os.replace`` as the backend module sees it: no server, no wire.
    """
    calls: List[str] = []

    class FlakyOs:
        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        @staticmethod
        def replace(src: str, dst: str) -> None:
            calls.append(dst)
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(local_backend, "os", FlakyOs())
    mirror = tmp_path / "mirror"
    code, report, err = run(capsys, "upload", str(oe_cache_a), str(mirror), *ZETA,
                            "--retries", "2")
    assert code == 1
    failed = report["result"]["failed"]
    assert failed and all(path in err for path in failed)
    # EIO is transient: each companion tried 3 times (--retries 2), archives held back
    assert set(Counter(calls).values()) == {3}
    assert source_files(mirror) == {}
    monkeypatch.undo()
    assert run(capsys, "upload", str(oe_cache_a), str(mirror), *ZETA)[0] == 0
    assert source_files(mirror) == zeta_files(oe_cache_a)


# -- how retries are spaced (WebDAV: the tool's own retry policy) ---------------------------

def _first_attempts(times: int) -> Callable[[Request], bool]:
    """Matches the first ``times`` PUTs of each path."""
    seen: Counter[str] = Counter()

    def match(r: Request) -> bool:
        if r.method != "PUT":
            return False
        seen[r.path] += 1
        return seen[r.path] <= times

    return match


def _gaps(proxy: FaultProxy, path: str) -> List[float]:
    """Seconds between consecutive PUTs of ``path``, as the server side saw them arrive."""
    times = [r.at for r in proxy.seen(lambda r: r.method == "PUT" and r.path == path)]
    return [b - a for a, b in zip(times, times[1:])]


@pytest.mark.parametrize("proxied", DAV_KINDS, indirect=True)
def test_retry_after_is_honoured(proxied: Proxied, oe_cache_a: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """503 with ``Retry-After: 2``: the request comes again no sooner than 2 s later."""
    proxied.proxy.add(Fault("status", status=503, retry_after="2", times=1, match=is_put))
    code, _, err = run(capsys, "upload", str(oe_cache_a), proxied.url, *ZETA, "-j", "1",
                       "--retries", "2", *proxied.args)
    assert code == 0, err
    refused = proxied.proxy.seen(lambda r: r.fault == "status")
    assert len(refused) == 1
    gaps = _gaps(proxied.proxy, refused[0].path)
    assert len(gaps) == 1 and gaps[0] >= 2.0, gaps  # a lower bound: no race


@pytest.mark.parametrize("proxied", DAV_KINDS, indirect=True)
def test_backoff_is_exponential_with_jitter(proxied: Proxied, oe_cache_a: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """No Retry-After: the k-th retry waits 0.25 s * 2^k, jittered to 50-100 % of that.

    Lower bounds only (a loaded machine makes gaps longer, never shorter): every gap is at
    least half its nominal delay, so the gaps grow; and the first retries of different
    requests are not spaced alike (jitter), which needs several requests to show.
    """
    proxied.proxy.add(Fault("status", status=503, retry_after=None, match=_first_attempts(3)))
    code, _, err = run(capsys, "upload", str(oe_cache_a), proxied.url, *ZETA, "-j", "4",
                       "--retries", "3", *proxied.args)
    assert code == 0, err
    paths = {r.path for r in proxied.proxy.seen(lambda r: r.fault == "status")}
    assert len(paths) >= 8
    firsts = []
    for path in paths:
        gaps = _gaps(proxied.proxy, path)
        assert len(gaps) == 3, (path, gaps)  # 3 refusals, then the accepted attempt
        for k, gap in enumerate(gaps):
            assert gap >= 0.5 * 0.25 * 2**k, (path, gaps)
        firsts.append(gaps[0])
    assert max(firsts) - min(firsts) >= 0.03, firsts  # spread over [0.125, 0.25] s


def test_jitter_leaves_the_random_module_alone() -> None:
    """Backoff draws from its own generator: a retry in any thread does not move the
    sequence of a program that seeded ``random`` (Hypothesis, for one, checks that)."""
    random.seed(7)
    expected = [random.random() for _ in range(3)]
    random.seed(7)
    waits = [retry.backoff(k) for k in range(6)]
    assert [random.random() for _ in range(3)] == expected
    assert all(0.5 * 0.25 * 2**k <= w <= 0.25 * 2**k for k, w in enumerate(waits)), waits


@pytest.mark.parametrize("proxied", DAV_KINDS, indirect=True)
def test_upload_gives_up_when_its_collection_keeps_disappearing(
        proxied: Proxied, oe_cache_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every PUT into one collection is answered 409 (a clean pruning it each time): the
    upload re-creates it and tries again a bounded number of times, then names the file,
    exits 1 and leaves nothing partial; the other files are uploaded."""
    target = sorted(p for p in zeta_files(oe_cache_a) if p.endswith(".siginfo"))[0]
    collection = "/" + target.rsplit("/", 1)[0] + "/"

    def into_collection(r: Request) -> bool:
        return r.method == "PUT" and collection in urllib.parse.unquote(r.path)

    proxied.proxy.add(Fault("status", status=409, retry_after=None, match=into_collection))
    code, report, err = run(capsys, "upload", str(oe_cache_a), proxied.url, *ZETA, "-j", "2",
                            "--retries", "1", *proxied.args)
    assert code == 1, err
    failed = report["result"]["failed"]
    assert target in failed and all(p.startswith(collection[1:]) for p in failed), failed
    assert "keeps disappearing" in err
    refused = proxied.proxy.count(lambda r: r.fault == "status")
    # bounded: at each of the --retries + 1 = 2 attempts, the PUT and at most 5 more, each
    # after creating the collection again
    assert 2 <= refused <= (1 + 5) * 2 * len(failed), refused
    uploaded = assert_no_partial_file(proxied.mirror, oe_cache_a)
    assert set(uploaded) == set(zeta_files(oe_cache_a)) - set(failed)


@pytest.mark.parametrize("proxied", ["dav-nginx"], indirect=True)
def test_one_prune_round_at_a_time_per_top_level_collection(
        proxied: Proxied, capsys: pytest.CaptureFixture[str]) -> None:
    """A prune round renames emptied collections to private names, checks and deletes them.
    No collection is renamed while one inside it, or one it is inside, is under a private
    name (by any thread), as the requests arrive at the server: within a top-level
    collection, one prune round at a time, and a round never holds a collection together
    with one inside it (``d3/`` has files of its own besides its children's)."""
    m = proxied.mirror
    files = {f"{top:02x}/{sub:02x}/sstate:x::1:r0::14:{top:02x}{sub:02x}{i:060x}"
             "_populate_lic.tar.zst": b"x"
             for top in (0xa0, 0xb1, 0xc2, 0xd3) for sub in range(12) for i in range(2)}
    files.update({f"d3/sstate:x::1:r0::14:d3ff{i:060x}_populate_lic.tar.zst": b"x"
                  for i in range(2)})
    with m.backend() as b:
        for path, data in files.items():
            b.put(path, io.BytesIO(data), len(data))
    m.age_all(40 * DAY)
    code, report, err = run(capsys, "clean", "--max-age", "30d", "-j", "4", proxied.url,
                            *proxied.args)
    assert code == 0 and report["result"]["deleted"] == len(files), err
    base = urllib.parse.urlsplit(proxied.url).path

    def rel(url_or_path: str) -> str:
        return urllib.parse.unquote(urllib.parse.urlsplit(url_or_path).path)[len(base):]

    def nested(a: str, b: str) -> bool:
        return a == b or a.startswith(b + "/") or b.startswith(a + "/")

    hidden_now: Dict[str, str] = {}  # private name -> the collection renamed to it
    renamed: Set[str] = set()
    for r in proxied.proxy.seen():
        path = rel(r.path).rstrip("/")
        if path in hidden_now and r.method in ("DELETE", "MOVE"):  # deleted, or moved back
            del hidden_now[path]
            continue
        destination = rel(r.headers.get("destination", "")).rstrip("/")
        if r.method == "MOVE" and ".sstate-mirror-prune-" in destination:
            busy = sorted(c for c in hidden_now.values() if nested(c, path))
            assert not busy, f"{path}/ renamed while {busy} were under private names"
            hidden_now[destination] = path
            renamed.add(path)
    # every collection went by rename: each child, then its top-level collection
    assert renamed == {p.rsplit("/", 1)[0] for p in files} | {"a0", "b1", "c2", "d3"}
    assert not hidden_now, hidden_now
    assert not m.sizes()
