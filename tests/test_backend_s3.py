"""The S3 backend against real S3-compatible servers (moto, rclone) on 127.0.0.1.

The shared contract runs on both servers; the rest covers what only S3 shows: pagination past
1,000 keys, parallel range listing, multipart transfers, prefixes, timezones, and every error
a user can meet (unreachable server, missing bucket, bad endpoint, rejected or missing
credentials) with its class and message, never leaking the secret key.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Dict, List

import pytest

from backend_contract import *  # noqa: F403 - the shared contract tests
from backend_contract import ContractEnv
from s3_servers import S3Bucket, S3Server, s3_test_env, start_on_free_port
from sstate_mirror.backends import BackendOptions, open_backend
from sstate_mirror.backends.s3 import (
    S3Backend,
    estimate_from_first_page,
    listing_requests,
    parse_s3_url,
    parse_utc_timestamp,
    prefer_probes,
    range_prefixes,
)
from sstate_mirror.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    TransientError,
    UsageError,
)

pytestmark = pytest.mark.server

MiB = 1024 * 1024


@pytest.fixture(params=["moto", "rclone"])
def any_s3(request: pytest.FixtureRequest) -> S3Server:
    """Each S3 implementation in turn."""
    return request.getfixturevalue(f"{request.param}_s3")  # type: ignore[no-any-return]


@pytest.fixture
def bucket(any_s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Bucket:
    env = s3_test_env(monkeypatch, any_s3, tmp_path)
    return S3Bucket(server=any_s3, name=any_s3.new_bucket(), env=env)


def backend_for(bucket: S3Bucket, **options: Any) -> S3Backend:
    opts = bucket.options
    for name, value in options.items():
        setattr(opts, name, value)
    b = open_backend(bucket.url, opts)
    assert isinstance(b, S3Backend)
    return b


@pytest.fixture
def contract_env(bucket: S3Bucket) -> Iterator[ContractEnv]:
    # on rclone the mirror sits below a prefix, on moto at the bucket's root: both forms
    if bucket.server.name == "rclone":
        bucket.prefix = "team/sstate"
    with backend_for(bucket) as backend:
        yield ContractEnv(backend=backend, backdate=bucket.backdate)


def put(b: S3Backend, path: str, data: bytes) -> None:
    b.put(path, io.BytesIO(data), len(data))


# -- URL and options ---------------------------------------------------------------------


def test_url_forms() -> None:
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://bucket/") == ("bucket", "")
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b")
    for bad in ["s3://", "s3:///x", "s3://a", "s3://bad bucket/x", "s3://b/a//c",
                "s3://b/../x", "s3://AKID:secret@bucket/x"]:
        with pytest.raises(UsageError) as info:
            parse_s3_url(bad)
        assert "secret" not in str(info.value)


def test_redacted_url_and_properties() -> None:
    b = S3Backend("s3://bucket/a/b/", BackendOptions(endpoint_url="http://127.0.0.1:1"))
    assert b.url == "s3://bucket/a/b"
    assert b.properties.delete_batch == 1000
    assert b.properties.touch == "copy"
    assert b.properties.atomic_put


@pytest.mark.parametrize("endpoint", ["ftp://host", "http://", "localhost:9000",
                                      "http://host:99999", "http://[::1"])
def test_invalid_endpoint_is_a_usage_error(endpoint: str) -> None:
    with pytest.raises(UsageError, match="invalid S3 endpoint URL"):
        open_backend("s3://bucket", BackendOptions(endpoint_url=endpoint))


def test_invalid_endpoint_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "nonsense")
    with pytest.raises(UsageError, match="AWS_ENDPOINT_URL_S3"):
        open_backend("s3://bucket", BackendOptions())


@pytest.mark.parametrize("var", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
def test_endpoint_from_environment(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, var: str
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    # "localhost" rather than an address: only path-style addressing reaches the bucket
    monkeypatch.setenv(var, s3_bucket.server.endpoint_url.replace("127.0.0.1", "localhost"))
    with open_backend(s3_bucket.url, BackendOptions(timeout=10, retries=0)) as b:
        b.check()
        put(b, "aa/bb/x", b"x")  # type: ignore[arg-type]
        assert [e.path for e in b.list()] == ["aa/bb/x"]
        assert b.client.meta.config.s3["addressing_style"] == "path"  # type: ignore[attr-defined]


def test_ca_bundle_variables_do_not_affect_plain_http(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(var, str(tmp_path / "no-such-bundle.pem"))
    with backend_for(s3_bucket) as b:
        put(b, "aa/bb/x", b"x")
        assert [e.path for e in b.list()] == ["aa/bb/x"]


def test_no_checksum_trailers_that_other_servers_reject(s3_bucket: S3Bucket) -> None:
    sent: Dict[str, Dict[str, str]] = {}

    def capture(request: Any, event_name: str, **_: Any) -> None:
        sent[event_name.rsplit(".", 1)[-1]] = {
            k.lower(): v.decode() if isinstance(v, bytes) else v
            for k, v in request.headers.items()}

    with backend_for(s3_bucket) as b:
        b.client.meta.events.register("before-send.s3", capture)
        b.multipart_threshold = b.multipart_chunksize = 5 * MiB
        put(b, "aa/bb/small", b"x" * 100)
        small = sent.pop("PutObject")
        data = os.urandom(6 * MiB)
        put(b, "aa/bb/large", data)
        assert b.delete(["aa/bb/small"]) == {}
    for headers in (small, sent["UploadPart"]):
        assert "x-amz-trailer" not in headers
        assert not [h for h in headers if h.startswith("x-amz-checksum-")]
        assert "aws-chunked" not in headers.get("content-encoding", "")
    assert "content-md5" in sent["DeleteObjects"]


def _profiles(server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
              **secrets: str) -> str:
    """A new bucket, credentials only from a shared credentials file: a profile per
    keyword (its secret key); no keys in the environment."""
    s3_test_env(monkeypatch, server, tmp_path)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (tmp_path / "credentials").write_text("".join(
        f"[{profile}]\naws_access_key_id = {server.access_key}\n"
        f"aws_secret_access_key = {secret}\n" for profile, secret in secrets.items()))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return server.new_bucket()


def test_credentials_and_endpoint_from_a_profile(
    rclone_s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    name = _profiles(rclone_s3, monkeypatch, tmp_path, ci=rclone_s3.secret_key)
    endpoint = rclone_s3.endpoint_url.replace("127.0.0.1", "localhost")
    (tmp_path / "config").write_text(
        f"[profile ci]\nregion = eu-west-1\nendpoint_url = {endpoint}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    with open_backend(f"s3://{name}/p", BackendOptions(profile="ci", retries=0)) as b:
        b.check()
        put(b, "aa/bb/x", b"x")  # type: ignore[arg-type]
        assert [e.path for e in b.list()] == ["aa/bb/x"]
        # an endpoint from the profile is an S3-compatible server: path-style addressing
        assert b.client.meta.config.s3["addressing_style"] == "path"  # type: ignore[attr-defined]


def test_backends_share_botocores_data_but_not_credentials(
    rclone_s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The second backend of a process decodes no model file again, and its own profile's
    credentials are still the ones it signs with."""
    import botocore.loaders

    name = _profiles(rclone_s3, monkeypatch, tmp_path, good=rclone_s3.secret_key,
                     bad="not-the-secret")
    options: Dict[str, Any] = {"endpoint_url": rclone_s3.endpoint_url, "retries": 0}
    with open_backend(f"s3://{name}", BackendOptions(profile="good", **options)) as b:
        b.check()
    loaded: List[str] = []
    real = botocore.loaders.JSONFileLoader.load_file

    def counting(self: Any, file_path: str) -> Any:
        loaded.append(file_path)
        return real(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counting)
    with open_backend(f"s3://{name}", BackendOptions(profile="bad", **options)) as b, \
            pytest.raises(AuthError):
        b.check()
    with open_backend(f"s3://{name}", BackendOptions(profile="good", **options)) as b:
        b.check()
        put(b, "aa/bb/x", b"x")  # type: ignore[arg-type]
    assert loaded == []


