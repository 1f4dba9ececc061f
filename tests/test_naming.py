"""The naming model: FORMATS examples, every real file name, and generated names."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstate_mirror.naming import (
    Kind,
    classify,
    group_artifacts,
    group_key,
    layout_of,
    make_artifact,
    parse_name,
    parse_stamp_name,
)

H = "3fa2" + "0123456789abcdef" * 3 + "0123456789ab"  # 64 hex
assert len(H) == 64


def oe_sstate_path(spec: str, hash_: str, task: str, ext: str = ".tar.zst",
                   siginfo: bool = False) -> str:
    """OE-core's generate_sstatefn(), written from its documented behaviour, as a reference."""
    limit = 254 - 8
    if siginfo:
        limit = 254
        ext += ".siginfo"
    if not hash_:
        hash_ = "INVALID"
    fn = spec + hash_ + "_" + task + ext
    if len(fn) > limit:
        c = spec.split(":")
        avail = (limit - len(hash_ + "_" + task + ext) - len(c[0]) - len(c[1]) - len(c[5])
                 - len(c[6]) - 7) // 3
        c[2], c[3], c[4] = c[2][:avail], c[3][:avail], c[4][:avail]
        fn = ":".join(c) + hash_ + "_" + task + ext
        assert len(fn) <= limit
    return hash_[:2] + "/" + hash_[2:4] + "/" + fn


# -- the examples of FORMATS.md §1 ------------------------------------------------------------

def test_isar_example() -> None:
    p = f"3f/a2/sstate:hello:arm64-isar:2.10:r0:arm64:10:{H}_dpkg_build.tar.zst"
    n = parse_name(p.rsplit("/", 1)[1])
    assert n is not None
    assert (n.pn, n.archspec, n.pv, n.pr, n.pkgarch, n.version, n.hash, n.task, n.ext) == (
        "hello", "arm64-isar", "2.10", "r0", "arm64", "10", H, "dpkg_build", "tar.zst")
    assert n.kind is Kind.ARCHIVE
    assert layout_of(p, n) == "hh/hh"


@pytest.mark.parametrize("path,pn,arch,task,prefix_dirs", [
    (f"4a/b3/sstate:zlib:core2-64-poky-linux:1.3.1:r0:core2-64:14:{H}_populate_sysroot.tar.zst",
     "zlib", "core2-64", "populate_sysroot", 0),
    (f"universal/9c/1e/sstate:zlib-native:x86_64-linux:1.3.1:r0:x86_64:14:{H}"
     "_populate_sysroot.tar.zst", "zlib-native", "x86_64", "populate_sysroot", 1),
    (f"5d/0f/sstate:zlib::1.3.1:r0::14:{H}_populate_lic.tar.zst", "zlib", "", "populate_lic", 0),
])
def test_oe_examples(path: str, pn: str, arch: str, task: str, prefix_dirs: int) -> None:
    art = make_artifact(path, 10, 0.0)
    assert art.kind is Kind.ARCHIVE
    assert (art.pn, art.arch, art.task, art.hash) == (pn, arch, task, H)
    assert art.name is not None
    assert art.name.is_software_only == (arch == "")


def test_companions_and_grouping() -> None:
    base = f"5d/0f/sstate:zlib::1.3.1:r0::14:{H}_populate_lic.tar.zst"
    assert classify(base) is Kind.ARCHIVE
    assert classify(base + ".siginfo") is Kind.SIGINFO
    assert classify(base + ".sig") is Kind.SIG
    assert group_key(base + ".siginfo") == group_key(base + ".sig") == group_key(base) == base
    groups = group_artifacts([make_artifact(p, 1, 0) for p in
                              (base, base + ".siginfo", base + ".sig", "README")])
    assert list(groups) == [base]
    g = groups[base]
    assert g.archive and g.siginfo and g.sig
    assert [m.kind for m in g.members()] == [Kind.SIGINFO, Kind.SIG, Kind.ARCHIVE]


@pytest.mark.parametrize("path,kind", [
    (f"ab/cd/sstate:zlib::1.3.1:r0::14:{H}_populate_lic.tar.zst.Xy12Ab9Q", Kind.TEMP),
    (f"ab/cd/sstate:zlib::1.3.1:r0::14:{H}_populate_lic.tar.zst.done", Kind.TEMP),
    (f"ab/cd/sstate:zlib::1.3.1:r0::14:{H}_populate_lic.tar.zst.siginfo.tmp1", Kind.TEMP),
    (f"ab/cd/.sstate:zlib::1.3.1:r0::14:{H}_populate_lic.tar.zst.Ab12Cd", Kind.TEMP),
    ("ab/cd/sigtask.k2j3h4", Kind.TEMP),
    ("ab/cd/.sstate-mirror-0123456789abcdef.tmp", Kind.TEMP),
    ("README", Kind.UNKNOWN),
    ("index.html", Kind.UNKNOWN),
    ("ab/cd/sstate:incomplete", Kind.UNKNOWN),
    (f"ab/cd/sstate:zlib::1.3.1:r0::14:{H}_populate_lic.tar.xz", Kind.UNKNOWN),
    ("ab/cd/sstate:zlib::1.3.1:r0::14:nothex_populate_lic.tar.zst", Kind.UNKNOWN),
    (".sstate-mirror-notes.txt", Kind.UNKNOWN),
])
def test_temp_and_unknown(path: str, kind: Kind) -> None:
    assert classify(path) is kind
    assert make_artifact(path, 0, 0).kind is kind


