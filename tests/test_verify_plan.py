"""The verify plan and the fix plan are pure: listings in, checks/problems/deletions out."""

from __future__ import annotations

import re

import pytest

from sstate_mirror.commands.upload import Selection
from sstate_mirror.commands.verify import (
    PROBLEM_KINDS,
    Problem,
    VerifyOptions,
    plan_fix,
    plan_verify,
    problem_key,
)
from sstate_mirror.errors import UsageError
from sstate_mirror.naming import Artifact, make_artifact

NOW = 1_800_000_000.0
DAY = 86400.0


def name(pn: str, h: str, task: str = "populate_sysroot", arch: str = "x86_64") -> str:
    h = (h * 64)[:64]
    return f"{h[:2]}/{h[2:4]}/sstate:{pn}:{arch}-linux:1.0:r0:{arch}:14:{h}_{task}.tar.zst"


def art(path: str, size: int = 100, age: float = DAY) -> Artifact:
    return make_artifact(path, size, NOW - age)


def full_group(pn: str, h: str, **kw: object) -> list[Artifact]:
    p = name(pn, h, **kw)  # type: ignore[arg-type]
    return [art(p), art(p + ".siginfo"), art(p + ".sig")]


def kinds(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.kind, p.path) for p in problems]


def test_healthy_listing_has_no_listing_problems_and_reads_everything() -> None:
    arts = full_group("a", "1") + full_group("b", "2") + [art(name("c", "3") + ".siginfo")]
    plan = plan_verify(arts, VerifyOptions(read_all=True), NOW)
    assert plan.problems == []
    assert plan.groups == 3
    assert plan.archive_checks == 2 and plan.siginfo_checks == 3
    assert plan.sampled_groups == 3


def test_listing_problems() -> None:
    a = name("a", "1")
    b = name("b", "2")
    c = name("c", "3")
    d = name("d", "4")
    arts = [
        art(a, size=0), art(a + ".siginfo"),            # zero-size archive
        art(b),                                         # no .siginfo
        art(c + ".sig"),                                # .sig without archive
        art(d + ".sig", age=60),                        # ... too young to judge
        art(d + ".siginfo", size=0),                    # zero-size task siginfo
        art("ab/cd/.sstate-mirror-0123456789abcdef.tmp"),
        art(a + ".Ab12Cd34"),                           # mktemp leftover
        art(b + ".1234abcd", age=10),                   # young: maybe being written
        art("README.txt"),
    ]
    plan = plan_verify(arts, VerifyOptions(read_all=True), NOW)
    assert sorted(kinds(plan.problems)) == sorted([
        ("empty-file", a),
        ("missing-siginfo", b),
        ("orphan-sig", c + ".sig"),
        ("empty-file", d + ".siginfo"),
        ("leftover-temp", "ab/cd/.sstate-mirror-0123456789abcdef.tmp"),
        ("leftover-temp", a + ".Ab12Cd34"),
    ])
    assert plan.young_skipped == 2
    # zero-size files are not read; the rest is
    assert sorted(c.path for c in plan.checks) == [a + ".siginfo", b]


def test_sample_is_reproducible_with_a_seed_and_bounded() -> None:
    arts = [a for i in range(50) for a in full_group(f"p{i}", f"{i:02x}")]
    one = plan_verify(arts, VerifyOptions(sample=7, seed=42), NOW)
    two = plan_verify(list(reversed(arts)), VerifyOptions(sample=7, seed=42), NOW)
    other = plan_verify(arts, VerifyOptions(sample=7, seed=43), NOW)
    assert [c.path for c in one.checks] == [c.path for c in two.checks]
    assert [c.path for c in one.checks] != [c.path for c in other.checks]
    assert one.sampled_groups == 7 and one.groups == 50
    assert one.archive_checks == 7 and one.siginfo_checks == 7
    # listing checks always cover everything
    everything = plan_verify([*arts, art(name("z", "f"))], VerifyOptions(sample=1, seed=1), NOW)
    assert [p.kind for p in everything.problems] == ["missing-siginfo"]


def test_sample_zero_reads_nothing_but_still_checks_the_listing() -> None:
    plan = plan_verify([art(name("a", "1"), size=0)], VerifyOptions(sample=0), NOW)
    assert plan.checks == []
    assert {p.kind for p in plan.problems} == {"empty-file", "missing-siginfo"}


def test_selection() -> None:
    arts = full_group("zlib", "1") + full_group("zlib-native", "2", arch="x86_64") \
        + full_group("bash", "3", arch="core2") + [art("ab/.sstate-mirror-0123456789abcdef.tmp")]
    opts = VerifyOptions(read_all=True, selection=Selection(pn_filter=re.compile("zlib$")))
    plan = plan_verify(arts, opts, NOW)
    assert {c.artifact.pn for c in plan.checks} == {"zlib"}
    assert plan.problems == []
    assert plan.not_selected == 7
    plan = plan_verify(arts, VerifyOptions(read_all=True, selection=Selection(arch="core2")), NOW)
    assert {c.artifact.pn for c in plan.checks} == {"bash"}


def test_bad_options() -> None:
    with pytest.raises(UsageError):
        VerifyOptions(sample=-1)
    with pytest.raises(UsageError):
        VerifyOptions(min_age=-1)


def test_every_kind_has_a_meaning_and_a_fix() -> None:
    for kind in PROBLEM_KINDS.values():
        assert kind.meaning and kind.fix and kind.severity in ("error", "warning")


def _problem(path: str, kind: str, group: str | None = None) -> Problem:
    return Problem(path, group or path, kind, "detail")


def test_fix_deletes_whole_broken_groups_archives_first_and_nothing_else() -> None:
    a, b, c = name("a", "1"), name("b", "2"), name("c", "3")
    temp = "ab/cd/.sstate-mirror-0123456789abcdef.tmp"
    arts = full_group("a", "1") + full_group("b", "2") + [art(c), art(temp), art("README")]
    problems = [
        _problem(a, "truncated-archive"),
        _problem(b + ".siginfo", "siginfo-hash-mismatch", b),
        _problem(c, "missing-siginfo"),
        _problem(temp, "leftover-temp"),
    ]
    fix = plan_fix(problems, arts)
    paths = [d.path for d in fix.deletions]
    assert paths == [a, b, a + ".sig", a + ".siginfo", b + ".sig", b + ".siginfo", temp]
    assert c not in paths and "README" not in paths
    assert [p.kind for p in fix.unfixable] == ["missing-siginfo"]
    assert fix.fixes[problem_key(problems[0])] == [a + ".siginfo", a + ".sig", a]

    with_missing = plan_fix(problems, arts, fix_missing_siginfo=True)
    assert c in [d.path for d in with_missing.deletions]
    assert with_missing.unfixable == []


def test_fix_orphan_sig_deletes_only_the_sig_and_limits_stay_unfixed() -> None:
    c = name("c", "3")
    arts = [art(c + ".sig"), art(c + ".siginfo"), art(name("d", "4"))]
    problems = [_problem(c + ".sig", "orphan-sig", c),
                _problem(name("d", "4"), "archive-over-limit")]
    fix = plan_fix(problems, arts)
    assert [d.path for d in fix.deletions] == [c + ".sig"]
    assert [p.kind for p in fix.unfixable] == ["archive-over-limit"]


def test_fix_ignores_problems_about_files_not_listed() -> None:
    fix = plan_fix([_problem("x/y/gone", "leftover-temp")], [art(name("a", "1"))])
    assert fix.deletions == [] and len(fix.unfixable) == 1
