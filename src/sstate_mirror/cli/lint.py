"""``sstate-mirror lint TARGET``: find what makes tasks miss the mirror on other machines.

Exit codes CI can rely on: 0 nothing found, 1 findings or no signature file to read (or
``--exit-code N``), 2 usage error
or an unreadable signature file (each one listed with its reason), 3 the target or a file on
it could not be read.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..backends import open_backend, scheme_of
from ..backends.local import path_from_url
from ..commands.lint import (
    KIND_LABELS,
    Dir,
    Finding,
    LintOptions,
    LintReport,
    dirs_from,
    lint_files,
    parse_task_list,
    select_siginfo,
    select_stamps,
)
from ..commands.listing import list_artifacts
from ..errors import EXIT_BACKEND, EXIT_OK, EXIT_USAGE, UsageError
from ..transfer import Progress
from .common import (
    add_command,
    add_mirror_options,
    backend_options_from_args,
    compile_filter,
    jobs_from_args,
    warn_nothing_selected,
    with_progress,
)
from .ui import UI
from .wording import plural

#: isar-sstate's defaults: the directories of Isar's kas build container, and the tasks whose
#: output is never cached (wic images).
ISAR_BUILD_DIR = "/build/tmp"
ISAR_SOURCES_DIR = "/work"
DEFAULT_EXCLUDED_TASKS = "rootfs_wicenv,image_wic"


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub, parents, "lint", run,
        target="a mirror or sstate cache (directory, file://, http(s)://, s3://); with"
               " --lint-stamps a build's tmp/stamps directory or its TMPDIR",
        help="find machine-specific paths in task signatures (why others miss the mirror)",
        description="Read every signature file of TARGET (.siginfo files of a mirror or an"
        " sstate cache, or with --lint-stamps the .sigdata files of a build's tmp/stamps) and"
        " report values that enter a task hash and contain the build or sources directory"
        " (with --pedantic: any absolute path outside the system directories). Such a task"
        " gets a different hash on every machine, so nobody else hits the mirror.",
        epilog="exit codes: 0 no findings, 1 findings or no signature file to read (see"
        " --exit-code), 2 usage error or"
        " unreadable signature file, 3 the target could not be read.",
    )
    p.add_argument("--build-dir", action="append", default=[], metavar="DIR",
                   help="the build directory to look for (repeatable; default: $BUILDDIR, or"
                        " with --lint-stamps the directory above TMPDIR; without any of"
                        f" these and --sources-dir: {ISAR_BUILD_DIR} and {ISAR_SOURCES_DIR},"
                        " as isar-sstate)")
    p.add_argument("--sources-dir", action="append", default=[], metavar="DIR",
                   help="the sources (layers) checkout to look for (repeatable)")
    p.add_argument("--lint-stamps", action="store_true",
                   help="TARGET is a build's tmp/stamps directory (or TMPDIR): lint the stamp"
                        " signature files of the last build instead of an sstate cache")
    p.add_argument("--excluded-tasks", metavar="LIST",
                   help="comma-separated tasks not to check (with or without do_; default:"
                        f" {DEFAULT_EXCLUDED_TASKS}, as isar-sstate; '' checks every task)")
    p.add_argument("--pedantic", action="store_true",
                   help="also report every other absolute path (except /bin /boot /dev /etc"
                        " /lib* /proc /run /sbin /srv /sys /tmp /usr /var)")
    p.add_argument("--exit-code", type=int, default=1, metavar="N",
                   help="exit status when something is found, 0..255 (default: 1; 0 never"
                        " fails on findings)")
    p.add_argument("--task", action="append", metavar="TASK",
                   help="only these tasks (comma-separated or repeated, with or without do_)")
    add_mirror_options(p)


def _local_root(target: str) -> Optional[str]:
    """The directory a local target names; None for a remote one."""
    if scheme_of(target) != "file":
        return None
    return os.path.abspath(path_from_url(target))


def _stamps_layout(target: str) -> Tuple[str, Optional[str]]:
    """(listing prefix, derived build directory) for a ``--lint-stamps`` target.

    TARGET may be TMPDIR (holding ``stamps/``) or the stamps directory itself; TMPDIR is
    ``${TOPDIR}/tmp`` by default, so the build directory is the one above it.
    """
    root = _local_root(target)
    if root is None:
        return "", None
    if os.path.isdir(os.path.join(root, "stamps")):
        return "stamps", os.path.dirname(root)
    if os.path.basename(root) == "stamps":
        return "", os.path.dirname(os.path.dirname(root))
    return "", None


def _options(args: argparse.Namespace, derived_build_dir: Optional[str],
             ui: UI) -> LintOptions:
    if not 0 <= args.exit_code <= 255:
        raise UsageError(f"--exit-code {args.exit_code}: must be between 0 and 255",
                         hint="exit statuses above 255 wrap around")
    if args.exit_code == 0:
        ui.warn("--exit-code 0: findings do not fail this run (as with isar-sstate)")
    build_dirs: List[str] = list(args.build_dir)
    if not build_dirs:
        env = os.environ.get("BUILDDIR")
        if env:
            build_dirs = [env]
        elif derived_build_dir:
            build_dirs = [derived_build_dir]
    for d in [*build_dirs, *args.sources_dir]:
        if not d.strip() or os.path.normpath(os.path.abspath(d)) == "/":
            raise UsageError(f"{d!r} cannot be a build or sources directory",
                             hint="give the directory itself, e.g. --build-dir ~/poky/build")
    sources_dirs: List[str] = list(args.sources_dir)
    if not build_dirs and not sources_dirs:
        build_dirs, sources_dirs = [ISAR_BUILD_DIR], [ISAR_SOURCES_DIR]
        ui.warn(f"no --build-dir, --sources-dir or BUILDDIR: looking for {ISAR_BUILD_DIR}"
                f" and {ISAR_SOURCES_DIR} (isar-sstate's defaults, the directories of Isar's"
                " kas build container)")
    dirs = dirs_from(build_dirs, sources_dirs)
    excluded = (DEFAULT_EXCLUDED_TASKS if args.excluded_tasks is None
                else args.excluded_tasks)
    return LintOptions(dirs=tuple(dirs), pedantic=args.pedantic,
                       excluded_tasks=parse_task_list(excluded))


def _tasks(args: argparse.Namespace) -> Optional[List[str]]:
    if not args.task:
        return None
    return sorted(parse_task_list(",".join(args.task)))


@with_progress
def run(args: argparse.Namespace, ui: UI, progress: Progress) -> int:
    prefix, derived = _stamps_layout(args.target) if args.lint_stamps else ("", None)
    options = _options(args, derived, ui)
    pn_filter = compile_filter(args.filter)
    backend_options = backend_options_from_args(args)
    with open_backend(args.target, backend_options) as target:
        target.check()
        jobs = jobs_from_args(args, target.properties.connections)
        ui.info(f"linting {'stamps in ' if args.lint_stamps else ''}{target.url}")
        for d in options.dirs:
            ui.detail(f"looking for {d.path} ({KIND_LABELS[d.kind]})")
        if args.lint_stamps:
            progress.phase(f"listing {target.url}", 0)
            entries = list(target.list(prefix))
            progress.done()
            files = select_stamps(entries, prefix=prefix, pn_filter=pn_filter,
                                  arch=args.arch, tasks=_tasks(args))
        else:
            files = select_siginfo(list_artifacts(target, progress=progress),
                                   pn_filter=pn_filter, arch=args.arch, tasks=_tasks(args))
        if not files:
            warn_nothing_selected(
                ui, args, "signature files", target.url
                + (" (is it a build's tmp/stamps directory, or its TMPDIR?)"
                   if args.lint_stamps else ""))
        report = lint_files(target, files, options, jobs=jobs,
                            retries=backend_options.retries, progress=progress)
        url = target.url
    code = exit_code(report, args.exit_code)
    if not files and code == 0:
        code = args.exit_code  # a lint that read nothing has not passed
    for bad in report.unreadable:
        ui.error(f"cannot lint {bad.file}: {bad.reason}")
    if ui.json_mode:
        data: Dict[str, Any] = {"command": "lint", "target": url,
                                "mode": "stamps" if args.lint_stamps else "sstate",
                                "pedantic": options.pedantic,
                                "build_dirs": [d.path for d in options.dirs
                                               if d.kind == "build-dir"],
                                "sources_dirs": [d.path for d in options.dirs
                                                 if d.kind == "sources-dir"]}
        data.update(report.to_dict())
        data["exit_code"] = code
        ui.emit_json(data)
    else:
        ui.result(render(report, verbose=ui.verbose, dirs=options.dirs))
    return code


def exit_code(report: LintReport, findings_code: int) -> int:
    """3 when storage failed, 2 when a file was unreadable, then ``findings_code`` for
    findings, else 0: an incomplete run never reads as clean or as merely 'findings'."""
    if any(u.backend_error for u in report.unreadable):
        return EXIT_BACKEND
    if report.unreadable:
        return EXIT_USAGE  # unreadable input
    if report.findings:
        return findings_code
    return EXIT_OK


def render_finding(f: Finding, verbose: int) -> List[str]:
    """One block per finding: a headline, an example, and with ``-v`` every task."""
    first = f.tasks[0]
    lines = [f"{f.variable} contains {f.path} ({KIND_LABELS[f.kind]}) in"
             f" {plural(f.task_count, 'task')} of {plural(f.recipe_count, 'recipe')},"
             f" e.g. {first.pn}:{first.task}:",
             f"    {first.context}"]
    if verbose:
        for t in f.tasks:
            where = f"  [{t.file}]" if verbose > 1 else ""
            lines.append(f"  - {t.pn}:{t.task}: {t.context}{where}")
    return lines


def render(report: LintReport, *, verbose: int = 0, dirs: Sequence[Dir] = ()) -> str:
    """The human report (pure, so tests can read it)."""
    lines: List[str] = []
    for f in report.findings:
        lines += render_finding(f, verbose)
        lines.append("")
    tasks = {(t.pn, t.task) for f in report.findings for t in f.tasks}
    recipes = {pn for pn, _ in tasks}
    summary = (f"{plural(report.files_checked, 'signature file')} checked:"
               f" {plural(len(report.findings), 'finding')}")
    if report.findings:
        summary += f" in {plural(len(tasks), 'task')} of {plural(len(recipes), 'recipe')}"
    if report.unreadable:
        summary += f", {len(report.unreadable)} unreadable"
    lines.append(summary)
    if report.findings and not verbose:
        lines.append("(-v lists every affected task)")
    return "\n".join(lines) + "\n"
