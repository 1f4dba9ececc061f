"""``verify`` end to end on directories: the real caches pass; every damage is reported with
the right kind, ``--fix`` removes exactly the broken groups, and a second run is clean."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
import time
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from mirrors import is_lease
from runcli import run
from runcli import writable_copy as copy_cache
from sstate_mirror.archive_check import ArchiveLimits
from sstate_mirror.backends.local import LocalBackend
from sstate_mirror.commands.verify_run import verify_archive, verify_siginfo
from sstate_mirror.errors import NotFoundError, TransientError
from sstate_mirror.naming import make_artifact
from sstate_mirror.signatures.zstdframes import decompress_frames

OLD = time.time() - 2 * 86400


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Dict[str, Any]]:
    code, out, _ = run(capsys, *argv, "--json")
    return code, json.loads(out)


def snapshot(root: Path) -> Dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and not is_lease(str(p.relative_to(root)))}


@pytest.fixture
def mirror(tmp_path: Path, oe_cache_a: Path) -> Path:
    return copy_cache(oe_cache_a, tmp_path / "mirror")


def archives(root: Path, ext: str = ".tar.zst") -> List[Path]:
    """Archives that have a .siginfo, largest first (the damage needs some bytes)."""
    found = [p for p in root.rglob("*" + ext) if Path(str(p) + ".siginfo").exists()]
    return sorted(found, key=lambda p: (-p.stat().st_size, str(p)))


def rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root))


def problems_by_path(report: Dict[str, Any]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for p in report["problems"]:
        out.setdefault(p["path"], []).append(p["kind"])
    return out


# --- damage -------------------------------------------------------------------------------


def edited_siginfo(path: Path) -> bytes:
    """The same signature with one variable value changed, re-encoded as bitbake writes it."""
    raw = json.loads(decompress_frames(path.read_bytes(), 1 << 26))
    task = raw["task"]
    raw["varvals"][task] = (raw["varvals"][task] or "") + "\n# edited on the mirror"
    return zstandard.ZstdCompressor().compress(json.dumps(raw, sort_keys=True).encode())


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


def damage(root: Path, marker: Path) -> Dict[str, Any]:
    """Break a copy of cache A in every way verify must notice; return what was done."""
    arcs = archives(root)
    cuts = arcs[0:3]
    for i, (path, at) in enumerate(zip(cuts, (1, 2, 3))):
        data = path.read_bytes()
        path.write_bytes(data[: (len(data) * at) // 4] if i else data[:13])
    flipped = arcs[3]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    empty = arcs[4]
    empty.write_bytes(b"")
    garbage = arcs[5]
    garbage.write_bytes(b"GIF89a, certainly not zstd" * 20)
    not_tar = arcs[6]
    not_tar.write_bytes(zstandard.ZstdCompressor().compress(b"a zstd stream, but no tar\n" * 99))
    no_siginfo = arcs[7]
    Path(str(no_siginfo) + ".siginfo").unlink()
    edited = Path(str(arcs[8]) + ".siginfo")
    edited.write_bytes(edited_siginfo(edited))
    evil = Path(str(arcs[9]) + ".siginfo")
    evil.write_bytes(pickle.dumps({"task": "do_x", "basehash": _Evil(marker)}, protocol=2))
    # a .siginfo copied to another hash's name (a task siginfo without archive)
    source = Path(str(arcs[10]) + ".siginfo")
    old_hash = source.name.split(":")[-1].split("_")[0]
    new_hash = "ab" * 32
    renamed = root / "ab" / "ab" / source.name.replace(old_hash, new_hash)
    renamed.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, renamed)
    # leftovers of interrupted uploads, old enough to be leftovers
    temp1 = root / arcs[11].parent / ".sstate-mirror-0123456789abcdef.tmp"
    temp1.write_bytes(b"partial")
    temp2 = Path(str(arcs[11]) + ".Xy12Ab34")
    temp2.write_bytes(b"partial")
    for t in (temp1, temp2):
        os.utime(t, (OLD, OLD))
    return {
        "truncated": [rel(root, p) for p in cuts],
        "flipped": rel(root, flipped),
        "empty": rel(root, empty),
        "garbage": rel(root, garbage),
        "not_tar": rel(root, not_tar),
        "no_siginfo": rel(root, no_siginfo),
        "edited": rel(root, edited),
        "evil": rel(root, evil),
        "renamed": rel(root, renamed),
        "temps": [rel(root, temp1), rel(root, temp2)],
        "healthy": [rel(root, p) for p in arcs[11:]],
    }


# --- tests --------------------------------------------------------------------------------


def test_real_mirror_passes(mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys, "verify", str(mirror), "--all")
    assert code == 0, report["problems"]
    assert report["problems"] == [] and report["errors"] == {}
    assert report["checked"] == {"archives": 26, "siginfo": 67,
                                 "bytes_read": sum(p.stat().st_size for p in mirror.rglob("*")
                                                   if p.is_file())}


def test_legacy_tgz_mirror_passes_and_a_truncated_tgz_is_found(
        tmp_path: Path, legacy_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_cache(legacy_cache, tmp_path / "legacy")
    code, report = run_json(capsys, "verify", str(root), "--all")
    assert code == 0, report["problems"]
    assert report["checked"]["archives"] == 12 and report["checked"]["siginfo"] == 53
    tgz = archives(root, ".tgz")[0]
    tgz.write_bytes(tgz.read_bytes()[:-20])
    code, report = run_json(capsys, "verify", str(root), "--all")
    assert code == 1
    assert problems_by_path(report) == {rel(root, tgz): ["truncated-archive"]}


def test_every_damage_is_reported_and_fix_removes_exactly_the_broken_groups(
        mirror: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    d = damage(mirror, marker)
    before = snapshot(mirror)

    code, report = run_json(capsys, "verify", str(mirror), "--all")
    assert code == 1
    assert not marker.exists()
    expected = {
        **{p: ["truncated-archive"] for p in d["truncated"]},
        d["flipped"]: ["corrupt-archive"],
        d["empty"]: ["empty-file"],
        d["garbage"]: ["corrupt-archive"],
        d["not_tar"]: ["corrupt-archive"],
        d["no_siginfo"]: ["missing-siginfo"],
        d["edited"]: ["siginfo-hash-mismatch"],
        d["evil"]: ["siginfo-unreadable"],
        d["renamed"]: ["siginfo-name-mismatch"],
        **{t: ["leftover-temp"] for t in d["temps"]},
    }
    assert problems_by_path(report) == expected
    by_kind = {p["kind"]: p for p in report["problems"]}
    assert "unsafe" in by_kind["siginfo-unreadable"]["detail"]
    assert by_kind["missing-siginfo"]["severity"] == "warning"
    assert all(p["fix"] for p in report["problems"])

    # the human report names each problem and what to do
    code, out, err = run(capsys, "verify", str(mirror), "--all")
    assert code == 1
    assert f"error: truncated-archive: {d['truncated'][0]}" in out
    assert "fix: " in out + err
    assert not marker.exists()

    # dry run: lists the deletions, changes nothing
    code, report = run_json(capsys, "verify", str(mirror), "--all", "--fix", "--dry-run")
    assert code == 1
    assert snapshot(mirror) == before
    broken_groups = [*d["truncated"], d["flipped"], d["empty"], d["garbage"], d["not_tar"],
                     d["edited"][: -len(".siginfo")], d["evil"][: -len(".siginfo")]]
    expected_deleted = {m for g in broken_groups for m in (g, g + ".siginfo")
                        if m in before} | {d["renamed"], *d["temps"]}
    assert set(report["would_delete"]) == expected_deleted
    assert d["no_siginfo"] not in report["would_delete"]

    # fix: exactly those go, everything else stays byte for byte
    code, report = run_json(capsys, "verify", str(mirror), "--all", "--fix")
    assert code == 0  # only the missing .siginfo (a warning) is left
    assert set(report["deleted"]) == expected_deleted
    assert {p["path"] for p in report["fixed"]} == set(expected) - {d["no_siginfo"]}
    after = snapshot(mirror)
    assert after == {k: v for k, v in before.items() if k not in expected_deleted}
    assert not marker.exists()

    # a second run finds only the warning; --strict makes it fail; fixing it on request
    code, report = run_json(capsys, "verify", str(mirror), "--all")
    assert code == 0
    assert problems_by_path(report) == {d["no_siginfo"]: ["missing-siginfo"]}
    code, _ = run_json(capsys, "verify", str(mirror), "--all", "--strict")
    assert code == 1
    code, report = run_json(capsys, "verify", str(mirror), "--all", "--fix",
                            "--fix-missing-siginfo")
    assert code == 0 and report["deleted"] == [d["no_siginfo"]]
    code, report = run_json(capsys, "verify", str(mirror), "--all", "--strict")
    assert code == 0 and report["problems"] == []


def test_an_empty_archive_without_siginfo_is_fixed_once(
        mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arc = archives(mirror)[0]
    arc.write_bytes(b"")
    Path(str(arc) + ".siginfo").unlink()
    code, report = run_json(capsys, "verify", str(mirror), "--all", "--fix")
    assert code == 0
    assert sorted(p["kind"] for p in report["fixed"]) == ["empty-file", "missing-siginfo"]
    assert report["deleted"] == [rel(mirror, arc)]


def test_cut_at_several_offsets(mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = archives(mirror)[0]
    data = path.read_bytes()
    for cut in (4, 9, 12, 20, len(data) // 3, len(data) // 2, len(data) - 4, len(data) - 1):
        path.write_bytes(data[:cut])
        code, report = run_json(capsys, "verify", str(mirror), "--all")
        assert code == 1
        assert problems_by_path(report) == {rel(mirror, path): ["truncated-archive"]}, cut


def test_young_leftovers_are_not_reported(mirror: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """An upload running now writes temporary names: not leftovers yet."""
    arc = archives(mirror)[0]
    (arc.parent / ".sstate-mirror-00112233aabbccdd.tmp").write_bytes(b"in flight")
    code, report = run_json(capsys, "verify", str(mirror), "--sample", "0")
    assert code == 0 and report["problems"] == []
    code, report = run_json(capsys, "verify", str(mirror), "--sample", "0", "--min-age", "0s")
    assert [p["kind"] for p in report["problems"]] == ["leftover-temp"]


def test_sample_with_seed_is_reproducible(mirror: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _, one = run_json(capsys, "verify", str(mirror), "--sample", "5", "--seed", "7")
    _, two = run_json(capsys, "verify", str(mirror), "--sample", "5", "--seed", "7")
    _, other = run_json(capsys, "verify", str(mirror), "--sample", "5", "--seed", "8")
    assert one["sampled"] == two["sampled"] and len(one["sampled"]) == 5
    assert one["sampled"] != other["sampled"]
    assert one["sampled_groups"] == 5 and one["groups"] == 67


def test_filter_limits_what_is_read(mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zeta = [p for p in mirror.rglob("sstate:zeta:*")]
    code, report = run_json(capsys, "verify", str(mirror), "--all", "--filter", "zeta$")
    assert code == 0
    assert report["checked"]["siginfo"] == sum(p.name.endswith(".siginfo") for p in zeta)
    assert report["checked"]["archives"] == sum(p.name.endswith(".tar.zst") for p in zeta)
    assert 0 < report["checked"]["siginfo"] < 67


def test_read_errors_exit_3_and_fix_deletes_nothing(
        mirror: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    broken = archives(mirror)[1]
    broken.write_bytes(b"")
    unreadable = rel(mirror, archives(mirror)[0])
    real_open = LocalBackend.open

    def failing_open(self: LocalBackend, path: str) -> Any:
        if path == unreadable:
            raise TransientError("connection reset", path=path)
        return real_open(self, path)

    monkeypatch.setattr(LocalBackend, "open", failing_open)
    before = snapshot(mirror)
    code, report = run_json(capsys, "verify", str(mirror), "--all", "--fix", "--retries", "0")
    assert code == 3
    assert list(report["errors"]) == [unreadable]
    assert snapshot(mirror) == before


def test_progress_and_usage(mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", str(mirror), "--all", "-v")
    assert code == 0 and "verifying: 93/93 files" in out
    assert run(capsys, "verify", str(mirror), "--dry-run")[0] == 2
    assert run(capsys, "verify", str(mirror), "--fix-missing-siginfo")[0] == 2
    assert run(capsys, "verify", str(mirror), "--all", "--sample", "3")[0] == 2
    assert run(capsys, "verify", str(mirror), "--max-decompressed", "lots")[0] == 2
    assert run(capsys, "verify", str(mirror / "nope"))[0] == 3


def test_decompression_cap_is_a_warning_not_a_deletion(
        mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys, "verify", str(mirror), "--all", "--max-decompressed", "1K",
                            "--fix")
    assert code == 0
    assert {p["kind"] for p in report["problems"]} == {"archive-over-limit"}
    assert report["deleted"] == []


def test_file_deleted_since_the_listing_is_not_judged(
        mirror: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A concurrent clean may delete what was listed: neither a problem nor a read error."""
    gone = rel(mirror, archives(mirror)[0])
    real_open = LocalBackend.open

    def vanishing_open(self: LocalBackend, path: str) -> Any:
        if path == gone:
            raise NotFoundError("no such file", path=path)
        return real_open(self, path)

    monkeypatch.setattr(LocalBackend, "open", vanishing_open)
    code, report = run_json(capsys, "verify", str(mirror), "--all")
    assert code == 0
    assert report["vanished"] == [gone] and report["errors"] == {}
    assert report["checked"]["archives"] == 25


