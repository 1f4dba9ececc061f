"""``info`` and ``clean`` listing an S3 mirror from its S3 Inventory report (``--inventory``).

Reports are written into a destination bucket of the moto server as S3 writes them:
``PREFIX/SOURCE-BUCKET/CONFIG-ID/YYYY-MM-DDTHH-MMZ/manifest.json`` and ``manifest.checksum``,
data files below ``data/``: gzip'd CSV with every field quoted and keys URL-encoded, or
Parquet (written by pyarrow) with the columns and ``fileSchema`` of S3's own; ORC, refused.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pa_parquet
import pytest

from memory import run_measured
from runcli import child_env, command, run, run_json
from s3_servers import S3Bucket, free_port
from sstate_mirror.backends import open_backend, open_inventory, s3_inventory
from sstate_mirror.errors import EXIT_BACKEND, EXIT_USAGE

SCHEMA = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass"
DAY = 86400.0


def _stamp(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%dT%H-%MZ")


def _iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def bucket_rows(s3: S3Bucket) -> List[Dict[str, Any]]:
    """Every object of the mirror's bucket (the prefix and beyond), as an inventory lists it."""
    rows: List[Dict[str, Any]] = []
    for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.name):
        for obj in page.get("Contents", []):
            rows.append({"Bucket": s3.name, "Key": obj["Key"], "Size": obj["Size"],
                         "LastModifiedDate": obj["LastModified"].timestamp(),
                         "ETag": obj["ETag"].strip('"'), "StorageClass": "STANDARD"})
    return rows


def csv_line(row: Dict[str, Any], schema: str = SCHEMA) -> bytes:
    fields = []
    for name in (c.strip() for c in schema.split(",")):
        value = row.get(name, "")
        if name == "Key":
            value = urllib.parse.quote_plus(value, safe="")
        elif name == "LastModifiedDate":
            value = _iso(value)
        fields.append(f'"{value}"')
    return (",".join(fields) + "\n").encode()


class Report:
    """One inventory report in the destination bucket: where it is and how to spoil it."""

    def __init__(self, s3: S3Bucket, dest: str, *, config: str = "cfg",
                 created: Optional[float] = None, schema: str = SCHEMA,
                 data_files: Sequence[bytes] = (), file_format: str = "CSV",
                 sizes: Optional[Sequence[int]] = None, md5s: Optional[Sequence[str]] = None,
                 source: Optional[str] = None) -> None:
        created = time.time() - 600 if created is None else created
        self.config_url = f"s3://{dest}/inventories/{s3.name}/{config}"
        base = f"inventories/{s3.name}/{config}"
        files = []
        client = s3.client()
        ext = {"CSV": "csv.gz", "ORC": "orc", "Parquet": "parquet"}.get(file_format, "bin")
        for i, data in enumerate(data_files):
            key = f"{base}/data/{_stamp(created)}-{i}.{ext}"
            client.put_object(Bucket=dest, Key=key, Body=data)
            files.append({"key": key,
                          "size": len(data) if sizes is None else sizes[i],
                          "MD5checksum": hashlib.md5(data).hexdigest() if md5s is None
                          else md5s[i]})
        manifest = {
            "sourceBucket": source or s3.name,
            "destinationBucket": f"arn:aws:s3:::{dest}",
            "version": "2016-11-30",
            "creationTimestamp": str(int(created * 1000)),
            "fileFormat": file_format,
            "fileSchema": schema,
            "files": files,
        }
        self.manifest = json.dumps(manifest, indent=4).encode()
        self.manifest_key = f"{base}/{_stamp(created)}/manifest.json"
        self.url = f"s3://{dest}/{self.manifest_key}"
        client.put_object(Bucket=dest, Key=self.manifest_key, Body=self.manifest)
        client.put_object(Bucket=dest, Key=self.manifest_key.replace(".json", ".checksum"),
                          Body=hashlib.md5(self.manifest).hexdigest().encode() + b"\n")


def gz(lines: Iterable[bytes]) -> bytes:
    return gzip.compress(b"".join(lines))


