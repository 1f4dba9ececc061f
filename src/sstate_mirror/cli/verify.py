"""``sstate-mirror verify TARGET [--sample N | --all] [--fix]``."""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from typing import Any, Dict, List, Sequence

from ..archive_check import ArchiveLimits
from ..backends import Backend, open_backend
from ..commands.clock import MAX_CLOCK_SKEW, mirror_clock
from ..commands.hashsync import ask_server
from ..commands.listing import list_artifacts
from ..commands.pins import check_pin_name, read_pin
from ..commands.verify import (
    DEFAULT_SAMPLE,
    ERROR,
    PROBLEM_KINDS,
    Problem,
    VerifyOptions,
    plan_fix,
    plan_verify,
    problem_key,
)
from ..commands.verify_run import execute_fix, execute_verify
from ..errors import EXIT_BACKEND, EXIT_FAILED, EXIT_OK, NotFoundError, UsageError
from ..naming import Artifact
from ..transfer import Progress
from ..units import format_size, parse_age, parse_size
from .common import (
    add_command,
    add_mirror_options,
    backend_options_from_args,
    jobs_from_args,
    selection_from_args,
    selection_words,
    warn_nothing_selected,
    with_progress,
)
from .hashserve import add_hashserve_options, hashserve_from_args, render_knowledge
from .ui import UI
from .wording import plural


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub, parents, "verify", run,
        help="find broken artifacts that would make a consumer's setscene fail or rebuild",
        description="Check a mirror for what bitbake's existence check does not catch:"
        " zero-size, truncated or corrupt archives (read to the end: decompressed and the"
        " tar stream walked, nothing extracted), .siginfo files that cannot be read safely,"
        " whose recomputed hashes differ from their own or from their file name, archives"
        " without .siginfo, .sig files without archive and leftovers of interrupted uploads."
        " Listing checks cover every file; content is read for a random sample of groups"
        " (--sample) or for all of them (--all). Exit status: 0 no errors, 1 errors found"
        " (after --fix: errors left; or --filter/--arch selected nothing), 3 files could not"
        " be read.",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument("--sample", type=int, metavar="N", default=DEFAULT_SAMPLE,
                     help=f"read N random artifact groups (default: {DEFAULT_SAMPLE})")
    how.add_argument("--all", action="store_true", dest="read_all",
                     help="read every archive and .siginfo")
    p.add_argument("--pin", action="append", default=[], metavar="NAME",
                   help="read exactly the groups this pin keeps (implies --all): a release's"
                        " sstate checked end to end before it is needed; repeatable")
    p.add_argument("--seed", type=int, metavar="N",
                   help="seed of the random sample, to repeat a run exactly")
    p.add_argument("--fix", action="store_true",
                   help="delete broken artifact groups (archive, .siginfo, .sig; archives"
                        " first) and leftovers, so that the next upload replaces them")
    p.add_argument("--fix-missing-siginfo", action="store_true",
                   help="with --fix, also delete archives that have no .siginfo (bitbake"
                        " uses them; uploading again from a cache adds the .siginfo alone)")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="with --fix: show what would be deleted; change nothing")
    p.add_argument("--strict", action="store_true",
                   help="warnings (missing .siginfo, leftovers, ...) fail the run too")
    p.add_argument("--min-age", metavar="AGE", default="1h",
                   help="leftovers and .sig files without archive younger than AGE may"
                        " belong to an upload running now: not reported (default: 1h)")
    p.add_argument("--max-decompressed", metavar="SIZE", default="64G",
                   help="stop reading an archive past SIZE decompressed (default: 64G)")
    p.add_argument("--max-members", type=int, metavar="N", default=1_000_000,
                   help="stop reading an archive past N tar members (default: 1000000)")
    add_mirror_options(p)
    add_hashserve_options(p, "also count the archives whose unihash this hash equivalence"
                             " server knows, and those it does not")


def _options(args: argparse.Namespace) -> VerifyOptions:
    if (args.fix_missing_siginfo or args.dry_run) and not args.fix:
        raise UsageError("--fix-missing-siginfo and --dry-run only apply to --fix")
    if args.max_members < 1:
        raise UsageError("--max-members must be at least 1")
    return VerifyOptions(
        sample=None if args.read_all else args.sample,
        read_all=args.read_all,
        seed=args.seed,
        min_age=parse_age(args.min_age, "--min-age"),
        selection=selection_from_args(args),
    )


def _pinned_options(options: VerifyOptions, target: Backend, names: List[str], ui: UI
                    ) -> VerifyOptions:
    """``--pin``: every group of the pins, read whole, within --filter/--arch if given."""
    hashes: set[str] = set()
    for name in names:
        try:
            pin = read_pin(target, check_pin_name(name))
        except NotFoundError:
            raise UsageError(f"{target.url} has no pin {name!r}",
                             hint=f"list them with 'sstate-mirror pins {target.url}'") from None
        if pin.expires is not None and pin.expired(time.time()):
            ui.warn(f"pin {name} has expired: clean no longer keeps its groups")
        hashes.update(pin.objects)
    return dataclasses.replace(
        options, sample=None, read_all=True,
        selection=dataclasses.replace(options.selection, hashes=frozenset(hashes)))


def _fails(problem: Problem, strict: bool) -> bool:
    return strict or problem.severity == ERROR


