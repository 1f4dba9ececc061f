"""``sstate-mirror touch TARGET --access-log LOG...``: record the use a server's log shows."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Dict, List, Optional

from ..accesslog import MAX_LINE, LogFormatError, compile_custom
from ..backends import open_backend, scheme_of
from ..commands.listing import list_artifacts
from ..commands.logtouch import (
    LogSource,
    LogUse,
    PathMatcher,
    backend_sources,
    file_sources,
    plan_log_touch,
    read_state,
    read_use,
    write_state,
)
from ..commands.upload import execute_touch
from ..errors import EXIT_FAILED, EXIT_OK, BackendError, UsageError
from ..naming import group_artifacts
from ..transfer import Progress
from ..units import parse_age, parse_time_or_age
from .common import backend_options_from_args, jobs_from_args, settle_unless_dry_run
from .ui import UI
from .wording import plural


def add_access_log_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "use from a server's access log",
        "With --access-log, TARGET alone (no SOURCE): every group the log shows read"
        " successfully (2xx GET or HEAD) is marked as used. Formats are recognised per line:"
        " nginx/Apache common, combined, vhost_combined, and S3 server access logs; plain or"
        " gzip. See docs/retention.md.")
    g.add_argument("--access-log", nargs="+", metavar="LOG",
                   help="log files (rotated sets in one go; '-' reads standard input), or an"
                        " s3://BUCKET/PREFIX/ holding S3 server access logs")
    g.add_argument("--url-prefix", metavar="PREFIX",
                   help="count only requests below this URL path (e.g. /sstate/; for S3 logs"
                        " /BUCKET/PREFIX/): settles an ambiguous mapping")
    g.add_argument("--since", metavar="TIME|AGE",
                   help="skip requests older than this: an age (2d) or a UTC date or time"
                        " (2026-12-01, 2026-12-01T06:00:00Z)")
    g.add_argument("--state", metavar="FILE",
                   help="remember the newest request read in FILE and skip older ones next"
                        " time (for a nightly job over the current and rotated logs)")
    g.add_argument("--get-only", action="store_true",
                   help="count only GET; by default a HEAD (bitbake's existence check of an"
                        " archive the build needs) counts as use too")
    g.add_argument("--log-format", metavar="REGEX",
                   help="a custom format: a regular expression with the named groups method,"
                        " path, status and optionally time")


def run_access_log(args: argparse.Namespace, ui: UI, progress: Progress) -> int:
    """The ``touch --access-log`` command (SOURCE already checked to be absent)."""
    now = time.time()
    refresh_after = parse_age(args.refresh_interval, "--refresh-interval")
    since = parse_time_or_age(args.since, now, "--since") if args.since else None
    custom = None
    if args.log_format is not None:
        try:
            custom = compile_custom(args.log_format)
        except LogFormatError as exc:
            raise UsageError(f"--log-format: {exc}") from None
    state_mark = read_state(args.state) if args.state else None
    if state_mark is not None and (since is None or state_mark > since):
        since = state_mark
    options = backend_options_from_args(args)
    log_urls = [a for a in args.access_log if a != "-" and scheme_of(a) != "file"]
    files = [a for a in args.access_log if a not in log_urls]
    if args.access_log.count("-") > 1:
        raise UsageError("--access-log: '-' (standard input) can be read only once")
    sources: List[LogSource] = file_sources(files, sys.stdin.buffer)
    with open_backend(args.target, options) as target:
        target.check()
        settle_unless_dry_run(args, target)
        log_backends = [open_backend(url, options) for url in log_urls]
        try:
            for backend in log_backends:
                backend.check()
                sources.extend(backend_sources(backend))
            artifacts = list_artifacts(target, progress=progress)
            matcher = PathMatcher(artifacts, args.url_prefix)
            use = read_use(sources, matcher, now=now, since=since, custom=custom,
                           count_head=not args.get_only, progress=progress)
        finally:
            for backend in log_backends:
                backend.close()
        plan = plan_log_touch(use.used, group_artifacts(artifacts), now=now,
                              refresh_after=refresh_after,
                              touch_cost=target.properties.touch_cost)
        _explain(ui, use, plan.touches)
        report: Dict[str, Any] = {"command": "touch", "target": target.url,
                                  "dry_run": args.dry_run, "since": since, "logs": use.to_dict(),
                                  "plan": plan.to_dict()}
        touched = 0
        failed: Dict[str, BackendError] = {}
        if not args.dry_run and plan.touches:
            if target.properties.touch == "none":
                ui.error(f"{target.url} cannot record use (no way to refresh a file's time)")
                return EXIT_FAILED
            jobs = jobs_from_args(args, target.properties.connections)
            touched, failed = execute_touch(plan.touches, target, jobs=jobs,
                                            retries=options.retries, progress=progress)
    for path, err in sorted(failed.items()):
        ui.error(f"{path}: {err}")
    stats = use.stats
    verb = "would mark" if args.dry_run else "marked"
    ui.info(f"touch: {plural(stats.lines, 'line')} read ({stats.malformed} malformed),"
            f" {plural(use.matched, 'request')} matched, {verb}"
            f" {plural(len(plan.touches), 'group')} as used"
            f" (one file each), {plan.marks.fresh} already fresh,"
            f" {plural(use.unknown, 'request')} of unknown paths")
    report.update(touched=touched, failed={p: str(e) for p, e in sorted(failed.items())})
    complete = not failed and not stats.read_errors
    if args.state and not args.dry_run and complete and stats.newest is not None:
        if state_mark is None or stats.newest > state_mark:
            write_state(args.state, stats.newest, target.url)
        report["state"] = {"file": args.state, "newest_request": stats.newest}
    if ui.json_mode:
        ui.emit_json(report)
    return EXIT_OK if complete else EXIT_FAILED


def _explain(ui: UI, use: LogUse, touches: List[str]) -> None:
    stats = use.stats
    for name, error in stats.read_errors:
        ui.error(f"{name}: could not be read to the end: {error}")
    if stats.malformed:
        ui.detail(f"{plural(stats.malformed, 'line')} in no known log format (or longer than"
                  f" {MAX_LINE} bytes); the first ones:")
        for name, number, excerpt in stats.examples:
            ui.detail(f"  {name}:{number}: {excerpt}")
    if use.ambiguous:
        listed = ", ".join(f"{p} ({n} requests)" for p, n in
                           sorted(use.prefixes.items(), key=lambda kv: -kv[1])[:5])
        ui.warn(f"requests under {len(use.prefixes)} URL prefixes match this mirror's files:"
                f" {listed}; all are counted as use. Give --url-prefix to count only one.")
    if use.unknown and not use.matched:
        ui.warn(f"none of the successful reads in the logs ({use.unknown}) is of a file of"
                " this mirror: is TARGET the mirror the server serves?")
    for path in use.unknown_examples:
        ui.detail(f"[UNKNOWN] {path}", level=2)
    for path in touches:
        ui.detail(f"[TOUCH] {path}")


def source_given_with_log(args: argparse.Namespace) -> Optional[str]:
    """An error message when SOURCE and --access-log are both given."""
    if args.access_log is not None and args.source is not None:
        return ("touch --access-log takes TARGET only (the log says what was used);"
                f" remove {args.source!r}")
    return None