# -- listing -----------------------------------------------------------------------------


def test_list_more_than_1000_objects_under_one_prefix(bucket: S3Bucket) -> None:
    paths = {f"00/00/obj-{i:05d}": b"x" * (i % 7) for i in range(2500)}
    bucket.seed(paths)
    with backend_for(bucket) as b:
        listed = {e.path: e.size for e in b.list()}
        assert listed == {p: len(d) for p, d in paths.items()}
        # the sequential path gives the same (the first page's estimate picks parallel)
        b.parallel_list_min = 10**12
        assert sorted(e.path for e in b.list()) == sorted(paths)
        assert len(list(b.list("00"))) == 2500
        # a consumer that stops early leaves no listing threads behind
        b.parallel_list_min = 1
        it = b.list()
        next(it)
        assert _listing_threads(), "the listing ran in parallel: threads to leave behind"
        it.close()
        assert _listing_threads() == []


def _listing_threads() -> List[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("s3-list")]


def test_parallel_range_listing_equals_plain_listing(s3_bucket: S3Bucket) -> None:
    objects: Dict[str, bytes] = {}
    for i in range(1200):
        h = hashlib.sha256(str(i).encode()).hexdigest()
        h = f"{i % 12:02x}{h[2:]}"  # a dozen first-level ranges keep moto quick
        top = "universal/" if i % 5 == 0 else ("debian-12/" if i % 7 == 0 else "")
        objects[f"{top}{h[:2]}/{h[2:4]}/sstate:x:{h}_populate_sysroot.tar.zst"] = b"d"
    objects["README"] = b"top-level file"
    objects["universal/stray"] = b"second-level file"
    s3_bucket.seed(objects)
    with backend_for(s3_bucket) as b:
        plain = sorted((e.path, e.size, e.mtime) for e in b._list_range(""))
        b.list_workers = 4
        parallel = [(e.path, e.size, e.mtime) for e in b._list_parallel("")]
        assert len(parallel) == len(set(parallel))  # each exactly once
        assert sorted(parallel) == plain
        assert {p for p, _, _ in plain} == set(objects)
        b.parallel_list_min = 1
        assert sorted((e.path, e.size, e.mtime) for e in b.list()) == plain