def make_report(s3: S3Bucket, dest: str, rows: Optional[List[Dict[str, Any]]] = None,
                parts: int = 2, **kw: Any) -> Report:
    """The report of ``rows`` (the bucket as it is now by default) in ``parts`` data files."""
    rows = bucket_rows(s3) if rows is None else rows
    schema = kw.pop("schema", SCHEMA)
    chunks = [rows[i::parts] for i in range(parts)]
    return Report(s3, dest, schema=schema,
                  data_files=[gz(csv_line(r, schema) for r in c) for c in chunks], **kw)


@pytest.fixture
def mirror(s3_bucket: S3Bucket, oe_cache_a: Path, capsys: pytest.CaptureFixture[str]
           ) -> S3Bucket:
    """A mirror below ``mirror/`` of a bucket that also holds keys beside it."""
    s3_bucket.prefix = "mirror"
    code = run(capsys, "upload", str(oe_cache_a), s3_bucket.url)[0]
    assert code == 0
    client = s3_bucket.client()
    for key in ("outside/sstate:x:core2-64-poky-linux:1:r0:core2-64:14:" + "a" * 64
                + "_populate_lic.tar.zst", "mirror-old/stray", "mirror"):
        client.put_object(Bucket=s3_bucket.name, Key=key, Body=b"not the mirror's")
    return s3_bucket


@pytest.fixture
def dest(s3_bucket: S3Bucket) -> str:
    return s3_bucket.server.new_bucket()


def _info(capsys: pytest.CaptureFixture[str], s3: S3Bucket, *extra: str) -> Dict[str, Any]:
    code, report, err = run_json(capsys, "info", s3.url, *extra)
    assert code == 0, err
    for key in ("now", "inventory"):
        report.pop(key, None)
    return report


