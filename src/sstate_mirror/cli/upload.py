"""``sstate-mirror upload SOURCE TARGET``."""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict, Sequence

from ..commands.upload import Skipped, execute_upload, plan_against_mirror
from ..errors import EXIT_FAILED, EXIT_OK, Interrupted, NotFoundError
from ..transfer import Progress
from ..units import format_size, parse_age
from .common import (
    SOURCE_HELP,
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
from .ui import UI
from .wording import plural


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub, parents, "upload", run, source=SOURCE_HELP,
        help="upload a local sstate cache to a mirror (only what is missing)",
        description="Upload the sstate files of SOURCE that TARGET lacks (or holds with a"
        " different size): signatures first, archives last, each atomically, in parallel."
        " Temporary, partial and unknown files are skipped. SOURCE is never modified.",
    )
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="show what would be uploaded; change nothing")
    add_use_options(p)
    p.add_argument("--no-touch", action="store_true",
                   help="do not mark the mirror copies of used artifacts as used")
    add_mirror_options(p)


@with_progress
def run(args: argparse.Namespace, ui: UI, progress: Progress) -> int:
    selection = selection_from_args(args)
    options = backend_options_from_args(args)
    # every value is checked before the mirror is contacted
    used_within = None if args.no_touch else parse_age(args.used_within, "--used-within")
    refresh_after = parse_age(args.refresh_interval, "--refresh-interval")
    with open_source_and_target(args, options) as (source, target):
        # SOURCE is judged before TARGET is contacted, let alone created
        listing = read_source(args, ui, source, selection, progress)
        mirror_exists = True
        try:
            target.check()
        except NotFoundError:
            mirror_exists = False
        if not mirror_exists and args.dry_run:  # a dry run does not create it
            ui.warn(f"TARGET {args.target!r} does not exist: an upload would create it")
        elif not mirror_exists:
            target.check(create=True)
            ui.warn(f"TARGET {args.target!r} did not exist: created it, a new empty mirror")
        settle_unless_dry_run(args, target)
        jobs = jobs_from_args(args, target.properties.connections)
        ui.info(f"uploading {source.url} to {target.url}")
        plan = plan_against_mirror(source, target, selection, now=time.time(),
                                   used_within=used_within, refresh_after=refresh_after,
                                   jobs=jobs, listing=listing, mirror_exists=mirror_exists,
                                   progress=progress)
        planned = plan.to_dict()  # what is due, marked or not
        if plan.touches and target.properties.touch == "none":
            ui.warn(f"{target.url} cannot record use; not marking"
                    f" {plural(len(plan.touches), 'file')}")
            plan.touches = []
        ui.info(f"  {plural(len(plan.transfers), 'file')} to upload"
                f" ({format_size(plan.bytes_to_send)}), {plan.present} already present;"
                f" {plural(len(plan.touches), 'used group')} to mark as used,"
                f" {plan.fresh_groups} marked recently enough")
        for t in plan.transfers:
            ui.detail(f"[UPLOAD] {t.path}" + (
                f" (replaces {t.remote_size} bytes)" if t.remote_size is not None else ""))
        for s in plan.skipped:
            ui.detail(f"[SKIP] {s.path}: {s.reason}")
        report: Dict[str, Any] = {"command": "upload", "source": source.url,
                                  "target": target.url, "dry_run": args.dry_run,
                                  "plan": planned}
        if args.dry_run:
            ui.info("dry run: nothing uploaded")
            if ui.json_mode:
                ui.emit_json(report)
            return EXIT_OK
        result = execute_upload(plan, source, target, jobs=jobs, retries=options.retries,
                                progress=progress)
    for path, err in sorted(result.failed.items()):
        ui.error(f"{path}: {err}")
    if result.touch_failed and target.properties.touch == "none":
        ui.warn(f"{target.url} cannot record use (the server cannot refresh a file's time"
                " without a new upload): clean --max-age counts from the upload time there")
    else:
        for path, err in sorted(result.touch_failed.items()):
            ui.warn(f"could not mark {path} as used: {err}")
    skipped_reasons = _count_reasons(plan.skipped)
    ui.info(
        ("upload interrupted: " if result.interrupted else "upload: ")
        + f"{plural(result.uploaded, 'file')} ({format_size(result.uploaded_bytes)}) uploaded,"
        f" {plan.present} already present, {len(plan.skipped)} skipped"
        + (f" ({skipped_reasons})" if skipped_reasons else "")
        + f", {plural(result.touched, 'group')} marked as used, {len(result.failed)} failed"
    )
    if ui.json_mode:
        report["result"] = result.to_dict()
        ui.emit_json(report)
    if result.interrupted:
        return Interrupted.exit_code
    return EXIT_FAILED if result.failed else EXIT_OK


def _count_reasons(skipped: Sequence[Skipped]) -> str:
    counts: Dict[str, int] = {}
    for s in skipped:
        counts[s.reason] = counts.get(s.reason, 0) + 1
    return ", ".join(plural(n, reason, _MANY.get(reason))
                     for reason, n in sorted(counts.items()))


#: Skip reasons whose plural is not the reason with an s.
_MANY = {"not an sstate file": "not sstate files"}
