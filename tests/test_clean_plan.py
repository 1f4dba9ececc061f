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
    assert paths(plan_clean([art(a, -5)], CleanOptions(max_age=0, min_age=0), NOW)) == {
        a: "max-age"}
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
            if group.sig is not None:
                # an orphan .sig goes unless its group was written within min-age
                assert (group.sig.path in deleted) == (NOW - group.last_used >= opts.min_age)
            continue
        gone = group.archive.path in deleted
        # a group goes when its last use (newest member) is at least max-age ago, and
        # never when it was used within min-age
        assert gone == (NOW - group.last_used >= max(opts.max_age, opts.min_age))
        for companion in (group.siginfo, group.sig):
            if companion is not None:
                # a companion goes exactly when its archive goes
                assert (companion.path in deleted) == gone
    for a in files:
        if a.kind is Kind.UNKNOWN:
            assert a.path not in deleted
        if a.kind is Kind.TEMP:
            assert (a.path in deleted) == (a.age(NOW) >= DAY)
        rule = next((d.rule for d in plan.deletions if d.path == a.path), None)
        if rule == "orphan-sig":
            pass  # checked per group above
        elif rule not in (None, "stale-temp", "with-archive"):
            # nothing used more recently than max-age is ever deleted
            assert a.age(NOW) >= opts.max_age
    # archives are deleted before anything else
    kinds = [d.artifact.kind for d in plan.deletions]
    if Kind.ARCHIVE in kinds:
        assert kinds.index(Kind.ARCHIVE) == 0
        assert all(k is Kind.ARCHIVE for k in kinds[: kinds.count(Kind.ARCHIVE)])


# -- retention by last use, size, versions, orphans ---------------------------------------------

def test_last_use_is_the_newest_member_or_siginfo_atime() -> None:
    a = name(1)
    opts = CleanOptions(max_age=int(7 * DAY))
    # the archive was uploaded long ago, but a build touched its siginfo yesterday
    touched = [art(a, 40), art(a + ".siginfo", 1)]
    assert paths(plan_clean(touched, opts, NOW)) == {}
    # on a directory mirror bitbake records use in the .siginfo access time
    used = [art(a, 40), make_artifact(a + ".siginfo", 100, NOW - 40 * DAY, atime=NOW - DAY)]
    assert paths(plan_clean(used, opts, NOW)) == {}
    unused = [art(a, 40), make_artifact(a + ".siginfo", 100, NOW - 40 * DAY, atime=NOW - 40 * DAY)]
    assert set(paths(plan_clean(unused, opts, NOW))) == {a, a + ".siginfo"}


def test_orphans() -> None:
    gone = name(1)  # its archive was deleted earlier; an sstate task (populate_sysroot)
    live = name(2)
    task_sig = name(3, "compile") + ".siginfo"
    files = [art(gone + ".siginfo", 20), art(gone + ".sig", 20), art(live, 1),
             art(name(4) + ".sig", 0.01), art(task_sig, 20)]
    plan = plan_clean(files, CleanOptions(max_age=int(10 * DAY)), NOW)
    assert paths(plan) == {gone + ".siginfo": "orphan-siginfo", gone + ".sig": "orphan-sig",
                           task_sig: "max-sig-age"}
    # the fresh .sig (an upload in progress sends it before its archive) is protected


def test_max_versions_keeps_the_most_recently_used() -> None:
    def version(i: int, age: float) -> list[Artifact]:
        h = f"{i:064x}"
        p = f"{h[:2]}/{h[2:4]}/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{h}_populate_sysroot.tar.zst"
        return [art(p, age), art(p + ".siginfo", age)]

    files = version(1, 5) + version(2, 1) + version(3, 3) + version(4, 0.01)
    plan = plan_clean(files, CleanOptions(max_versions=2), NOW)
    # the two most recently used (4 and 2) stay; 3 and 1 go, each with its siginfo
    gone_hashes = {a.hash for a in (d.artifact for d in plan.deletions)}
    assert gone_hashes == {f"{3:064x}", f"{1:064x}"}
    assert len(plan.deletions) == 4
    assert set(paths(plan).values()) == {"max-versions", "with-archive"}


