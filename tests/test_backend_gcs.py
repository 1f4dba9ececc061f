"""The Google Cloud Storage backend against fake-gcs-server on 127.0.0.1.

The shared contract, then what only GCS shows: which field ``touch`` moves (``customTime``
by a metadata PATCH, the generation unchanged), resumable uploads, batch deletes falling
back to single deletes where the server has no batch endpoint, parallel prefix listing, and
the errors a user meets.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from typing import Any, List

import pytest

from backend_contract import *  # noqa: F403 - the shared contract tests
from backend_contract import ContractEnv
from cloud_servers import GCSBucket, GCSServer
from s3_servers import free_port
from sstate_mirror.backends import BackendOptions, open_backend
from sstate_mirror.backends.gcs import GCSBackend, parse_gs_url
from sstate_mirror.errors import (
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


def test_delete_without_batch_endpoint_falls_back(gcs_bucket: GCSBucket) -> None:
    """fake-gcs-server has no batch endpoint: the first batch finds out, then singles."""
    paths = [f"{i:02x}/00/f" for i in range(150)]
    with backend_for(gcs_bucket) as b:
        for p in paths:
            put(b, p, b"1")
        assert b.delete([*paths, "ff/ff/never-was"]) == {}
        assert b.batch_supported is False
        assert list(b.list()) == []


def test_parallel_listing_matches_sequential(gcs_bucket: GCSBucket) -> None:
    paths = [f"{i % 256:02x}/{i % 7:02x}/f{i}" for i in range(600)]
    paths += [f"universal/{i:02x}/00/u{i}" for i in range(40)] + ["top-level-file"]
    client = gcs_bucket.server.client().bucket(gcs_bucket.name)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda p: client.blob(p).upload_from_string(b"x"), paths))
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
    from sstate_mirror.errors import AuthError

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