def test_info_from_an_inventory_is_info_from_the_listing(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = make_report(mirror, dest)
    listed = _info(capsys, mirror)
    assert listed["files"] > 10
    assert _info(capsys, mirror, "--inventory", report.url) == listed
    # the configuration's prefix: its newest report
    assert _info(capsys, mirror, "--inventory", report.config_url) == listed


def _listed_as_by_the_listing(mirror: S3Bucket, report: Report) -> List[Any]:
    """The report's entries (path, size, mtime), checked to be the listing's."""
    with open_backend(mirror.url, mirror.options) as target:
        expected = sorted((e.path, e.size, e.mtime) for e in target.list())
        inventory = open_inventory(report.url, target, mirror.options)
        got = sorted((e.path, e.size, e.mtime) for e in inventory.list())
        inventory.close()
    assert got == expected
    return got


def test_keys_beside_the_mirror_are_not_listed_and_keys_are_url_decoded(
        mirror: S3Bucket, dest: str) -> None:
    odd = "odd dir/name+with:colon%and space"
    mirror.client().put_object(Bucket=mirror.name, Key=f"mirror/{odd}", Body=b"12345")
    report = make_report(mirror, dest, parts=3)
    got = _listed_as_by_the_listing(mirror, report)
    assert (odd, 5) in {(p, s) for p, s, _ in got}
    assert not any("stray" in p or p.startswith("outside") for p, _, _ in got)


def test_the_newest_report_of_a_configuration_is_read(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = bucket_rows(mirror)
    make_report(mirror, dest, rows=rows[:3], created=time.time() - 3 * DAY)
    newest = make_report(mirror, dest, rows=rows, created=time.time() - 3600)
    code, report, err = run_json(capsys, "info", mirror.url, "--inventory", newest.config_url)
    assert code == 0, err
    assert report["inventory"]["url"] == newest.url
    assert report["files"] == _info(capsys, mirror)["files"]


def _plan(capsys: pytest.CaptureFixture[str], s3: S3Bucket, *extra: str) -> Dict[str, Any]:
    code, report, err = run_json(capsys, "clean", s3.url, "--dry-run", "--max-age", "10d",
                                 *extra)
    assert code == 0, err
    return dict(report["plan"])


def _age_half(s3: S3Bucket) -> List[str]:
    """Age every other group by 30 days; the paths aged (relative to the mirror)."""
    with open_backend(s3.url, s3.options) as target:
        paths = sorted(e.path for e in target.list())
    aged = [p for p in paths if p.startswith(tuple("02468ace"))]
    for p in aged:
        s3.backdate(p, 30 * DAY)
    return aged


def test_clean_plans_from_an_inventory_as_from_the_listing(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _age_half(mirror)
    report = make_report(mirror, dest)
    listed = _plan(capsys, mirror)
    assert listed["to_delete"]
    assert _plan(capsys, mirror, "--inventory", report.url) == listed


def test_clean_deletes_only_what_the_inventory_lists_and_is_unchanged_since(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    _age_half(mirror)
    report = make_report(mirror, dest)
    planned = [d["path"] for d in _plan(capsys, mirror, "--inventory", report.url)["to_delete"]]
    siginfos = sorted(p for p in planned
                      if p.endswith(".siginfo") and p[: -len(".siginfo")] in planned)
    assert len(siginfos) >= 3
    client = mirror.client()
    # after the report: a build used one group (its .siginfo re-dated, as touch does),
    # another group's archive was deleted, a third group's .siginfo uploaded again
    used, gone, again = siginfos[0], siginfos[1][: -len(".siginfo")], siginfos[2]
    key = mirror.key
    client.copy_object(Bucket=mirror.name, Key=key(used), MetadataDirective="REPLACE",
                       CopySource={"Bucket": mirror.name, "Key": key(used)})
    client.delete_object(Bucket=mirror.name, Key=key(gone))
    client.put_object(Bucket=mirror.name, Key=key(again), Body=b"another siginfo")
    code, out, err = run(capsys, "-v", "clean", mirror.url, "--max-age", "10d",
                         "--inventory", report.url)
    assert code == 0, err
    assert "changed or gone since the inventory" in out
    with open_backend(mirror.url, mirror.options) as target:
        left = {e.path for e in target.list()}
    kept = {used, used[: -len(".siginfo")], again, again[: -len(".siginfo")]}
    assert kept <= left, kept - left  # the used group and the group uploaded again stay whole
    deleted = set(planned) - kept - {gone}
    assert len(deleted) > 2 and not deleted & left


def test_clean_refuses_a_stale_inventory_and_deletes_nothing(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    _age_half(mirror)
    report = make_report(mirror, dest, created=time.time() - 3 * DAY)
    before = len(bucket_rows(mirror))
    code, _out, err = run(capsys, "clean", mirror.url, "--max-age", "10d",
                         "--inventory", report.url)
    assert code == EXIT_USAGE
    assert "--inventory-max-age 2d" in err and "not in it" in err
    assert len(bucket_rows(mirror)) == before
    # a bound that says so, and info, which deletes nothing, read it
    assert _plan(capsys, mirror, "--inventory", report.url, "--inventory-max-age", "4d")
    assert _info(capsys, mirror, "--inventory", report.url)["files"] > 0


def _fails(capsys: pytest.CaptureFixture[str], s3: S3Bucket, url: str, code: int,
           *words: str) -> None:
    before = len(bucket_rows(s3))
    got, _out, err = run(capsys, "clean", s3.url, "--max-age", "1s", "--min-age", "0s",
                        "--inventory", url)
    assert got == code, err
    for word in words:
        assert word in err
    assert len(err.strip().splitlines()) <= 2  # a line, and perhaps a hint
    assert len(bucket_rows(s3)) == before


def test_corrupt_data_files_fail_the_listing(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = bucket_rows(mirror)
    good = gz(csv_line(r) for r in rows)
    bad_md5 = Report(mirror, dest, config="md5", data_files=[good], md5s=["0" * 32])
    _fails(capsys, mirror, bad_md5.url, EXIT_BACKEND, "MD5")
    longer = Report(mirror, dest, config="size", data_files=[good], sizes=[len(good) - 10])
    _fails(capsys, mirror, longer.url, EXIT_BACKEND, "larger than the manifest")
    not_gzip = Report(mirror, dest, config="plain",
                      data_files=[b"".join(csv_line(r) for r in rows)])
    _fails(capsys, mirror, not_gzip.url, EXIT_BACKEND, "not a gzip'd CSV file")
    cut = Report(mirror, dest, config="cut", data_files=[good[: len(good) // 2]])
    _fails(capsys, mirror, cut.url, EXIT_BACKEND, "not a gzip'd CSV file")
    fields = Report(mirror, dest, config="fields",
                    data_files=[gz([b'"a","b"\n'])])
    _fails(capsys, mirror, fields.url, EXIT_BACKEND, "2 fields")
    size = dict(_in_mirror(rows), Size=-1)
    negative = Report(mirror, dest, config="neg", data_files=[gz([csv_line(size)])])
    _fails(capsys, mirror, negative.url, EXIT_BACKEND, "size")


def test_a_manifest_that_is_not_its_checksum_or_too_large_is_refused(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    report = make_report(mirror, dest)
    mirror.client().put_object(Bucket=dest, Key=report.manifest_key,
                               Body=report.manifest.replace(b"2016-11-30", b"2016-11-31"))
    _fails(capsys, mirror, report.url, EXIT_BACKEND, "manifest.checksum")
    other = make_report(mirror, dest, config="big")
    monkeypatch.setattr(s3_inventory, "MANIFEST_MAX", len(other.manifest) - 1)
    _fails(capsys, mirror, other.url, EXIT_BACKEND, "larger than")


def test_reports_without_sizes_or_times_or_in_another_format_are_refused(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    for config, schema, word in (("nosize", "Bucket, Key, LastModifiedDate", "Size"),
                                 ("notime", "Bucket, Key, Size, ETag", "LastModifiedDate")):
        report = make_report(mirror, dest, config=config, schema=schema)
        _fails(capsys, mirror, report.url, EXIT_USAGE, word, "lacks the field")
    avro = Report(mirror, dest, config="avro", file_format="Avro", data_files=[b"Obj"])
    _fails(capsys, mirror, avro.url, EXIT_USAGE, "'Avro' format is not one of")
    theirs = make_report(mirror, dest, config="theirs", source="another-bucket")
    _fails(capsys, mirror, theirs.url, EXIT_USAGE, "another-bucket")
    _fails(capsys, mirror, f"s3://{dest}/nothing-here", EXIT_USAGE, "no inventory report")


def test_inventory_needs_an_s3_mirror(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "info", str(tmp_path), "--inventory", "s3://b/p")
    assert code == EXIT_USAGE and "s3:// mirrors only" in err


@pytest.mark.parametrize("argv, words", [
    (["info", "--inventory", ""], "--inventory is empty"),
    (["info", "--inventory", "s3:/dest/x"], "not a valid URL"),
    (["clean", "--max-age", "30d", "--inventory", "gs://dest/x"], "s3:// mirrors only"),
    (["clean", "--max-age", "30d", "--inventory", "s3://dest/x", "--inventory-max-age", "2"],
     "not an age"),
])
def test_a_fumbled_inventory_is_refused_before_the_mirror_is_contacted(
        argv: List[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    # nothing listens there: contacting the mirror would fail otherwise (exit 3, "cannot reach")
    command_, *options = argv
    code, _out, err = run(capsys, command_, "s3://some-bucket/p", "--endpoint-url",
                          f"http://127.0.0.1:{free_port()}", *options)
    assert code == EXIT_USAGE, err
    assert words in err and "cannot reach" not in err


def test_a_line_or_expansion_beyond_the_bounds_is_refused(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    long_line = Report(mirror, dest, config="line", data_files=[gz([b'"' + b"a" * (1 << 20)])])
    _fails(capsys, mirror, long_line.url, EXIT_BACKEND, "longer than")
    line = csv_line(_in_mirror(bucket_rows(mirror)))
    bomb = Report(mirror, dest, config="bomb", data_files=[_bomb(line, 8 << 20)])
    _fails(capsys, mirror, bomb.url, EXIT_BACKEND, "expands to more than")


def _in_mirror(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    return next(r for r in rows if r["Key"].startswith("mirror/"))


def _bomb(line: bytes, total: int) -> bytes:
    """``line`` repeated to ``total`` bytes, gzip'd: one member of 1 MiB, repeated (gzip
    members concatenate), a few hundred bytes per MiB."""
    block = line * max(1, (1 << 20) // len(line))
    return gzip.compress(block, compresslevel=9) * (total // len(block))


def test_a_gzip_bomb_is_refused_in_bounded_memory(
        mirror: S3Bucket, dest: str) -> None:
    line = csv_line(_in_mirror(bucket_rows(mirror)))
    # 150 MiB of rows in a few hundred KiB: decoded whole, it would not fit below the bound
    bomb = Report(mirror, dest, config="bomb", data_files=[_bomb(line, 150 << 20)])
    done = run_measured(command("info", mirror.url, "--inventory", bomb.url),
                        env=child_env(mirror.env))
    assert done.returncode == EXIT_BACKEND, done.stderr
    assert "expands to more than" in done.stderr
    assert done.peak_mib < 200, done.peak_mib


def test_an_inventory_replaces_the_listing_requests(
        s3_bucket: S3Bucket, capsys: pytest.CaptureFixture[str]) -> None:
    # 5,000 objects: a listing is 5 pages; the report is one data file, read by one GET
    s3_bucket.prefix = "mirror"
    s3_bucket.seed({f"{i % 256:02x}/{i // 256:02x}/filler-{i}": b"x" for i in range(5000)})
    dest = s3_bucket.server.new_bucket()
    report = make_report(s3_bucket, dest, parts=1)
    log = s3_bucket.server.request_log
    assert log is not None

    def lists(*extra: str) -> int:
        start = len(log)
        assert _info(capsys, s3_bucket, *extra)["files"] == 5000
        return sum(1 for r in log[start:]
                   if r.startswith(f"GET /{s3_bucket.name}") and "/" not in r.split(" ")[1][1:])

    by_listing = lists()
    by_report = lists("--inventory", report.config_url)
    assert by_listing >= 5
    assert by_report <= by_listing - 5, (by_listing, by_report)


def test_a_report_of_all_versions_counts_current_objects_only(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"
    rows = [dict(r, VersionId="v2", IsLatest="true", IsDeleteMarker="false")
            for r in bucket_rows(mirror)]
    old = [dict(r, VersionId="v1", IsLatest="false", Size=12345678) for r in rows[::3]]
    gone = {"Bucket": mirror.name, "Key": "mirror/00/00/deleted-since", "VersionId": "v3",
            "IsLatest": "true", "IsDeleteMarker": "true", "Size": "",
            "LastModifiedDate": time.time() - 700}
    report = make_report(mirror, dest, rows=[*rows, *old, gone], schema=schema)
    assert _info(capsys, mirror, "--inventory", report.url) == _info(capsys, mirror)


def test_clean_from_an_inventory_does_not_prune_a_hash_server(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = make_report(mirror, dest)
    code, _out, err = run(capsys, "clean", mirror.url, "--max-age", "10d", "--inventory",
                          report.url, "--hashserve", "unix:///nonexistent/socket")
    assert code == EXIT_USAGE and "cannot prune --hashserve" in err


# -- Parquet (and ORC, refused) ---------------------------------------------------------

#: Every field, as S3's manifests name them (the user guide's example manifests).
AWS_FIELDS = (
    ("bucket", "string"), ("key", "string"), ("version_id", "string"),
    ("is_latest", "bool"), ("is_delete_marker", "bool"), ("size", "int64"),
    ("last_modified_date", "timestamp"), ("e_tag", "string"), ("storage_class", "string"),
    ("is_multipart_uploaded", "bool"), ("replication_status", "string"),
    ("encryption_status", "string"), ("object_lock_retain_until_date", "timestamp"),
    ("object_lock_mode", "string"), ("object_lock_legal_hold_status", "string"),
    ("intelligent_tiering_access_tier", "string"), ("bucket_key_status", "string"),
    ("checksum_algorithm", "string"), ("object_access_control_list", "string"),
    ("object_owner", "string"))
PARQUET_SCHEMA = (
    "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8);"
    " optional binary version_id (UTF8); optional boolean is_latest; optional boolean"
    " is_delete_marker; optional int64 size; optional int64 last_modified_date"
    " (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); optional binary storage_class (UTF8);"
    " optional boolean is_multipart_uploaded; optional binary replication_status (UTF8);"
    " optional binary encryption_status (UTF8); optional int64 object_lock_retain_until_date"
    " (TIMESTAMP_MILLIS); optional binary object_lock_mode (UTF8); optional binary"
    " object_lock_legal_hold_status (UTF8); optional binary intelligent_tiering_access_tier"
    " (UTF8); optional binary bucket_key_status (UTF8); optional binary checksum_algorithm"
    " (UTF8); optional binary object_access_control_list (UTF8); optional binary object_owner"
    " (UTF8);}")
ORC_SCHEMA = (
    "struct<bucket:string,key:string,version_id:string,is_latest:boolean,"
    "is_delete_marker:boolean,size:bigint,last_modified_date:timestamp,e_tag:string,"
    "storage_class:string,is_multipart_uploaded:boolean,replication_status:string,"
    "encryption_status:string,object_lock_retain_until_date:timestamp,object_lock_mode:string,"
    "object_lock_legal_hold_status:string,intelligent_tiering_access_tier:string,"
    "bucket_key_status:string,checksum_algorithm:string,object_access_control_list:string,"
    "object_owner:string>")
COLUMNAR_SCHEMA = {"Parquet": PARQUET_SCHEMA}
_CSV_OF = {"bucket": "Bucket", "key": "Key", "version_id": "VersionId",
           "is_latest": "IsLatest", "is_delete_marker": "IsDeleteMarker", "size": "Size",
           "last_modified_date": "LastModifiedDate", "e_tag": "ETag",
           "storage_class": "StorageClass"}


def _arrow_type(kind: str, fmt: str) -> Any:
    if kind == "timestamp":  # Parquet's TIMESTAMP_MILLIS
        return pa.timestamp("ms", tz="UTC")
    return {"string": pa.string(), "bool": pa.bool_(), "int64": pa.int64()}[kind]


def columnar_table(rows: List[Dict[str, Any]], fmt: str) -> Any:
    """``rows`` (CSV names, keys not encoded) as a table with every column S3 writes."""
    columns = {}
    for name, kind in AWS_FIELDS:
        values = [r.get(_CSV_OF.get(name, ""), None) for r in rows]
        if kind == "timestamp":
            values = [None if v is None else int(v * 1000) for v in values]
            columns[name] = pa.array(values, pa.int64()).cast(pa.timestamp("ms", tz="UTC")) \
                .cast(_arrow_type(kind, fmt))
            continue
        if kind == "bool":
            values = [None if v in (None, "") else v in (True, "true") for v in values]
        if kind == "int64":
            values = [None if v in (None, "") else int(v) for v in values]
        columns[name] = pa.array(values, _arrow_type(kind, fmt))
    return pa.table(columns)


def columnar_file(rows: List[Dict[str, Any]], fmt: str) -> bytes:
    out = io.BytesIO()
    pa_parquet.write_table(columnar_table(rows, fmt), out, compression="snappy")
    return out.getvalue()


def columnar_report(s3: S3Bucket, dest: str, fmt: str,
                    rows: Optional[List[Dict[str, Any]]] = None, parts: int = 2,
                    **kw: Any) -> Report:
    if rows is None:  # every field S3 writes: a report of all versions, each the latest
        rows = [dict(r, VersionId="v1", IsLatest="true", IsDeleteMarker="false")
                for r in bucket_rows(s3)]
    return Report(s3, dest, file_format=fmt, schema=COLUMNAR_SCHEMA[fmt],
                  data_files=[columnar_file(rows[i::parts], fmt) for i in range(parts)], **kw)


#: Keys that CSV's URL-encoding would change if these formats were decoded like it
ODD_KEYS = ("odd dir/name+with:colon%and space", "odd dir/plus%2Bstays+%20percent",
            "odd dir/a%zz:b")


def test_parquet_reports_list_as_the_listing_with_keys_as_they_are(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    fmt = "Parquet"
    for i, odd in enumerate(ODD_KEYS):
        mirror.client().put_object(Bucket=mirror.name, Key=f"mirror/{odd}", Body=b"x" * (i + 1))
    rows = [dict(r, VersionId="v2", IsLatest="true", IsDeleteMarker="false")
            for r in bucket_rows(mirror)]
    # a report of all versions: old versions and delete markers are not current objects
    old = [dict(r, VersionId="v1", IsLatest="false", Size=12345678) for r in rows[::3]]
    gone = {"Bucket": mirror.name, "Key": "mirror/00/00/deleted-since", "VersionId": "v3",
            "IsLatest": "true", "IsDeleteMarker": "true",
            "LastModifiedDate": time.time() - 700}
    report = columnar_report(mirror, dest, fmt, rows=[*rows, *old, gone], parts=3)
    got = _listed_as_by_the_listing(mirror, report)
    assert {(odd, i + 1) for i, odd in enumerate(ODD_KEYS)} <= {(p, s) for p, s, _ in got}
    assert not any("stray" in p or p.startswith("outside") for p, _, _ in got)
    assert _info(capsys, mirror, "--inventory", report.url) == _info(capsys, mirror)


def test_clean_plans_from_a_parquet_report_as_from_the_listing(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _age_half(mirror)
    report = columnar_report(mirror, dest, "Parquet")
    listed = _plan(capsys, mirror)
    assert listed["to_delete"]
    assert _plan(capsys, mirror, "--inventory", report.url) == listed


def test_an_orc_report_is_refused_before_its_data_is_read(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    """ORC is refused from the manifest, naming the formats to choose instead: its data
    file (bytes no reader would take for ORC) is never read, nothing is deleted."""
    report = Report(mirror, dest, config="orc", file_format="ORC", schema=ORC_SCHEMA,
                    data_files=[b"not ORC at all"])
    _fails(capsys, mirror, report.url, EXIT_USAGE, "ORC reports are not read",
           "CSV or Apache Parquet")


def test_without_pyarrow_a_parquet_report_is_refused_naming_the_extra(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    report = columnar_report(mirror, dest, "Parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    _fails(capsys, mirror, report.url, EXIT_USAGE, "needs pyarrow",
           "pip install 'sstate-mirror[inventory]'")


def test_corrupt_parquet_files_fail_the_listing(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    fmt = "Parquet"
    rows = bucket_rows(mirror)
    good = columnar_file(rows, fmt)
    bad_md5 = Report(mirror, dest, config="md5", file_format=fmt, data_files=[good],
                     schema=COLUMNAR_SCHEMA[fmt], md5s=["0" * 32])
    _fails(capsys, mirror, bad_md5.url, EXIT_BACKEND, "MD5")
    cut = good[: len(good) // 2] + good[-16:]
    broken = Report(mirror, dest, config="cut", file_format=fmt, data_files=[cut],
                    schema=COLUMNAR_SCHEMA[fmt])
    _fails(capsys, mirror, broken.url, EXIT_BACKEND, f"not a readable {fmt} file")
    # the manifest names a column the file lacks
    lacking = Report(mirror, dest, config="lacking", file_format=fmt, data_files=[good],
                     schema=COLUMNAR_SCHEMA[fmt].replace("e_tag", "e_tag2")
                     .replace("key", "object_key"))
    _fails(capsys, mirror, lacking.url, EXIT_USAGE, "Key", "lacks the field")


#: The four columns a listing needs, as S3 would name them in a report of only those
SLIM_SCHEMA = {
    "Parquet": "message s3.inventory { required binary bucket (UTF8); required binary key"
               " (UTF8); optional int64 size; optional int64 last_modified_date"
               " (TIMESTAMP_MILLIS);}",
}


def _parquet_bomb(path: Path, key: str, rows: int, per_group: int) -> None:
    """``rows`` rows of one key, plain-encoded and zstd-compressed: tiny on disk, huge
    decoded; written a row group at a time."""
    schema = pa.schema([("bucket", pa.string()), ("key", pa.string()), ("size", pa.int64()),
                        ("last_modified_date", pa.timestamp("ms", tz="UTC"))])
    with pa_parquet.ParquetWriter(str(path), schema, compression="zstd", compression_level=19,
                                  use_dictionary=False) as writer:
        for start in range(0, rows, per_group):
            n = min(per_group, rows - start)
            writer.write_table(pa.table({
                "bucket": pa.array(["b"] * n), "key": pa.array([key] * n),
                "size": pa.array([1] * n, pa.int64()),
                "last_modified_date": pa.array([0] * n, pa.int64()).cast(
                    pa.timestamp("ms", tz="UTC"))}, schema=schema))


def test_a_parquet_decompression_bomb_is_refused_in_bounded_memory(
        mirror: S3Bucket, dest: str, tmp_path: Path) -> None:
    # 160 MiB of keys in a file of a few hundred KiB: decoded, it would not fit below the bound
    key = "mirror/" + "a" * 1000
    _parquet_bomb(tmp_path / "bomb.parquet", key, 160_000, 40_000)
    data = (tmp_path / "bomb.parquet").read_bytes()
    assert len(data) < 2 << 20
    bomb = Report(mirror, dest, config="pqbomb", file_format="Parquet", data_files=[data],
                  schema=SLIM_SCHEMA["Parquet"])
    _refused_within(mirror, bomb, "expands to more than", 200)


def _refused_within(mirror: S3Bucket, report: Report, words: str, mib: float) -> None:
    """``info`` from ``report`` fails saying ``words``, its peak RSS below ``mib``."""
    done = run_measured(command("info", mirror.url, "--inventory", report.url),
                        env=child_env(mirror.env))
    assert done.returncode == EXIT_BACKEND, done.stderr
    assert words in done.stderr
    assert done.peak_mib < mib, done.peak_mib


def _one_key(bucket: str, key: str, rows: int) -> Any:
    """``rows`` rows of one bucket and one key, dictionary-encoded: a few bytes each."""
    zeros = pa.array([0] * rows, pa.int32())
    return pa.table({
        "bucket": pa.DictionaryArray.from_arrays(zeros, pa.array([bucket])),
        "key": pa.DictionaryArray.from_arrays(zeros, pa.array([key])),
        "size": pa.array([1] * rows, pa.int64()),
        "last_modified_date": pa.array([0] * rows, pa.int64()).cast(
            pa.timestamp("ms", tz="UTC"))})


def test_a_parquet_dictionary_of_one_long_key_for_every_row_is_refused_in_bounded_memory(
        mirror: S3Bucket, dest: str, tmp_path: Path) -> None:
    # one key of 60 KiB in the dictionary page, 30,000 rows pointing at it: a file of a
    # few KiB whose keys, decoded a batch of 10,000 rows at a time, would be 600 MiB a batch
    table = _one_key(mirror.name, "mirror/" + "a" * (60 << 10), 30_000)
    # without pyarrow's own schema in the file (S3 writes none): read back as plain strings
    pa_parquet.write_table(table, str(tmp_path / "dict.parquet"), compression="zstd",
                           compression_level=19, store_schema=False)
    data = (tmp_path / "dict.parquet").read_bytes()
    assert len(data) < 64 << 10
    report = Report(mirror, dest, config="pqdict", file_format="Parquet", data_files=[data],
                    schema=SLIM_SCHEMA["Parquet"])
    _refused_within(mirror, report, "keys expand to more than", 300)


def test_millions_of_rows_in_a_few_bytes_are_refused(
        mirror: S3Bucket, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    # two million rows of one short key: a row group that declares more rows than the
    # file's size can hold
    fmt, rows = "Parquet", 2_000_000
    table = _one_key("b", "mirror/k", rows)
    out = io.BytesIO()
    pa_parquet.write_table(table, out, compression="zstd", row_group_size=rows)
    data = out.getvalue()
    assert len(data) * 20 < rows
    report = Report(mirror, dest, config=f"rows{fmt}", file_format=fmt, data_files=[data],
                    schema=SLIM_SCHEMA[fmt])
    _fails(capsys, mirror, report.url, EXIT_BACKEND, f"{rows} rows")