def test_temp_leftover_keeps_recipe() -> None:
    art = make_artifact(f"ab/cd/sstate:zlib::1.3.1:r0::14:{H}_populate_lic.tar.zst.Xy12Ab9Q", 5, 0)
    assert art.kind is Kind.TEMP and art.pn == "zlib"


def test_invalid_hash() -> None:
    p = "IN/VA/sstate:zlib:core2-64-poky-linux:1.3.1:r0:core2-64:14:INVALID_populate_sysroot.tar.zst"
    art = make_artifact(p, 1, 0)
    assert art.kind is Kind.ARCHIVE and art.hash == "INVALID"
    assert art.name is not None and layout_of(p, art.name) == "hh/hh"


def test_legacy_tgz_single_level() -> None:
    p = f"3f/sstate:zlib:core2-64-poky-linux:1.2.11:r0:core2-64:3:{H}_populate_sysroot.tgz"
    art = make_artifact(p, 1, 0)
    assert art.kind is Kind.ARCHIVE and art.name is not None and art.name.ext == "tgz"
    assert art.name.version == "3"
    assert layout_of(p, art.name) == "hh"
    assert classify(p + ".siginfo") is Kind.SIGINFO


def test_pv_with_colon() -> None:
    n = parse_name(f"sstate:foo:core2-64-poky-linux:1:2.0+git:r0:core2-64:14:{H}_package.tar.zst")
    assert n is not None and n.pv == "1:2.0+git" and n.pr == "r0" and n.pkgarch == "core2-64"


def test_truncated_long_name() -> None:
    spec = ("sstate:linux-yocto-dev:" + "qemux86_64" * 12 + "-poky-linux:" + "6.10+git" * 20
            + ":r0" + "x" * 40 + ":qemux86_64:14:")
    path = oe_sstate_path(spec, H, "populate_sysroot")
    name = path.rsplit("/", 1)[1]
    assert len(name) <= 246
    n = parse_name(name)
    assert n is not None and n.kind is Kind.ARCHIVE
    assert (n.pn, n.pkgarch, n.version, n.hash, n.task) == (
        "linux-yocto-dev", "qemux86_64", "14", H, "populate_sysroot")
    # the cut fields are prefixes of the real ones
    assert ("qemux86_64" * 12 + "-poky-linux").startswith(n.archspec)
    assert ("6.10+git" * 20).startswith(n.pv)
    sig = oe_sstate_path(spec, H, "populate_sysroot", siginfo=True)
    assert sig == path + ".siginfo"  # OE truncates both to the same stem
    assert group_key(sig) == path


# -- every file of the real caches ---------------------------------------------------------------

def _real_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("cache", ["oe-wrynose/cache-a", "oe-wrynose/cache-b",
                                   "legacy-honister/cache-a"])
def test_every_real_file_name(data_dir: Path, cache: str) -> None:
    root = data_dir / cache
    files = _real_files(root)
    assert files
    ext = "tgz" if "legacy" in cache else "tar.zst"
    version = "7" if "legacy" in cache else "14"
    for path in files:
        art = make_artifact(path, 1, 0)
        expected = Kind.SIGINFO if path.endswith(".siginfo") else Kind.ARCHIVE
        assert art.kind is expected, path
        assert art.name is not None
        assert art.name.ext == ext and art.name.version == version
        assert art.pn in {"alpha-native", "beta-native", "gamma-native", "delta-native",
                          "eta-native", "epsilon", "zeta"}
        assert layout_of(path, art.name) == "hh/hh", path
        assert path.startswith("debian-12/") == (
            art.pn.endswith("-native") and not art.name.is_software_only), path
        assert len(art.hash) == 64
    groups = group_artifacts(make_artifact(p, 1, 0) for p in files)
    # every archive has its .siginfo next to it in a real cache
    assert all(g.siginfo is not None for g in groups.values() if g.archive is not None)


# -- generated names -----------------------------------------------------------------------------

_field = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789+-._", min_size=1, max_size=60)
_hash = st.one_of(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
                  st.just("INVALID"))
