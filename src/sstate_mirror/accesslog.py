"""Reading web server and S3 access logs: which paths were fetched successfully, and when.

bitbake leaves no mark on an HTTP or S3 mirror when it uses an object, but the server writes
every read into its access log. This module turns log lines into :class:`Request` values
(method, percent-decoded path without the query, status, time); it knows nothing about
mirrors or sstate names (``commands.accesslog`` maps paths to a mirror's groups).

Formats are recognised per line, so rotated sets and mixed files need no option. They differ
in how many space-separated fields stand before the first ``" ["`` (the time):

* 2: S3 server access log (``BucketOwner Bucket [time] RemoteIP Requester RequestID Operation
  Key "Request-URI" Status ...``, AWS's documented format);
* 3: common / combined (nginx's default ``combined``, Apache's ``common`` and ``combined``);
* 4: Apache ``vhost_combined`` / ``vhost_common`` (``%v:%p`` first).

A custom format is a regular expression with the named groups ``method``, ``path`` and
``status`` (and optionally ``time``, in the log's ``[10/Oct/2000:13:55:36 +0000]`` form or
ISO 8601 as nginx's ``$time_iso8601``).

Hand-written rather than taken from a parser library: the libraries on PyPI (apachelogs,
apache-log-parser) take one format per parser and decode whole lines to ``str``; here the
format changes per line, S3 logs are needed too, and lines are looked at as bytes, so a
gigabyte log costs one small regular-expression match per line and only the paths that matter
are decoded. Lines are bounded (:data:`MAX_LINE`) before anything looks at them; gzip input is
decoded as a stream by the project's one gzip reader (:mod:`sstate_mirror.archive_streams`).
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import io
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Dict, List, NamedTuple, Optional, Pattern, Tuple, cast

from .archive_streams import GzipStream

#: Longest line looked at; longer ones are skipped (counted as malformed) without being held.
MAX_LINE = 16 * 1024
#: Distinct request paths whose decoded form is kept for reuse.
PATHS_CACHED = 1 << 14
#: Lines between two calls of a scan's ``on_lines`` callback.
LINES_REPORTED = 1 << 16
#: Malformed lines kept as examples for ``-v``.
EXAMPLES_KEPT = 5
#: A gzip log may not decode to more than this (a decompression bomb is not a log).
MAX_DECODED = 1 << 44

_MONTHS = {m.encode(): i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

#: Two to four fields, the time in brackets, and for common/combined lines the quoted request
#: and the status. Apache escapes a quote in the request as ``\\"``, nginx as ``\\x22``.
_LINE = re.compile(
    rb'((?:\S+ ){2,4})\[([^\]]*)\] (?:"([^"\\]*(?:\\.[^"\\]*)*)" (\d{3}|-)(?: |$))?')
#: After the time of an S3 line: RemoteIP Requester RequestID Operation Key "URI" Status.
_S3_REST = re.compile(
    rb'(\S+) (\S+) (\S+) (\S+) (\S+) "([^"\\]*(?:\\.[^"\\]*)*)" (\d{3}|-)(?: |$)')

FORMATS = ("common", "combined", "vhost_common", "vhost_combined", "s3", "custom")
#: [with the virtual host first][with referer and user agent after the size]
_HTTP_FORMATS = (("common", "combined"), ("vhost_common", "vhost_combined"))


class Request(NamedTuple):
    """One successful read the log records."""

    time: Optional[float]
    """POSIX time of the request (None when a custom format has no time)."""
    method: str
    """``GET`` or ``HEAD`` (an S3 existence listing counts as ``HEAD``)."""
    path: str
    """Percent-decoded request path without query; for S3 ``/BUCKET/KEY``."""
    status: int
    format: str


#: A parsed line: time, method, request target, status, format. A plain tuple, not a named
#: one: one is made per log line, and a plain tuple costs a third as much.
_Parsed = Tuple[Optional[float], bytes, bytes, int, str]


class LogFormatError(ValueError):
    """A custom log format that cannot work (bad regular expression, missing groups)."""


def compile_custom(expr: str) -> Pattern[bytes]:
    """The regular expression of ``--log-format``, checked for the groups it must have."""
    try:
        pattern = re.compile(expr.encode())
    except re.error as exc:
        raise LogFormatError(f"not a valid regular expression: {exc}") from exc
    missing = {"method", "path", "status"} - set(pattern.groupindex)
    if missing:
        raise LogFormatError("needs the named groups (?P<method>...), (?P<path>...) and"
                             f" (?P<status>...); missing: {', '.join(sorted(missing))}")
    return pattern


@dataclass
class ScanStats:
    """What reading the logs found; the summary of ``touch --access-log``."""

    lines: int = 0
    malformed: int = 0
    """Lines in no known format (including those longer than :data:`MAX_LINE`)."""
    before_since: int = 0
    """Requests older than ``--since`` (or than the state file's mark), skipped."""
    requests: int = 0
    """Lines that are requests (any method and status) at or after ``--since``."""
    used: int = 0
    """Of those: successful (2xx) GET and HEAD."""
    newest: Optional[float] = None
    """Time of the newest request read (whatever its method or status)."""
    formats: Dict[str, int] = field(default_factory=dict)
    """Lines read per format."""
    examples: List[Tuple[str, int, str]] = field(default_factory=list)
    """(log, line number, excerpt) of the first malformed lines."""
    files_skipped: int = 0
    """Logs not opened: last written before ``--since``."""
    read_errors: List[Tuple[str, str]] = field(default_factory=list)
    """(log, why) for logs that could not be read to the end."""

    def to_dict(self) -> Dict[str, Any]:
        return {
            "lines_read": self.lines,
            "malformed_lines": self.malformed,
            "before_since": self.before_since,
            "requests": self.requests,
            "successful_reads": self.used,
            "newest_request": self.newest,
            "formats": dict(sorted(self.formats.items())),
            "logs_skipped_as_older": self.files_skipped,
            "read_errors": [{"log": n, "error": e} for n, e in self.read_errors],
        }


# -- time -------------------------------------------------------------------------------------


def parse_clf_time(text: bytes) -> float:
    """``10/Oct/2000:13:55:36 -0700`` -> POSIX time; ValueError when malformed."""
    if len(text) != 26 or text[2:3] != b"/" or text[6:7] != b"/" or text[20:21] != b" ":
        raise ValueError("bad time")
    month = _MONTHS.get(text[3:6])
    if month is None:
        raise ValueError("bad month")
    stamp = calendar.timegm((int(text[7:11]), month, int(text[0:2]), int(text[12:14]),
                             int(text[15:17]), int(text[18:20]), 0, 0, 0))
    sign = text[21:22]
    if sign not in (b"+", b"-"):
        raise ValueError("bad zone")
    offset = int(text[22:24]) * 3600 + int(text[24:26]) * 60
    return float(stamp - offset if sign == b"+" else stamp + offset)


def parse_iso_time(text: str) -> float:
    """ISO 8601 with a zone (``2026-12-05T01:02:03+00:00``, ``...Z``) -> POSIX time."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("no time zone")
    return value.timestamp()


#: Distinct time stamps kept parsed (log lines come in time order, many per second).
TIMES_CACHED = 1 << 12


def _parse_time(text: bytes, cache: Dict[bytes, float]) -> float:
    """The time of a stamp in the log's form or ISO 8601, parsed once per distinct stamp."""
    if text[:1].isdigit() and text[4:5] == b"-":
        value = parse_iso_time(text.decode("ascii"))
    else:
        value = parse_clf_time(text)
    if len(cache) >= TIMES_CACHED:
        cache.clear()
    cache[text] = value
    return value


# -- lines ------------------------------------------------------------------------------------


def parse_line(line: bytes, times: Optional[Dict[bytes, float]] = None,
               custom: Optional[Pattern[bytes]] = None) -> Optional[_Parsed]:
    """Parse one log line (without its newline); None when it is in no known format.

    Raises nothing: every kind of damage reads as None.
    """
    if times is None:
        times = {}
    try:
        if custom is not None:
            return _parse_custom(line, custom, times)
        m = _LINE.match(line)
        if m is None:
            return None
        head, stamp, request, status_text = m.groups()
        fields = head.count(b" ")
        when = times.get(stamp)
        if when is None:
            when = _parse_time(stamp, times)
        if fields == 2:
            return _parse_s3(line, m.end(), when, line[line.find(b" ") + 1 : m.start(2) - 2])
        if request is None:
            return None
        status = int(status_text) if status_text != b"-" else 0
        fmt = _HTTP_FORMATS[fields == 4][line.find(b'"', m.end()) >= 0]
        method, _, target = request.partition(b" ")
        if not target:
            return (when, b"", b"", status, fmt)  # "-", junk: a request we skip
        return (when, method, target.partition(b" ")[0], status, fmt)
    except (ValueError, IndexError, OverflowError):
        return None


_S3_METHODS = {b"REST.GET.OBJECT": b"GET", b"REST.HEAD.OBJECT": b"HEAD",
               b"REST.GET.BUCKET": b"LIST"}


def _parse_s3(line: bytes, pos: int, when: float, bucket: bytes) -> Optional[_Parsed]:
    m = _S3_REST.match(line, pos)
    if m is None:
        return None
    status = int(m.group(7)) if m.group(7) != b"-" else 0
    method = _S3_METHODS.get(m.group(4), b"")
    key = m.group(5)
    if method == b"LIST":
        # `aws s3 ls s3://BUCKET/KEY` (bitbake's existence check on s3:// mirrors) lists by
        # prefix: a prefix that is a whole key asks whether that object exists, as a HEAD does
        uri = m.group(6).split(b" ")
        query = uri[1].partition(b"?")[2] if len(uri) > 1 else b""
        prefixes = [v for k, _, v in (p.partition(b"=") for p in query.split(b"&"))
                    if k == b"prefix"]
        if not prefixes or not prefixes[0]:
            return (when, b"", b"", status, "s3")
        method, key = b"HEAD", prefixes[0]
    elif key == b"-":
        return (when, b"", b"", status, "s3")
    return (when, method, b"/" + bucket + b"/" + key, status, "s3")


def _parse_custom(line: bytes, pattern: Pattern[bytes], times: Dict[bytes, float]
                  ) -> Optional[_Parsed]:
    m = pattern.search(line)
    if m is None:
        return None
    stamp = m.group("time") if "time" in pattern.groupindex else None
    when = (times.get(stamp) or _parse_time(stamp, times)) if stamp else None
    return (when, m.group("method") or b"", m.group("path") or b"", int(m.group("status")),
            "custom")


def request_path(target: bytes) -> str:
    """The path of a request target: scheme and host dropped, no query, percent-decoded."""
    if target.startswith((b"http://", b"https://")):
        slash = target.find(b"/", target.find(b"//") + 2)
        target = target[slash:] if slash >= 0 else b"/"
    for stop in (b"?", b"#"):
        cut = target.find(stop)
        if cut >= 0:
            target = target[:cut]
    return urllib.parse.unquote_to_bytes(target).decode("utf-8", "surrogateescape")


# -- streams ----------------------------------------------------------------------------------


def bounded_lines(stream: IO[bytes], max_line: int = MAX_LINE) -> Iterator[Optional[bytes]]:
    """The lines of ``stream`` without their line end; None for each line over ``max_line``.

    At most ``max_line`` bytes of a line are held at once: the rest of a long line is read
    and dropped piece by piece.
    """
    readline = stream.readline
    while True:
        line = readline(max_line)
        if not line:
            return
        if line[-1:] != b"\n" and len(line) >= max_line:
            while True:
                rest = readline(max_line)
                if not rest or rest[-1:] == b"\n":
                    break
            yield None
            continue
        yield line.rstrip(b"\r\n")


def open_log(stream: IO[bytes]) -> IO[bytes]:
    """A line-readable stream of a log: gzip (by its magic bytes) decoded on the fly."""
    buffered = stream if hasattr(stream, "peek") else io.BufferedReader(
        cast(io.RawIOBase, stream))
    if cast(io.BufferedReader, buffered).peek(2)[:2] == b"\x1f\x8b":
        decoded = GzipStream(buffered, max_output=MAX_DECODED)
        return cast(IO[bytes], io.BufferedReader(decoded, buffer_size=1 << 16))
    return buffered


def scan(
    lines: Iterable[Optional[bytes]],
    stats: ScanStats,
    *,
    source: str = "",
    since: Optional[float] = None,
    custom: Optional[Pattern[bytes]] = None,
    on_lines: Optional[Callable[[int], None]] = None,
) -> Iterator[Request]:
    """The successful GET and HEAD requests of ``lines`` at or after ``since``.

    Every line is counted in ``stats``; malformed lines are counted (the first few kept as
    examples) and never stop the scan. ``on_lines(n)`` is told every :data:`LINES_REPORTED`
    lines (and at the end) how many more were read, for a progress display.
    """
    times: Dict[bytes, float] = {}
    # the same objects are requested again and again: decode each path once (bounded)
    decode = functools.lru_cache(maxsize=PATHS_CACHED)(request_path)
    # counted in locals and added to ``stats`` at the end: this loop runs per log line
    n = malformed = before = requests = used = 0
    newest = float("-inf") if stats.newest is None else stats.newest
    formats: Dict[str, int] = {}
    try:
        for line in lines:
            n += 1
            if on_lines is not None and not n % LINES_REPORTED:
                on_lines(LINES_REPORTED)
            parsed = parse_line(line, times, custom) if line is not None else None
            if parsed is None:
                malformed += 1
                if len(stats.examples) < EXAMPLES_KEPT:
                    excerpt = (f"(longer than {MAX_LINE} bytes)" if line is None
                               else line[:200].decode("utf-8", "replace"))
                    stats.examples.append((source, n, excerpt))
                continue
            when, method, target, status, fmt = parsed
            formats[fmt] = formats.get(fmt, 0) + 1
            if when is not None:
                if when > newest:
                    newest = when
                if since is not None and when < since:
                    before += 1
                    continue
            requests += 1
            if (method != b"GET" and method != b"HEAD") or not 200 <= status < 300:
                continue
            try:
                path = decode(target)
            except ValueError:
                malformed += 1
                continue
            used += 1
            yield Request(when, method.decode(), path, status, fmt)
    finally:
        if on_lines is not None:
            on_lines(n % LINES_REPORTED)
        stats.lines += n
        stats.malformed += malformed
        stats.before_since += before
        stats.requests += requests
        stats.used += used
        if newest != float("-inf"):
            stats.newest = newest
        for fmt, count in formats.items():
            stats.formats[fmt] = stats.formats.get(fmt, 0) + count
