"""``sstate-mirror analyze SOURCE TARGET``: which tasks missed the mirror, and why.

Exit codes: 0 the analysis ran (misses included), 1 with ``--fail-on-miss`` when a task
missed or when the selection left no task to check, 2 when a signature file could not be
read (the others are still analysed), 3 when a listing or a signature fetch failed on the
backend.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Sequence

from ..commands.analyze import (
    DEFAULT_MAX_CANDIDATES,
    LOCAL,
    MIRROR,
    AnalysisReport,
    AnalyzeOptions,
    TaskResult,
    execute_analysis,
    normalize_task,
    plan_analysis,
    shorten_hashes,
)
from ..commands.hashsync import explain_misses
from ..commands.listing import list_artifacts
from ..commands.sigstore import SignatureStore
from ..errors import EXIT_BACKEND, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError
from ..hashserv import DEFAULT_METHOD
from ..signatures.textdiff import colors_for
from ..transfer import Progress
from .common import (
    add_backend_options,
    add_command,
    add_jobs_option,
    add_selection_options,
    backend_options_from_args,
    check_source_files,
    jobs_from_args,
    open_source_and_target,
    selection_from_args,
    warn_nothing_selected,
    with_progress,
)
from .hashserve import add_hashserve_options, hashserve_from_args
from .ui import UI
from .wording import plural


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub, parents, "analyze", run, source="local sstate cache (SSTATE_DIR) or URL",
        help="explain why tasks of a local build did not come from the mirror",
        description="For every sstate task signature in SOURCE (the SSTATE_DIR of a build),"
        " say whether TARGET (the mirror) has its archive. For each miss, compare the closest"
        " signature of the same recipe, arch and task on the mirror with the local one, as"
        " bitbake-diffsigs does (following changed dependencies through both), and end with"
        " the root causes of all misses grouped.",
    )
    p.add_argument("--task", action="append", default=[], metavar="TASK",
                   help="only these tasks (comma-separated or repeated, with or without do_:"
                        " populate_sysroot,do_dpkg_build)")
    add_selection_options(p)
    p.add_argument("--all-tasks", action="store_true",
                   help="also report tasks that never have archives (compile, configure, ...)"
                        " by whether the mirror has their signature")
    p.add_argument("--max-candidates", type=int, default=DEFAULT_MAX_CANDIDATES, metavar="N",
                   help="mirror signatures examined per miss, the newest first (default:"
                        f" {DEFAULT_MAX_CANDIDATES})")
    p.add_argument("--full-hashes", action="store_true",
                   help="print hashes in full (default: their first 8 characters)")
    p.add_argument("--fail-on-miss", action="store_true",
                   help="exit with status 1 when any task missed the mirror, or when no task"
                        " was checked at all (for CI)")
    add_jobs_option(p)
    add_backend_options(p)
    add_hashserve_options(p, "ask this hash equivalence server which unihash it gives each"
                             " missed task, to explain misses caused by hash equivalence")
    p.add_argument("--hashserve-method", metavar="METHOD", default=DEFAULT_METHOD,
                   help=f"the build's SSTATE_HASHEQUIV_METHOD (default: {DEFAULT_METHOD})")


def _options(args: argparse.Namespace) -> AnalyzeOptions:
    if args.max_candidates < 1:
        raise UsageError("--max-candidates must be at least 1")
    names = [t.strip() for t in ",".join(args.task).split(",") if t.strip()]
    tasks = frozenset(normalize_task(t) for t in names) if names else None
    return AnalyzeOptions(
        selection=selection_from_args(args),
        tasks=tasks, all_tasks=args.all_tasks, max_candidates=args.max_candidates)


@with_progress
def run(args: argparse.Namespace, ui: UI, progress: Progress) -> int:
    options = _options(args)
    backend_options = backend_options_from_args(args)
    hashserve = hashserve_from_args(args)
    color = ui.color and not ui.json_mode
    with open_source_and_target(args, backend_options) as (source, target):
        local = list_artifacts(source, progress=progress)
        check_source_files(source, args.source, local)
        target.check()
        jobs = jobs_from_args(args, target.properties.connections)
        ui.info(f"analyzing {source.url} against {target.url}")
        remote = list_artifacts(target, progress=progress)
        plan = plan_analysis(local, remote, options)
        store = SignatureStore({LOCAL: source, MIRROR: target}, retries=backend_options.retries)
        report = execute_analysis(plan, store, local, remote, jobs=jobs, color=color,
                                  progress=progress)
        if hashserve is not None and report.misses:
            with hashserve.connect() as server:
                explained = explain_misses(report, store, remote, server,
                                           args.hashserve_method)
            ui.info(f"hash server: {plural(explained, 'miss')}"
                    f" {'has' if explained == 1 else 'have'} an equivalent archive on the"
                    " mirror under the unihash the server gives")
    for name, err in sorted(report.errors.items()):
        ui.error(str(err) if name in str(err) else f"{name}: {err}")
    nothing_checked = not report.results
    if nothing_checked:
        warn_nothing_selected(ui, args, "task signatures to check", source.url)
    if ui.json_mode:
        data: Dict[str, Any] = {"command": "analyze", "source": source.url,
                                "target": target.url}
        data.update(report.to_dict(shorten=not args.full_hashes))
        ui.emit_json(data)
    else:
        ui.result(render(report, color=color, full_hashes=args.full_hashes,
                         verbose=ui.verbose, summary_only=ui.quiet))
    if report.backend_errors:
        return EXIT_BACKEND
    if report.errors:
        return EXIT_USAGE  # unreadable input
    if args.fail_on_miss and (report.misses or nothing_checked):
        return EXIT_FAILED  # a miss; a gate that checked nothing has not passed
    return EXIT_OK


def render(report: AnalysisReport, *, color: bool = False, full_hashes: bool = False,
           verbose: int = 0, summary_only: bool = False) -> str:
    """The human report: hits (with -v), each miss with its diff, then the summary.

    ``summary_only`` (``-q``) keeps the summary alone: the few lines a CI log needs.
    """
    c = colors_for(color)
    head, bold, reset = ("\033[1;33m" if color else ""), c["title"], c["default"]
    short = (lambda s: s) if full_hashes else shorten_hashes
    lines: List[str] = []
    for result in [] if summary_only else report.results:
        if result.status == "hit":
            if verbose:
                lines.append(f"hit   {result.check.task_id} ({short(result.check.hash)})")
            continue
        lines.extend(_render_miss(result, head, reset, short))
    lines.extend(_render_summary(report, bold, reset))
    return "\n".join(lines) + "\n"


def _render_miss(result: TaskResult, head: str, reset: str, short: Any) -> List[str]:
    check = result.check
    kind = "" if check.sstate else " (signature only)"
    lines = [f"{head}==== miss{kind}: {check.task_id} ({short(check.hash)}) ===={reset}"]
    if result.candidate is None:
        if check.total_candidates:
            lines.append(f"none of the {check.total_candidates} mirror signatures of this"
                         " recipe, arch and task could be read")
        else:
            lines.append("no signature of this recipe, arch and task on the mirror")
    elif check.elsewhere is not None:
        lines.append(f"the mirror has this archive, at {check.elsewhere.path}")
    elif result.differences is None:
        lines.append(f"the mirror has this signature ({short(result.candidate.hash)}) but not"
                     " its archive")
    else:
        more = (f", {check.total_candidates - result.examined} older not examined"
                if check.total_candidates > result.examined else "")
        lines.append(f"closest on the mirror: {short(result.candidate.hash)}"
                     f" ({plural(result.differences, 'difference')};"
                     f" {result.examined} of {plural(check.total_candidates, 'candidate')}"
                     f" examined{more})")
    lines.extend(short(note) for note in result.notes)
    for entry in result.diff:
        lines.append(short(entry))
    if result.findings:
        lines.append("root causes: " + "; ".join(
            f"{f.cause.text} (in {f.origin})" for f in result.findings))
    lines.append("")
    return lines


def _render_summary(report: AnalysisReport, bold: str, reset: str) -> List[str]:
    checked = len(report.results)
    lines = [f"{bold}==== summary ===={reset}",
             f"{plural(checked, 'task')} checked: {plural(len(report.hits), 'hit')},"
             f" {plural(len(report.misses), 'miss')}"]
    skipped = []
    if report.plan.not_sstate:
        skipped.append(f"{plural(report.plan.not_sstate, 'signature')} of tasks without archives"
                       " (--all-tasks reports them)")
    if report.plan.not_selected:
        skipped.append(f"{report.plan.not_selected} not selected")
    if skipped:
        lines.append("not checked: " + ", ".join(skipped))
    if report.errors:
        lines.append(f"{plural(len(report.errors), 'signature file')} could not be read (see"
                     " the errors above)")
    if report.root_causes:
        lines.append("root causes:")
        for group in report.root_causes:
            lines.append(f"  {group.cause.text}: explains {plural(group.misses, 'miss')}"
                         f" (first in {group.first_in})")
    return lines