def test_listing_stays_inside_the_prefix(s3_bucket: S3Bucket) -> None:
    c = s3_bucket.client()
    for key in ["a/b/aa/bb/in", "a/bc/aa/bb/out", "a/b", "a/b/", "a/b/aa/", "other"]:
        c.put_object(Bucket=s3_bucket.name, Key=key, Body=b"1")
    s3_bucket.prefix = "a/b"
    with backend_for(s3_bucket) as b:
        assert [e.path for e in b.list()] == ["aa/bb/in"]  # no markers, no neighbours
        assert [e.path for e in b.list("aa")] == ["aa/bb/in"]
        assert list(b.list("zz")) == []
        assert b.delete(["aa/bb/in"]) == {}
    keys = {o["Key"] for o in c.list_objects_v2(Bucket=s3_bucket.name)["Contents"]}
    assert keys == {"a/bc/aa/bb/out", "a/b", "a/b/", "a/b/aa/", "other"}


def test_range_prefixes_group_hash_directories_without_overlap() -> None:
    hexdirs = [f"m/{i:02x}/" for i in range(256)]
    # d is taken by debian-12/, 3 by the file "3rdparty.txt": those stay one range each
    ranges = range_prefixes("m/", ["3rdparty.txt"], [*hexdirs, "m/debian-12/", "m/universal/"])
    grouped = [r for r in ranges if not r.endswith("/")]
    assert set(grouped) == {f"m/{c}" for c in "012456789abcef"}
    assert {r for r in ranges if r.endswith("/")} == {
        *(f"m/3{c}/" for c in "0123456789abcdef"), *(f"m/d{c}/" for c in "0123456789abcdef"),
        "m/debian-12/", "m/universal/"}
    # a lone directory needs no grouping; nothing else is touched
    assert range_prefixes("", [], ["00/", "zz/"]) == ["00/", "zz/"]
    assert range_prefixes("", [], []) == []


