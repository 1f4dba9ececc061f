"""The use-mark plan as pure functions: stale groups only, one member per group."""

from __future__ import annotations

from sstate_mirror.commands.upload import plan_upload
from sstate_mirror.commands.usemark import mark_member, plan_marks
from sstate_mirror.naming import Artifact, group_artifacts, make_artifact

DAY = 86400.0
NOW = 1_800_000_000.0
H1, H2, H3 = "ab" * 32, "cd" * 32, "ef" * 32
ZLIB = f"ab/ab/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H1}_populate_sysroot.tar.zst"
M4 = f"universal/cd/cd/sstate:m4-native:x86_64-linux:1.4:r0:x86_64:14:{H2}_populate_sysroot.tar.zst"
CONF = f"ef/ef/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H3}_configure.tar.zst"


def art(path: str, size: int, days_ago: float, atime_days_ago: float | None = None) -> Artifact:
    atime = None if atime_days_ago is None else NOW - atime_days_ago * DAY
    return make_artifact(path, size, NOW - days_ago * DAY, atime)


def groups(*arts: Artifact) -> dict:
    return group_artifacts(arts)


def test_stale_groups_are_marked_fresh_ones_are_not() -> None:
    mirror = groups(art(ZLIB, 500, 3), art(ZLIB + ".siginfo", 20, 3),
                    art(M4, 500, 0.1), art(M4 + ".siginfo", 20, 3))
    plan = plan_marks([ZLIB, M4], mirror, now=NOW, refresh_after=DAY, touch_cost="size")
    # m4-native's archive was written (or marked) two hours ago: its group is fresh
    assert plan.marks == [ZLIB + ".siginfo"] and plan.fresh == 1 and plan.absent == 0


def test_refresh_interval_zero_marks_every_used_group_once() -> None:
    mirror = groups(art(ZLIB, 500, 0), art(ZLIB + ".siginfo", 20, 0), art(ZLIB + ".sig", 5, 0))
    plan = plan_marks([ZLIB, ZLIB], mirror, now=NOW, refresh_after=0, touch_cost="size")
    assert plan.marks == [ZLIB + ".sig"]


def test_unused_and_absent_groups_are_not_marked() -> None:
    mirror = groups(art(ZLIB, 500, 9), art(M4, 500, 9))
    plan = plan_marks([ZLIB, CONF], mirror, now=NOW, refresh_after=DAY, touch_cost="flat")
    assert plan.marks == [ZLIB] and plan.absent == 1  # m4-native was not used


def test_member_is_the_cheapest_for_the_store() -> None:
    (g,) = groups(art(ZLIB, 500, 3), art(ZLIB + ".siginfo", 20, 3),
                  art(ZLIB + ".sig", 5, 3)).values()
    # a touch that copies the object: the smallest member
    assert mark_member(g, "size").path == ZLIB + ".sig"
    # a touch that costs the same for any file: the .siginfo, which bitbake marks itself
    assert mark_member(g, "flat").path == ZLIB + ".siginfo"
    (alone,) = groups(art(ZLIB, 500, 3), art(ZLIB + ".sig", 5, 3)).values()
    assert mark_member(alone, "flat").path == ZLIB + ".sig"


def test_siginfo_access_time_is_a_use_mark() -> None:
    # a file:// mirror: bitbake read the .siginfo through its symlink an hour ago
    mirror = groups(art(ZLIB, 500, 40), art(ZLIB + ".siginfo", 20, 40, atime_days_ago=0.04))
    plan = plan_marks([ZLIB], mirror, now=NOW, refresh_after=DAY, touch_cost="flat")
    assert plan.marks == [] and plan.fresh == 1
    old_read = groups(art(ZLIB, 500, 40), art(ZLIB + ".siginfo", 20, 40, atime_days_ago=2))
    plan = plan_marks([ZLIB], old_read, now=NOW, refresh_after=DAY, touch_cost="flat")
    assert plan.marks == [ZLIB + ".siginfo"]


def test_mirror_time_in_the_future_reads_as_fresh() -> None:
    mirror = groups(art(ZLIB, 500, -0.5))
    assert plan_marks([ZLIB], mirror, now=NOW, refresh_after=DAY, touch_cost="size").marks == []


def local_and_mirror(mirror_days_ago: float) -> tuple[list, dict]:
    """A build that used zlib (and a configure siginfo) just now; the mirror holds both."""
    files = [(ZLIB, 500), (ZLIB + ".siginfo", 20), (CONF + ".siginfo", 30), (M4, 400)]
    local = [art(p, s, 0.01) for p, s in files[:3]] + [art(M4, 400, 5)]
    remote = {p: art(p, s, mirror_days_ago) for p, s in files}
    return local, remote


def test_upload_marks_one_member_of_each_stale_used_group() -> None:
    local, remote = local_and_mirror(3)
    plan = plan_upload(local, remote, now=NOW, used_within=DAY, refresh_after=DAY,
                       touch_cost="size")
    # m4-native's local copy is 5 days old: this build did not use it
    assert plan.touches == [ZLIB + ".siginfo", CONF + ".siginfo"]
    assert plan.transfers == [] and plan.fresh_groups == 0


def test_upload_on_a_fresh_mirror_marks_nothing() -> None:
    local, remote = local_and_mirror(0.1)
    plan = plan_upload(local, remote, now=NOW, used_within=DAY, refresh_after=DAY,
                       touch_cost="size")
    assert plan.touches == [] and plan.fresh_groups == 2
    plan = plan_upload(local, remote, now=NOW, used_within=DAY, refresh_after=0,
                       touch_cost="size")
    assert plan.touches == [ZLIB + ".siginfo", CONF + ".siginfo"]


def test_a_group_the_upload_sends_to_needs_no_mark() -> None:
    local, remote = local_and_mirror(3)
    del remote[ZLIB + ".siginfo"]  # missing on the mirror: sent, and so marked by the upload
    plan = plan_upload(local, remote, now=NOW, used_within=DAY, refresh_after=DAY,
                       touch_cost="size")
    assert [t.path for t in plan.transfers] == [ZLIB + ".siginfo"]
    assert plan.touches == [CONF + ".siginfo"]
    # the touch command uploads nothing: the archive on the mirror is marked instead
    plan = plan_upload(local, remote, now=NOW, used_within=DAY, refresh_after=DAY,
                       touch_cost="size", uploading=False)
    assert plan.touches == [ZLIB, CONF + ".siginfo"]


def test_no_touch_plans_no_marks() -> None:
    local, remote = local_and_mirror(3)
    plan = plan_upload(local, remote, now=NOW, used_within=None, refresh_after=DAY)
    assert plan.touches == [] and plan.fresh_groups == 0
