"""``sstate-mirror clean TARGET --max-age AGE [--max-sig-age AGE]``."""

from __future__ import annotations

import argparse
from typing import Any, Dict, Sequence

from ..backends import open_backend
from ..commands.clean import RULES, CleanOptions, execute_clean, plan_clean
from ..commands.clock import mirror_clock
from ..commands.listing import Selection, list_artifacts, select
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
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="show what would be deleted and why; change nothing")
    add_selection_options(p)
    add_jobs_option(p)
    add_backend_options(p)
    p.set_defaults(run=run)


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
    with open_backend(args.target, backend_options) as target:
        jobs = jobs_from_args(args, target.properties.connections)
        target.check()
        clock = mirror_clock(target)  # refuses a mirror whose clock is far from ours
        ui.info(f"scanning {target.url}")
        artifacts = select(list_artifacts(target, progress=progress), selection)
        now = clock.now()
        plan = plan_clean(artifacts, options, now)
        scanned = ", ".join(f"{n} {kind}" for kind, n in sorted(plan.counts.items()))
        ui.info(f"  {len(artifacts)} files ({scanned or 'empty'})")
        for rule, tally in sorted(plan.by_rule().items()):
            ui.info(f"  {rule}: {tally['files']} files ({format_size(tally['bytes'])})"
                    f" - {RULES[rule]}")
        if plan.budget_unmet and plan.max_size is not None:
            ui.warn(f"the mirror stays at {format_size(plan.size_after)}, over --max-size"
                    f" {format_size(plan.max_size)}: {format_size(plan.protected_bytes)} were"
                    " used within --min-age and are kept")
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
            if ui.json_mode:
                ui.emit_json(report)
            return 0
        result = execute_clean(plan, target, jobs=jobs, retries=backend_options.retries,
                               progress=progress)
    for path, err in sorted(result.failed.items()):
        ui.error(f"{path}: {err}")
    ui.info(("clean interrupted: " if result.interrupted else "clean: ")
            + f"{result.deleted} files deleted, {format_size(result.freed_bytes)} freed,"
            f" {plan.kept} files kept, {len(result.failed)} failed")
    if ui.json_mode:
        report["result"] = result.to_dict()
        ui.emit_json(report)
    if result.interrupted:
        return Interrupted.exit_code
    return 1 if result.failed else 0
