"""``sstate-mirror touch SOURCE TARGET``: record use without uploading."""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict, Sequence

from ..backends import open_backend
from ..commands.listing import Selection
from ..commands.upload import execute_touch, plan_against_mirror
from ..transfer import Progress
from ..units import parse_age
from .common import (
    add_backend_options,
    add_jobs_option,
    add_selection_options,
    add_use_options,
    backend_options_from_args,
    check_source,
    compile_filter,
    jobs_from_args,
)
from .progress import make_progress
from .ui import UI


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "touch",
        parents=list(parents),
        help="mark the mirror copies of artifacts a build used as used (no upload)",
        description="For jobs that must not upload: refresh the last-use time of the mirror"
        " copies of the artifacts in SOURCE that bitbake used within --used-within, so that"
        " 'clean --max-age' keeps them: one file per group, and only where the mirror's"
        " record of its last use is older than --refresh-interval. Nothing is transferred.",
    )
    p.add_argument("source", metavar="SOURCE", help="local sstate cache (SSTATE_DIR)")
    p.add_argument("target", metavar="TARGET",
                   help="mirror: a directory, file://, http(s):// or s3:// URL")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="show what would be marked; change nothing")
    add_use_options(p)
    add_selection_options(p)
    add_jobs_option(p)
    add_backend_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ui: UI) -> int:
    with make_progress(ui) as progress:
        return _run(args, ui, progress)


def _run(args: argparse.Namespace, ui: UI, progress: Progress) -> int:
    used_within = parse_age(args.used_within, "--used-within")
    refresh_after = parse_age(args.refresh_interval, "--refresh-interval")
    selection = Selection(pn_filter=compile_filter(args.filter), arch=args.arch)
    options = backend_options_from_args(args)
    with open_backend(args.source, options) as source, \
            open_backend(args.target, options) as target:
        check_source(source)
        target.check()
        jobs = jobs_from_args(args, target.properties.connections)
        plan = plan_against_mirror(source, target, selection, now=time.time(),
                                   used_within=used_within, refresh_after=refresh_after,
                                   uploading=False, jobs=jobs, progress=progress)
        report: Dict[str, Any] = {"command": "touch", "source": source.url,
                                  "target": target.url, "dry_run": args.dry_run,
                                  "to_touch": plan.touches,
                                  "used_groups_fresh": plan.fresh_groups}
        for path in plan.touches:
            ui.detail(f"[TOUCH] {path}")
        if target.properties.touch == "none":
            ui.error(f"{target.url} cannot record use (no way to refresh a file's time)")
            return 1
        if args.dry_run:
            ui.info(f"dry run: would mark {len(plan.touches)} groups as used"
                    f" ({plan.fresh_groups} marked recently enough)")
            if ui.json_mode:
                ui.emit_json(report)
            return 0
        touched, failed = execute_touch(plan.touches, target, jobs=jobs,
                                        retries=options.retries, progress=progress)
    if failed and target.properties.touch == "none":
        # the backend found out on the first file: one line says it all
        ui.error(f"{target.url} cannot record use: the server cannot refresh a file's time"
                 " without a new upload")
    else:
        for path, err in sorted(failed.items()):
            ui.error(f"{path}: {err}")
    ui.info(f"touch: {touched} groups marked as used ({plan.fresh_groups} already marked"
            f" recently), {len(failed)} failed")
    if ui.json_mode:
        report.update(touched=touched, failed={p: str(e) for p, e in sorted(failed.items())})
        ui.emit_json(report)
    return 1 if failed else 0
