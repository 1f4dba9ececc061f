"""``verify``: find what would make a consumer's setscene fail or silently rebuild.

bitbake only checks that an archive *exists* before it schedules a setscene task (FORMATS.md
§2). A zero-size, truncated or corrupt archive passes that check, then the setscene task
fails and the real task runs: every consumer pays a rebuild, and nothing says why. This
command finds those, and the other defects of a mirror, as data (:class:`Problem`).

Two kinds of checks:

* from the listing alone (every file, no reads): zero-size files, archives without
  ``.siginfo``, ``.sig`` files without archive, leftovers of interrupted uploads;
* by reading (all groups with ``--all``, else a random sample): archives are decompressed
  and their tar stream walked to the end (:mod:`sstate_mirror.archive_check`); ``.siginfo``
  files are parsed safely, their hashes recomputed from their content and compared with the
  values they record and with the hash in their file name.

The plan (:func:`plan_verify`) is pure: the listing, the options and ``now`` decide what is
read. :func:`plan_fix` turns problems into deletions (whole artifact groups, archives first,
so the next upload replaces them), and never deletes a file no problem names.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

from ..errors import UsageError
from ..naming import Artifact, Group, Kind, group_artifacts
from .clean import Deletion
from .listing import Selection

DEFAULT_SAMPLE = 100
#: Leftovers and orphaned ``.sig`` files younger than this may belong to an upload running
#: right now (uploads write companions first and use temporary names).
DEFAULT_MIN_AGE = 3600

ERROR = "error"
WARNING = "warning"

REUPLOAD = ("delete the group and upload it again from a cache that has it"
            " (sstate-mirror verify --fix deletes it; the next upload replaces it)")


@dataclass(frozen=True)
class ProblemKind:
    """What a kind of problem means for a consumer, how bad it is, and what fixes it."""

    name: str
    severity: str
    meaning: str
    fix: str
    fixed_by_deleting: bool = True
    """``--fix`` deletes what the problem names (the whole group for group problems)."""


_KINDS = [
    ProblemKind("empty-file", ERROR,
                "a zero-size file: bitbake finds the archive, the setscene task fails and the"
                " task is rebuilt", REUPLOAD),
    ProblemKind("truncated-archive", ERROR,
                "the archive ends too early (an interrupted upload at the final name): the"
                " setscene task fails and the task is rebuilt", REUPLOAD),
    ProblemKind("corrupt-archive", ERROR,
                "the archive is not a valid compressed tar stream: the setscene task fails"
                " and the task is rebuilt", REUPLOAD),
    ProblemKind("siginfo-unreadable", ERROR,
                "the .siginfo cannot be read safely (malformed, or a pickle that would run"
                " code): diffsigs and analyze cannot use it", REUPLOAD),
    ProblemKind("siginfo-hash-mismatch", ERROR,
                "the hashes recomputed from the .siginfo differ from the ones it records: it"
                " was edited or damaged, so the archive next to it is not trustworthy",
                REUPLOAD),
    ProblemKind("siginfo-over-limit", WARNING,
                "the .siginfo goes past a limit of the signature reader (bytes, decompressed"
                " bytes, values or nesting, far above any real one): not read, not judged",
                "read it with bitbake-dumpsig; delete the group by hand if it is not a real"
                " signature file; --fix never deletes for this", fixed_by_deleting=False),
    ProblemKind("siginfo-unverifiable", WARNING,
                "the hashes cannot be recomputed from the .siginfo (it does not say which task"
                " it describes, or lists a variable without its value): nothing vouches for"
                " the archive, and nothing shows it is wrong either",
                "compare with bitbake-dumpsig; --fix never deletes for this",
                fixed_by_deleting=False),
    ProblemKind("siginfo-name-mismatch", ERROR,
                "the .siginfo describes another task output than its file name says: the"
                " archive at this name may not be the output bitbake asks for", REUPLOAD),
    ProblemKind("archive-over-limit", WARNING,
                "the archive was not read to its end: it goes past a verification limit"
                " (size after decompression or number of members)",
                "raise --max-decompressed / --max-members to verify it, or delete it if it"
                " is not a real sstate archive", fixed_by_deleting=False),
    ProblemKind("missing-siginfo", WARNING,
                "an archive without .siginfo: bitbake still uses it, but diffsigs/analyze"
                " cannot explain its hash",
                "upload again from a cache that has it (upload sends the missing .siginfo"
                " alone); --fix deletes the archive only with --fix-missing-siginfo",
                fixed_by_deleting=False),
    ProblemKind("orphan-sig", WARNING,
                "a .sig whose archive is gone: useless, consumers never fetch it",
                "sstate-mirror verify --fix (or clean) removes it"),
    ProblemKind("leftover-temp", WARNING,
                "a leftover of an interrupted upload or of bitbake's own writes: never used",
                "sstate-mirror verify --fix (or clean) removes it"),
]

#: name -> kind, in report order
PROBLEM_KINDS: Dict[str, ProblemKind] = {k.name: k for k in _KINDS}


@dataclass(frozen=True)
class Problem:
    """One finding: ``path`` is the file, ``group_key`` the archive path it belongs with."""

    path: str
    group_key: str
    kind: str
    detail: str

    @property
    def severity(self) -> str:
        return PROBLEM_KINDS[self.kind].severity

    @property
    def fix(self) -> str:
        return PROBLEM_KINDS[self.kind].fix

    def to_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "group": self.group_key, "kind": self.kind,
                "severity": self.severity, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class VerifyOptions:
    """What to read: ``sample`` random groups (None with ``read_all``), seeded for repeats."""

    sample: Optional[int] = DEFAULT_SAMPLE
    read_all: bool = False
    seed: Optional[int] = None
    min_age: int = DEFAULT_MIN_AGE
    selection: Selection = field(default_factory=Selection)

    def __post_init__(self) -> None:
        if self.sample is not None and self.sample < 0:
            raise UsageError("--sample must not be negative")
        if self.min_age < 0:
            raise UsageError("--min-age must not be negative")


@dataclass(frozen=True)
class Check:
    """One file to read: an ``archive`` or a ``siginfo``."""

    what: str
    artifact: Artifact

    @property
    def path(self) -> str:
        return self.artifact.path


@dataclass
class VerifyPlan:
    checks: List[Check] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    """Found from the listing alone."""
    groups: int = 0
    """Groups (with an archive or a .siginfo) in the selection."""
    sampled_groups: int = 0
    not_selected: int = 0
    young_skipped: int = 0
    """Leftovers and orphaned .sig files too young to call leftovers."""

    @property
    def archive_checks(self) -> int:
        return sum(1 for c in self.checks if c.what == "archive")

    @property
    def siginfo_checks(self) -> int:
        return sum(1 for c in self.checks if c.what == "siginfo")


def _selected(art: Artifact, selection: Selection) -> bool:
    if selection.everything:
        return True
    return art.name is not None and selection.matches(art)


def plan_verify(artifacts: Iterable[Artifact], options: VerifyOptions, now: float
                ) -> VerifyPlan:
    """Decide what to read and report what the listing alone shows. Pure."""
    plan = VerifyPlan()
    arts: List[Artifact] = []
    for art in artifacts:
        if _selected(art, options.selection):
            arts.append(art)
        else:
            plan.not_selected += 1
    groups = group_artifacts(arts)
    for key in sorted(groups):
        g = groups[key]
        plan.problems.extend(_listing_problems(g))
        if g.archive is None and g.sig is not None:
            if g.sig.age(now) < options.min_age:
                plan.young_skipped += 1
            else:
                plan.problems.append(Problem(g.sig.path, key, "orphan-sig",
                                             "no archive next to the .sig"))
    for art in sorted(arts, key=lambda a: a.path):
        if art.kind is Kind.TEMP:
            if art.age(now) < options.min_age:
                plan.young_skipped += 1
            else:
                plan.problems.append(Problem(art.path, art.path, "leftover-temp",
                                             f"{art.size} bytes, never completed"))

    readable = [g for k, g in sorted(groups.items())
                if (g.archive is not None and g.archive.size > 0)
                or (g.siginfo is not None and g.siginfo.size > 0)]
    plan.groups = len(readable)
    if options.read_all or options.sample is None or options.sample >= len(readable):
        chosen = readable
    else:
        rng = random.Random(options.seed)  # noqa: S311 - sampling, not security
        chosen = sorted(rng.sample(readable, options.sample), key=lambda g: g.key)
    plan.sampled_groups = len(chosen)
    for g in chosen:
        if g.archive is not None and g.archive.size > 0:
            plan.checks.append(Check("archive", g.archive))
        if g.siginfo is not None and g.siginfo.size > 0:
            plan.checks.append(Check("siginfo", g.siginfo))
    return plan


def _listing_problems(g: Group) -> List[Problem]:
    out: List[Problem] = []
    for member in g.members():
        if member.size == 0:
            out.append(Problem(member.path, g.key, "empty-file",
                               f"zero-size {member.kind.value} file"))
    if g.archive is not None and g.siginfo is None:
        out.append(Problem(g.archive.path, g.key, "missing-siginfo",
                           "no .siginfo next to the archive"))
    return out


# --- --fix ------------------------------------------------------------------------------


@dataclass
class FixPlan:
    deletions: List[Deletion] = field(default_factory=list)
    """Archives first, then companions and leftovers (the order clean deletes in)."""
    fixes: Dict[str, List[str]] = field(default_factory=dict)
    """Problem key (``kind:path``) -> the paths whose deletion fixes it."""
    unfixable: List[Problem] = field(default_factory=list)
    """Problems --fix does not delete anything for."""


def problem_key(problem: Problem) -> str:
    return f"{problem.kind}:{problem.path}"


def plan_fix(problems: Sequence[Problem], artifacts: Iterable[Artifact], *,
             fix_missing_siginfo: bool = False) -> FixPlan:
    """What ``--fix`` deletes: the groups problems name, and leftovers. Pure.

    A group problem deletes the whole group (archive, .siginfo, .sig) so that the next upload
    sends it again complete; only files the listing showed are deleted, and only for a
    reported problem.
    """
    arts = list(artifacts)
    groups = group_artifacts(arts)
    by_path = {a.path: a for a in arts}
    plan = FixPlan()
    chosen: Dict[str, Deletion] = {}
    for problem in problems:
        kind = PROBLEM_KINDS[problem.kind]
        deletable = kind.fixed_by_deleting or (
            problem.kind == "missing-siginfo" and fix_missing_siginfo)
        if not deletable:
            plan.unfixable.append(problem)
            continue
        group = groups.get(problem.group_key)
        if problem.kind in ("leftover-temp", "orphan-sig") or group is None:
            members = [by_path[problem.path]] if problem.path in by_path else []
        else:
            members = group.members()
        if not members:
            plan.unfixable.append(problem)
            continue
        plan.fixes[problem_key(problem)] = [m.path for m in members]
        for m in members:
            chosen.setdefault(m.path, Deletion(m, problem.kind))
    order = {Kind.ARCHIVE: 0, Kind.SIGINFO: 1, Kind.SIG: 1, Kind.TEMP: 2, Kind.UNKNOWN: 3}
    plan.deletions = sorted(chosen.values(), key=lambda d: (order[d.artifact.kind], d.path))
    return plan


def fixed_problems(plan: FixPlan, failed: Set[str]) -> List[str]:
    """Problem keys whose every deletion succeeded."""
    return [key for key, paths in plan.fixes.items() if not any(p in failed for p in paths)]
