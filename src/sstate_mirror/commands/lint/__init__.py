"""``lint``: find what in a task's signature differs from one machine to the next.

A task whose hash includes the absolute path of one machine's build or sources directory
gets a different hash on every other machine, so nobody else ever finds it on the mirror.

* :mod:`.paths` — finding such paths in a string (pure)
* :mod:`.checks` — which parts of a signature enter the hash, findings, grouping (pure)
* :mod:`.run` — which files to lint, reading them through a backend in parallel
"""

from __future__ import annotations

from .checks import (
    FILE_CHECKSUMS,
    TAINT,
    FileResult,
    Finding,
    LintOptions,
    Occurrence,
    TaskRef,
    check_signature,
    group_findings,
    hashed_names,
    parse_task_list,
    task_base,
)
from .paths import (
    ABSOLUTE,
    BUILD_DIR,
    KIND_LABELS,
    SOURCES_DIR,
    SYSTEM_DIRS,
    Dir,
    PathHit,
    context_of,
    dirs_from,
    find_paths,
)
from .run import LintReport, SigFile, Unreadable, lint_files, select_siginfo, select_stamps

__all__ = [
    "ABSOLUTE",
    "BUILD_DIR",
    "FILE_CHECKSUMS",
    "KIND_LABELS",
    "SOURCES_DIR",
    "SYSTEM_DIRS",
    "TAINT",
    "Dir",
    "FileResult",
    "Finding",
    "LintOptions",
    "LintReport",
    "Occurrence",
    "PathHit",
    "SigFile",
    "TaskRef",
    "Unreadable",
    "check_signature",
    "context_of",
    "dirs_from",
    "find_paths",
    "group_findings",
    "hashed_names",
    "lint_files",
    "parse_task_list",
    "select_siginfo",
    "select_stamps",
    "task_base",
]
