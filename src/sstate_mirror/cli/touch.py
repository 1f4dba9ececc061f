"""``sstate-mirror touch SOURCE TARGET``: record use without uploading.

``touch TARGET --access-log LOG...`` records the use a server's access log shows instead
(:mod:`.touch_log`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict, Sequence

from ..commands.upload import execute_touch, plan_against_mirror
from ..errors import EXIT_FAILED, EXIT_OK, UsageError
from ..transfer import Progress
from ..units import parse_age
from .common import (
    SOURCE_HELP,
    TARGET_HELP,
    add_command,
    add_mirror_options,
    add_use_options,
    backend_options_from_args,
    jobs_from_args,
    open_source_and_target,
    read_source,
    selection_from_args,
    settle_unless_dry_run,
    with_progress,
)
from .touch_log import add_access_log_options, run_access_log, source_given_with_log
from .ui import UI
from .wording import plural


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub, parents, "touch", run, source=None, target=None,
        help="mark the mirror copies of artifacts a build used as used (no upload)",
        description="For jobs that must not upload: refresh the last-use time of the mirror"
        " copies of the artifacts in SOURCE that bitbake used within --used-within, so that"
        " 'clean --max-age' keeps them: one file per group, and only where the mirror's"
        " record of its last use is older than --refresh-interval. Nothing is transferred."
        " With --access-log (TARGET only): mark what the mirror server's access log shows"
        " builds read.",
    )
    # SOURCE is optional: with --access-log the server's log says what was used
    p.add_argument("source", metavar="SOURCE", nargs="?",
                   help=f"{SOURCE_HELP}; not with --access-log")
    p.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="show what would be marked; change nothing")
    add_use_options(p)
    add_access_log_options(p)
    add_mirror_options(p)


@with_progress
def run(args: argparse.Namespace, ui: UI, progress: Progress) -> int:
    if args.access_log is not None:
        problem = source_given_with_log(args)
        if problem:
            raise UsageError(problem)
        return run_access_log(args, ui, progress)
    if args.source is None:
        raise UsageError("touch needs SOURCE and TARGET, or TARGET --access-log LOG")
    used_within = parse_age(args.used_within, "--used-within")
    refresh_after = parse_age(args.refresh_interval, "--refresh-interval")
    selection = selection_from_args(args)
    options = backend_options_from_args(args)
    with open_source_and_target(args, options) as (source, target):
        listing = read_source(args, ui, source, selection, progress)
        target.check()
        settle_unless_dry_run(args, target)
        jobs = jobs_from_args(args, target.properties.connections)
        plan = plan_against_mirror(source, target, selection, now=time.time(),
                                   used_within=used_within, refresh_after=refresh_after,
                                   uploading=False, jobs=jobs, listing=listing,
                                   progress=progress)
        report: Dict[str, Any] = {"command": "touch", "source": source.url,
                                  "target": target.url, "dry_run": args.dry_run,
                                  "to_touch": plan.touches,
                                  "used_groups_fresh": plan.fresh_groups}
        for path in plan.touches:
            ui.detail(f"[TOUCH] {path}")
        if plan.touches and target.properties.touch == "none":
            ui.error(f"{target.url} cannot record use (no way to refresh a file's time)")
            return EXIT_FAILED
        if args.dry_run:
            ui.info(f"dry run: would mark {plural(len(plan.touches), 'group')} as used"
                    f" ({plan.fresh_groups} marked recently enough)")
            if ui.json_mode:
                ui.emit_json(report)
            return EXIT_OK
        touched, failed = execute_touch(plan.touches, target, jobs=jobs,
                                        retries=options.retries, progress=progress)
    if failed and target.properties.touch == "none":
        # the backend found out on the first file: one line says it all
        ui.error(f"{target.url} cannot record use: the server cannot refresh a file's time"
                 " without a new upload")
    else:
        for path, err in sorted(failed.items()):
            ui.error(f"{path}: {err}")
    ui.info(f"touch: {plural(touched, 'group')} marked as used ({plan.fresh_groups} already"
            f" marked recently), {len(failed)} failed")
    if ui.json_mode:
        report.update(touched=touched, failed={p: str(e) for p, e in sorted(failed.items())})
        ui.emit_json(report)
    return EXIT_FAILED if failed else EXIT_OK
