"""Pins: what a release needs is never evicted.

Pure parts (sources, the pin document, the clean plan with pins) and the commands end to end
on every kind of mirror, with bitbake's real ``locked-sigs.inc`` of build B
(``tests/data/oe-wrynose/locked-sigs-b.inc``, see tests/data/README.md).
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Dict, List, Set

import pytest

from mirrors import Mirror, is_lease
from sstate_mirror.cli import main
from sstate_mirror.commands.clean import CleanOptions, plan_clean, spare_pinned
from sstate_mirror.commands.pins import Pin, PinSet, pin_status
from sstate_mirror.commands.pinsources import (
    objects_of_stamps,
    parse_hash_list,
    parse_locked_sigs,
    parse_text,
)
from sstate_mirror.errors import PermanentError, UsageError
from sstate_mirror.naming import PINS_DIR, Kind, classify, hash_of, make_artifact, pin_path

DATA = Path(__file__).parent / "data" / "oe-wrynose"
LOCKED_B = DATA / "locked-sigs-b.inc"
DAY = 86400
NOW = 2_000_000_000.0
H1 = "1" * 64
H2 = "2" * 64
H3 = "3" * 64


def _files(cache: Path) -> Set[str]:
    return {str(p.relative_to(cache)) for p in cache.rglob("*")
            if p.is_file() and not is_lease(str(p.relative_to(cache)))}


def _hashes(paths: Set[str]) -> Set[str]:
    return {h for h in (hash_of(p) for p in paths) if h is not None}


# --- sources ----------------------------------------------------------------------------------


def test_locked_sigs_of_build_b_names_every_group_of_cache_b() -> None:
    objects = parse_locked_sigs(LOCKED_B.read_text(), "locked-sigs-b.inc")
    assert len(objects) == 72
    assert objects["c12b302ecbe1ce68d0e3b5e5e07c73d6a69b8000f1ba0f193220c8c5073f5249"] == (
        "alpha-native", "do_build")
    b_hashes = _hashes(_files(DATA / "cache-b"))
    assert b_hashes <= set(objects)  # every group of build B's cache
    assert len(set(objects) - b_hashes) == 5  # do_build: no signature, no archive
    assert not _hashes(_files(DATA / "cache-a")) <= set(objects)


def test_locked_sigs_syntax_variants() -> None:
    text = (
        'SIGGEN_LOCKEDSIGS_t-core2-64 = "\\\n    foo:do_install:' + H1 + ' \\\n    "\n'
        'SIGGEN_LOCKEDSIGS_t-allarch += "bar:do_populate_lic:' + H2 + '"\n'
        'SIGGEN_LOCKEDSIGS_TYPES:qemux86-64 = "t-core2-64 t-allarch"\n'
        'SIGGEN_LOCKEDSIGS_TASKSIG_CHECK = "error"\n'
        'SIGGEN_UNIHASHMAP += "\\\n    foo:do_compile:' + H2 + ':' + H3 + ' \\\n    "\n'
    )
    assert parse_text(text, "x") == {H1: ("foo", "do_install"), H2: ("bar", "do_populate_lic"),
                                     H3: ("foo", "do_compile")}


@pytest.mark.parametrize("text", [
    'SIGGEN_LOCKEDSIGS_t-x = "foo:do_install"\n',
    'SIGGEN_LOCKEDSIGS_t-x = "foo:do_install:nothex"\n',
    'SIGGEN_LOCKEDSIGS_t-x = ""\n',
])
def test_locked_sigs_that_pin_nothing_or_garbage_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_locked_sigs(text, "x")


def test_hash_list_takes_hashes_names_and_paths() -> None:
    name = ("sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:" + H2
            + "_populate_sysroot.tar.zst")
    text = f"# release 5.0\n{H1}\n  aa/bb/{name}.siginfo   # a path\n{name}\n\n"
    assert parse_hash_list(text, "list") == {H1: ("", ""), H2: ("zlib", "do_populate_sysroot")}


def test_hash_list_refuses_a_typo_naming_its_line() -> None:
    with pytest.raises(UsageError, match=r"line 2: 'sstate:zlib'"):
        parse_hash_list(f"{H1}\nsstate:zlib\n", "list")
    with pytest.raises(UsageError, match="names no task hash"):
        parse_hash_list("# nothing\n", "list")


def test_stamps_give_their_hashes() -> None:
    paths = [f"x86_64-linux/zlib-native/1.3-r0.do_compile.sigdata.{H1}",
             f"x86_64-linux/zlib-native/1.3-r0.do_populate_sysroot.sigdata.{H2}",
             "x86_64-linux/zlib-native/1.3-r0.do_compile.taint"]
    assert objects_of_stamps(paths) == {H1: ("zlib-native", "do_compile"),
                                        H2: ("zlib-native", "do_populate_sysroot")}


# --- the pin document ---------------------------------------------------------------------------


def test_pin_document_round_trips() -> None:
    pin = Pin("rel-1.0", NOW, {H1: ("foo", "do_install")}, ["locked-sigs.inc"], NOW + DAY)
    again = Pin.from_bytes(pin.to_bytes(), "rel-1.0")
    assert again == pin


@pytest.mark.parametrize("data", [
    b"not json", b"[]", b'{"format": 2}', b"[" * 100_000 + b"]" * 100_000,
    b'{"format": 1, "created": "x", "expires": null, "sources": [], "objects": []}',
    b'{"format": 1, "created": 1, "expires": null, "sources": [], "objects": [["xyz","a","b"]]}',
    b'{"format": 1, "created": 1, "expires": null, "sources": [3], "objects": []}',
])
def test_malformed_pin_documents_are_refused(data: bytes) -> None:
    with pytest.raises(PermanentError, match="pin 'p'"):
        Pin.from_bytes(data, "p")


def test_pins_live_where_bitbake_never_looks_and_are_never_unknown() -> None:
    assert pin_path("rel-b") == ".sstate-mirror/pins/rel-b.json"
    assert classify(pin_path("rel-b")) is Kind.META
    assert classify(".sstate-mirror/pins/.sstate-mirror-0123456789abcdef.tmp") is Kind.TEMP
    assert classify("README.json") is Kind.UNKNOWN


# --- clean with pins ------------------------------------------------------------------------------


def _group(h: str, task: str, age: float, size: int = 100, archive: bool = True) -> List:
    base = f"aa/bb/sstate:foo:core2-64-poky-linux:1.0:r0:core2-64:14:{h}_{task}.tar.zst"
    arts = [make_artifact(base + ".siginfo", 10, NOW - age)]
    if archive:
        arts.append(make_artifact(base, size, NOW - age))
    return arts


def _pins(*objects: Dict, now: float = NOW, expires: float = 0) -> PinSet:
    return PinSet.of([Pin(f"p{i}", NOW - DAY, o, [], expires or None)
                      for i, o in enumerate(objects)], now)


@pytest.mark.parametrize("options", [
    CleanOptions(max_age=30 * DAY), CleanOptions(max_size=1), CleanOptions(max_versions=1),
    CleanOptions(max_age=30 * DAY, max_sig_age=30 * DAY, max_size=0, max_versions=1),
])
def test_clean_never_deletes_a_pinned_group(options: CleanOptions) -> None:
    arts = (_group(H1, "populate_sysroot", 60 * DAY) + _group(H2, "populate_sysroot", 50 * DAY)
            + _group(H3, "compile", 60 * DAY, archive=False))
    unpinned = plan_clean(arts, options, NOW)
    assert {d.artifact.hash for d in unpinned.deletions} >= {H1}
    plan = plan_clean(arts, options, NOW, _pins({H1: ("foo", "do_populate_sysroot"),
                                                 H3: ("foo", "do_compile")}))
    assert not {d.artifact.hash for d in plan.deletions} & {H1, H3}
    spared = {(p.artifact.hash, p.pin) for p in plan.pinned}
    assert (H1, "p0") in spared
    assert plan.pinned_bytes == 110 + 10
    assert plan.to_dict()["pinned"]


def test_max_size_counts_pinned_bytes_without_evicting_them() -> None:
    arts = _group(H1, "populate_sysroot", 60 * DAY, 1000) + _group(H2, "install", 1 * DAY, 10)
    plan = plan_clean(arts, CleanOptions(max_size=500), NOW, _pins({H1: ("", "")}))
    assert {d.artifact.hash for d in plan.deletions} == {H2}
    assert plan.pinned_bytes == 1010 and plan.budget_unmet


def test_an_expired_pin_protects_nothing() -> None:
    arts = _group(H1, "populate_sysroot", 60 * DAY)
    pins = _pins({H1: ("", "")}, expires=NOW - 1)
    assert [p.name for p in pins.expired] == ["p0"]
    plan = plan_clean(arts, CleanOptions(max_age=30 * DAY), NOW, pins)
    assert {d.artifact.hash for d in plan.deletions} == {H1}


def test_a_pin_made_while_planning_is_honoured_before_deleting() -> None:
    arts = _group(H1, "populate_sysroot", 60 * DAY) + _group(H2, "populate_sysroot", 60 * DAY)
    plan = plan_clean(arts, CleanOptions(max_age=30 * DAY), NOW)
    spared = spare_pinned(plan, _pins({H2: ("", "")}))
    assert {s.artifact.hash for s in spared} == {H2} and len(spared) == 2
    assert {d.artifact.hash for d in plan.deletions} == {H1}


def test_pin_status_counts_what_the_mirror_lacks() -> None:
    arts = (_group(H1, "populate_sysroot", 0) + _group(H2, "compile", 0, archive=False))
    pin = Pin("p", NOW, {H1: ("foo", "do_populate_sysroot"), H2: ("foo", "do_compile"),
                         H3: ("foo", "do_populate_sysroot"), "4" * 64: ("foo", "do_build")},
              [])
    status = pin_status([pin], arts, NOW)[0]
    assert (status.groups, status.objects, status.bytes) == (2, 3, 120)
    assert status.absent == 2
    assert status.missing == [(H3, "foo", "do_populate_sysroot")]


# --- the commands, on every kind of mirror ----------------------------------------------------------


def _age(directory: Path) -> None:
    then = time.time() - 60 * DAY
    for p in directory.rglob("*"):
        if p.is_file():
            os.utime(p, (then, then))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _content(m: Mirror) -> Set[str]:
    return {p for p in m.sizes() if not p.startswith(".sstate-mirror/")}


def _fill(m: Mirror, capsys: pytest.CaptureFixture[str], *caches: Path) -> None:
    for cache in caches:
        assert _run(capsys, "-q", "upload", str(cache), m.url, *m.cli_args)[0] == 0
    m.age_all(60 * DAY, lambda p: not p.startswith(".sstate-mirror/"))


def test_pin_keeps_exactly_the_release_under_every_rule(
        mirror: Mirror, oe_cache_a: Path, oe_cache_b: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    m = mirror
    b_files = _files(oe_cache_b)
    _fill(m, capsys, oe_cache_a, oe_cache_b)
    assert _content(m) == _files(oe_cache_a) | b_files
    code, out, err = _run(capsys, "pin", m.url, "rel-b", "--from", str(LOCKED_B), *m.cli_args)
    assert code == 0, err
    assert "pinned rel-b: 72 hashes" in out
    for rule in (["--max-age", "30d"], ["--max-size", "1"]):
        code, out, err = _run(capsys, "clean", m.url, *rule, *m.cli_args)
        assert code == 0, err
        assert _content(m) == b_files, rule
        assert "kept by rel-b" in out
        _fill(m, capsys, oe_cache_a)  # build A's groups are back, and old
    code, out, err = _run(capsys, "--json", "pins", m.url, *m.cli_args)
    assert code == 0, err
    (pin,) = json.loads(out)["pins"]
    assert (pin["name"], pin["hashes"], pin["groups"], pin["absent"]) == ("rel-b", 72, 67, 5)
    assert pin["objects"] == len(b_files) and pin["missing_archives"] == []
    code, out, err = _run(capsys, "--json", "info", m.url, *m.cli_args)
    assert code == 0, err
    assert json.loads(out)["pins"][0]["groups"] == 67
    assert _run(capsys, "unpin", m.url, "rel-b", *m.cli_args)[0] == 0
    code, _, err = _run(capsys, "clean", m.url, "--max-age", "30d", *m.cli_args)
    assert code == 0, err
    assert _content(m) == set()
    assert m.sizes() == {}  # the pin is gone too


def test_pins_report_the_archives_the_mirror_lacks(
        tmp_path: Path, oe_cache_b: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "m"
    assert _run(capsys, "-q", "upload", str(oe_cache_b), str(mirror))[0] == 0
    gone = next(p for p in mirror.rglob("*populate_sysroot.tar.zst"))
    gone.unlink()
    assert _run(capsys, "pin", str(mirror), "rel-b", "--from", str(LOCKED_B))[0] == 0
    code, out, err = _run(capsys, "-v", "pins", str(mirror))
    assert code == 0, err
    assert "the mirror lacks 1 archive of its sstate tasks" in out
    assert f"missing: {gone.name.split(':')[1]}:do_populate_sysroot:" in out + err


def test_keep_applies_a_keep_set_once_without_storing_it(
        tmp_path: Path, oe_cache_a: Path, oe_cache_b: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "m"
    for cache in (oe_cache_a, oe_cache_b):
        assert _run(capsys, "-q", "upload", str(cache), str(mirror))[0] == 0
    _age(mirror)
    listing = "\n".join(sorted(_files(oe_cache_b))) + "\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(listing.encode())))
    code, _, err = _run(capsys, "clean", str(mirror), "--max-age", "30d", "--keep", "-")
    assert code == 0, err
    assert _files(mirror) == _files(oe_cache_b)
    assert not (mirror / PINS_DIR).exists()


def test_an_expired_pin_is_reported_and_keeps_nothing(
        tmp_path: Path, oe_cache_b: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "m"
    assert _run(capsys, "-q", "upload", str(oe_cache_b), str(mirror))[0] == 0
    _age(mirror)
    objects = parse_locked_sigs(LOCKED_B.read_text(), "b")
    pin = Pin("old", 1_000_000_000.0, objects, ["b"], expires=1_100_000_000.0)
    (mirror / ".sstate-mirror" / "pins").mkdir(parents=True)
    (mirror / pin_path("old")).write_bytes(pin.to_bytes())
    code, out, _ = _run(capsys, "pins", str(mirror))
    assert code == 1 and "EXPIRED 2004-11-09" in out
    code, _, err = _run(capsys, "clean", str(mirror), "--max-age", "30d")
    assert code == 0, err
    assert "warning: pin old has expired" in err
    assert _files(mirror) == {pin_path("old")}


@pytest.mark.parametrize("argv,message", [
    (["pin", "M", "../x", "--from", str(LOCKED_B)], "invalid pin name"),
    (["pin", "M", "rel", "--from", "/nonexistent/locked-sigs.inc"], "no such file"),
    (["pin", "M", "rel", "--from", ""], "empty SOURCE"),
    (["pin", "M", "rel", "--from", str(LOCKED_B), "--expires", "2001-01-01"], "in the past"),
    (["pin", "M", "rel", "--from", str(LOCKED_B), "--expires", "soon"], "neither a date"),
    (["verify", "M", "--pin", "nope"], "has no pin 'nope'"),
])
def test_fumbled_pin_commands_are_usage_errors_that_touch_nothing(
        tmp_path: Path, oe_cache_b: Path, capsys: pytest.CaptureFixture[str],
        argv: List[str], message: str) -> None:
    mirror = tmp_path / "m"
    assert _run(capsys, "-q", "upload", str(oe_cache_b), str(mirror))[0] == 0
    before = _files(mirror)
    code, _, err = _run(capsys, *[str(mirror) if a == "M" else a for a in argv])
    assert code == 2, err
    assert message in err
    assert _files(mirror) == before


def test_unpin_of_an_unknown_pin_fails_unless_missing_ok(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "m"
    mirror.mkdir()
    code, _, err = _run(capsys, "unpin", str(mirror), "nope")
    assert code == 1 and "has no pin 'nope'" in err
    assert _run(capsys, "unpin", str(mirror), "nope", "--missing-ok")[0] == 0


def test_verify_pin_reads_exactly_the_pinned_groups(
        tmp_path: Path, oe_cache_a: Path, oe_cache_b: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "m"
    for cache in (oe_cache_a, oe_cache_b):
        assert _run(capsys, "-q", "upload", str(cache), str(mirror))[0] == 0
    assert _run(capsys, "pin", str(mirror), "rel-b", "--from", str(LOCKED_B))[0] == 0
    code, out, err = _run(capsys, "--json", "verify", str(mirror), "--pin", "rel-b")
    assert code == 0, err
    report = json.loads(out)
    assert report["sampled_groups"] == report["groups"] == 67


def test_a_hostile_pin_stops_clean_before_anything_is_deleted(
        tmp_path: Path, oe_cache_b: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "m"
    assert _run(capsys, "-q", "upload", str(oe_cache_b), str(mirror))[0] == 0
    (mirror / ".sstate-mirror" / "pins").mkdir(parents=True)
    with open(mirror / pin_path("big"), "wb") as f:
        f.truncate(17 * 1024 * 1024)
    _age(mirror)
    before = _files(mirror)
    code, _, err = _run(capsys, "clean", str(mirror), "--max-age", "30d")
    assert code == 3
    assert "cannot read pin 'big'" in err and "larger than" in err
    assert _files(mirror) == before