def test_max_size_evicts_least_recently_used_groups_whole() -> None:
    files = []
    for i, age in enumerate([30, 10, 20, 5, 0.001]):
        files += [art(name(i), age, 1000), art(name(i) + ".siginfo", age, 10)]
    plan = plan_clean(files, CleanOptions(max_size=2500), NOW)
    gone = paths(plan)
    # oldest first: group 0 (30d), then 2 (20d), then 1 (10d) -> 5050 - 3030 = 2020 <= 2500
    assert set(gone) == {name(i) + s for i in (0, 2, 1) for s in ("", ".siginfo")}
    assert plan.size_after == 2020 and not plan.budget_unmet


def test_max_size_never_evicts_recent_use_and_says_so() -> None:
    files = [art(name(1), 0.01, 5000), art(name(2), 3, 100)]
    plan = plan_clean(files, CleanOptions(max_size=1000), NOW)
    assert paths(plan) == {name(2): "max-size"}
    assert plan.budget_unmet and plan.protected_bytes == 5000
    assert plan.to_dict()["budget_unmet"] is True


def test_age_rule_before_size_rule() -> None:
    files = [art(name(1), 40, 100), art(name(2), 5, 100), art(name(3), 2, 100)]
    plan = plan_clean(files, CleanOptions(max_age=int(30 * DAY), max_size=150), NOW)
    assert paths(plan) == {name(1): "max-age", name(2): "max-size"}


def test_options_need_a_rule() -> None:
    with pytest.raises(UsageError):
        CleanOptions()
    with pytest.raises(UsageError):
        CleanOptions(max_versions=0)


@settings(max_examples=300, deadline=None)
@given(st.lists(_member, max_size=60), st.integers(min_value=0, max_value=3 * 10**9),
       st.floats(min_value=0, max_value=3, allow_nan=False))
def test_size_budget_property(members: list, budget: int, min_age_days: float) -> None:
    files = _mirror(members)
    opts = CleanOptions(max_size=budget, min_age=int(min_age_days * DAY))
    plan = plan_clean(files, opts, NOW)
    deleted = {d.path for d in plan.deletions}
    left = [a for a in files if a.path not in deleted]
    size_left = sum(a.size for a in left)
    groups = group_artifacts(files)
    protected = sum(a.size for a in left if a.kind in (Kind.ARCHIVE, Kind.SIGINFO, Kind.SIG)
                    and NOW - groups[a.group_key].last_used < opts.min_age)
    untouchable = sum(a.size for a in left if a.kind in (Kind.UNKNOWN, Kind.TEMP))
    assert plan.budget_unmet == (size_left > budget)
    if plan.budget_unmet:
        # the mirror is over budget only when nothing evictable is left
        assert size_left == protected + untouchable
    # an archive is never deleted while its .sig (or .siginfo) stays
    for g in groups.values():
        if g.archive is not None and g.archive.path in deleted:
            assert all(m.path in deleted for m in g.members())
    # nothing used within min-age is evicted
    for d in plan.deletions:
        if d.rule == "max-size":
            assert NOW - groups[d.artifact.group_key].last_used >= opts.min_age


def test_max_age_zero_keeps_what_was_used_within_min_age() -> None:
    """``--max-age 0s`` must not delete what a build used seconds ago: --min-age guards
    every rule that deletes by age (max-age, max-sig-age, orphan-siginfo)."""
    used_now, used_2h = name(1), name(2)
    sig_now = name(3, task="compile") + ".siginfo"  # a task signature without archive
    orphan_now = name(4) + ".siginfo"                # an sstate task's orphaned signature
    arts = [art(used_now, 10 / DAY), art(used_now + ".siginfo", 10 / DAY),
            art(used_2h, 2 / 24), art(used_2h + ".siginfo", 2 / 24),
            art(sig_now, 10 / DAY), art(orphan_now, 10 / DAY)]
    plan = plan_clean(arts, CleanOptions(max_age=0), NOW)
    assert paths(plan) == {used_2h: "max-age", used_2h + ".siginfo": "with-archive"}
    # an explicit --min-age 0s is what deletes everything
    plan = plan_clean(arts, CleanOptions(max_age=0, min_age=0), NOW)
    assert set(paths(plan)) == {a.path for a in arts}
