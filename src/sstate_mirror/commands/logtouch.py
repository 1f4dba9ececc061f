"""``touch --access-log``: mark as used the groups a server's access log shows being read.

Three steps, each testable on its own:

1. :func:`read_use` reads the logs (:mod:`sstate_mirror.accesslog` parses them) and maps every
   successful ``GET``/``HEAD`` to the mirror's files by :class:`PathMatcher`, giving the
   *used groups* with the time of their newest request (:class:`LogUse`). Memory is bounded by
   the mirror's listing, never by the size of the logs.
2. :func:`plan_log_touch` (pure) decides which of those groups get a mark, by the rule of
   every use marking (:func:`usemark.plan_marks`): one file per group, and only where the
   group's last use on the mirror is older than the refresh interval.
3. The marks go through the same executor as every touch (:func:`upload.execute_touch`).

Mapping request paths needs no configuration in the common case: a request path such as
``/sstate/universal/9c/1e/sstate:zlib-native:...tar.zst`` is matched by its basename against
the listing, and a mirror path counts when it is a suffix of the request path at a ``/``. What
stands before it (``/sstate/``) is the URL prefix the mirror is served under. Requests of other
sites on the same server (``index.html``, other directories) match nothing and are counted as
unknown. When the same files are matched under more than one prefix (the same server serves
two copies, or a native prefix such as ``universal/`` could belong to either side), all are
counted as use — a false mark keeps a file longer, a missed one costs a rebuild — and the
result lists the prefixes so that the command can say so; ``--url-prefix`` then counts only
the requests below one prefix.

A ``HEAD`` alone counts as use: bitbake's setscene existence check sends one ``HEAD`` per
archive the build *needs*; it downloads only those not covered by other outputs, but the next
build that changes a recipe above them needs them, and evicting them turns that build's hits
into rebuilds. ``count_head=False`` counts only ``GET``.
"""

from __future__ import annotations

import functools
import json
import os
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Dict, List, NamedTuple, Optional, Pattern, Set, Tuple

from ..accesslog import PATHS_CACHED, ScanStats, bounded_lines, open_log, scan
from ..archive_streams import ArchiveDefect, LimitExceeded
from ..backends.base import Backend
from ..errors import BackendError, UsageError
from ..naming import GROUPED_KINDS, Artifact, Group
from ..transfer import Progress
from .usemark import MarkPlan, plan_marks

#: Unknown paths kept as examples for ``-v``.
UNKNOWN_EXAMPLES = 5


class LogSource(NamedTuple):
    """One log to read: a local file, standard input or an object of a log bucket."""

    name: str
    open: Callable[[], AbstractContextManager[IO[bytes]]]
    mtime: Optional[float] = None
    """When the log was last written, if known: a log last written before ``--since`` holds
    nothing newer and is not opened."""


def file_sources(paths: Iterable[str], stdin: Optional[IO[bytes]] = None) -> List[LogSource]:
    """Sources for log files named on the command line (``-`` is ``stdin``)."""
    sources = []
    for path in paths:
        if path == "-":
            if stdin is None:
                raise UsageError("--access-log -: no standard input to read")
            sources.append(LogSource("<stdin>", _keep_open(stdin)))
            continue
        try:
            st = os.stat(path)
        except OSError as exc:
            raise UsageError(f"--access-log {path}: {exc.strerror or exc}") from None
        if not os.path.isfile(path):
            raise UsageError(f"--access-log {path}: not a regular file")
        sources.append(LogSource(path, _opener(path), st.st_mtime))
    return sources


def backend_sources(backend: Backend) -> List[LogSource]:
    """Every object below a log bucket prefix, in key order (S3 names logs by time)."""
    def opener(path: str) -> Callable[[], AbstractContextManager[IO[bytes]]]:
        return lambda: backend.open(path)

    entries = sorted(backend.list(), key=lambda e: e.path)
    base = backend.url.rstrip("/")
    return [LogSource(f"{base}/{e.path}", opener(e.path), e.mtime) for e in entries]


