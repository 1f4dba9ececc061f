"""Executing a verify plan: read archives and ``.siginfo`` files in parallel, then ``--fix``.

Every read goes through ``backend.open``/``backend.read``, so verify works the same on every
backend. Archives are streamed (never held in memory); a ``.siginfo`` is small and capped by
the signature reader's limits. What a file's content shows is a :class:`Problem`; what the
storage does wrong (a read that fails) is a backend error, kept apart: after one, ``--fix``
deletes nothing, since a mirror that cannot be read reliably cannot be judged reliably.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..archive_check import (
    DEFAULT_ARCHIVE_LIMITS,
    ArchiveDefect,
    ArchiveLimits,
    LimitExceeded,
    check_archive,
)
from ..backends.base import Backend
from ..errors import (
    BackendError,
    NotFoundError,
    PermanentError,
    SignatureError,
    TransientError,
)
from ..naming import Artifact, Kind
from ..signatures import DEFAULT_LIMITS, Limits, Signature, check_hashes, read_signature
from ..signatures.bounds import FETCHES
from ..signatures.reader import SignatureLimitError
from ..transfer import Progress, run_parallel
from .clean import CleanPlan, execute_clean
from .verify import Check, FixPlan, Problem, VerifyPlan, fixed_problems, problem_key


@dataclass
class VerifyResult:
    problems: List[Problem] = field(default_factory=list)
    """From the listing and from the reads, sorted by path."""
    archives: int = 0
    siginfo: int = 0
    bytes_read: int = 0
    errors: Dict[str, BackendError] = field(default_factory=dict)
    """Files that could not be read (not judged)."""
    vanished: List[str] = field(default_factory=list)
    """Files deleted between the listing and their read (a concurrent clean): not judged."""

    def to_dict(self) -> Dict[str, Any]:
        return {
            "checked": {"archives": self.archives, "siginfo": self.siginfo,
                        "bytes_read": self.bytes_read},
            "problems": [p.to_dict() for p in self.problems],
            "errors": {p: str(e) for p, e in sorted(self.errors.items())},
            "vanished": sorted(self.vanished),
        }


class _Collector:
    """Thread-safe sink for the workers' findings."""

    def __init__(self, progress: Progress) -> None:
        self.lock = threading.Lock()
        self.problems: List[Problem] = []
        self.vanished: List[str] = []
        self.bytes_read = 0
        self.progress = progress

    def add(self, problem: Problem) -> None:
        with self.lock:
            self.problems.append(problem)

    def gone(self, path: str) -> None:
        with self.lock:
            self.vanished.append(path)

    def read(self, nbytes: int) -> None:
        with self.lock:
            self.bytes_read += nbytes
        self.progress.advance(0, nbytes)


def verify_archive(backend: Backend, art: Artifact, limits: ArchiveLimits,
                   on_bytes: Optional[Callable[[int], None]] = None) -> Optional[Problem]:
    """Read one archive through the backend; the problem it has, or None."""
    ext = art.name.ext if art.name is not None else "tar.zst"
    key = art.group_key
    with backend.open(art.path) as stream:
        try:
            result = check_archive(stream, ext, limits, on_bytes=on_bytes)
        except ArchiveDefect as exc:
            kind = "truncated-archive" if exc.truncated else "corrupt-archive"
            return Problem(art.path, key, kind, str(exc))
        except LimitExceeded as exc:
            return Problem(art.path, key, "archive-over-limit", str(exc))
        except OSError as exc:
            raise TransientError(f"reading {art.path}: {exc}", path=art.path) from exc
    if result.compressed_bytes < art.size:
        return Problem(art.path, key, "truncated-archive",
                       f"the listing says {art.size} bytes, only {result.compressed_bytes}"
                       " could be read")
    if result.compressed_bytes > art.size:
        return Problem(art.path, key, "corrupt-archive",
                       f"the listing says {art.size} bytes, {result.compressed_bytes} were"
                       " read (the file changed during verify?)")
    return None


