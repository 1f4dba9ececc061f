"""The clean plan: each rule, their interplay, and invariants over generated mirrors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstate_mirror.commands.clean import CleanOptions, plan_clean
from sstate_mirror.errors import UsageError
from sstate_mirror.naming import Artifact, Kind, group_artifacts, make_artifact

DAY = 86400.0
NOW = 1_800_000_000.0


def name(i: int, task: str = "populate_sysroot") -> str:
    h = f"{i:064x}"
    return f"{h[:2]}/{h[2:4]}/sstate:pn{i}:core2-64-poky-linux:1.0:r0:core2-64:14:{h}_{task}.tar.zst"


def art(path: str, age_days: float, size: int = 100) -> Artifact:
    return make_artifact(path, size, NOW - age_days * DAY)


def paths(plan) -> dict[str, str]:
    return {d.path: d.rule for d in plan.deletions}


def test_old_archive_goes_with_companions() -> None:
    a = name(1)
    plan = plan_clean([art(a, 10), art(a + ".siginfo", 10), art(a + ".sig", 10)],
                      CleanOptions(max_age=int(7 * DAY)), NOW)
    assert paths(plan) == {a: "max-age", a + ".siginfo": "with-archive", a + ".sig": "with-archive"}
    # archives first, so an interrupted clean never leaves an archive without its signature
    assert plan.deletions[0].path == a
    assert plan.bytes_to_free == 300 and plan.kept == 0


def test_young_archive_keeps_even_an_old_siginfo() -> None:
    a = name(1)
    plan = plan_clean([art(a, 1), art(a + ".siginfo", 40)],
                      CleanOptions(max_age=int(7 * DAY), max_sig_age=int(30 * DAY)), NOW)
    assert paths(plan) == {}
    assert plan.kept == 2


def test_siginfo_without_archive_uses_max_sig_age() -> None:
    compile_sig = name(2, "compile") + ".siginfo"  # non-sstate task: never has an archive
    young = name(3, "configure") + ".siginfo"
    opts = CleanOptions(max_age=int(7 * DAY), max_sig_age=int(30 * DAY))
    plan = plan_clean([art(compile_sig, 31), art(young, 20)], opts, NOW)
    assert paths(plan) == {compile_sig: "max-sig-age"}


def test_max_sig_age_defaults_to_max_age() -> None:
    s = name(2, "compile") + ".siginfo"
    assert paths(plan_clean([art(s, 8)], CleanOptions(max_age=int(7 * DAY)), NOW)) == {
        s: "max-sig-age"}


def test_age_boundary_is_inclusive() -> None:
    a = name(1)
    assert paths(plan_clean([art(a, 7)], CleanOptions(max_age=int(7 * DAY)), NOW)) == {a: "max-age"}
    assert paths(plan_clean([art(a, 6.999)], CleanOptions(max_age=int(7 * DAY)), NOW)) == {}


def test_stale_temp_files_and_unknown_files() -> None:
    a = name(1)
    files = [art(a + ".XyZ12345", 2), art(a + ".Fresh123", 0.5), art("ab/cd/sigtask.abc", 3),
             art("README", 900), art("index.html", 900)]
    plan = plan_clean(files, CleanOptions(max_age=int(30 * DAY)), NOW)
    assert paths(plan) == {a + ".XyZ12345": "stale-temp", "ab/cd/sigtask.abc": "stale-temp"}
    assert sorted(u.path for u in plan.unknown) == ["README", "index.html"]


def test_max_sig_age_below_max_age_is_refused() -> None:
    with pytest.raises(UsageError):
        CleanOptions(max_age=int(7 * DAY), max_sig_age=int(1 * DAY))


def test_future_mtimes_read_as_new() -> None:
    a = name(1)
    assert paths(plan_clean([art(a, -5)], CleanOptions(max_age=0), NOW)) == {a: "max-age"}
    assert paths(plan_clean([art(a, -5)], CleanOptions(max_age=1), NOW)) == {}


def test_by_rule_summary_and_dict() -> None:
    a, b = name(1), name(2)
    plan = plan_clean([art(a, 10, 5), art(a + ".siginfo", 10, 2), art(b, 1, 7)],
                      CleanOptions(max_age=int(7 * DAY)), NOW)
    assert plan.by_rule() == {"max-age": {"files": 1, "bytes": 5},
                              "with-archive": {"files": 1, "bytes": 2}}
    d = plan.to_dict()
    assert d["files_to_delete"] == 2 and d["bytes_to_free"] == 7 and d["kept_bytes"] == 7


# -- invariants over generated mirrors ------------------------------------------------------------

_member = st.tuples(
    st.integers(min_value=0, max_value=30),                      # group id
    st.sampled_from(["", ".siginfo", ".sig", ".AbCd1234", "#compile"]),  # what
    st.floats(min_value=0, max_value=120, allow_nan=False),       # age in days
    st.integers(min_value=0, max_value=10**9),                    # size
)


def _mirror(members: list) -> list[Artifact]:
    seen = {}
    for gid, what, age, size in members:
        path = name(gid, "compile") + ".siginfo" if what == "#compile" else name(gid) + what
        seen[path] = art(path, age, size)
    return list(seen.values())


@settings(max_examples=300, deadline=None)
@given(st.lists(_member, max_size=80), st.integers(min_value=0, max_value=60),
       st.integers(min_value=0, max_value=60))
def test_clean_invariants(members: list, max_age_days: int, extra_sig_days: int) -> None:
    files = _mirror(members)
    opts = CleanOptions(max_age=max_age_days * int(DAY),
                        max_sig_age=(max_age_days + extra_sig_days) * int(DAY))
    plan = plan_clean(files, opts, NOW)
    deleted = {d.path for d in plan.deletions}
    # every file at most once, and the freed bytes are exactly the deleted files' sizes
    assert len(deleted) == len(plan.deletions)
    assert plan.bytes_to_free == sum(a.size for a in files if a.path in deleted)
    assert plan.kept == len(files) - len(deleted)
    for group in group_artifacts(files).values():
        if group.archive is None:
            continue
        gone = group.archive.path in deleted
        assert gone == (group.archive.age(NOW) >= opts.max_age)
        for companion in (group.siginfo, group.sig):
            if companion is not None:
                # a companion goes exactly when its archive goes
                assert (companion.path in deleted) == gone
    for a in files:
        if a.kind is Kind.UNKNOWN:
            assert a.path not in deleted
        if a.kind is Kind.TEMP:
            assert (a.path in deleted) == (a.age(NOW) >= DAY)
        if a.path in deleted and a.kind is not Kind.TEMP:
            # nothing younger than max-age is ever deleted
            assert a.age(NOW) >= opts.max_age or any(
                d.rule == "with-archive" for d in plan.deletions if d.path == a.path)
    # archives are deleted before anything else
    kinds = [d.artifact.kind for d in plan.deletions]
    if Kind.ARCHIVE in kinds:
        assert kinds.index(Kind.ARCHIVE) == 0
        assert all(k is Kind.ARCHIVE for k in kinds[: kinds.count(Kind.ARCHIVE)])