def test_unusable_key_names_are_reported_not_listed(s3_bucket: S3Bucket) -> None:
    c = s3_bucket.client()
    for key in ["aa//bb", "aa/./cc", "aa/bb/ok"]:
        c.put_object(Bucket=s3_bucket.name, Key=key, Body=b"1")
    with backend_for(s3_bucket) as b:
        for listing in (b.list, lambda on_skip: b._list_parallel("", on_skip)):
            skipped: List[str] = []
            entries = [e.path for e in listing(on_skip=lambda p, _why, s=skipped: s.append(p))]
            assert entries == ["aa/bb/ok"]
            assert sorted(skipped) == ["aa/./cc", "aa//bb"]


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
def test_mtimes_do_not_depend_on_the_local_timezone(
    bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, zone: str
) -> None:
    with backend_for(bucket) as b:
        put(b, "aa/bb/x", b"x")
        utc_list = {e.path: e.mtime for e in b.list()}
        utc_stat = b.stat("aa/bb/x")
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        with backend_for(bucket) as b:
            assert {e.path: e.mtime for e in b.list()} == utc_list
            st = b.stat("aa/bb/x")
            assert st is not None and utc_stat is not None and st.mtime == utc_stat.mtime
            assert abs(st.mtime - time.time()) < 60
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_timestamp_parser_reads_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore's own parser would read a timestamp without a zone as local (Tokyo) time
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        for text in ["2026-11-18T11:06:40.000Z", "2026-11-18T11:06:40",
                     "2026-11-18T11:06:40+00:00", "Wed, 18 Nov 2026 11:06:40 GMT",
                     "2026-11-18 11:06:40 UTC", "1795000000"]:
            assert parse_utc_timestamp(text).timestamp() == 1795000000.0, text
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_listing_error_is_never_an_empty_mirror(s3_bucket: S3Bucket) -> None:
    with backend_for(s3_bucket) as b:
        put(b, "aa/bb/x", b"x")
    s3_bucket.name = s3_bucket.name + "-gone"
    with backend_for(s3_bucket) as b, pytest.raises(NotFoundError):
        list(b.list())


# -- transfers ---------------------------------------------------------------------------


def test_multipart_upload_and_large_touch(s3_bucket: S3Bucket) -> None:
    data = os.urandom(20 * MiB + 123)
    with backend_for(s3_bucket) as b:
        b.multipart_threshold = b.multipart_chunksize = 8 * MiB
        b.put("aa/bb/big.tar.zst", io.BytesIO(data), len(data))
        head = s3_bucket.client().head_object(Bucket=s3_bucket.name, Key="aa/bb/big.tar.zst")
        assert head["ETag"].strip('"').endswith("-3")  # three parts
        assert head["ContentLength"] == len(data)
        with b.open("aa/bb/big.tar.zst") as f:
            assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
        # objects above the single-request copy limit are touched by a multipart copy
        b.copy_single_max = 1 * MiB
        s3_bucket.backdate("aa/bb/big.tar.zst", 5 * 86400)
        old = b.stat("aa/bb/big.tar.zst")
        assert b.touch(["aa/bb/big.tar.zst"]) == {}
        new = b.stat("aa/bb/big.tar.zst")
        assert old is not None and new is not None and new.mtime > old.mtime + 4 * 86400
        assert new.size == len(data)


