"""``sstate-mirror clean TARGET --max-age AGE [--max-sig-age AGE]``."""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict, Sequence

from ..backends import open_backend
from ..commands.clean import (
    RULES,
    CleanOptions,
    CleanPlan,
    execute_clean,
    plan_clean,
    spare_pinned,
)
from ..commands.clock import mirror_clock
from ..commands.listing import Selection, list_artifacts, select
from ..commands.pins import read_pins
from ..errors import Interrupted
from ..transfer import Progress
from ..units import format_size, parse_age, parse_size
from .common import (
    add_backend_options,
    add_jobs_option,
    add_selection_options,
    backend_options_from_args,
    compile_filter,
    jobs_from_args,
)
from .hashserve import add_hashserve_options, check_admin, clean_server, hashserve_from_args
from .pin import load_sources
from .progress import make_progress
from .ui import UI


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "clean",
        parents=list(parents),
        help="delete unused artifacts and leftovers from a mirror",
        description="Delete artifact groups (archive + .siginfo + .sig) not used for"
        " --max-age, the least recently used ones beyond --max-size, hashes beyond"
        " --max-versions, orphaned signatures and leftovers of interrupted uploads. Use is"
        " the last upload or touch (and on a directory mirror bitbake's own access-time mark"
        " on the .siginfo). Nothing is deleted if the listing fails, nor anything used within"
        " --min-age. AGE is a whole number with a unit w, d, h, min or s (30d; m also means"
        " minutes, but not in --max-age and --max-sig-age, where 30m could mean months);"
        " SIZE a number with K, M, G or T (binary).",
    )
    p.add_argument("target", metavar="TARGET",
                   help="mirror: a directory, file://, http(s):// or s3:// URL")
    p.add_argument("--max-age", metavar="AGE",
                   help="delete artifacts not used for AGE (e.g. 30d, 8w)")
    p.add_argument("--max-sig-age", metavar="AGE",
                   help="delete signatures without archive at least this old"
                        " (default and minimum: --max-age)")
    p.add_argument("--max-size", metavar="SIZE",
                   help="then evict least recently used artifacts until the mirror fits"
                        " (e.g. 500G; 1G = 1024^3 bytes)")
    p.add_argument("--max-versions", type=int, metavar="N",
                   help="keep at most N most recently used hashes per recipe, arch and task")
    p.add_argument("--min-age", metavar="AGE", default="1h",
                   help="never delete by any rule what was used within AGE (default: 1h);"
                        " temporary files go by their own age (a day)")
    p.add_argument("--keep", action="append", default=[], metavar="SOURCE",
                   help="also keep the groups SOURCE names, for this run only (as 'pin"
                        " --from' reads it: a locked-sigs.inc, a list, a cache or mirror)")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="show what would be deleted and why; change nothing")
    add_selection_options(p)
    add_jobs_option(p)
    add_backend_options(p)
    add_hashserve_options(p, "after the clean, keep on this hash equivalence server only the"
                             " unihashes of archives still on the mirror (needs @db-admin)")
    p.set_defaults(run=run)


def _report_pinned(ui: UI, plan: CleanPlan) -> None:
    """What pins kept that a rule would have deleted: per pin, and each file with -vv."""
    by_pin: Dict[str, int] = {}
    for spared in plan.pinned:
        by_pin[spared.pin] = by_pin.get(spared.pin, 0) + 1
        ui.detail(f"[PINNED] {spared.path} ({spared.rule}; pin {spared.pin})", 2)
    for pin, files in sorted(by_pin.items()):
        ui.info(f"  pinned: {files} files a rule would have deleted are kept by {pin}")


def run(args: argparse.Namespace, ui: UI) -> int:
    with make_progress(ui) as progress:
        return _run(args, ui, progress)


