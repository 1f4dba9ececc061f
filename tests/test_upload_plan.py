"""The upload plan as a pure function of two listings."""

from __future__ import annotations

import re

from sstate_mirror.commands.upload import Selection, plan_upload
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
