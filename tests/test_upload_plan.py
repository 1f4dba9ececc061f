"""The upload plan as a pure function of two listings."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sstate_mirror.backends import open_backend
from sstate_mirror.commands.listing import list_artifacts, remote_artifacts
from sstate_mirror.commands.upload import SENDABLE, Selection, plan_upload
from sstate_mirror.naming import Kind, make_artifact

H1 = "ab" * 32
H2 = "cd" * 32
ZLIB = f"ab/ab/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H1}_populate_sysroot.tar.zst"
NATIVE = f"universal/cd/cd/sstate:m4-native:x86_64-linux:1.4:r0:x86_64:14:{H2}_populate_sysroot.tar.zst"


def arts(*paths_sizes: tuple[str, int]) -> list:
    return [make_artifact(p, s, 0.0) for p, s in paths_sizes]


def mirror(sizes: dict) -> dict:
    """A mirror listing as the planner gets it: path -> artifact."""
    return {p: make_artifact(p, s, 0.0) for p, s in sizes.items()}


def test_missing_files_companions_first() -> None:
    local = arts((ZLIB, 100), (ZLIB + ".siginfo", 10), (ZLIB + ".sig", 1))
    plan = plan_upload(local, {})
    assert [t.path for t in plan.transfers] == [ZLIB + ".sig", ZLIB + ".siginfo", ZLIB]
    assert [t.artifact.kind for t in plan.companions] == [Kind.SIG, Kind.SIGINFO]
    assert plan.bytes_to_send == 111


def test_present_with_same_size_is_not_sent_and_truncated_is_replaced() -> None:
    local = arts((ZLIB, 100), (ZLIB + ".siginfo", 10))
    plan = plan_upload(local, mirror({ZLIB: 40, ZLIB + ".siginfo": 10}))
    # the .siginfo goes with the archive that is sent: a clean may be deleting it now
    assert [(t.path, t.remote_size) for t in plan.transfers] == [(ZLIB + ".siginfo", 10),
                                                                 (ZLIB, 40)]
    assert plan.present == 0 and plan.present_bytes == 0
    plan = plan_upload(local, mirror({ZLIB: 100, ZLIB + ".siginfo": 10}))
    assert plan.transfers == [] and plan.present == 2 and plan.present_bytes == 110


def test_companion_missing_on_mirror_is_sent_alone() -> None:
    local = arts((ZLIB, 100), (ZLIB + ".siginfo", 10))
    plan = plan_upload(local, mirror({ZLIB: 100}))
    assert [t.path for t in plan.transfers] == [ZLIB + ".siginfo"]


def test_temp_and_unknown_are_skipped_with_reason() -> None:
    local = arts((ZLIB + ".AbCdEf12", 5), ("ab/ab/sigtask.x1y2z3", 1), ("README.txt", 3),
                 (ZLIB, 100))
    plan = plan_upload(local, {})
    assert [t.path for t in plan.transfers] == [ZLIB]
    assert {s.path: s.reason for s in plan.skipped} == {
        ZLIB + ".AbCdEf12": "temporary or partial file",
        "ab/ab/sigtask.x1y2z3": "temporary or partial file",
        "README.txt": "not an sstate file",
    }


def test_filter_and_arch() -> None:
    local = arts((ZLIB, 1), (ZLIB + ".siginfo", 1), (NATIVE, 1))
    by_pn = plan_upload(local, {}, Selection(pn_filter=re.compile("m4")))
    assert [t.path for t in by_pn.transfers] == [NATIVE]
    assert by_pn.not_selected == 2
    by_arch = plan_upload(local, {}, Selection(arch="core2-64"))
    assert {t.path for t in by_arch.transfers} == {ZLIB, ZLIB + ".siginfo"}
    # re.match semantics: anchored at the start of PN, like isar-sstate
    assert plan_upload(local, {}, Selection(pn_filter=re.compile("native"))).transfers == []


def test_plan_is_deterministic_and_serialisable() -> None:
    local = arts((NATIVE, 3), (ZLIB, 1), (ZLIB + ".siginfo", 2))
    a = plan_upload(local, {}).to_dict()
    b = plan_upload(list(reversed(local)), {}).to_dict()
    assert a == b
    assert a["files_to_upload"] == 3 and a["bytes_to_upload"] == 6


def test_hash_equivalence_database_is_skipped_under_its_own_reason() -> None:
    # bitbake-setup keeps the hash server's database in SSTATE_DIR
    local = arts(("hashserv.db", 4096), ("hashserv.db-wal", 10), ("hashserv.db-shm", 10),
                 ("hashserv.dbx", 1), (ZLIB, 100))
    plan = plan_upload(local, {})
    assert [t.path for t in plan.transfers] == [ZLIB]
    reasons = {s.path: s.reason for s in plan.skipped}
    assert reasons.pop("hashserv.dbx") == "not an sstate file"
    assert set(reasons.values()) == {"hash equivalence database (never uploaded)"}
    assert len(reasons) == 3


def test_lookup_by_listing_keeps_the_cache_groups_and_plans_as_the_whole_listing(
        tmp_path: Path) -> None:
    """The mirror's listing is read down to the files of the cache's groups (whatever the
    order the directory lists them in); the plan made of that is the plan made of every
    file of the mirror."""
    h3, h4 = "ef" * 32, "01" * 32
    conf = ZLIB.replace(H1, h3).replace("ab/ab/", "ef/ef/").replace("populate_sysroot",
                                                                      "package")
    other = ZLIB.replace(H1, h4).replace("ab/ab/", "01/01/")
    now = 1_800_000_000.0
    on_mirror = {ZLIB: 100, ZLIB + ".siginfo": 10, ZLIB + ".sig": 1,  # all of a group
                 NATIVE: 200,                                           # its archive alone
                 conf + ".siginfo": 12,                                 # a signature alone
                 other: 300, other + ".siginfo": 30,                    # not in the cache
                 "ab/ab/notes.txt": 5, ZLIB + ".tmp": 100}              # not sstate files
    for i, (path, size) in enumerate(on_mirror.items()):
        f = tmp_path / "mirror" / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x" * size)
        os.utime(f, (now - i * 86400, now - i * 86400))
    local = [make_artifact(p, s, now - 60) for p, s in (
        (ZLIB, 100), (NATIVE, 200), (NATIVE + ".siginfo", 20), (conf, 400),
        (conf + ".siginfo", 12), ("ab/ab/notes.txt", 5))]
    wanted = [a for a in local if a.kind in SENDABLE]
    with open_backend(str(tmp_path / "mirror")) as target:
        whole = {a.path: a for a in list_artifacts(target)}
        found = remote_artifacts(target, wanted, jobs=2)
    keys = {a.group_key for a in wanted}
    assert found == {p: a for p, a in whole.items() if a.group_key in keys}
    assert sorted(found) == sorted([ZLIB, ZLIB + ".siginfo", ZLIB + ".sig", NATIVE,
                                    conf + ".siginfo"])
    for uploading in (True, False):
        for refresh_after in (0.0, 2 * 86400.0):
            plans = [plan_upload(local, remote, now=now, used_within=3600.0,
                                 refresh_after=refresh_after, uploading=uploading).to_dict()
                     for remote in (found, whole)]
            assert plans[0] == plans[1]
            assert plans[0]["to_touch"] or plans[0]["used_groups_fresh"]