def test_oversized_siginfo_is_unreadable_without_reading_it() -> None:
    big = make_artifact(
        "ab/cd/sstate:x::1:r0::14:" + "ab" * 32 + "_fetch.tar.zst.siginfo", 1 << 40, 0.0)

    class NoReads(LocalBackend):
        def read(self, path: str, max_bytes: int) -> bytes:
            raise AssertionError("must not be read")

    problem = verify_siginfo(NoReads("/nonexistent"), big)
    assert problem is not None and problem.kind == "siginfo-over-limit"
    assert problem.severity == "warning"


class _OneFile(LocalBackend):
    """Serves one in-memory object for every path."""

    def __init__(self, data: bytes) -> None:
        super().__init__("/nonexistent")
        self.data = data

    @contextlib.contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:  # type: ignore[override]
        yield io.BytesIO(self.data)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(min_size=1, max_size=3000), ext=st.sampled_from(["tar.zst", "tgz"]))
def test_any_bytes_as_an_archive_are_a_problem_never_a_crash(data: bytes, ext: str) -> None:
    path = "ab/cd/sstate:x::1:r0::14:" + "ab" * 32 + "_populate_lic." + ext
    art = make_artifact(path, len(data), 0.0)
    problem = verify_archive(_OneFile(data), art, ArchiveLimits(max_decompressed=1 << 24))
    assert problem is not None
    assert problem.kind in ("truncated-archive", "corrupt-archive", "archive-over-limit")
    assert problem.group_key == path


