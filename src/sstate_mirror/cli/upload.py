"""``sstate-mirror upload SOURCE TARGET``."""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict, Sequence

from ..backends import open_backend
from ..commands.listing import Selection
from ..commands.upload import Skipped, execute_upload, plan_against_mirror
from ..errors import Interrupted, NotFoundError
from ..transfer import Progress
from ..units import format_size, parse_age
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
        "upload",
        parents=list(parents),
        help="upload a local sstate cache to a mirror (only what is missing)",
        description="Upload the sstate files of SOURCE that TARGET lacks (or holds with a"
        " different size): signatures first, archives last, each atomically, in parallel."
        " Temporary, partial and unknown files are skipped. SOURCE is never modified.",
    )
    p.add_argument("source", metavar="SOURCE", help="local sstate cache (SSTATE_DIR)")
    p.add_argument("target", metavar="TARGET",
                   help="mirror: a directory, file://, http(s):// or s3:// URL")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="show what would be uploaded; change nothing")
    add_use_options(p)
    p.add_argument("--no-touch", action="store_true",
                   help="do not mark the mirror copies of used artifacts as used")
    add_selection_options(p)
    add_jobs_option(p)
    add_backend_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ui: UI) -> int:
    with make_progress(ui) as progress:
        return _run(args, ui, progress)


def _run(args: argparse.Namespace, ui: UI, progress: Progress) -> int:
    selection = Selection(pn_filter=compile_filter(args.filter), arch=args.arch)
    options = backend_options_from_args(args)
    # every value is checked before the mirror is contacted
    used_within = None if args.no_touch else parse_age(args.used_within, "--used-within")
    refresh_after = parse_age(args.refresh_interval, "--refresh-interval")
    with open_backend(args.source, options) as source, \
            open_backend(args.target, options) as target:
        check_source(source)
        mirror_exists = True
        try:
            target.check(create=not args.dry_run)
        except NotFoundError:
            if not args.dry_run:
                raise
            mirror_exists = False  # a dry run does not create it: everything is missing
        jobs = jobs_from_args(args, target.properties.connections)
        ui.info(f"uploading {source.url} to {target.url}")
        plan = plan_against_mirror(source, target, selection, now=time.time(),
                                   used_within=used_within, refresh_after=refresh_after,
                                   jobs=jobs, mirror_exists=mirror_exists, progress=progress)
        if plan.touches and target.properties.touch == "none":
            ui.warn(f"{target.url} cannot record use; not marking {len(plan.touches)} files")
            plan.touches = []
        ui.info(f"  {len(plan.transfers)} files to upload ({format_size(plan.bytes_to_send)}),"
                f" {plan.present} already present; {len(plan.touches)} used groups to mark as"
                f" used, {plan.fresh_groups} marked recently enough")
        for t in plan.transfers:
            ui.detail(f"[UPLOAD] {t.path}" + (
                f" (replaces {t.remote_size} bytes)" if t.remote_size is not None else ""))
        for s in plan.skipped:
            ui.detail(f"[SKIP] {s.path}: {s.reason}")
        report: Dict[str, Any] = {"command": "upload", "source": source.url,
                                  "target": target.url, "dry_run": args.dry_run,
                                  "plan": plan.to_dict()}
        if args.dry_run:
            ui.info("dry run: nothing uploaded")
            if ui.json_mode:
                ui.emit_json(report)
            return 0
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
        + f"{result.uploaded} files ({format_size(result.uploaded_bytes)}) uploaded,"
        f" {plan.present} already present, {len(plan.skipped)} skipped"
        + (f" ({skipped_reasons})" if skipped_reasons else "")
        + f", {result.touched} groups marked as used, {len(result.failed)} failed"
    )
    if ui.json_mode:
        report["result"] = result.to_dict()
        ui.emit_json(report)
    if result.interrupted:
        return Interrupted.exit_code
    return 1 if result.failed else 0


def _count_reasons(skipped: Sequence[Skipped]) -> str:
    counts: Dict[str, int] = {}
    for s in skipped:
        counts[s.reason] = counts.get(s.reason, 0) + 1
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