def _run(args: argparse.Namespace, ui: UI, progress: Progress) -> int:
    # every value is checked before the mirror is contacted
    selection = Selection(pn_filter=compile_filter(args.filter), arch=args.arch)
    options = CleanOptions(
        max_age=(parse_age(args.max_age, "--max-age", deletes=True)
                 if args.max_age is not None else None),
        max_sig_age=(parse_age(args.max_sig_age, "--max-sig-age", deletes=True)
                     if args.max_sig_age is not None else None),
        max_size=parse_size(args.max_size, "--max-size") if args.max_size is not None else None,
        max_versions=args.max_versions,
        min_age=parse_age(args.min_age, "--min-age"),
    )
    if options.max_age is not None and options.max_age < options.min_age:
        ui.warn(f"--max-age {args.max_age} is less than --min-age {args.min_age}: what was"
                f" used within {args.min_age} is kept (lower --min-age to delete it too)")
    backend_options = backend_options_from_args(args)
    keep = load_sources(args.keep, backend_options, ui) if args.keep else {}
    hashserve = hashserve_from_args(args)
    if hashserve is not None:
        check_admin(hashserve, ui)  # before the mirror is touched
    with open_backend(args.target, backend_options) as target:
        jobs = jobs_from_args(args, target.properties.connections)
        target.check()
        clock = mirror_clock(target)  # refuses a mirror whose clock is far from ours
        ui.info(f"scanning {target.url}")
        listing = list_artifacts(target, progress=progress)
        now = clock.now()
        pins = read_pins(target, now)
        pins.add_keep("--keep", keep)
        for pin in pins.expired:
            ui.warn(f"pin {pin.name} has expired and keeps nothing any more"
                    f" (sstate-mirror unpin {target.url} {pin.name})")
        artifacts = select(listing, selection)
        plan = plan_clean(artifacts, options, now, pins)
        scanned = ", ".join(f"{n} {kind}" for kind, n in sorted(plan.counts.items()))
        ui.info(f"  {len(artifacts)} files ({scanned or 'empty'})")
        for rule, tally in sorted(plan.by_rule().items()):
            ui.info(f"  {rule}: {tally['files']} files ({format_size(tally['bytes'])})"
                    f" - {RULES[rule]}")
        _report_pinned(ui, plan)
        if plan.budget_unmet and plan.max_size is not None:
            if plan.pinned_bytes > plan.max_size:
                ui.warn(f"pins alone keep {format_size(plan.pinned_bytes)}, more than"
                        f" --max-size {format_size(plan.max_size)}")
            if plan.protected_bytes:
                ui.warn(f"the mirror stays at {format_size(plan.size_after)}, over --max-size"
                        f" {format_size(plan.max_size)}: {format_size(plan.protected_bytes)}"
                        " were used within --min-age and are kept")
        for d in plan.deletions:
            ui.detail(f"[DELETE] {d.path} ({d.rule})")
        if plan.unknown:
            ui.detail(f"  {len(plan.unknown)} unknown files left alone")
        report: Dict[str, Any] = {"command": "clean", "target": target.url,
                                  "dry_run": args.dry_run, "now": now,
                                  "clock_offset": clock.offset, "plan": plan.to_dict()}
        if args.dry_run:
            ui.info(f"dry run: would delete {len(plan.deletions)} files,"
                    f" freeing {format_size(plan.bytes_to_free)}")
            status = 0
            if hashserve is not None:
                status = clean_server(hashserve, ui, listing, plan, None, report)
            if ui.json_mode:
                ui.emit_json(report)
            return status
        # a pin stored while this clean was planning protects from here on
        fresh = read_pins(target, time.time())
        fresh.add_keep("--keep", keep)
        late = spare_pinned(plan, fresh)
        if late:
            ui.info(f"  {len(late)} files kept by a pin made during this run")
        result = execute_clean(plan, target, jobs=jobs, retries=backend_options.retries,
                               progress=progress)
    for path, err in sorted(result.failed.items()):
        ui.error(f"{path}: {err}")
    if result.deleted_again:
        ui.warn(f"{len(result.deleted_again)} archives were uploaded again while the clean"
                " deleted their signatures: deleted again, so that none stays without its"
                " .siginfo (the next upload sends them whole)")
    ui.info(("clean interrupted: " if result.interrupted else "clean: ")
            + f"{result.deleted} files deleted, {format_size(result.freed_bytes)} freed,"
            f" {plan.kept} files kept, {len(result.failed)} failed")
    server_status = 0
    if hashserve is not None:
        server_status = clean_server(hashserve, ui, listing, plan, result, report)
    if ui.json_mode:
        report["result"] = result.to_dict()
        ui.emit_json(report)
    if result.interrupted:
        return Interrupted.exit_code
    return server_status or (1 if result.failed else 0)