_task = st.sampled_from(["populate_sysroot", "package_write_rpm", "populate_lic", "fetch",
                         "dpkg_build", "rootfs_install", "deploy_source_date_epoch"])


@settings(max_examples=400, deadline=None)
@given(pn=_field, archspec=_field, pv=_field, pr=_field, pkgarch=_field,
       version=st.sampled_from(["3", "7", "10", "11", "12", "14"]), hash_=_hash, task=_task,
       ext=st.sampled_from([".tar.zst", ".tgz"]), swonly=st.booleans(),
       prefix=st.sampled_from(["", "universal/", "debian-12/", "isarnative/"]))
def test_generated_names_roundtrip(pn: str, archspec: str, pv: str, pr: str, pkgarch: str,
                                   version: str, hash_: str, task: str, ext: str,
                                   swonly: bool, prefix: str) -> None:
    if swonly:
        archspec = pkgarch = ""
    spec = f"sstate:{pn}:{archspec}:{pv}:{pr}:{pkgarch}:{version}:"
    archive = prefix + oe_sstate_path(spec, hash_, task, ext)
    siginfo = prefix + oe_sstate_path(spec, hash_, task, ext, siginfo=True)
    a = make_artifact(archive, 1, 0)
    s = make_artifact(siginfo, 1, 0)
    assert a.kind is Kind.ARCHIVE and s.kind is Kind.SIGINFO
    assert classify(archive + ".sig") is Kind.SIG
    assert classify(archive + ".X1y2Z3w4") is Kind.TEMP
    assert a.group_key == s.group_key == archive
    assert a.name is not None
    # fields that OE never cuts are always exact
    assert (a.pn, a.arch, a.hash, a.task, a.name.version) == (pn, pkgarch, hash_, task, version)
    assert a.name.ext == ext[1:]
    # the cut ones are prefixes of the originals (and exact when nothing was cut)
    assert archspec.startswith(a.name.archspec)
    assert pv.startswith(a.name.pv) and pr.startswith(a.name.pr)
    if len(archive.rsplit("/", 1)[1]) < 240:
        assert (a.name.archspec, a.name.pv, a.name.pr) == (archspec, pv, pr)
    assert layout_of(archive, a.name) == "hh/hh"


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_classify_never_fails(name: str) -> None:
    kind = classify(name)
    assert isinstance(kind, Kind)
    art = make_artifact(name, 0, 0)
    assert art.kind is kind


# --- stamp signature files ------------------------------------------------------------------


@pytest.mark.parametrize(("path", "expected"), [
    (f"core2-64-poky-linux/zlib/1.3.1-r0.do_compile.sigdata.{H}",
     ("core2-64-poky-linux", "zlib", "1.3.1-r0", "do_compile", "sigdata", "compile")),
    (f"x86_64-linux/zlib-native/1_1.3.1-r0.do_configure.sigbasedata.{H}",
     ("x86_64-linux", "zlib-native", "1_1.3.1-r0", "do_configure", "sigbasedata", "configure")),
    (f"x86_64-linux/m4-native/1.4.19-r0.do_populate_sysroot_setscene.{H}.siginfo",
     ("x86_64-linux", "m4-native", "1.4.19-r0", "do_populate_sysroot_setscene", "siginfo",
      "populate_sysroot")),
    # Isar: ${DISTRO}-${DISTRO_ARCH}/${PN}/${PV}-${PR}
    (f"debian-bookworm-arm64/hello/2.10-r0.do_dpkg_build.sigdata.{H}",
     ("debian-bookworm-arm64", "hello", "2.10-r0", "do_dpkg_build", "sigdata", "dpkg_build")),
    # work-shared stamps have no PN directory
    (f"work-shared/gcc-13.2.0-r0.do_patch.sigdata.{H}",
     ("work-shared", "gcc-13.2.0-r0", "gcc-13.2.0-r0", "do_patch", "sigdata", "patch")),
])
def test_parse_stamp_name(path: str, expected: Tuple[str, ...]) -> None:
    name = parse_stamp_name(path)
    assert name is not None
    assert (name.sys, name.pn, name.version, name.task, name.kind, name.base_task) == expected
    assert name.hash == H


@pytest.mark.parametrize("path", [
    f"core2-64-poky-linux/zlib/1.3.1-r0.do_compile.{H}",  # the stamp itself
    f"core2-64-poky-linux/zlib/1.3.1-r0.do_compile.{H}.taint",
    "core2-64-poky-linux/zlib/1.3.1-r0.do_compile.sigdata.nothex",
    f"core2-64-poky-linux/zlib/1.3.1-r0.compile.sigdata.{H}",  # no do_ prefix
    f"sstate:zlib::1.3.1:r0::14:{H}_fetch.tar.zst.siginfo",
])
def test_parse_stamp_name_refuses_other_files(path: str) -> None:
    assert parse_stamp_name(path) is None