def verify_siginfo(backend: Backend, art: Artifact, limits: Limits = DEFAULT_LIMITS
                   ) -> Optional[Problem]:
    """Read one ``.siginfo``: readable, self-consistent, and describing its own name."""
    key = art.group_key
    if art.size > limits.max_compressed:
        return Problem(art.path, key, "siginfo-over-limit",
                       f"{art.size} bytes, more than the {limits.max_compressed} bytes a"
                       " signature file may have")
    try:
        with FETCHES.hold():  # bytes in flight: FETCH_SLOTS x max_compressed at most
            sig = read_signature(backend.read(art.path, limits.max_compressed),
                                 source=art.path, limits=limits)
    except SignatureError as exc:
        detail = str(exc)
        prefix = f"{art.path}: "
        kind = ("siginfo-over-limit" if isinstance(exc, SignatureLimitError)
                else "siginfo-unreadable")
        return Problem(art.path, key, kind,
                       detail[len(prefix):] if detail.startswith(prefix) else detail)
    check = check_hashes(sig)
    if check.computed_basehash is not None and not check.basehash_ok:
        return Problem(art.path, key, "siginfo-hash-mismatch",
                       f"basehash recomputed {check.computed_basehash}, recorded"
                       f" {check.recorded_basehash}")
    if check.taskhash_ok is False:
        return Problem(art.path, key, "siginfo-hash-mismatch",
                       f"taskhash recomputed {check.computed_taskhash}, recorded"
                       f" {check.recorded_taskhash}")
    problem = _name_problem(art, sig)
    if problem is not None:
        return problem
    if check.computed_basehash is None:
        # "cannot verify" is not "wrong": a warning that --fix never deletes for
        return Problem(art.path, key, "siginfo-unverifiable",
                       "the basehash cannot be recomputed: the file does not say which task"
                       " it describes or lacks the value of a variable it depends on")
    return None


def _name_problem(art: Artifact, sig: Signature) -> Optional[Problem]:
    """The file describes another output than its name says."""
    name, key = art.name, art.group_key
    if name is None:
        return None
    expected = sig.unihash or sig.taskhash
    if expected is not None and name.hash != "INVALID" and expected != name.hash:
        field_name = "unihash" if sig.unihash else "taskhash"
        return Problem(art.path, key, "siginfo-name-mismatch",
                       f"the name says {name.hash}, the file's {field_name} is {expected}")
    if sig.task is not None and sig.task.startswith("do_") and sig.task[3:] != name.task:
        return Problem(art.path, key, "siginfo-name-mismatch",
                       f"the name says task {name.task}, the file describes {sig.task}")
    return None


def execute_verify(
    plan: VerifyPlan,
    backend: Backend,
    *,
    jobs: int,
    retries: int = 2,
    progress: Optional[Progress] = None,
    archive_limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
    signature_limits: Limits = DEFAULT_LIMITS,
) -> VerifyResult:
    """Run the plan's reads in parallel; return every problem, listing ones included."""
    progress = progress or Progress()
    sink = _Collector(progress)
    checks = plan.checks

    def run(check: Check) -> None:
        try:
            if check.what == "archive":
                problem = verify_archive(backend, check.artifact, archive_limits, sink.read)
            else:
                problem = verify_siginfo(backend, check.artifact, signature_limits)
                sink.read(check.artifact.size)
        except NotFoundError:
            sink.gone(check.path)
            return
        if problem is not None:
            sink.add(problem)

    result = VerifyResult()
    if checks:
        progress.phase("verifying", len(checks), sum(c.artifact.size for c in checks))
        failures = run_parallel(checks, run, jobs=jobs, retries=retries, progress=progress,
                                describe=lambda c: f"read {c.path}")
        progress.done()
        for index, error in failures.items():
            result.errors[checks[index].path] = error
    result.vanished = sorted(sink.vanished)
    gone = set(sink.vanished)
    read = [c for c in checks if c.path not in result.errors and c.path not in gone]
    result.archives = sum(1 for c in read if c.what == "archive")
    result.siginfo = sum(1 for c in read if c.what == "siginfo")
    result.bytes_read = sink.bytes_read
    result.problems = sorted([*plan.problems, *sink.problems], key=lambda p: (p.path, p.kind))
    return result


@dataclass
class FixResult:
    fixed: List[str] = field(default_factory=list)
    """Problem keys (``kind:path``) whose deletions all succeeded."""
    deleted: List[str] = field(default_factory=list)
    failed: Dict[str, BackendError] = field(default_factory=dict)


def execute_fix(plan: FixPlan, backend: Backend, *, jobs: int, retries: int = 2,
                progress: Optional[Progress] = None) -> FixResult:
    """Delete the fix plan's files like ``clean`` does: archives first, in batches."""
    clean = execute_clean(CleanPlan(deletions=list(plan.deletions)), backend, jobs=jobs,
                          retries=retries, progress=progress)
    failed = dict(clean.failed)
    result = FixResult(failed=failed)
    # clean keeps the companions of an archive it could not delete: not deleted either
    kept_groups = {d.artifact.group_key for d in plan.deletions
                   if d.path in failed and d.artifact.kind is Kind.ARCHIVE}
    for d in plan.deletions:
        if d.path in failed:
            continue
        if d.artifact.kind is not Kind.ARCHIVE and d.artifact.group_key in kept_groups:
            failed[d.path] = PermanentError("kept: its archive could not be deleted",
                                            path=d.path)
            continue
        result.deleted.append(d.path)
    result.fixed = fixed_problems(plan, set(failed))
    # a problem --fix does not delete for is gone too when another one took its file
    deleted = set(result.deleted)
    result.fixed += [problem_key(p) for p in plan.unfixable if p.path in deleted]
    return result
