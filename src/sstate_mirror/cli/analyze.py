"""``sstate-mirror analyze SOURCE TARGET``: which tasks missed the mirror, and why.

Exit codes: 0 the analysis ran (misses included), 1 with ``--fail-on-miss`` when a task
missed, 2 when a signature file could not be read (the others are still analysed), 3 when a
listing or a signature fetch failed on the backend.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Sequence

from ..backends import open_backend
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
from ..commands.listing import Selection, list_artifacts
from ..commands.sigstore import SignatureStore
from ..errors import UsageError
from ..hashserv import DEFAULT_METHOD
from ..signatures.textdiff import colors_for
from ..transfer import Progress
from .common import (
    add_backend_options,
    add_jobs_option,
    add_selection_options,
    backend_options_from_args,
    check_source,
    compile_filter,
    jobs_from_args,
)
from .hashserve import add_hashserve_options, hashserve_from_args
from .progress import make_progress
from .ui import UI

EXIT_MISSES = 1
EXIT_UNREADABLE = 2
EXIT_BACKEND = 3


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "analyze",
        parents=list(parents),
        help="explain why tasks of a local build did not come from the mirror",
        description="For every sstate task signature in SOURCE (the SSTATE_DIR of a build),"
        " say whether TARGET (the mirror) has its archive. For each miss, compare the closest"
        " signature of the same recipe, arch and task on the mirror with the local one, as"
        " bitbake-diffsigs does (following changed dependencies through both), and end with"
        " the root causes of all misses grouped.",
    )
    p.add_argument("source", metavar="SOURCE", help="local sstate cache (SSTATE_DIR) or URL")
    p.add_argument("target", metavar="TARGET",
                   help="mirror: a directory, file://, http(s):// or s3:// URL")
    p.add_argument("--task", action="append", default=[], metavar="TASK",
                   help="only this task (e.g. populate_sysroot or do_dpkg_build; repeatable)")
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
                   help="exit with status 1 when any task missed the mirror (for CI)")
    add_jobs_option(p)
    add_backend_options(p)
    add_hashserve_options(p, "ask this hash equivalence server which unihash it gives each"
                             " missed task, to explain misses caused by hash equivalence")
    p.add_argument("--hashserve-method", metavar="METHOD", default=DEFAULT_METHOD,
                   help=f"the build's SSTATE_HASHEQUIV_METHOD (default: {DEFAULT_METHOD})")
    p.set_defaults(run=run)


def _options(args: argparse.Namespace) -> AnalyzeOptions:
    if args.max_candidates < 1:
        raise UsageError("--max-candidates must be at least 1")
    tasks = frozenset(normalize_task(t) for t in args.task) if args.task else None
    return AnalyzeOptions(
        selection=Selection(pn_filter=compile_filter(args.filter), arch=args.arch),
        tasks=tasks, all_tasks=args.all_tasks, max_candidates=args.max_candidates)


def run(args: argparse.Namespace, ui: UI) -> int:
    with make_progress(ui) as progress:
        return _run(args, ui, progress)


def _run(args: argparse.Namespace, ui: UI, progress: Progress) -> int:
    options = _options(args)
    backend_options = backend_options_from_args(args)
    hashserve = hashserve_from_args(args)
    color = ui.color and not ui.json_mode
    with open_backend(args.source, backend_options) as source, \
            open_backend(args.target, backend_options) as target:
        check_source(source)
        target.check()
        jobs = jobs_from_args(args, target.properties.connections)
        ui.info(f"analyzing {source.url} against {target.url}")
        local = list_artifacts(source, progress=progress)
        remote = list_artifacts(target, progress=progress)
        plan = plan_analysis(local, remote, options)
        store = SignatureStore({LOCAL: source, MIRROR: target}, retries=backend_options.retries)
        report = execute_analysis(plan, store, local, remote, jobs=jobs, color=color,
                                  progress=progress)
        if hashserve is not None and report.misses:
            with hashserve.connect() as server:
                explained = explain_misses(report, store, remote, server,
                                           args.hashserve_method)
            ui.info(f"hash server: {explained} misses have an equivalent archive on the"
                    " mirror under the unihash the server gives")
    for name, err in sorted(report.errors.items()):
        ui.error(str(err) if name in str(err) else f"{name}: {err}")
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
        return EXIT_UNREADABLE
    if args.fail_on_miss and report.misses:
        return EXIT_MISSES
    return 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


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
                     f" ({_plural(result.differences, 'difference')};"
                     f" {result.examined} of {check.total_candidates} candidates"
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
             f"{checked} tasks checked: {_plural(len(report.hits), 'hit')},"
             f" {_plural(len(report.misses), 'miss')}"]
    skipped = []
    if report.plan.not_sstate:
        skipped.append(f"{report.plan.not_sstate} signatures of tasks without archives"
                       " (--all-tasks reports them)")
    if report.plan.not_selected:
        skipped.append(f"{report.plan.not_selected} not selected")
    if skipped:
        lines.append("not checked: " + ", ".join(skipped))
    if report.errors:
        lines.append(f"{len(report.errors)} signature files could not be read (see the errors"
                     " above)")
    if report.root_causes:
        lines.append("root causes:")
        for group in report.root_causes:
            lines.append(f"  {group.cause.text}: explains {_plural(group.misses, 'miss')}"
                         f" (first in {group.first_in})")
    return lines