def _show_problems(ui: UI, problems: List[Problem]) -> None:
    say = ui.info if ui.json_mode else (lambda line: ui.result(line + "\n"))
    for problem in problems:
        say(f"{problem.severity}: {problem.kind}: {problem.path}")
        say(f"    {problem.detail}")
    kinds = sorted({p.kind for p in problems}, key=list(PROBLEM_KINDS).index)
    if kinds:
        ui.info("what it means and what to do:")
    for name in kinds:
        kind = PROBLEM_KINDS[name]
        count = sum(1 for p in problems if p.kind == name)
        ui.info(f"  {name} ({count}): {kind.meaning}.")
        ui.info(f"      fix: {kind.fix}")


@with_progress
def run(args: argparse.Namespace, ui: UI, progress: Progress) -> int:
    # every value is checked before the mirror is contacted
    options = _options(args)
    limits = ArchiveLimits(
        max_decompressed=parse_size(args.max_decompressed, "--max-decompressed"),
        max_members=args.max_members)
    backend_options = backend_options_from_args(args)
    hashserve = hashserve_from_args(args)
    with open_backend(args.target, backend_options) as target:
        jobs = jobs_from_args(args, target.properties.connections)
        target.check()
        # --fix deletes leftovers by age: it needs a clock it can trust
        clock = mirror_clock(target, max_skew=MAX_CLOCK_SKEW if args.fix else math.inf)
        ui.info(f"verifying {target.url}")
        artifacts = list_artifacts(target, progress=progress)
        now = clock.now()
        if args.pin:
            options = _pinned_options(options, target, args.pin, ui)
        plan = plan_verify(artifacts, options, now)
        scope = "all" if plan.sampled_groups == plan.groups else "a random sample"
        ui.info(f"  {plural(len(artifacts), 'file')}, {plural(plan.groups, 'group')} with"
                f" content; reading {plural(plan.archive_checks, 'archive')} and"
                f" {plan.siginfo_checks} .siginfo of {plural(plan.sampled_groups, 'group')}"
                f" ({scope})")
        result = execute_verify(plan, target, jobs=jobs, retries=backend_options.retries,
                                progress=progress, archive_limits=limits)
        report: Dict[str, Any] = {"command": "verify", "target": target.url, "now": now,
                                  "groups": plan.groups, "sampled_groups": plan.sampled_groups,
                                  "seed": options.seed, **result.to_dict(), "fixed": []}
        if plan.sampled_groups < plan.groups:
            report["sampled"] = sorted({c.artifact.group_key for c in plan.checks})
        _show_problems(ui, result.problems)
        for path, err in sorted(result.errors.items()):
            ui.error(f"{path}: {err}")
        for path in result.vanished:
            ui.detail(f"{path}: deleted since the listing, not judged")
        errors = sum(1 for p in result.problems if p.severity == ERROR)
        ui.info(f"verify: {plural(result.archives, 'archive')} and {result.siginfo} .siginfo"
                f" read ({format_size(result.bytes_read)}), {plural(errors, 'error')},"
                f" {plural(len(result.problems) - errors, 'warning')},"
                f" {len(result.errors)} unreadable")
        if hashserve is not None:
            with hashserve.connect() as server:
                knowledge = ask_server(artifacts, server)
                address = str(server.address)
            report["hashserve"] = {"address": address,
                                   **knowledge.to_dict(detail=ui.verbose > 0)}
            text = render_knowledge(knowledge, address, detail=ui.verbose > 0)
            if ui.json_mode:
                ui.info(text.rstrip("\n"))
            else:
                ui.result(text)
        failing = [p for p in result.problems if _fails(p, args.strict)]
        status = EXIT_FAILED if failing else EXIT_OK
        if not plan.groups:
            warn_nothing_selected(ui, args, "artifacts to verify", target.url)
            if selection_words(args):
                status = EXIT_FAILED  # a filter that selects nothing checks nothing
        if result.errors:
            status = EXIT_BACKEND
        if args.fix and result.errors:
            ui.error("nothing deleted: some files could not be read, so the mirror could not"
                     " be judged reliably; run verify again")
        elif args.fix:
            status = _fix(args, ui, target, jobs, backend_options.retries, progress,
                          artifacts, result.problems, failing, report)
    if ui.json_mode:
        ui.emit_json(report)
    return status


def _fix(args: argparse.Namespace, ui: UI, target: Backend, jobs: int, retries: int,
         progress: Progress, artifacts: Sequence[Artifact], problems: List[Problem],
         failing: List[Problem], report: Dict[str, Any]) -> int:
    fix = plan_fix(problems, artifacts, fix_missing_siginfo=args.fix_missing_siginfo)
    report["dry_run"] = args.dry_run
    if args.dry_run:
        for d in fix.deletions:
            ui.info(f"[DELETE] {d.path} ({d.rule})")
        ui.info(f"dry run: would delete {plural(len(fix.deletions), 'file')},"
                f" {format_size(sum(d.artifact.size for d in fix.deletions))}")
        report["would_delete"] = [d.path for d in fix.deletions]
        return EXIT_FAILED if failing else EXIT_OK
    result = execute_fix(fix, target, jobs=jobs, retries=retries, progress=progress)
    for path in result.deleted:
        ui.detail(f"[DELETED] {path}")
    for path, err in sorted(result.failed.items()):
        ui.error(f"{path}: {err}")
    fixed = set(result.fixed)
    left = [p for p in failing if problem_key(p) not in fixed]
    ui.info(f"fix: {plural(len(result.deleted), 'file')} deleted,"
            f" {plural(len(fixed), 'problem')} fixed, {len(left)} left that fail the run")
    report["fixed"] = [p.to_dict() for p in problems if problem_key(p) in fixed]
    report["deleted"] = result.deleted
    report["fix_failed"] = {p: str(e) for p, e in sorted(result.failed.items())}
    return EXIT_FAILED if left else EXIT_OK
