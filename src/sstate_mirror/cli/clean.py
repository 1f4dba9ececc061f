"""``sstate-mirror clean TARGET --max-age AGE [--max-sig-age AGE]``."""

from __future__ import annotations

import argparse
import shlex
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
from ..commands.listing import select
from ..commands.pins import read_pins
from ..commands.recheck import spare_changed
from ..errors import Interrupted, UsageError
from ..transfer import Progress
from ..units import format_size, parse_age, parse_size
from .common import (
    add_command,
    add_mirror_options,
    backend_options_from_args,
    jobs_from_args,
    selection_from_args,
    warn_if_none_selected,
    with_progress,
)
from .hashserve import add_hashserve_options, check_admin, clean_server, hashserve_from_args
from .inventory import add_inventory_options, check_inventory_args, list_mirror
from .pin import load_sources
from .ui import UI
from .wording import plural


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub, parents, "clean", run,
        help="delete unused artifacts and leftovers from a mirror",
        description="Delete artifact groups (archive + .siginfo + .sig) not used for"
        " --max-age, the least recently used ones beyond --max-size, hashes beyond"
        " --max-versions, orphaned signatures and leftovers of interrupted uploads. Use is"
        " the last upload or touch (and on a directory mirror bitbake's own access-time mark"
        " on the .siginfo). Nothing is deleted if the listing fails, nor anything used within"
        " --min-age. AGE is a whole number with a unit w, d, h, min or s (30d; a bare number"
        " is days, with a warning, as in isar-sstate; m also means minutes, but not in"
        " --max-age and --max-sig-age, where 30m could mean months); SIZE a number with K, M,"
        " G or T (binary).",
    )
    p.add_argument("--max-age", metavar="AGE",
                   help="delete artifacts not used for AGE (e.g. 30d, 8w)")
    p.add_argument("--max-sig-age", metavar="AGE",
                   help="delete signatures without archive at least this old"
                        " (default and minimum: --max-age; a smaller one is raised to it)")
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
    add_mirror_options(p)
    add_inventory_options(p, clean=True)
    add_hashserve_options(p, "after the clean, keep on this hash equivalence server only the"
                             " unihashes of archives still on the mirror (needs @db-admin)")


def _isar_sstate_ages(args: argparse.Namespace, ui: UI) -> None:
    """isar-sstate's command lines, with their meaning (and a warning where it surprises).

    isar-sstate read an age without unit as days and raised a --max-sig-age below --max-age;
    both still work. Its default rule (--max-age 1d when none is given) would delete most of
    a mirror when a script forgot an option, so here no rule is an error that gives the
    command line doing what isar-sstate did.
    """
    if args.max_age is None and args.max_size is None and args.max_versions is None:
        raise UsageError(
            "clean needs a rule: --max-age, --max-size and/or --max-versions (isar-sstate"
            " deleted everything unused for a day when none was given)",
            hint="to do what isar-sstate did: sstate-mirror clean"
                 f" {shlex.quote(args.target)} --max-age 1d")
    for option in ("max_age", "max_sig_age"):
        value = getattr(args, option)
        if value is not None and value.strip().isdigit():
            name = "--" + option.replace("_", "-")
            ui.warn(f"{name} {value} has no unit: taken as {value.strip()}d (days), as"
                    f" isar-sstate did; write {name} {value.strip()}d")
            setattr(args, option, value.strip() + "d")
    if args.max_age is not None and args.max_sig_age is not None and (
            parse_age(args.max_sig_age, "--max-sig-age", deletes=True)
            < parse_age(args.max_age, "--max-age", deletes=True)):
        ui.warn(f"--max-sig-age {args.max_sig_age} is smaller than --max-age {args.max_age}:"
                f" raised to {args.max_age} (signatures are kept as long as their archives)")
        args.max_sig_age = args.max_age


def _report_pinned(ui: UI, plan: CleanPlan) -> None:
    """What pins kept that a rule would have deleted: per pin, and each file with -vv."""
    by_pin: Dict[str, int] = {}
    for spared in plan.pinned:
        by_pin[spared.pin] = by_pin.get(spared.pin, 0) + 1
        ui.detail(f"[PINNED] {spared.path} ({spared.rule}; pin {spared.pin})", 2)
    for pin, files in sorted(by_pin.items()):
        ui.info(f"  pinned: {plural(files, 'file')} a rule would have deleted"
                f" {'is' if files == 1 else 'are'} kept by {pin}")


