"""Access log parsing and the mapping of requests to mirror groups, as pure functions."""

from __future__ import annotations

import gzip
import io
from typing import List, Optional

import pytest

from sstate_mirror.accesslog import (
    MAX_LINE,
    LogFormatError,
    ScanStats,
    bounded_lines,
    compile_custom,
    open_log,
    parse_clf_time,
    request_path,
    scan,
)
from sstate_mirror.commands.logtouch import (
    PathMatcher,
    normalise_prefix,
    plan_log_touch,
    read_state,
    write_state,
)
from sstate_mirror.errors import UsageError
from sstate_mirror.naming import group_artifacts, make_artifact
from sstate_mirror.units import parse_time_or_age

NAME = ("sstate:zlib-native:x86_64-linux:1.3.1:r0:x86_64:14:"
        "9c1e000000000000000000000000000000000000000000000000000000000000_populate_sysroot.tar.zst")
ARCHIVE = f"universal/9c/1e/{NAME}"
ENCODED = ARCHIVE.replace(":", "%3A")
T0 = 1796432523.0  # 05/Dec/2026:01:02:03 +0000

# One line of each format, as the servers write them (S3: AWS's documented example, with an
# object GET instead of a versioning request).
COMMON = f'192.0.2.7 - - [05/Dec/2026:01:02:03 +0000] "GET /sstate/{ENCODED} HTTP/1.1" 200 512'
COMBINED = (f'192.0.2.7 - - [05/Dec/2026:01:02:03 +0000] "HEAD /sstate/{ENCODED} HTTP/1.1"'
            ' 200 0 "-" "bitbake/2.18.0"')
VHOST = (f'sstate.example.com:443 192.0.2.7 - - [05/Dec/2026:02:02:03 +0100] "GET'
         f' /sstate/{ENCODED}.siginfo?x=1 HTTP/1.1" 200 9 "-" "Wget/1.21.3"')
S3 = ("79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be awsexamplebucket1"
      " [05/Dec/2026:01:02:03 +0000] 192.0.2.3"
      " 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE"
      f" REST.GET.OBJECT {ENCODED} \"GET /awsexamplebucket1/{ENCODED} HTTP/1.1\" 200 -"
      ' 113 113 7 6 "-" "aws-cli/2.15.0" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5m'
      "KR3/eTPFvsiP/XV/VLi31234= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader"
      " awsexamplebucket1.s3.us-west-1.amazonaws.com TLSv1.2 - -")
S3_LS = S3.replace(f"REST.GET.OBJECT {ENCODED}", "REST.GET.BUCKET -").replace(
    f"GET /awsexamplebucket1/{ENCODED} HTTP",
    f"GET /awsexamplebucket1?list-type=2&prefix={ENCODED.replace('/', '%2F')}"
    "&delimiter=%2F&encoding-type=url HTTP")


def requests(lines: List[str], since: Optional[float] = None, custom: Optional[str] = None):
    stats = ScanStats()
    pattern = compile_custom(custom) if custom else None
    found = list(scan([ln.encode() for ln in lines], stats, since=since, custom=pattern))
    return found, stats


@pytest.mark.parametrize(("line", "fmt", "method", "path"), [
    (COMMON, "common", "GET", f"/sstate/{ARCHIVE}"),
    (COMBINED, "combined", "HEAD", f"/sstate/{ARCHIVE}"),
    (VHOST, "vhost_combined", "GET", f"/sstate/{ARCHIVE}.siginfo"),
    (S3, "s3", "GET", f"/awsexamplebucket1/{ARCHIVE}"),
    (S3_LS, "s3", "HEAD", f"/awsexamplebucket1/{ARCHIVE}"),
])
def test_each_format_is_recognised_on_its_own_line(line: str, fmt: str, method: str,
                                                   path: str) -> None:
    (req,), stats = requests([line])
    assert (req.format, req.method, req.path, req.status) == (fmt, method, path, 200)
    assert req.time == T0  # +0100 read as such
    assert stats.formats == {fmt: 1}


