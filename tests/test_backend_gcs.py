"""The Google Cloud Storage backend against fake-gcs-server on 127.0.0.1.

The shared contract, then what only GCS shows: which field ``touch`` moves (``customTime``
by a metadata PATCH, the generation unchanged), resumable uploads, batch deletes (through
the batch endpoint of tests/gcs_batch_front.py) and their fallback to single deletes where
the server has no batch endpoint, parallel prefix listing, and the errors a user meets.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import io
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, List

import pytest

from backend_contract import *  # noqa: F403 - the shared contract tests
from backend_contract import ContractEnv
from cloud_servers import GCSBucket, GCSServer, gcs_env
from faultproxy import FaultProxy
from mirrors import is_lease
from s3_servers import free_port
from sstate_mirror.backends import BackendOptions, open_backend
from sstate_mirror.backends.gcs import GCSBackend, parse_gs_url
from sstate_mirror.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    TransientError,
    UsageError,
)

pytestmark = pytest.mark.server

MiB = 1024 * 1024


def backend_for(bucket: GCSBucket, **options: Any) -> GCSBackend:
    opts = bucket.options
    for name, value in options.items():
        setattr(opts, name, value)
    b = open_backend(bucket.url, opts)
    assert isinstance(b, GCSBackend)
    return b


@pytest.fixture(params=["root", "prefix"])
def contract_env(request: pytest.FixtureRequest, gcs_bucket: GCSBucket) -> Iterator[ContractEnv]:
    if request.param == "prefix":
        gcs_bucket.prefix = "team/sstate"
    with backend_for(gcs_bucket) as backend:
        yield ContractEnv(backend=backend, backdate=gcs_bucket.backdate)


def put(b: GCSBackend, path: str, data: bytes) -> None:
    b.put(path, io.BytesIO(data), len(data))


def test_url_forms() -> None:
    assert parse_gs_url("gs://my-sstate") == ("my-sstate", "")
    assert parse_gs_url("gs://my-sstate/a/b/") == ("my-sstate", "a/b")
    for bad in ["gs://", "gs://UPPER", "gs://a", "gs://user@bucket/x", "gs://b-ok/a/../x"]:
        with pytest.raises(UsageError):
            parse_gs_url(bad)


def test_touch_sets_custom_time_in_place(gcs_bucket: GCSBucket) -> None:
    """touch is one metadata PATCH: customTime moves, the generation (the data) stays."""
    with backend_for(gcs_bucket) as b:
        put(b, "aa/bb/x", b"payload")
        gcs_bucket.backdate("aa/bb/x", 5 * 86400)
        before = gcs_bucket.server.client().bucket(gcs_bucket.name).get_blob("aa/bb/x")
        old = b.stat("aa/bb/x")
        assert old is not None
        assert b.touch(["aa/bb/x"]) == {}
        after = gcs_bucket.server.client().bucket(gcs_bucket.name).get_blob("aa/bb/x")
        assert after.generation == before.generation  # no new upload, no copy
        assert after.custom_time.timestamp() > before.custom_time.timestamp() + 4 * 86400
        new = b.stat("aa/bb/x")
        assert new is not None and new.mtime == after.custom_time.timestamp()
        # the listing reads the same time as stat
        assert {e.path: e.mtime for e in b.list()} == {"aa/bb/x": new.mtime}


def test_upload_sets_custom_time(gcs_bucket: GCSBucket) -> None:
    with backend_for(gcs_bucket) as b:
        put(b, "aa/bb/x", b"x")
    blob = gcs_bucket.server.client().bucket(gcs_bucket.name).get_blob("aa/bb/x")
    assert blob.custom_time is not None  # lifecycle rules on daysSinceCustomTime see it


def test_object_without_custom_time_reads_updated(gcs_bucket: GCSBucket) -> None:
    gcs_bucket.blob("aa/bb/other-tool").upload_from_string(b"1")
    with backend_for(gcs_bucket) as b:
        [entry] = list(b.list())
    blob = gcs_bucket.server.client().bucket(gcs_bucket.name).get_blob("aa/bb/other-tool")
    assert blob.custom_time is None and entry.mtime == blob.updated.timestamp()


def test_resumable_upload_and_size_mismatch(gcs_bucket: GCSBucket) -> None:
    data = os.urandom(3 * MiB + 77)
    with backend_for(gcs_bucket) as b:
        b.chunk_size = 1 * MiB  # resumable above one chunk, in 1 MiB chunks
        b.put("aa/bb/big", io.BytesIO(data), len(data))
        with b.open("aa/bb/big") as f:
            assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
        with pytest.raises(PermanentError, match="expected"):
            b.put("aa/bb/short", io.BytesIO(data), len(data) + 1)
        with pytest.raises(PermanentError, match="more than"):
            b.put("aa/bb/long", io.BytesIO(data), len(data) - 1)
        assert [e.path for e in b.list()] == ["aa/bb/big"]


def _upload(bucket: GCSBucket, paths: List[str]) -> None:
    client = bucket.server.client().bucket(bucket.name)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda p: client.blob(bucket.key(p)).upload_from_string(b"x"), paths))


def test_no_request_the_tool_did_not_send(gcs_bucket: GCSBucket) -> None:
    """The client library's background fetch of the bucket's metadata is off: a write, a
    listing and a read send their own requests and no ``GET`` of the bucket, and no thread
    of the library is left talking to the server (with jittered retries) afterwards."""
    front = gcs_bucket.server.front
    assert front is not None
    front.reset()
    with backend_for(gcs_bucket) as b:
        put(b, "aa/bb/x", b"payload")
        assert [e.path for e in b.list()] == ["aa/bb/x"]
        with b.open("aa/bb/x") as f:
            assert f.read() == b"payload"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(
            "_fetch_background" in t.name for t in threading.enumerate()):
        time.sleep(0.05)
    assert f"GET /storage/v1/b/{gcs_bucket.name}" not in front.passed, front.passed


@pytest.mark.parametrize("prefix", ["", "team/sstate"])
def test_delete_sends_batches_of_100(gcs_bucket: GCSBucket, prefix: str) -> None:
    """The JSON API batch endpoint (google-cloud-storage's own batch code): 251 deletes are
    three batch requests of 100, 100 and 51 calls, and no single DELETE."""
    gcs_bucket.prefix = prefix
    front = gcs_bucket.server.front
    assert front is not None
    paths = [f"{i % 256:02x}/{i:04x}/f" for i in range(250)]
    _upload(gcs_bucket, paths)
    with backend_for(gcs_bucket) as b:
        assert b.delete([*paths, "ff/ff/never-was"]) == {}  # a 404 call is no failure
        assert b.batch_supported is True
        assert list(b.list()) == []
    assert front.batches == [100, 100, 51]
    assert not [r for r in front.passed if r.startswith("DELETE")]
    assert gcs_bucket.server.client().bucket(gcs_bucket.name).get_blob(
        gcs_bucket.key(paths[0])) is None  # gone from the emulator itself


@pytest.mark.parametrize(("status", "error", "message"), [
    (403, AuthError, "access denied"), (500, TransientError, "server busy or failing"),
    (429, TransientError, "server busy or failing")])
def test_a_call_refused_in_a_batch_fails_its_path_alone(
        gcs_bucket: GCSBucket, status: int, error: type, message: str) -> None:
    front = gcs_bucket.server.front
    assert front is not None
    paths = [f"{i:02x}/00/f" for i in range(6)]
    _upload(gcs_bucket, paths)
    front.fail[gcs_bucket.key(paths[2])] = status
    with backend_for(gcs_bucket) as b:
        failures = b.delete([*paths, "ff/ff/never-was"])
        assert list(failures) == [paths[2]]
        assert isinstance(failures[paths[2]], error)
        assert f"cannot delete {paths[2]}: {message}" in str(failures[paths[2]])
        assert b.batch_supported is True
        assert [e.path for e in b.list()] == [paths[2]]
    assert front.batches == [7]


def test_delete_without_batch_endpoint_falls_back(gcs_emulator: GCSServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """fake-gcs-server alone has no batch endpoint: the first batch finds out, then
    single deletes."""
    gcs_env(monkeypatch, gcs_emulator)
    bucket = GCSBucket(gcs_emulator, gcs_emulator.new_bucket())
    paths = [f"{i:02x}/00/f" for i in range(150)]
    _upload(bucket, paths)
    with backend_for(bucket) as b:
        assert b.delete([*paths, "ff/ff/never-was"]) == {}
        assert b.batch_supported is False
        assert list(b.list()) == []


def test_parallel_listing_matches_sequential(gcs_bucket: GCSBucket) -> None:
    paths = [f"{i % 256:02x}/{i % 7:02x}/f{i}" for i in range(600)]
    paths += [f"universal/{i:02x}/00/u{i}" for i in range(40)] + ["top-level-file"]
    _upload(gcs_bucket, paths)
    with backend_for(gcs_bucket) as b:
        sequential = sorted(e.path for e in b.list())
        b.parallel_list_min = 0
        b.list_workers = 4
        b.page_size = 100  # several pages per range
        parallel = [e.path for e in b.list()]
    assert sorted(parallel) == sequential == sorted(paths)
    assert len(parallel) == len(set(parallel))


def test_missing_bucket(gcs_bucket: GCSBucket) -> None:
    gcs_bucket.name += "-missing"
    with backend_for(gcs_bucket) as b:
        with pytest.raises(NotFoundError, match=f"bucket {gcs_bucket.name} does not exist"):
            b.check()
        with pytest.raises(NotFoundError):
            list(b.list())
        b.check(create=True)
        b.check()


def test_unreachable_server(monkeypatch: pytest.MonkeyPatch, gcs_server: GCSServer) -> None:
    port = free_port()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"127.0.0.1:{port}")
    b = open_backend("gs://bucket", BackendOptions(timeout=2, retries=0))
    with pytest.raises(TransientError, match=f"cannot reach http://127.0.0.1:{port}"):
        b.check()


def test_no_credentials_says_how(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    pytest.importorskip("google.cloud.storage")
    for var in ["STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"]:
        monkeypatch.delenv(var, raising=False)
    missing = tmp_path / "missing.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))
    b = open_backend("gs://bucket", BackendOptions(timeout=2, retries=0))
    with pytest.raises(AuthError, match="no Google Cloud credentials") as e:
        b.check()
    assert e.value.hint is not None and "GOOGLE_APPLICATION_CREDENTIALS" in e.value.hint


def test_unsafe_object_names_are_reported_not_listed(gcs_bucket: GCSBucket) -> None:
    for key in ["aa//bb", "aa/./cc", "aa/bb/ok", "aa/dir/"]:
        gcs_bucket.blob(key).upload_from_string(b"1")
    with backend_for(gcs_bucket) as b:
        skipped: List[str] = []
        assert [e.path for e in b.list(on_skip=lambda p, _w: skipped.append(p))] == ["aa/bb/ok"]
        assert sorted(skipped) == ["aa/./cc", "aa//bb"]


@pytest.mark.parametrize(("url", "module", "line"), [
    ("gs://bucket/x", "google.cloud", "pip install 'sstate-mirror[gcs]'"),
    ("az://acct.blob.core.windows.net/cont", "azure.storage.blob",
     "pip install 'sstate-mirror[azure]'")])
def test_missing_client_package_names_the_pip_line(
        monkeypatch: pytest.MonkeyPatch, url: str, module: str, line: str) -> None:
    import sys

    from sstate_mirror.errors import BackendUnavailable

    for name in [m for m in sys.modules if m.startswith("sstate_mirror.backends.")
                 and m.rsplit(".", 1)[1] in ("gcs", "azure")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(BackendUnavailable, match="needs the Python package") as e:
        open_backend(url)
    assert e.value.hint == line


def test_custom_time_is_set_on_the_servers_clock(gcs_bucket: GCSBucket) -> None:
    """GCS takes customTime from the client: upload and touch send now on the server's
    clock (learnt from its answers' Date), the clock clean measures ages on. Here the
    server's clock is 4 minutes ahead of this machine's (a proxy moves every Date)."""
    port = urllib.parse.urlsplit(gcs_bucket.server.endpoint).port
    assert port is not None
    with FaultProxy(port, date_shift=240) as proxy, \
            backend_for(gcs_bucket, endpoint_url=proxy.url) as b:
        server_now = b.server_time()
        assert server_now is not None and 230 < server_now - time.time() < 250
        put(b, "aa/bb/x", b"x")
        entry = b.stat("aa/bb/x")
        assert entry is not None and 230 < entry.mtime - time.time() < 250
        gcs_bucket.backdate("aa/bb/x", 86400)
        assert b.touch(["aa/bb/x"]) == {}
        entry = b.stat("aa/bb/x")
        assert entry is not None and 230 < entry.mtime - time.time() < 250


@pytest.mark.parametrize("url", ["gs://bucket/x", "az://acct.blob.core.windows.net/cont"])
def test_a_missing_ca_bundle_is_a_usage_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any, url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    from sstate_mirror.cli import main

    pytest.importorskip("google.cloud.storage" if url.startswith("gs") else "azure.storage.blob")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:1")
    missing = tmp_path / "ca.pem"
    assert main(["info", url, "--ca-cert", str(missing), "--retries", "0"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --ca-cert {missing}: no such file"


def test_clean_deletes_in_batch_requests(gcs_bucket: GCSBucket, oe_cache_a: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """clean --max-age on GCS: the 93 back-dated files go in batch requests, no single
    DELETE, and are gone from the emulator."""
    from runcli import run_json

    front = gcs_bucket.server.front
    assert front is not None
    gcs_bucket.prefix = "sstate"
    bucket = gcs_bucket.server.client().bucket(gcs_bucket.name)
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)

    def seed(path: Path) -> None:  # uploaded 40 days ago, as upload would have
        blob = bucket.blob(gcs_bucket.key(str(path.relative_to(oe_cache_a))))
        blob.custom_time = when
        blob.upload_from_filename(str(path))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(seed, [p for p in oe_cache_a.rglob("*") if p.is_file()]))
    front.reset()
    args = ["--endpoint-url", gcs_bucket.server.endpoint]
    code, report, err = run_json(capsys, "clean", "--max-age", "30d", gcs_bucket.url, *args)
    assert code == 0 and report["result"]["deleted"] == 93, err
    # one batch request for the 26 archives, one for the 67 .siginfo (clean deletes a
    # group's archive before its .siginfo)
    assert sorted(front.batches) == [26, 67]
    assert not [r for r in front.passed if r.startswith("DELETE")]
    left = [b.name[len("sstate/"):] for b in
            gcs_bucket.server.client().list_blobs(gcs_bucket.name)]
    assert [p for p in left if not is_lease(p)] == []  # the clean's own lease stays