def test_part_size_grows_to_stay_below_the_part_limit(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sstate_mirror.backends.s3 as s3mod

    monkeypatch.setattr(s3mod, "MAX_PARTS", 2)  # as a 200 GB file would meet 9,000
    data = os.urandom(20 * MiB)
    with backend_for(s3_bucket) as b:
        b.multipart_threshold = b.multipart_chunksize = 5 * MiB
        b.put("aa/bb/huge", io.BytesIO(data), len(data))
    head = s3_bucket.client().head_object(Bucket=s3_bucket.name, Key="aa/bb/huge")
    assert head["ETag"].strip('"').endswith("-2") and head["ContentLength"] == len(data)


def test_multipart_size_mismatch_leaves_nothing(s3_bucket: S3Bucket) -> None:
    data = os.urandom(18 * MiB)
    with backend_for(s3_bucket) as b:
        b.multipart_threshold = b.multipart_chunksize = 8 * MiB
        with pytest.raises(PermanentError, match="expected"):
            b.put("aa/bb/short", io.BytesIO(data), len(data) + 1)
        with pytest.raises(PermanentError, match="more than"):
            b.put("aa/bb/long", io.BytesIO(data), len(data) - 1)
        assert list(b.list()) == []
    uploads = s3_bucket.client().list_multipart_uploads(Bucket=s3_bucket.name)
    assert uploads.get("Uploads", []) == []  # aborted, not left to bill storage


def test_delete_more_than_one_batch(s3_bucket: S3Bucket) -> None:
    paths = [f"{i % 256:02x}/00/f{i}" for i in range(1200)]
    s3_bucket.seed({p: b"1" for p in paths})
    with backend_for(s3_bucket) as b:
        assert b.delete([*paths, "ff/ff/never-was"]) == {}
        assert list(b.list()) == []


def test_delete_reports_per_key_errors(rclone_s3: S3Server, monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    # rclone refuses to delete a key that is a directory on its disk: one failed key
    env = s3_test_env(monkeypatch, rclone_s3, tmp_path)
    bucket = S3Bucket(server=rclone_s3, name=rclone_s3.new_bucket(), env=env)
    bucket.seed({"aa/bb/f": b"1", "cc/dd/g": b"2"})
    with backend_for(bucket) as b:
        failures = b.delete(["aa/bb", "cc/dd/g", "ee/ff/never-was"])
        assert list(failures) == ["aa/bb"]
        assert failures["aa/bb"].path == "aa/bb" and "aa/bb" in str(failures["aa/bb"])
        assert [e.path for e in b.list()] == ["aa/bb/f"]


def test_touch_keeps_content_type_and_metadata(s3_bucket: S3Bucket) -> None:
    c = s3_bucket.client()
    c.put_object(Bucket=s3_bucket.name, Key="aa/bb/x", Body=b"payload",
                 ContentType="application/zstd", Metadata={"origin": "ci"})
    s3_bucket.backdate("aa/bb/x", 3600)
    with backend_for(s3_bucket) as b:
        assert b.touch(["aa/bb/x", "aa/bb/missing"]).keys() == {"aa/bb/missing"}
        assert isinstance(b.touch(["aa/bb/missing"])["aa/bb/missing"], NotFoundError)
    head = c.head_object(Bucket=s3_bucket.name, Key="aa/bb/x")
    assert head["ContentType"] == "application/zstd"
    assert head["Metadata"] == {"origin": "ci"}
    assert time.time() - head["LastModified"].timestamp() < 600


# -- the listing-versus-probes cost model --------------------------------------------------


def test_cost_model() -> None:
    assert listing_requests(0) == 1
    assert listing_requests(2500) == 3
    assert prefer_probes(10, 1_000_000)  # 10 HEADs < 1,000 pages
    assert not prefer_probes(5_000, 1_000_000)
    assert not prefer_probes(10, None)  # unknown size: the listing is always right
    assert estimate_from_first_page(10, False, "aa/bb/x") == 10
    # the first page ends at 00/3f: a quarter of the first of 256 directories
    assert estimate_from_first_page(1000, True, "00/3f/x") == 1000 * 1024
    assert estimate_from_first_page(1000, True, "universal/00/x") is None


def test_choose_lookup(s3_bucket: S3Bucket) -> None:
    s3_bucket.seed({f"{i:02x}/00/f": b"" for i in range(200)})
    with backend_for(s3_bucket) as b:
        assert b.estimate_object_count() == 200
        assert b.choose_lookup(5000) == "list"
        assert b.choose_lookup(0) == "probe"


# -- errors a user can meet --------------------------------------------------------------


def test_unreachable_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                            moto_s3: S3Server, dead_port: int) -> None:
    s3_test_env(monkeypatch, moto_s3, tmp_path)
    port = dead_port  # nothing listens there
    b = open_backend("s3://bucket", BackendOptions(endpoint_url=f"http://127.0.0.1:{port}",
                                                   timeout=2, retries=0))
    with pytest.raises(TransientError, match=f"cannot reach http://127.0.0.1:{port}"):
        b.check()
    with pytest.raises(TransientError):
        list(b.list())


def test_server_that_does_not_answer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     moto_s3: S3Server) -> None:
    s3_test_env(monkeypatch, moto_s3, tmp_path)
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        b = open_backend("s3://bucket", BackendOptions(
            endpoint_url=f"http://127.0.0.1:{port}", timeout=0.5, retries=0))
        with pytest.raises(TransientError, match=r"cannot reach .*ReadTimeoutError"):
            b.check()


def test_missing_bucket(s3_bucket: S3Bucket) -> None:
    s3_bucket.name += "-missing"
    with backend_for(s3_bucket) as b:
        with pytest.raises(NotFoundError, match=f"bucket {s3_bucket.name} does not exist"):
            b.check()
        with pytest.raises(NotFoundError), b.open("aa/bb/x"):
            pass
        b.check(create=True)
        b.check()