def test_mixed_lines_failures_and_other_requests_are_counted_never_fatal() -> None:
    lines = [
        COMMON,
        COMMON.replace('" 200 ', '" 404 '),                        # a miss
        COMMON.replace('"GET ', '"PUT '),                          # an upload
        COMMON.replace('" 200 ', '" 304 '),                        # not a 2xx
        '192.0.2.7 - - [05/Dec/2026:01:02:03 +0000] "-" 408 0 "-" "-"',  # no request
        '192.0.2.7 - - [05/Dec/2026:01:02:03 +0000] "\\x16\\x03\\x01" 400 157',  # TLS junk
        "not a log line at all",
        '192.0.2.7 - - [31/Foo/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 1',  # bad month
        '192.0.2.7 - - [05/Dec/2026:01:02:03 +0000] "GET / HTTP/1.1',  # cut off
        "",
        S3,
    ]
    found, stats = requests(lines)
    assert [r.format for r in found] == ["common", "s3"]
    assert stats.lines == 11 and stats.malformed == 4 and stats.requests == 7
    assert stats.used == 2
    assert [n for _, n, _ in stats.examples] == [7, 8, 9, 10]


def test_since_skips_older_requests_and_newest_is_kept() -> None:
    later = COMMON.replace("01:02:03", "03:00:00")
    found, stats = requests([COMMON, later], since=T0 + 60)
    assert len(found) == 1 and stats.before_since == 1 and stats.newest == T0 + 7077


def test_custom_format_with_iso_time() -> None:
    fmt = r"^(?P<time>\S+) (?P<method>\S+) (?P<path>\S+) (?P<status>\d{3})$"
    (req,), _ = requests([f"2026-12-05T01:02:03+00:00 GET /sstate/{ENCODED} 206"], custom=fmt)
    assert (req.time, req.path, req.status, req.format) == (T0, f"/sstate/{ARCHIVE}", 206,
                                                            "custom")
    with pytest.raises(LogFormatError):
        compile_custom(r"(?P<method>\S+) (?P<path>\S+)")
    with pytest.raises(LogFormatError):
        compile_custom(r"(?P<method>")


def test_request_path_forms() -> None:
    assert request_path(b"/a/sstate%3Ax?y=%2F#f") == "/a/sstate:x"
    assert request_path(b"http://mirror:8080/s/x%3Ay") == "/s/x:y"
    assert request_path(b"/%ff") == "/\udcff"  # not UTF-8: kept, matches nothing
    with pytest.raises(ValueError):
        parse_clf_time(b"05/Dec/2026:01:02:03 +00")


def test_long_lines_are_skipped_in_bounded_pieces() -> None:
    huge = b"x" * (MAX_LINE * 5) + b"\n"
    data = COMMON.encode() + b"\n" + huge + COMMON.encode() + b"\r\n" + b"tail-no-newline"
    reads: List[int] = []

    class Spy(io.BytesIO):
        def readline(self, size: Optional[int] = -1) -> bytes:
            reads.append(-1 if size is None else size)
            return super().readline(size)

    lines = list(bounded_lines(Spy(data)))
    assert lines == [COMMON.encode(), None, COMMON.encode(), b"tail-no-newline"]
    assert all(0 < n <= MAX_LINE for n in reads)  # never an unbounded readline
    found, stats = [], ScanStats()
    found = list(scan(lines, stats))
    assert len(found) == 2 and stats.malformed == 2


def test_gzip_detected_by_content_and_concatenated_members_read() -> None:
    data = gzip.compress(f"{COMMON}\n".encode()) + gzip.compress(f"{S3}\n".encode())
    stream = open_log(io.BytesIO(data))
    assert list(bounded_lines(stream)) == [COMMON.encode(), S3.encode()]
    plain = open_log(io.BytesIO(f"{COMMON}\n".encode()))
    assert list(bounded_lines(plain)) == [COMMON.encode()]


def mirror_groups(paths: List[str], mtime: float = 0.0):
    arts = [make_artifact(p, 1, mtime) for p in paths]
    return arts, group_artifacts(arts)