def _opener(path: str) -> Callable[[], AbstractContextManager[IO[bytes]]]:
    @contextmanager
    def open_file() -> Iterator[IO[bytes]]:
        with open(path, "rb") as stream:
            yield stream
    return open_file


def _keep_open(stream: IO[bytes]) -> Callable[[], AbstractContextManager[IO[bytes]]]:
    @contextmanager
    def use() -> Iterator[IO[bytes]]:
        yield stream
    return use


# -- mapping request paths to mirror groups -----------------------------------------------------


def normalise_prefix(prefix: str) -> str:
    """``--url-prefix``: a path (``/sstate``) or a URL (``https://host/sstate/``) -> ``/sstate/``.

    For S3 logs the prefix is ``/BUCKET/KEY-PREFIX/`` (an ``s3://`` URL is read that way).
    """
    if "://" in prefix:
        parts = urllib.parse.urlsplit(prefix)
        path = (f"/{parts.netloc}{parts.path}" if parts.scheme == "s3" else parts.path)
    else:
        path = prefix
    path = urllib.parse.unquote(path)
    if not path.startswith("/"):
        path = "/" + path
    return path if path.endswith("/") else path + "/"


class PathMatcher:
    """Maps request paths to the mirror's group members (archives, ``.siginfo``, ``.sig``)."""

    def __init__(self, artifacts: Iterable[Artifact], url_prefix: Optional[str] = None) -> None:
        self.url_prefix = normalise_prefix(url_prefix) if url_prefix is not None else None
        self.group_of: Dict[str, str] = {}
        self.by_basename: Dict[str, List[str]] = {}
        for art in artifacts:
            if art.kind in GROUPED_KINDS:
                self.group_of[art.path] = art.group_key
                self.by_basename.setdefault(art.basename, []).append(art.path)

    def match(self, path: str) -> List[Tuple[str, str]]:
        """(URL prefix, mirror path) for every mirror file ``path`` may be a request of."""
        if self.url_prefix is not None:
            if not path.startswith(self.url_prefix):
                return []
            rel = path[len(self.url_prefix):]
            return [(self.url_prefix, rel)] if rel in self.group_of else []
        found = []
        for candidate in self.by_basename.get(path.rsplit("/", 1)[-1], ()):
            if path.endswith("/" + candidate):
                found.append((path[: len(path) - len(candidate)], candidate))
        return found


@dataclass
class LogUse:
    """What the logs say about the mirror: used groups, and what did not match."""

    stats: ScanStats = field(default_factory=ScanStats)
    used: Dict[str, float] = field(default_factory=dict)
    """Group key -> time of its newest successful request."""
    fetched: Set[str] = field(default_factory=set)
    """Groups with at least one ``GET`` (the others were only checked with ``HEAD``)."""
    matched: int = 0
    """Requests that matched a mirror file."""
    unknown: int = 0
    """Successful reads of paths that are no file of the mirror."""
    unknown_examples: List[str] = field(default_factory=list)
    head_ignored: int = 0
    """``HEAD`` requests not counted (``count_head=False``)."""
    prefixes: Dict[str, int] = field(default_factory=dict)
    """URL prefix -> requests matched below it (more than one: the mapping is ambiguous)."""

    @property
    def ambiguous(self) -> bool:
        return len(self.prefixes) > 1

    def to_dict(self) -> Dict[str, Any]:
        return {
            **self.stats.to_dict(),
            "requests_matched": self.matched,
            "groups_used": len(self.used),
            "groups_checked_only": len(self.used) - len(self.fetched),
            "unknown_paths": self.unknown,
            "head_requests_ignored": self.head_ignored,
            "url_prefixes": dict(sorted(self.prefixes.items(), key=lambda kv: -kv[1])),
            "ambiguous": self.ambiguous,
        }