def _rewritten(path: Path, change: Any) -> bytes:
    raw = json.loads(decompress_frames(path.read_bytes(), 1 << 26))
    change(raw)
    return zstandard.ZstdCompressor().compress(json.dumps(raw, sort_keys=True).encode())


def test_fix_never_deletes_a_group_whose_hash_cannot_be_recomputed(
        mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No ``task`` field, or a dependency listed without a value: the basehash cannot be
    recomputed. That is "cannot verify" (a warning), not a mismatch: --fix keeps the group."""
    no_task, no_value = (Path(str(a) + ".siginfo") for a in archives(mirror)[:2])

    def drop_task(raw: Dict[str, Any]) -> None:
        del raw["task"]

    def drop_a_value(raw: Dict[str, Any]) -> None:
        raw["taskdeps"] = [*raw["taskdeps"], "A_VARIABLE_WITHOUT_VALUE"]

    no_task.write_bytes(_rewritten(no_task, drop_task))
    no_value.write_bytes(_rewritten(no_value, drop_a_value))
    before = snapshot(mirror)
    code, report = run_json(capsys, "verify", str(mirror), "--all", "--fix")
    assert code == 0
    assert problems_by_path(report) == {rel(mirror, no_task): ["siginfo-unverifiable"],
                                        rel(mirror, no_value): ["siginfo-unverifiable"]}
    assert {p["severity"] for p in report["problems"]} == {"warning"}
    assert report["deleted"] == []
    assert snapshot(mirror) == before
