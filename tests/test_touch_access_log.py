"""``touch TARGET --access-log``: real nginx and Apache write the logs, bitbake's requests fill
them, and ``touch`` + ``clean`` keep exactly what the logs show in use."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from pathlib import Path
from typing import List, Set, Tuple

import pytest

from log_servers import LogServer, bitbake_restore, other_clients, send_marker
from mirrors import is_lease
from sstate_mirror.cli import main

DAY = 86400
MISSING = [  # archives a build looks for and the mirror does not have: 404, tried twice
    "ff/ee/sstate:omega:core2-64-oe-linux:1.0:r0:core2-64:14:"
    "ffee000000000000000000000000000000000000000000000000000000000000_package.tar.zst",
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, dict]:
    code = main(["--json", *argv])
    out, err = capsys.readouterr()
    report = json.loads(out) if out.strip() else {}
    report["_stderr"] = err
    return code, report


def files(root: Path) -> Set[str]:
    """The files below ``root``, without the leases a clean leaves (``.sstate-mirror/``)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not is_lease(str(p.relative_to(root)))}


def age_all(root: Path, days: float) -> None:
    t = time.time() - days * DAY
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (t, t))


def archives(cache: Path) -> List[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*.tar.zst"))


def groups_of(paths: Set[str], mirror_files: Set[str]) -> Set[str]:
    """Every mirror file belonging with one of the archives ``paths``."""
    return {f for f in mirror_files for a in paths if f in (a, a + ".siginfo", a + ".sig")}


def make_mirror(site: Path, *caches: Path) -> None:
    """A directory mirror holding both builds (what upload would have made of them)."""
    for cache in caches:
        shutil.copytree(cache, site, dirs_exist_ok=True)
    for d, _, names in os.walk(site):
        os.chmod(d, 0o777)
        for n in names:
            os.chmod(os.path.join(d, n), 0o644)


def restore_b(server: LogServer, oe_cache_a: Path, oe_cache_b: Path) -> Tuple[Path, str]:
    """Two builds on the server, 60 days old; a consumer restores build B through it."""
    site, url = server.site()
    make_mirror(site, oe_cache_a, oe_cache_b)
    age_all(site, 60)
    statuses = bitbake_restore(url, archives(oe_cache_b), MISSING)
    assert {p: s for p, s in statuses.items() if s != 200} == {MISSING[0]: 404}
    server_url = url.rsplit("/", 2)[0] + "/"
    other_clients(server_url, url, archives(oe_cache_a))
    send_marker(url, "end-of-test-marker")
    server.wait_logged("end-of-test-marker")
    # the server's file system is mounted noatime (common on servers): the reads left no mark
    age_all(site, 60)
    return site, url


def test_nginx_log_keeps_exactly_the_groups_a_consumer_restored(
        nginx_logging: LogServer, oe_cache_a: Path, oe_cache_b: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    site, _ = restore_b(nginx_logging, oe_cache_a, oe_cache_b)
    everything = files(site)
    expected = groups_of(set(archives(oe_cache_b)), everything)
    # without the log, clean would evict build B's objects with the rest
    code, report = run(capsys, "clean", "--dry-run", "--max-age", "30d", str(site))
    assert code == 0 and report["plan"]["files_to_delete"] == len(everything)

    code, report = run(capsys, "touch", str(site), "--access-log",
                       str(nginx_logging.logs["combined"]))
    assert code == 0, report
    logs = report["logs"]
    b_groups = len(archives(oe_cache_b))
    assert logs["groups_used"] == b_groups and logs["groups_checked_only"] == 0
    assert report["plan"]["groups_to_mark"] == b_groups
    assert report["touched"] == b_groups  # one mark per group
    # the check's HEAD, then HEAD + GET of the archive and of its .siginfo
    assert logs["requests_matched"] == 5 * b_groups
    assert logs["malformed_lines"] == 0 and logs["formats"] == {"combined": logs["lines_read"]}
    assert logs["unknown_paths"] == 1  # index.html; 404s and other methods are no reads
    assert logs["url_prefixes"] == {"/" + site.name + "/": 5 * b_groups}

    code, report = run(capsys, "clean", "--max-age", "30d", str(site))
    assert code == 0
    assert files(site) == expected

    # the same log again: every group is fresh now, nothing is touched twice
    code, report = run(capsys, "touch", str(site), "--access-log",
                       str(nginx_logging.logs["combined"]))
    assert code == 0 and report["plan"]["groups_to_mark"] == 0
    assert report["plan"]["groups_already_fresh"] == b_groups and report["touched"] == 0


@pytest.mark.parametrize("fmt", ["common", "combined", "vhost_combined"])
def test_apache_logs_in_each_format_give_the_same_groups(
        apache_logging: LogServer, oe_cache_a: Path, oe_cache_b: Path, fmt: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    site, _ = restore_b(apache_logging, oe_cache_a, oe_cache_b)
    expected = groups_of(set(archives(oe_cache_b)), files(site))
    code, report = run(capsys, "touch", "--dry-run", str(site), "--access-log",
                       str(apache_logging.logs[fmt]))
    assert code == 0, report
    marked = report["plan"]["to_touch"]  # one file of each of build B's groups
    assert set(marked) <= expected and len(marked) == len(archives(oe_cache_b))
    assert report["logs"]["formats"] == {fmt: report["logs"]["lines_read"]}
    assert report["logs"]["requests_matched"] == 5 * len(archives(oe_cache_b))
    assert report["touched"] == 0  # dry run


def test_rotated_gzip_set_since_state_and_ambiguity(
        nginx_logging: LogServer, oe_cache_a: Path, oe_cache_b: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    site, url = restore_b(nginx_logging, oe_cache_a, oe_cache_b)
    b = archives(oe_cache_b)
    # last night's log, rotated and compressed, holds build A's restore
    rotated = tmp_path / "access.log.1.gz"
    old_lines = [
        f'127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET /{site.name}/{p.replace(":", "%3A")}'
        f' HTTP/1.1" 200 10 "-" "Wget/1.21.3"\n' for p in archives(oe_cache_a)]
    rotated.write_bytes(gzip.compress("".join(old_lines).encode()))
    os.utime(rotated, (1767312000, 1767312000))  # rotated on 2026-01-02
    current = nginx_logging.logs["vhost_combined"]
    state = tmp_path / "touch.state"
    code, report = run(capsys, "touch", "--dry-run", str(site), "--state", str(state),
                       "--access-log", str(rotated), str(current))
    assert code == 0
    assert report["logs"]["groups_used"] == len(set(b) | set(archives(oe_cache_a)))
    assert not state.exists()  # a dry run records nothing
    code, report = run(capsys, "touch", str(site), "--state", str(state),
                       "--access-log", str(rotated), str(current))
    assert code == 0 and state.exists()
    # the next night: only requests from the recorded second on are read again (that second
    # is read again: a line logged in it after the run must not be lost), and they are fresh
    code, report = run(capsys, "touch", "--dry-run", str(site), "--state", str(state),
                       "--access-log", str(rotated), str(current))
    assert code == 0 and report["plan"]["groups_to_mark"] == 0
    newest = json.loads(state.read_text())["newest_request"]
    assert report["since"] == newest
    assert report["logs"]["logs_skipped_as_older"] == 1  # the .gz was not even opened
    # --since: today's log only
    code, report = run(capsys, "touch", "--dry-run", str(site), "--since", "2d",
                       "--access-log", str(rotated), str(current))
    assert report["logs"]["groups_used"] == len(b)

    # the same files served under a second prefix: said, and settled by --url-prefix
    twin = site.parent / (site.name + "-copy")
    shutil.copytree(site, twin)
    bitbake_restore(url.rstrip("/") + "-copy/", b[:2])
    send_marker(url, "second-marker")
    nginx_logging.wait_logged("second-marker")
    code, report = run(capsys, "touch", "--dry-run", str(site), "--access-log",
                       str(current))
    assert report["logs"]["ambiguous"] is True
    assert set(report["logs"]["url_prefixes"]) == {f"/{site.name}/", f"/{site.name}-copy/"}
    assert "Give --url-prefix" in report["_stderr"]
    code, report = run(capsys, "touch", "--dry-run", str(twin), "--url-prefix",
                       f"{url.rstrip('/')}-copy/", "--access-log", str(current))
    assert report["logs"]["ambiguous"] is False
    assert report["logs"]["groups_used"] == 2


def test_custom_format_and_stdin(nginx_logging: LogServer, oe_cache_a: Path,
                                 oe_cache_b: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    site, _ = restore_b(nginx_logging, oe_cache_a, oe_cache_b)
    log = nginx_logging.logs["iso"]
    fmt = r"^(?P<time>\S+) (?P<method>\S+) (?P<path>\S+) (?P<status>\d{3})$"
    code, report = run(capsys, "touch", "--dry-run", str(site), "--log-format", fmt,
                       "--access-log", str(log))
    assert code == 0, report
    assert report["logs"]["groups_used"] == len(archives(oe_cache_b))
    assert report["logs"]["formats"] == {"custom": report["logs"]["lines_read"]}

    import io
    import sys

    data = nginx_logging.logs["combined"].read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(data))))
    code, report = run(capsys, "touch", "--dry-run", "--get-only", str(site),
                       "--access-log", "-")
    assert code == 0, report
    assert report["logs"]["groups_used"] == len(archives(oe_cache_b))
    assert report["logs"]["head_requests_ignored"] == 3 * len(archives(oe_cache_b))


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "access.log"
    log.write_text("")
    mirror = tmp_path / "m"
    mirror.mkdir()
    assert main(["touch", str(tmp_path), str(mirror), "--access-log", str(log)]) == 2
    assert "TARGET only" in capsys.readouterr().err
    assert main(["touch", str(mirror), "--access-log", str(tmp_path / "nope")]) == 2
    assert main(["touch", str(mirror), "--since", "yesterday", "--access-log", str(log)]) == 2
    assert main(["touch", str(mirror), "--log-format", "(?P<method>x)", "--access-log",
                 str(log)]) == 2
    assert "path, status" in capsys.readouterr().err
    assert main(["touch", str(mirror)]) == 2


def s3_log_line(bucket: str, when: str, op: str, key: str, status: int) -> str:
    """One line of an S3 server access log, in AWS's documented format."""
    enc = key.replace(":", "%3A")
    method = op.split(".")[1]
    return (f"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be {bucket}"
            f" [{when}] 192.0.2.3 arn:aws:iam::123456789012:user/ci 3E57427F3EXAMPLE {op}"
            f' {enc} "{method} /{bucket}/{enc} HTTP/1.1" {status}'
            f' {"NoSuchKey" if status == 404 else "-"} 113 113 7 6 "-" "aws-cli/2.15.0" -'
            " s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3= SigV4"
            " ECDHE-RSA-AES128-GCM-SHA256 AuthHeader s3.amazonaws.com TLSv1.2 - -\n")


def test_s3_server_access_logs_from_a_log_bucket(
        s3_bucket, oe_cache_b: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upload", str(oe_cache_b), s3_bucket.url]) == 0
    capsys.readouterr()
    for path in files(oe_cache_b):
        s3_bucket.backdate(path, 60 * DAY)
    b = archives(oe_cache_b)
    when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
    bucket = s3_bucket.name
    lines = [s3_log_line(bucket, when, "REST.HEAD.OBJECT", p, 200) for p in b[:10]]
    lines += [s3_log_line(bucket, when, "REST.GET.OBJECT", p, 200) for p in b[:10]]
    lines += [s3_log_line(bucket, when, "REST.GET.OBJECT", MISSING[0], 404)]
    lines += [s3_log_line("another-bucket", when, "REST.GET.OBJECT", b[11], 200)]
    logs = s3_bucket.server.new_bucket()
    client = s3_bucket.client()
    client.put_object(Bucket=logs, Key="logs/2026-12-05-01-00-00-AAAA", Body="".join(lines[:15]))
    client.put_object(Bucket=logs, Key="logs/2026-12-05-02-00-00-BBBB",
                      Body=gzip.compress("".join(lines[15:]).encode()))
    code, report = run(capsys, "touch", s3_bucket.url, "--access-log", f"s3://{logs}/logs/")
    assert code == 0, report
    assert report["logs"]["formats"] == {"s3": len(lines)}
    # the other bucket's request matches too: said, and --url-prefix settles it
    assert report["logs"]["ambiguous"] and "Give --url-prefix" in report["_stderr"]
    assert report["plan"]["groups_to_mark"] == 11
    code, report = run(capsys, "touch", "--dry-run", s3_bucket.url, "--url-prefix",
                       s3_bucket.url, "--access-log", f"s3://{logs}/logs/")
    assert code == 0 and report["logs"]["groups_used"] == 10
    assert report["plan"]["groups_already_fresh"] == 10  # marked by the run before
    # a local copy reads the same
    copy = tmp_path / "s3.log"
    copy.write_text("".join(lines))
    code, report = run(capsys, "touch", "--dry-run", s3_bucket.url, "--url-prefix",
                       f"/{bucket}/", "--access-log", str(copy))
    assert code == 0 and report["logs"]["groups_used"] == 10


def test_unwritable_state_is_one_line_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "access.log"
    log.write_text('127.0.0.1 - - [05/Dec/2026:01:02:03 +0000] "GET /x HTTP/1.1" 200 1\n'
                   "garbage\n")
    mirror = tmp_path / "m"
    mirror.mkdir()
    state = tmp_path / "no" / "such" / "dir" / "state"
    assert main(["-v", "touch", str(mirror), "--state", str(state), "--access-log",
                 str(log)]) == 2
    out, err = capsys.readouterr()
    assert "cannot write" in err and "Traceback" not in err
    assert f"{log}:2: garbage" in out  # -v shows the malformed line