@with_progress
def run(args: argparse.Namespace, ui: UI, progress: Progress) -> int:
    # every value is checked before the mirror is contacted
    _isar_sstate_ages(args, ui)
    selection = selection_from_args(args)
    options = CleanOptions(
        max_age=(parse_age(args.max_age, "--max-age", deletes=True)
                 if args.max_age is not None else None),
        max_sig_age=(parse_age(args.max_sig_age, "--max-sig-age", deletes=True)
                     if args.max_sig_age is not None else None),
        max_size=parse_size(args.max_size, "--max-size") if args.max_size is not None else None,
        max_versions=args.max_versions,
        min_age=parse_age(args.min_age, "--min-age"),
    )
    check_inventory_args(args)
    if args.inventory is not None and args.hashserve is not None:
        raise UsageError("clean --inventory cannot prune --hashserve: archives uploaded after"
                         " the report are not in it, and their unihashes would be deleted",
                         hint="run the clean with --hashserve without --inventory")
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
        listing, inventory = list_mirror(args, ui, target, backend_options,
                                         clock.now(), progress)
        now = clock.now()
        warn_if_none_selected(ui, args, selection, listing, target.url)
        pins = read_pins(target, now)
        pins.add_keep("--keep", keep)
        for pin in pins.expired:
            ui.warn(f"pin {pin.name} has expired and keeps nothing any more"
                    f" (sstate-mirror unpin {target.url} {pin.name})")
        artifacts = select(listing, selection)
        plan = plan_clean(artifacts, options, now, pins)
        scanned = ", ".join(f"{n} {kind}" for kind, n in sorted(plan.counts.items()))
        ui.info(f"  {plural(len(artifacts), 'file')} ({scanned or 'empty'})")
        for rule, tally in sorted(plan.by_rule().items()):
            ui.info(f"  {rule}: {plural(tally['files'], 'file')} ({format_size(tally['bytes'])})"
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
        if plan.versions_protected:
            ui.warn(f"{plural(plan.versions_protected, 'hash', 'hashes')} beyond --max-versions"
                    f" {args.max_versions} {'was' if plan.versions_protected == 1 else 'were'}"
                    f" used within --min-age {args.min_age} and"
                    f" {'is' if plan.versions_protected == 1 else 'are'} kept")
        if ui.shows_detail():
            for d in plan.deletions:
                ui.detail(f"[DELETE] {d.path} ({d.rule})")
        if plan.unknown:
            ui.detail(f"  {plural(len(plan.unknown), 'unknown file')} left alone")
        report: Dict[str, Any] = {"command": "clean", "target": target.url,
                                  "dry_run": args.dry_run, "now": now,
                                  "clock_offset": clock.offset,
                                  # a line per file: made only when printed
                                  "plan": plan.to_dict() if ui.json_mode else {}}
        if inventory is not None:
            report["inventory"] = {"url": inventory.url, "created": inventory.created}
        if args.dry_run:
            ui.info(f"dry run: would delete {plural(len(plan.deletions), 'file')},"
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
            ui.info(f"  {plural(len(late), 'file')} kept by a pin made during this run")
        if inventory is not None:
            changed = spare_changed(plan, target, inventory.created, jobs=jobs,
                                    progress=progress)
            for d in changed:
                ui.detail(f"[KEPT] {d.path} (its group changed since the inventory, or it is"
                          " gone)")
            if changed:
                ui.info(f"  {plural(len(changed), 'file')} changed or gone since the inventory"
                        f" {'is' if len(changed) == 1 else 'are'} left alone")
        result = execute_clean(plan, target, jobs=jobs, retries=backend_options.retries,
                               progress=progress)
    for path, err in sorted(result.failed.items()):
        ui.error(f"{path}: {err}")
    if result.deleted_again:
        ui.warn(f"{len(result.deleted_again)} archives were uploaded again while the clean"
                " deleted their signatures: deleted again, so that none stays without its"
                " .siginfo (the next upload sends them whole)")
    ui.info(("clean interrupted: " if result.interrupted else "clean: ")
            + f"{plural(result.deleted, 'file')} deleted, {format_size(result.freed_bytes)}"
            f" freed, {plural(plan.kept, 'file')} kept, {len(result.failed)} failed")
    server_status = 0
    if hashserve is not None:
        server_status = clean_server(hashserve, ui, listing, plan, result, report)
    if ui.json_mode:
        report["result"] = result.to_dict()
        ui.emit_json(report)
    if result.interrupted:
        return Interrupted.exit_code
    return server_status or (1 if result.failed else 0)