def test_missing_credentials(s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with backend_for(s3_bucket) as b, pytest.raises(AuthError, match="no AWS credentials") as e:
        b.check()
    assert e.value.hint is not None and "AWS_ACCESS_KEY_ID" in e.value.hint


def test_unknown_profile(s3_bucket: S3Bucket) -> None:
    with backend_for(s3_bucket, profile="nope") as b, pytest.raises(UsageError, match="nope"):
        b.check()


def test_wrong_secret_is_rejected_and_never_shown(
    rclone_s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s3_test_env(monkeypatch, rclone_s3, tmp_path)
    name = rclone_s3.new_bucket()
    secret = "wrong-secret-SHOULD-NEVER-BE-PRINTED"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    caplog.set_level(logging.DEBUG)
    b = open_backend(f"s3://{name}", BackendOptions(endpoint_url=rclone_s3.endpoint_url,
                                                    retries=0, timeout=5))
    errors = []
    with pytest.raises(AuthError, match="credentials rejected") as e:
        b.check()
    errors.append(e.value)
    with pytest.raises(AuthError) as e:
        list(b.list())
    errors.append(e.value)
    errors.extend(b.delete(["aa/bb/x"]).values())
    errors.extend(b.touch(["aa/bb/x"]).values())
    assert len(errors) == 4 and all(isinstance(x, AuthError) for x in errors)
    for err in errors:
        assert secret not in f"{err} {err.hint} {err.url} {err.path}"
    assert secret not in caplog.text


@pytest.fixture(scope="module")
def moto_with_iam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, str]]:
    """A moto server that checks keys and IAM policies: one user with no permission at all.

    The first three requests go through unchecked (moto's INITIAL_NO_AUTH_ACTION_COUNT):
    they create the bucket, the user and the user's key.
    """
    import boto3

    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    proc, port = start_on_free_port(
        lambda port: [sys.executable, "-c", "from moto.server import main; main()",
                      "-H", "127.0.0.1", "-p", str(port)],
        tmp_path_factory.mktemp("moto-iam") / "log", env=env)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        admin = boto3.session.Session(aws_access_key_id="AKIAADMIN000000000000",
                                      aws_secret_access_key="admin", region_name="us-east-1")
        admin.client("s3", endpoint_url=endpoint).create_bucket(Bucket="locked")
        iam = admin.client("iam", endpoint_url=endpoint)
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        yield {"endpoint": endpoint, "access_key": key["AccessKeyId"],
               "secret_key": key["SecretAccessKey"]}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_access_denied_and_unknown_key(
    moto_with_iam: Dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    opts = BackendOptions(endpoint_url=moto_with_iam["endpoint"], retries=0, timeout=10)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_with_iam["access_key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_with_iam["secret_key"])
    with open_backend("s3://locked", opts) as b:
        with pytest.raises(AuthError, match="access denied") as e:
            b.check()
        assert e.value.hint is not None and "docs/s3.md" in e.value.hint
        with pytest.raises(AuthError, match="access denied"):
            put(b, "aa/bb/x", b"x")  # type: ignore[arg-type]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN000000000")
    with open_backend("s3://locked", opts) as b, \
            pytest.raises(AuthError, match=r"credentials rejected .*\(InvalidAccessKeyId\)"):
        b.check()
    assert moto_with_iam["secret_key"] not in caplog.text


@pytest.mark.parametrize("size", [-5, 1 << 60])
def test_negative_or_absurd_listed_size_fails_the_listing(
        moto_s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, size: int,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A server that lists an impossible ``Size`` is refused like a negative WebDAV
    getcontentlength: the listing fails (exit 3), nothing is planned from it."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    from sstate_mirror.cli import main

    env = s3_test_env(monkeypatch, moto_s3, tmp_path)
    bucket = S3Bucket(server=moto_s3, name=moto_s3.new_bucket(), env=env)
    with backend_for(bucket) as b:
        put(b, "aa/bb/good", b"x")
        put(b, "aa/bb/liar", b"xyz")
    fake = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket.name].keys["aa/bb/liar"]
    monkeypatch.setattr(fake, "contentsize", size)
    with backend_for(bucket) as b:
        with pytest.raises(PermanentError, match=r"aa/bb/liar.*no object can have"):
            list(b.list())
        with pytest.raises(PermanentError, match="no object can have"):
            b.stat("aa/bb/liar")
    code = main(["info", bucket.url, *bucket.cli_args])
    err = capsys.readouterr().err
    assert code == 3
    assert "no object can have" in err and "Traceback" not in err
