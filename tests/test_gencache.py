"""The synthetic cache generator (benchmarks/gencache.py).

Benchmarks are only meaningful if the caches they run on look like real ones to the tool: these
tests hold every generated name to the project's own naming module, and check the layout and
distribution rules the generator promises.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import List

import pytest

from sstate_mirror.naming import Kind, classify, layout_of, make_artifact, parse_name


def _load() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "gencache.py"
    spec = importlib.util.spec_from_file_location("gencache", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gencache"] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


gc = _load()

NOW = 1_764_000_000
N = 2000
SW_TASKS = {"fetch", "unpack", "patch", "populate_lic", "preconfigure"}


def _plan(**kw: object) -> List:
    args = {"seed": 7, "now": NOW}
    args.update(kw)
    files = args.pop("files", N)
    return gc.plan(files, **args)


def _is_native_pn(pn: str) -> bool:
    return (pn.endswith("-native") or pn.endswith("-cross") or "-cross-" in pn
            or "-crosssdk-" in pn)


@pytest.fixture(scope="module", params=["oe", "isar", "legacy"])
def flavour_plan(request: pytest.FixtureRequest) -> tuple:
    return request.param, _plan(flavour=request.param, junk=4, temp=5, sig_fraction=0.1)


def test_same_seed_same_cache_other_seed_other_cache() -> None:
    assert _plan() == _plan()
    other = _plan(seed=8)
    assert {e.path for e in other}.isdisjoint(
        {e.path for e in _plan() if e.kind != "unknown"})


def test_exact_counts(flavour_plan: tuple) -> None:
    _, entries = flavour_plan
    kinds = Counter(e.kind for e in entries)
    assert len(entries) == N
    assert len({e.path for e in entries}) == N
    assert kinds["temp"] == 5
    assert kinds["unknown"] == 4
    assert kinds["archive"] > 0 and kinds["siginfo"] > kinds["archive"] and kinds["sig"] > 0
    assert gc.plan(1, now=NOW)[0].kind == "siginfo"
    assert gc.plan(0, now=NOW) == []
    with pytest.raises(ValueError):
        gc.plan(10, temp=8, junk=3)


def test_every_file_classifies_as_intended(flavour_plan: tuple) -> None:
    _, entries = flavour_plan
    for e in entries:
        art = make_artifact(e.path, e.size, e.mtime)
        assert art.kind.value == e.kind, e.path
        if e.kind in ("archive", "siginfo", "sig"):
            assert art.name is not None
            assert len(art.basename) <= 254
            assert art.name.hash == art.name.hash.lower() and len(art.name.hash) == 64
    assert gc.verify(entries) == []


def test_versions_extensions_and_layout(flavour_plan: tuple) -> None:
    flavour, entries = flavour_plan
    layouts = Counter()
    for e in entries:
        if e.kind not in ("archive", "siginfo", "sig"):
            continue
        name = parse_name(e.path.rsplit("/", 1)[1])
        assert name is not None
        layout = layout_of(e.path, name)
        layouts[layout] += 1
        if flavour == "oe":
            assert (name.version, name.ext, layout) == ("14", "tar.zst", "hh/hh")
        elif flavour == "isar":
            assert (name.version, name.ext, layout) == ("10", "tar.zst", "hh/hh")
            assert name.is_software_only or name.archspec == f"{name.pkgarch}-isar"
        else:
            assert name.ext == "tgz"
            # one hh/ level only for the older (version 3) part of the mirror
            assert (name.version, layout) in (("7", "hh/hh"), ("3", "hh"))
    assert layouts["flat"] == 0
    if flavour == "legacy":
        assert layouts["hh"] > 0.1 * sum(layouts.values())


def test_native_prefix_only_for_native_and_cross(flavour_plan: tuple) -> None:
    flavour, entries = flavour_plan
    prefixes = Counter()
    for e in entries:
        if e.kind not in ("archive", "siginfo", "sig"):
            continue
        name = parse_name(e.path.rsplit("/", 1)[1])
        assert name is not None
        parts = e.path.split("/")
        depth = 2 if name.version == "3" else 3
        prefix = "/".join(parts[:-depth])
        want = _is_native_pn(name.pn) and not name.is_software_only
        assert bool(prefix) == want, e.path
        if prefix:
            prefixes[prefix] += 1
    assert prefixes, "a cache this size has native recipes"
    expected = {"oe": {"universal"}, "isar": {"isarnative"},
                "legacy": {"universal", "universal-4.8"}}[flavour]
    assert set(prefixes) <= expected


def test_software_only_spec_for_software_tasks(flavour_plan: tuple) -> None:
    _, entries = flavour_plan
    seen = Counter()
    for e in entries:
        if e.kind not in ("archive", "siginfo", "sig"):
            continue
        name = parse_name(e.path.rsplit("/", 1)[1])
        assert name is not None
        assert name.is_software_only == (name.task in SW_TASKS), e.path
        if name.is_software_only:
            assert name.archspec == name.pkgarch == ""
        seen[name.task] += 1
    assert seen["fetch"] and seen["unpack"]


def test_oe_archspecs_follow_the_recipe_class() -> None:
    entries = _plan(files=6000, machines=["qemux86-64", "qemuarm64"])
    specs = set()
    for e in entries:
        name = parse_name(e.path.rsplit("/", 1)[1])
        if name is None or name.is_software_only:
            continue
        specs.add((name.archspec, name.pkgarch))
        if name.pn.endswith("-native"):
            assert (name.archspec, name.pkgarch) == ("x86_64-linux", "x86_64")
        elif name.pn.startswith("gcc-cross-"):
            assert (name.archspec, name.pkgarch) == ("x86_64-poky-linux", "x86_64")
        elif name.pn.startswith("nativesdk-"):
            assert (name.archspec, name.pkgarch) == (
                "x86_64-nativesdk-pokysdk-linux", "x86_64_linux")
    assert ("core2-64-poky-linux", "core2-64") in specs
    assert ("cortexa57-poky-linux", "cortexa57") in specs
    assert ("qemux86_64-poky-linux", "qemux86_64") in specs
    assert ("qemuarm64-poky-linux", "qemuarm64") in specs
    assert ("all-poky-linux", "allarch") in specs
    pns = {parse_name(e.path.rsplit("/", 1)[1]).pn for e in entries if e.kind == "archive"}
    assert {"gcc-cross-x86_64", "gcc-cross-aarch64", "glibc", "zlib-native"} <= pns


def test_legacy_cross_pkgarch_names_the_target() -> None:
    entries = _plan(flavour="legacy", files=3000)
    cross = {parse_name(e.path.rsplit("/", 1)[1]).pkgarch for e in entries
             if "/sstate:gcc-cross-x86_64:x86_64" in e.path and e.kind == "archive"}
    assert cross and all(p == "x86_64_x86_64" for p in cross)


def test_archives_only_for_sstate_tasks(flavour_plan: tuple) -> None:
    flavour, entries = flavour_plan
    archive_tasks = set(gc.ISAR_ARCHIVES if flavour == "isar" else gc.OE_ARCHIVES)
    paths = {e.path for e in entries}
    incomplete = 0
    for e in entries:
        if e.kind == "archive":
            assert parse_name(e.path.rsplit("/", 1)[1]).task in archive_tasks
            assert e.path + ".siginfo" in paths
        elif e.kind == "siginfo" and e.path[: -len(".siginfo")].rsplit("_", 1)[1].split(".")[
                0] in archive_tasks and e.path[: -len(".siginfo")] not in paths:
            incomplete += 1
        elif e.kind == "sig":
            assert e.path[: -len(".sig")] + ".siginfo" in paths
    assert incomplete <= 1  # only the group cut at the file budget


def test_sizes_within_bounds(flavour_plan: tuple) -> None:
    flavour, entries = flavour_plan
    siginfo = [e.size for e in entries if e.kind == "siginfo"]
    assert all(gc.SIGINFO_MIN <= s <= gc.SIGINFO_MAX for s in siginfo)
    if flavour != "legacy":  # pickled legacy signature data is about 2.5 times larger
        typical = [s for s in siginfo if 1024 <= s <= 40 * 1024]
        assert len(typical) >= 0.85 * len(siginfo)
    archives = [e for e in entries if e.kind == "archive"]
    assert all(e.size >= 34 for e in archives)
    cap = gc.scale_size(int(1.5 * gc.GiB), gc.DEFAULT_SIZE_SCALE)
    assert all(e.size <= cap for e in archives)
    assert all(e.size == gc.SIG_SIZE for e in entries if e.kind == "sig")
    if flavour == "oe":
        by_task = {}
        for e in archives:
            by_task.setdefault(parse_name(e.path.rsplit("/", 1)[1]).task, []).append(e.size)
        assert set(by_task["recipe_qa"]) == {34}
        assert all(150 <= s <= 170 for s in by_task["deploy_source_date_epoch"])
        sizes = sorted(s for e in archives for s in [e.size])
        median = sizes[len(sizes) // 2]
        assert sizes[-1] > 100 * median  # a heavy tail


def test_size_scale_keeps_small_archives() -> None:
    real = _plan(size_scale=1.0)
    small = _plan(size_scale=0.01)
    assert [e.path for e in real] == [e.path for e in small]
    for a, b in zip(real, small):
        if a.kind == "archive":
            assert b.size == (a.size if a.size <= gc.SCALE_FLOOR
                              else gc.SCALE_FLOOR + int((a.size - gc.SCALE_FLOOR) * 0.01))
        elif a.kind in ("siginfo", "sig"):
            assert a.size == b.size
    assert sum(e.size for e in real) > 5 * sum(e.size for e in small)


def test_mtime_spread() -> None:
    days = 30
    entries = _plan(mtime_spread=days)
    times = [e.mtime for e in entries]
    assert all(NOW - days * 86400 <= t <= NOW for t in times)
    old = sum(t < NOW - 15 * 86400 for t in times)
    assert 0.3 * len(times) < old < 0.7 * len(times)
    one_build = _plan()
    assert all(NOW - 3 * 3600 <= e.mtime <= NOW for e in one_build
               if e.kind not in ("temp", "unknown"))


def test_write_real_and_sparse(tmp_path: Path) -> None:
    entries = _plan(junk=3, size_scale=0.001)
    gc.write_cache(tmp_path / "real", entries, seed=7)
    gc.write_cache(tmp_path / "sparse", entries, sparse=True, jobs=1)
    for root in ("real", "sparse"):
        on_disk = {}
        for dirpath, _dirs, files in os.walk(tmp_path / root):
            for f in files:
                p = Path(dirpath, f)
                st = p.stat()
                on_disk[p.relative_to(tmp_path / root).as_posix()] = (st.st_size, st.st_mtime)
        assert on_disk == {e.path: (e.size, float(e.mtime)) for e in entries}
    some = next(e for e in entries if e.kind == "archive" and e.size > 100)
    data = (tmp_path / "real" / some.path).read_bytes()
    assert data[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    assert (tmp_path / "sparse" / some.path).read_bytes() == bytes(some.size)
    logical = sum(e.size for e in entries)
    allocated = sum(Path(dirpath, f).stat().st_blocks * 512
                    for dirpath, _d, files in os.walk(tmp_path / "sparse") for f in files)
    assert allocated < 0.01 * logical


def test_generate_plans_writes_and_saves(tmp_path: Path) -> None:
    entries = gc.generate(tmp_path / "c", 300, sparse=True, manifest=tmp_path / "c.json",
                          seed=4, now=NOW, flavour="legacy")
    assert entries == gc.plan(300, seed=4, now=NOW, flavour="legacy")
    assert gc.load_manifest(tmp_path / "c.json") == entries
    assert sum(len(f) for _, _, f in os.walk(tmp_path / "c")) == 300


def test_manifest_round_trip(tmp_path: Path) -> None:
    entries = _plan(junk=2)
    gc.save_manifest(tmp_path / "m.json", entries)
    assert gc.load_manifest(tmp_path / "m.json") == entries
    raw = json.loads((tmp_path / "m.json").read_text())
    assert set(raw[0]) == {"path", "size", "mtime", "kind"}
    triples = [[e.path, e.size, e.mtime] for e in entries]
    (tmp_path / "t.json").write_text(json.dumps(triples))
    assert gc.load_manifest(tmp_path / "t.json") == entries


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5])
def test_derive_replaces_about_the_fraction(fraction: float) -> None:
    first = _plan(files=4000, temp=4, junk=2)
    second = gc.derive(first, fraction, seed=3, now=NOW + 86400)
    first_sstate = {e.path: e for e in first if e.kind in ("archive", "siginfo", "sig")}
    kept = [e for e in second if e.path in first_sstate]
    new = [e for e in second if e.path not in first_sstate]
    assert len(second) == len(first_sstate)  # temp and junk files are not carried over
    assert all(first_sstate[e.path] == e for e in kept)
    assert abs(len(new) / len(first_sstate) - fraction) <= 0.03
    assert all(NOW + 86400 - 3600 <= e.mtime <= NOW + 86400 for e in new)
    assert gc.verify(second) == []
    # a replaced file keeps its recipe, task and layout; only the hash (and directory) change
    old_keys = Counter((n.pn, n.task, n.archspec, e.kind) for e in first_sstate.values()
                       for n in [parse_name(e.path.rsplit("/", 1)[1])])
    new_keys = Counter((n.pn, n.task, n.archspec, e.kind) for e in second
                       for n in [parse_name(e.path.rsplit("/", 1)[1])])
    assert old_keys == new_keys
    for e in new:
        name = parse_name(e.path.rsplit("/", 1)[1])
        assert layout_of(e.path, name) == "hh/hh"


def test_derive_changes_whole_recipes() -> None:
    first = _plan(files=4000)
    second = gc.derive(first, 0.2, seed=4, now=NOW)
    first_paths = {e.path for e in first}
    changed_pns = Counter()
    for e in second:
        if e.path not in first_paths and e.kind == "archive":
            name = parse_name(e.path.rsplit("/", 1)[1])
            if not name.is_software_only:
                changed_pns[name.pn] += 1
    # every architecture archive of a changed recipe is new
    for e in second:
        name = parse_name(e.path.rsplit("/", 1)[1])
        if e.kind == "archive" and name.pn in changed_pns and not name.is_software_only:
            assert e.path not in first_paths


def test_derive_from_a_legacy_manifest(tmp_path: Path) -> None:
    first = _plan(flavour="legacy")
    gc.save_manifest(tmp_path / "first.json", first)
    second = gc.derive(tmp_path / "first.json", 0.3, seed=1, now=NOW)
    assert gc.verify(second) == []
    for e in second:
        name = parse_name(e.path.rsplit("/", 1)[1])
        assert layout_of(e.path, name) == ("hh" if name.version == "3" else "hh/hh")


def test_long_names_are_shortened_like_oe() -> None:
    spec = ("sstate:a-rather-long-recipe-name-from-a-vendor-layer:"
            "cortexa72-cortexa53-crypto-poky-linux:" + "1.2.3+git" + "0123456789abcdef" * 5
            + ":r0:cortexa72-cortexa53-crypto:14:")
    hv = "ab" * 32
    name = gc.sstate_name(spec, hv, "package_write_rpm", "tar.zst")
    assert len(name) <= 246
    parsed = parse_name(name)
    assert parsed is not None
    assert (parsed.pn, parsed.pkgarch, parsed.version, parsed.hash, parsed.task) == (
        "a-rather-long-recipe-name-from-a-vendor-layer", "cortexa72-cortexa53-crypto", "14",
        hv, "package_write_rpm")
    assert len(parsed.archspec) == len(parsed.pv) or len(parsed.pr) < len(parsed.pv)
    assert classify(name + ".siginfo") is Kind.SIGINFO and len(name + ".siginfo") <= 254
    short = gc.sstate_name("sstate:zlib::1.3.1:r0::14:", hv, "fetch", "tar.zst")
    assert short == f"sstate:zlib::1.3.1:r0::14:{hv}_fetch.tar.zst"


def test_large_plans_reach_synthetic_and_shortened_names() -> None:
    entries = _plan(files=60000, sig_fraction=0.0, temp=0)
    pns = {parse_name(e.path.rsplit("/", 1)[1]).pn for e in entries}
    assert len(pns) > 1000  # pool plus synthetic recipes
    assert any(len(e.path.rsplit("/", 1)[1]) > 230 for e in entries)
    assert gc.verify(entries) == []


def test_isar_tasks_and_native() -> None:
    entries = _plan(flavour="isar", files=3000)
    tasks = Counter()
    for e in entries:
        if e.kind == "archive":
            tasks[parse_name(e.path.rsplit("/", 1)[1]).task] += 1
    assert {"dpkg_build", "bootstrap", "rootfs_install"} <= set(tasks)
    assert tasks["dpkg_build"] == max(tasks.values())
    natives = [e.path for e in entries if e.path.startswith("isarnative/")]
    assert natives and all(":amd64-isar:" in p for p in natives)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cache"
    manifest = tmp_path / "cache.json"
    rc = gc.main([str(out), "--files", "500", "--seed", "3", "--sparse", "--junk", "2",
                  "--mtime-spread", "10", "--now", str(NOW), "--manifest", str(manifest),
                  "--verify", "--flavour", "isar", "--machines", "arm64,amd64"])
    assert rc == 0
    assert "500 files" in capsys.readouterr().out
    entries = gc.load_manifest(manifest)
    assert entries == gc.plan(500, seed=3, flavour="isar", junk=2, mtime_spread=10, now=NOW,
                              machines=["arm64", "amd64"])
    assert sum(len(f) for _, _, f in os.walk(out)) == 500
    with pytest.raises(SystemExit):
        gc.main([str(out), "--files", "10"])  # not empty
    rc = gc.main([str(tmp_path / "second"), "--derive-from", str(manifest), "--changed", "0.2",
                  "--sparse", "-q", "--manifest", str(tmp_path / "second.json")])
    assert rc == 0
    assert len(gc.load_manifest(tmp_path / "second.json")) == 498


@pytest.mark.parametrize("flavour", gc.FLAVOURS)
def test_written_caches_verify_clean(tmp_path: Path, flavour: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Real archives (zstd or gzip tar streams) and readable signatures that describe their
    own names: verify --all finds no error, so verify, analyze and lint can be benchmarked."""
    from sstate_mirror.cli import main

    entries = gc.plan(400, seed=11, flavour=flavour, now=NOW, temp=0, size_scale=0.001)
    gc.write_cache(tmp_path / "c", entries)
    code = main(["verify", str(tmp_path / "c"), "--all"])
    out = capsys.readouterr().out
    assert code == 0, out
    archives = sum(1 for e in entries if e.kind == "archive")
    siginfo = sum(1 for e in entries if e.kind == "siginfo")
    assert f"verify: {archives} archives and {siginfo} .siginfo read" in out
    assert ", 0 errors, 0 warnings, 0 unreadable" in out
    if flavour == "oe":  # the tiny archives (recipe_qa, 34 bytes) are real too
        assert min(e.size for e in entries if e.kind == "archive") == 34