def test_matcher_suffix_prefixes_and_url_prefix() -> None:
    other = "9c/1e/" + NAME
    arts, _ = mirror_groups([ARCHIVE, ARCHIVE + ".siginfo", other, "README"])
    m = PathMatcher(arts)
    assert m.match(f"/sstate/{ARCHIVE}.siginfo") == [("/sstate/", ARCHIVE + ".siginfo")]
    # "universal/9c/1e/NAME" ends in "9c/1e/NAME" too: both are candidates, two prefixes
    assert sorted(m.match(f"/sstate/{ARCHIVE}")) == [("/sstate/", ARCHIVE),
                                                    ("/sstate/universal/", other)]
    assert m.match(f"/x{ARCHIVE}") == [("/xuniversal/", other)]  # a suffix only at a '/'
    assert m.match("/sstate/README") == []         # not a group member
    assert sorted(m.match(f"/{ARCHIVE}")) == [("/", ARCHIVE), ("/universal/", other)]
    m = PathMatcher(arts, "https://mirror.example.com/sstate")
    assert m.match(f"/sstate/{ARCHIVE}") == [("/sstate/", ARCHIVE)]
    assert m.match(f"/other/{ARCHIVE}") == []
    assert normalise_prefix("s3://bucket/pre") == "/bucket/pre/"
    assert normalise_prefix("sstate") == "/sstate/"


def test_plan_marks_one_member_of_each_stale_group_and_skips_fresh_ones() -> None:
    sig = ARCHIVE + ".siginfo"
    other = "aa/bb/" + NAME.replace("9c1e", "aabb")
    arts = [make_artifact(ARCHIVE, 100, 100.0), make_artifact(sig, 10, 100.0),
            make_artifact(other, 1, 500.0)]
    groups = group_artifacts(arts)
    used = {ARCHIVE: 300.0, other: 300.0, "gone/x.tar.zst": 1.0}
    plan = plan_log_touch(used, groups, now=600.0, refresh_after=200.0, touch_cost="flat")
    assert plan.touches == [sig]  # the .siginfo carries the mark; `other` is fresh
    assert plan.to_dict()["groups_already_fresh"] == 1
    plan = plan_log_touch(used, groups, now=600.0, refresh_after=0, touch_cost="size")
    assert sorted(plan.touches) == sorted([sig, other])  # the smallest member


def test_state_file_round_trip_and_refusal(tmp_path) -> None:
    state = tmp_path / "s.json"
    assert read_state(str(state)) is None
    write_state(str(state), T0, "file:///srv/sstate")
    assert read_state(str(state)) == T0
    state.write_text("garbage")
    with pytest.raises(UsageError):
        read_state(str(state))


def test_since_accepts_ages_and_utc_times() -> None:
    assert parse_time_or_age("2d", 1000000.0) == 1000000.0 - 2 * 86400
    assert parse_time_or_age("2026-12-05T01:02:03Z", 0) == T0
    assert parse_time_or_age("2026-12-05T01:02:03", 0) == T0
    with pytest.raises(UsageError):
        parse_time_or_age("yesterday", 0)


def test_read_use_counts_head_alone_unless_get_only_and_survives_a_broken_gzip() -> None:
    from contextlib import contextmanager

    from sstate_mirror.commands.logtouch import LogSource, read_use

    def source(name: str, data: bytes) -> LogSource:
        @contextmanager
        def opener():  # type: ignore[no-untyped-def]
            yield io.BytesIO(data)
        return LogSource(name, opener)

    arts, _ = mirror_groups([ARCHIVE, ARCHIVE + ".siginfo"])
    head_only = source("a.log", f"{COMBINED}\n".encode())
    broken = source("b.log.gz", gzip.compress(f"{COMMON}\n".encode() * 1000)[:-40])
    use = read_use([head_only, broken], PathMatcher(arts), now=0)
    assert use.used == {ARCHIVE: T0} and use.matched > 1
    assert use.fetched == {ARCHIVE}  # the GETs of the truncated file up to the damage count
    assert [name for name, _ in use.stats.read_errors] == ["b.log.gz"]
    use = read_use([head_only], PathMatcher(arts), now=0)
    assert use.used == {ARCHIVE: T0} and use.fetched == set()  # checked only: still used
    use = read_use([head_only], PathMatcher(arts), now=0, count_head=False)
    assert use.used == {} and use.head_ignored == 1
