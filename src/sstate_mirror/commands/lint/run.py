"""Which signature files to lint, and reading them in parallel through a backend.

Two sources of signature files:

* an sstate cache or mirror (any backend): every ``.siginfo``, attributed to PN and task by
  its sstate name;
* a build's stamps directory (``--lint-stamps``): every ``.sigdata.<hash>`` /
  ``.sigbasedata.<hash>`` / ``.siginfo`` stamp signature, attributed by its path.

Reading is I/O; everything about what a signature holds is :mod:`.checks`. A file that cannot
be read or parsed is recorded with its reason, never skipped in silence, and the others are
still linted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Pattern, Tuple

from ...backends.base import Backend, Entry
from ...errors import SignatureError
from ...naming import Artifact, Kind, parse_stamp_name
from ...signatures import DEFAULT_LIMITS, Limits, read_signature
from ...transfer import Progress, run_parallel
from .checks import (
    FileResult,
    Finding,
    LintOptions,
    Occurrence,
    check_signature,
    group_findings,
    task_base,
)


@dataclass(frozen=True)
class SigFile:
    """A signature file to lint, with what its name says about it."""

    path: str
    pn: str
    task: str
    """bitbake's task name (``do_compile``)."""
    size: int = 0
    from_stamp: bool = False


@dataclass(frozen=True)
class Unreadable:
    """A signature file that could not be linted, and why."""

    file: str
    reason: str
    backend_error: bool = False
    """True when storage failed (exit 3), False when the file itself is bad (exit 2)."""


@dataclass
class LintReport:
    """The outcome of a lint run, as data: the CLI turns it into text, JSON and an exit code."""

    files_checked: int = 0
    unreadable: List[Unreadable] = field(default_factory=list)
    findings: List[Finding] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "files_checked": self.files_checked,
            "unreadable": [{"file": u.file, "reason": u.reason} for u in self.unreadable],
            "findings": [f.to_dict() for f in self.findings],
        }


def _wanted(pn: str, task: str, arch: str, *, pn_filter: Optional[Pattern[str]],
            arch_filter: Optional[str], tasks: Optional[Iterable[str]]) -> bool:
    if pn_filter is not None and not pn_filter.match(pn):
        return False
    if arch_filter is not None and arch != arch_filter:
        return False
    return not (tasks is not None and task_base(task) not in set(tasks))


def select_siginfo(artifacts: Iterable[Artifact], *, pn_filter: Optional[Pattern[str]] = None,
                   arch: Optional[str] = None, tasks: Optional[Iterable[str]] = None
                   ) -> List[SigFile]:
    """The ``.siginfo`` files of a listing, filtered by ``--filter``, ``--arch``, ``--task``."""
    wanted = None if tasks is None else frozenset(task_base(t) for t in tasks)
    out = []
    for art in artifacts:
        if art.kind is not Kind.SIGINFO or art.name is None:
            continue
        if _wanted(art.pn, art.task, art.arch, pn_filter=pn_filter, arch_filter=arch,
                   tasks=wanted):
            out.append(SigFile(art.path, art.pn, "do_" + art.task, art.size))
    return sorted(out, key=lambda s: s.path)


def select_stamps(entries: Iterable[Entry], *, prefix: str = "",
                  pn_filter: Optional[Pattern[str]] = None, arch: Optional[str] = None,
                  tasks: Optional[Iterable[str]] = None) -> List[SigFile]:
    """The signature files of a stamps tree listed below ``prefix`` (``stamps`` when the
    target is TMPDIR). ``--arch`` selects the ``MULTIMACH_TARGET_SYS`` directory by its first
    part (``core2-64`` selects ``core2-64-poky-linux``)."""
    wanted = None if tasks is None else frozenset(task_base(t) for t in tasks)
    lead = prefix.strip("/") + "/" if prefix.strip("/") else ""
    out = []
    for entry in entries:
        if not entry.path.startswith(lead):
            continue
        name = parse_stamp_name(entry.path[len(lead):])
        if name is None:
            continue
        if arch is not None and not (name.sys == arch or name.sys.startswith(arch + "-")):
            continue
        if _wanted(name.pn, name.task, "", pn_filter=pn_filter, arch_filter=None,
                   tasks=wanted):
            out.append(SigFile(entry.path, name.pn, name.task, entry.size, from_stamp=True))
    return sorted(out, key=lambda s: s.path)


def lint_files(
    backend: Backend,
    files: List[SigFile],
    options: LintOptions,
    *,
    jobs: int,
    retries: int = 0,
    limits: Limits = DEFAULT_LIMITS,
    progress: Optional[Progress] = None,
) -> LintReport:
    """Fetch and lint every file in parallel; group what was found.

    Tasks in ``options.excluded_tasks`` are read (so a broken file is still reported) but
    not checked.
    """
    progress = progress or Progress()
    results: List[Optional[FileResult]] = [None] * len(files)
    bad: Dict[int, Unreadable] = {}
    lock = threading.Lock()

    def one(index: int) -> None:
        item = files[index]
        if item.size > limits.max_compressed:
            # refused before fetching: a bad file, not a storage failure
            with lock:
                bad[index] = Unreadable(item.path, "signature file is larger than the limit"
                                        f" of {limits.max_compressed} bytes")
            return
        data = backend.read(item.path, limits.max_compressed)
        try:
            sig = read_signature(data, source=item.path, limits=limits)
        except SignatureError as exc:
            with lock:
                bad[index] = Unreadable(item.path, _reason(exc, item.path))
            return
        task = sig.task or item.task
        pn = item.pn
        own_pn = sig.varvals.get("PN")
        if item.from_stamp and isinstance(own_pn, str) and own_pn and "$" not in own_pn:
            pn = own_pn
        occurrences: Tuple[Occurrence, ...] = ()
        if task_base(task) not in options.excluded_tasks:
            occurrences = tuple(check_signature(sig, options))
        results[index] = FileResult(item.path, pn, task, occurrences)

    progress.phase("reading signatures", len(files), sum(f.size for f in files))
    failures = run_parallel(list(range(len(files))), one, jobs=jobs,
                            describe=lambda i: files[i].path,
                            weight=lambda i: files[i].size, progress=progress,
                            retries=retries)
    progress.done()
    for index, error in failures.items():
        bad[index] = Unreadable(files[index].path, _reason(error, files[index].path),
                                backend_error=True)
    report = LintReport()
    report.files_checked = sum(1 for r in results if r is not None)
    report.unreadable = [bad[i] for i in sorted(bad)]
    report.findings = group_findings(r for r in results if r is not None)
    return report


def _reason(error: Exception, path: str) -> str:
    """The error's message without the file name it starts with (the report names it)."""
    text = str(error)
    return text[len(path) + 2:] if text.startswith(path + ": ") else text