def read_use(
    sources: Iterable[LogSource],
    matcher: PathMatcher,
    *,
    now: float,
    since: Optional[float] = None,
    custom: Optional[Pattern[bytes]] = None,
    count_head: bool = True,
    progress: Optional[Progress] = None,
) -> LogUse:
    """Read every log and collect the mirror groups it shows in use.

    A log that cannot be read to the end (a truncated gzip file, a read error) is recorded in
    ``stats.read_errors`` with what it gave so far counted; the others are read regardless.
    A request without a time (a custom format without one) counts as made ``now``.
    """
    progress = progress or Progress()
    use = LogUse()
    stats = use.stats
    match = functools.lru_cache(maxsize=PATHS_CACHED)(matcher.match)
    for source in sources:
        if since is not None and source.mtime is not None and source.mtime < since:
            stats.files_skipped += 1
            continue
        progress.phase(f"reading {source.name}", 0)
        try:
            with source.open() as raw:
                lines = bounded_lines(open_log(raw))
                for req in scan(lines, stats, source=source.name, since=since, custom=custom,
                                on_lines=progress.advance):
                    if req.method == "HEAD" and not count_head:
                        use.head_ignored += 1
                        continue
                    _record(use, matcher.group_of, match(req.path), req.path, req.method,
                            now if req.time is None else req.time)
        except (OSError, BackendError, ArchiveDefect, LimitExceeded) as exc:
            stats.read_errors.append((source.name, str(exc)))
        progress.done()
    return use


def _record(use: LogUse, group_of: Mapping[str, str], found: List[Tuple[str, str]], path: str,
            method: str, when: float) -> None:
    if not found:
        use.unknown += 1
        if len(use.unknown_examples) < UNKNOWN_EXAMPLES:
            use.unknown_examples.append(path)
        return
    use.matched += 1
    for prefix, rel in found:
        use.prefixes[prefix] = use.prefixes.get(prefix, 0) + 1
        key = group_of[rel]
        if when > use.used.get(key, float("-inf")):
            use.used[key] = when
        if method == "GET":
            use.fetched.add(key)


# -- the plan ---------------------------------------------------------------------------------


@dataclass
class LogTouchPlan:
    """Which used groups get a new mark, and on which files."""

    marks: MarkPlan = field(default_factory=MarkPlan)

    @property
    def touches(self) -> List[str]:
        return self.marks.marks

    def to_dict(self) -> Dict[str, Any]:
        return {"groups_to_mark": len(self.marks.marks),
                "groups_already_fresh": self.marks.fresh, "to_touch": list(self.marks.marks)}


def plan_log_touch(used: Mapping[str, float], groups: Mapping[str, Group], *, now: float,
                   refresh_after: float, touch_cost: str) -> LogTouchPlan:
    """Pure: the marks that record the logged use of ``used`` (group key -> request time).

    The same rule as every use marking (:func:`usemark.plan_marks`): one mark per stale
    group, on its cheapest member; groups marked within ``refresh_after`` cost nothing.
    """
    return LogTouchPlan(plan_marks(used, groups, now=now, refresh_after=refresh_after,
                                   touch_cost=touch_cost))


# -- state between runs -----------------------------------------------------------------------


def read_state(path: str) -> Optional[float]:
    """The newest request time a previous run recorded in ``path`` (None: no such file)."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 16)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"--state {path}: {exc.strerror or exc}") from None
    try:
        value = json.loads(data)["newest_request"]
        if value is None:
            return None
        return float(value)
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"--state {path}: not a state file written by sstate-mirror",
                         hint="remove it to start over from --since") from None


def write_state(path: str, newest: float, target: str) -> None:
    """Record ``newest`` atomically: a crash leaves the previous state, never half a file."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"newest_request": newest, "target": target}, f)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"--state {path}: cannot write: {exc.strerror or exc}") from None
