"""``sstate-mirror lint`` end to end on synthetic caches built from a real signature file.

Every file here is a real bitbake 2.18 ``.siginfo`` (alpha-native do_configure of the
reference data), read with the project's reader, with absolute paths planted in it, written
back as bitbake writes it (zstd JSON, sets as ``_set_object``) under a proper sstate name. The
lint must find exactly what was planted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import pytest

from signature_helpers import OE, read_raw, write_siginfo
from sstate_mirror.backends.local import LocalBackend
from sstate_mirror.cli import main
from sstate_mirror.errors import PermanentError

BASE_FILE = next((OE / "cache-a").rglob("sstate:alpha-native:*_configure.tar.zst.siginfo"))
BUILD = "/home/u/build"
LAYERS = "/home/u/layers"
CLASS_RECIPES = 50


def sstate_path(pn: str, task: str) -> str:
    h = hashlib.sha256(f"{pn}:{task}".encode()).hexdigest()
    return (f"{h[:2]}/{h[2:4]}/sstate:{pn}:core2-64-poky-linux:1.0:r0:core2-64:14:"
            f"{h}_{task[3:]}.tar.zst.siginfo")


def planted(task: str = "do_configure", body: str = "    oe_runconf\n",
            variables: Optional[Dict[str, str]] = None, ignored: Sequence[str] = (),
            checksums: Sequence[Tuple[str, str]] = (), taint: Optional[str] = None,
            pn: Optional[str] = None) -> Dict[str, Any]:
    """The real base signature with the task renamed and values planted in it."""
    raw = copy.deepcopy(read_raw(BASE_FILE))
    old_task = raw["task"]
    raw["varvals"][task] = body if task != old_task else raw["varvals"][task] + body
    if task != old_task:
        del raw["varvals"][old_task]
    raw["task"] = task
    deps: Set[str] = set(raw["taskdeps"])
    for name, value in (variables or {}).items():
        raw["varvals"][name] = value
        raw["gendeps"][name] = set()
        deps.add(name)
    raw["taskdeps"] = deps
    raw["basehash_ignore_vars"] = set(raw["basehash_ignore_vars"]) | set(ignored)
    raw["file_checksum_values"] = [list(c) for c in checksums]
    if taint is not None:
        raw["taint"] = taint
    if pn is not None:
        raw["varvals"]["PN"] = pn
    return raw


def build_cache(root: Path) -> Path:
    """A cache with known planted paths (and some that must not be found)."""
    for i in range(CLASS_RECIPES):
        # one class variable, inherited by 50 recipes, each with its own work directory
        pn = f"lib{i:02d}"
        write_siginfo(root / sstate_path(pn, "do_configure"), planted(
            variables={"MYCLASS_CACHE": f"--cache={BUILD}/tmp/work/core2-64/{pn}/cache"}))
    write_siginfo(root / sstate_path("srcuri", "do_fetch"), planted(
        task="do_fetch", body="    bb.build.exec_func('base_do_fetch', d)\n",
        variables={"SRC_URI": f"git://example.com/x.git;branch=main file://ok.patch"
                              f" file://{LAYERS}/meta-x/recipes-x/srcuri/files/abs.patch"}))
    write_siginfo(root / sstate_path("checksums", "do_compile"), planted(
        task="do_compile", body="    oe_runmake\n",
        checksums=[(f"{LAYERS}/meta-x/files/defconfig", "a" * 64), ("fix.patch", "b" * 64)]))
    write_siginfo(root / sstate_path("tainted", "do_install"), planted(
        task="do_install", body="    install -d ${D}\n", taint=f"nostamp:{BUILD}/forced"))
    # bitbake ignores these: no finding
    write_siginfo(root / sstate_path("ignored", "do_configure"), planted(
        variables={"TMPDIR": f"{BUILD}/tmp", "MY_TOPDIR": BUILD},
        ignored=["TMPDIR", "MY_TOPDIR"]))
    # only --pedantic reports a path outside the build and sources directories
    write_siginfo(root / sstate_path("toolchain", "do_compile"), planted(
        task="do_compile", body="    /opt/toolchain/bin/gcc -o x x.c -I/usr/include\n"))
    return root


EXPECTED = {
    ("MYCLASS_CACHE", "build-dir", f"{BUILD}/..."): CLASS_RECIPES,
    ("SRC_URI", "sources-dir", f"{LAYERS}/..."): 1,
    ("file_checksum_values", "sources-dir", f"{LAYERS}/..."): 1,
    ("taint", "build-dir", f"{BUILD}/..."): 1,
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cache(tmp_path_factory.mktemp("lint") / "sstate-cache")


@pytest.fixture(autouse=True)
def _no_builddir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUILDDIR", raising=False)


def lint(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    code = main(["lint", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def lint_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, Dict[str, Any]]:
    code, out, _err = lint(capsys, "--json", *argv)
    return code, json.loads(out)


def summary(data: Dict[str, Any]) -> Dict[Tuple[str, str, str], int]:
    return {(f["variable"], f["kind"], f["path"]): len(f["tasks"]) for f in data["findings"]}


def test_finds_exactly_what_was_planted(capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    code, data = lint_json(capsys, str(cache), "--build-dir", BUILD, "--sources-dir", LAYERS)
    assert code == 1
    assert data["exit_code"] == 1
    assert data["files_checked"] == CLASS_RECIPES + 5
    assert data["unreadable"] == []
    assert summary(data) == EXPECTED
    by_var = {f["variable"]: f for f in data["findings"]}
    src = by_var["SRC_URI"]["tasks"][0]
    assert (src["pn"], src["task"]) == ("srcuri", "do_fetch")
    assert src["path"] == f"{LAYERS}/meta-x/recipes-x/srcuri/files/abs.patch"
    assert "file:///home/u/layers/meta-x/recipes-x/srcuri/files/abs.patch" in src["context"]
    assert src["file"] == sstate_path("srcuri", "do_fetch")
    assert by_var["file_checksum_values"]["tasks"][0]["path"] == f"{LAYERS}/meta-x/files/defconfig"
    assert {t["pn"] for t in by_var["MYCLASS_CACHE"]["tasks"]} == {
        f"lib{i:02d}" for i in range(CLASS_RECIPES)}


def test_one_class_variable_reads_as_one_finding(capsys: pytest.CaptureFixture[str],
                                                 cache: Path) -> None:
    code, out, _ = lint(capsys, str(cache), "--build-dir", BUILD, "--sources-dir", LAYERS)
    assert code == 1
    headline = [line for line in out.splitlines() if line.startswith("MYCLASS_CACHE")]
    assert headline == [f"MYCLASS_CACHE contains {BUILD}/... (the build directory) in 50 tasks"
                        " of 50 recipes, e.g. lib00:do_configure:"]
    assert out.count("lib17:do_configure") == 0  # the example only, without -v
    assert "55 signature files checked: 4 findings in 53 tasks of 53 recipes" in out
    code, out, _ = lint(capsys, str(cache), "--build-dir", BUILD, "--sources-dir", LAYERS, "-v")
    assert out.count(":do_configure: --cache=/home/u/build/tmp/work/") == 50


def test_excluded_tasks(capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    code, data = lint_json(capsys, str(cache), "--build-dir", BUILD, "--sources-dir", LAYERS,
                           "--excluded-tasks", "do_configure,fetch")
    assert code == 1
    assert summary(data) == {k: v for k, v in EXPECTED.items()
                             if k[0] not in ("MYCLASS_CACHE", "SRC_URI")}
    code, data = lint_json(capsys, str(cache), "--build-dir", BUILD, "--sources-dir", LAYERS,
                           "--excluded-tasks", "configure,fetch,compile,install")
    assert (code, data["findings"]) == (0, [])


def test_pedantic(capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    code, data = lint_json(capsys, str(cache), "--build-dir", BUILD, "--sources-dir", LAYERS,
                           "--pedantic")
    assert code == 1
    expected = dict(EXPECTED)
    expected[("do_compile", "absolute", "/opt/toolchain/...")] = 1
    assert summary(data) == expected
    # --pedantic alone: every planted path is an absolute path
    code, data = lint_json(capsys, str(cache), "--pedantic")
    assert {k[0] for k in summary(data)} == {"MYCLASS_CACHE", "SRC_URI",
                                             "file_checksum_values", "taint", "do_compile"}
    assert {k[1] for k in summary(data)} == {"absolute"}


def test_filters(capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    code, data = lint_json(capsys, str(cache), "--build-dir", BUILD, "--sources-dir", LAYERS,
                           "--filter", "lib0[0-4]$")
    assert data["files_checked"] == 5
    assert summary(data) == {("MYCLASS_CACHE", "build-dir", f"{BUILD}/..."): 5}
    code, data = lint_json(capsys, str(cache), "--build-dir", BUILD, "--sources-dir", LAYERS,
                           "--task", "do_fetch", "--task", "install")
    assert data["files_checked"] == 2
    assert {k[0] for k in summary(data)} == {"SRC_URI", "taint"}
    code, data = lint_json(capsys, str(cache), "--build-dir", BUILD, "--arch", "x86_64")
    assert (code, data["files_checked"]) == (1, 0)  # a gate that read nothing fails


def test_exit_code_option(capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    assert lint(capsys, str(cache), "--build-dir", BUILD, "--exit-code", "42")[0] == 42
    assert lint(capsys, str(cache), "--build-dir", "/elsewhere", "--exit-code", "42")[0] == 0
    for bad in ("256", "-1"):
        code, _, err = lint(capsys, str(cache), "--build-dir", BUILD, "--exit-code", bad)
        assert code == 2
        assert "--exit-code" in err


def test_build_dir_from_environment(capsys: pytest.CaptureFixture[str], cache: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDDIR", BUILD + "/")
    code, data = lint_json(capsys, str(cache))
    assert code == 1
    assert data["build_dirs"] == [BUILD]
    assert set(summary(data)) == {k for k in EXPECTED if k[1] == "build-dir"}


def test_root_is_no_build_directory(capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    code, _, err = lint(capsys, str(cache), "--build-dir", "/")
    assert code == 2 and "cannot be a build or sources directory" in err


def test_missing_target_is_a_backend_error(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    code, _, err = lint(capsys, str(tmp_path / "nope"), "--build-dir", BUILD)
    assert code == 3
    assert "nope" in err


def _evil_pickle() -> bytes:
    class Evil:
        def __reduce__(self) -> Tuple[Any, Tuple[str]]:
            import os
            return (os.system, ("echo owned",))
    return pickle.dumps({"task": "do_fetch", "varvals": Evil()}, protocol=4)


def test_unreadable_files_are_reported_and_the_rest_still_linted(
        capsys: pytest.CaptureFixture[str], cache: Path, tmp_path: Path) -> None:
    broken = tmp_path / "cache"
    build_cache(broken)
    bad: List[str] = [sstate_path("corrupt", "do_fetch"), sstate_path("evil", "do_fetch"),
                      sstate_path("truncated", "do_fetch"), sstate_path("empty", "do_fetch")]
    (broken / bad[0]).parent.mkdir(parents=True, exist_ok=True)
    (broken / bad[0]).write_bytes(b"\x28\xb5\x2f\xfd garbage that is no zstd frame")
    (broken / bad[1]).parent.mkdir(parents=True, exist_ok=True)
    (broken / bad[1]).write_bytes(_evil_pickle())
    whole = (OE / "cache-a" / str(BASE_FILE.relative_to(OE / "cache-a"))).read_bytes()
    (broken / bad[2]).parent.mkdir(parents=True, exist_ok=True)
    (broken / bad[2]).write_bytes(whole[: len(whole) // 2])
    (broken / bad[3]).parent.mkdir(parents=True, exist_ok=True)
    (broken / bad[3]).write_bytes(b"")
    code, out, err = lint(capsys, "--json", str(broken), "--build-dir", BUILD,
                          "--sources-dir", LAYERS)
    data = json.loads(out)
    assert code == 2
    assert data["exit_code"] == 2
    assert sorted(u["file"] for u in data["unreadable"]) == sorted(bad)
    assert all(u["reason"] and not u["reason"].startswith(u["file"])
               for u in data["unreadable"])
    for path in bad:
        assert path in err
    assert data["files_checked"] == CLASS_RECIPES + 5
    assert summary(data) == EXPECTED
    # the human report says so too
    code, out, err = lint(capsys, str(broken), "--build-dir", BUILD, "--sources-dir", LAYERS)
    assert code == 2
    assert "4 unreadable" in out
    assert "unsafe" in err


def test_storage_failure_on_one_file_exits_3(capsys: pytest.CaptureFixture[str], cache: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    failing = sstate_path("lib07", "do_configure")
    real_read = LocalBackend.read

    def read(self: LocalBackend, path: str, max_bytes: int) -> bytes:
        if path == failing:
            raise PermanentError(f"{path}: input/output error", path=path)
        return real_read(self, path, max_bytes)

    monkeypatch.setattr(LocalBackend, "read", read)
    code, data = lint_json(capsys, str(cache), "--build-dir", BUILD, "--sources-dir", LAYERS)
    assert code == 3
    assert [u["file"] for u in data["unreadable"]] == [failing]
    assert data["files_checked"] == CLASS_RECIPES + 4
    assert summary(data)[("MYCLASS_CACHE", "build-dir", f"{BUILD}/...")] == CLASS_RECIPES - 1


# --- a build's stamps --------------------------------------------------------------------


def build_stamps(build: Path) -> Path:
    """``<build>/tmp/stamps`` with signature files, stamps, and other files bitbake leaves."""
    stamps = build / "tmp" / "stamps"
    h = "c" * 64
    zlib = stamps / "core2-64-poky-linux" / "zlib" / "1.3.1-r0"
    write_siginfo(Path(f"{zlib}.do_configure.sigdata.{h}"), planted(
        variables={"EXTRA_OECONF": f"--with-cache={build}/tmp/cache"}, pn="zlib"))
    write_siginfo(Path(f"{zlib}.do_compile.sigbasedata.{h}"), planted(
        task="do_compile", body="    oe_runmake\n"))
    Path(f"{zlib}.do_configure.{h}").write_text("")  # the stamp itself
    Path(f"{zlib}.do_compile.{h}.taint").write_text("x")
    native = stamps / "x86_64-linux" / "m4-native" / "1.4.19-r0"
    write_siginfo(Path(f"{native}.do_populate_sysroot_setscene.{h}.siginfo"), planted(
        task="do_populate_sysroot", body="    sstate_install\n",
        variables={"SSTATE_EXTRA": f"{build}/sstate-extra"}))
    # Isar puts machine-specific recipes in ${PN}-${MACHINE}: the signature's PN wins
    isar = stamps / "debian-bookworm-arm64" / "linux-mainline-qemuarm64" / "6.1-r0"
    write_siginfo(Path(f"{isar}.do_dpkg_build.sigdata.{h}"), planted(
        task="do_dpkg_build", body=f"    cp {build}/conf/x .\n", pn="linux-mainline"))
    return stamps


def test_lint_stamps(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    build = tmp_path / "build"
    stamps = build_stamps(build)
    # TMPDIR as target: the build directory is the one above it
    for target in (build / "tmp", stamps):
        code, data = lint_json(capsys, "--lint-stamps", str(target))
        assert code == 1
        assert data["mode"] == "stamps"
        assert data["build_dirs"] == [str(build)]
        assert data["files_checked"] == 4
        found = {(f["variable"], t["pn"], t["task"]) for f in data["findings"]
                 for t in f["tasks"]}
        assert found == {("EXTRA_OECONF", "zlib", "do_configure"),
                         ("SSTATE_EXTRA", "m4-native", "do_populate_sysroot"),
                         ("do_dpkg_build", "linux-mainline", "do_dpkg_build")}
    code, data = lint_json(capsys, "--lint-stamps", str(stamps), "--arch", "core2-64")
    assert data["files_checked"] == 2
    code, data = lint_json(capsys, "--lint-stamps", str(stamps), "--task", "dpkg_build")
    assert data["files_checked"] == 1


def test_lint_stamps_reports_unreadable_stamp_signatures(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    build = tmp_path / "build"
    stamps = build_stamps(build)
    bad = stamps / "core2-64-poky-linux" / "zlib" / f"1.3.1-r0.do_install.sigdata.{'d' * 64}"
    bad.write_bytes(b"not a signature")
    code, _out, err = lint(capsys, "--lint-stamps", str(stamps))
    assert code == 2
    assert "core2-64-poky-linux/zlib/1.3.1-r0.do_install.sigdata." in err


def test_verbosity_levels(capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    args = [str(cache), "--build-dir", BUILD, "--filter", "srcuri", "--sources-dir", LAYERS]
    _, out, _ = lint(capsys, *args)
    assert "  - srcuri:do_fetch:" not in out
    _, out, _ = lint(capsys, "-v", *args)
    assert "  - srcuri:do_fetch: " in out
    assert sstate_path("srcuri", "do_fetch") not in out
    _, out, _ = lint(capsys, "-vv", *args)
    assert f"[{sstate_path('srcuri', 'do_fetch')}]" in out
    code, out, _ = lint(capsys, "-q", *args)
    assert code == 1
    assert "SRC_URI contains" in out
    assert "linting" not in out


def test_an_oversized_file_is_unreadable_not_a_storage_failure(tmp_path: Path) -> None:
    from sstate_mirror.commands.lint import LintOptions, dirs_from, lint_files, select_siginfo
    from sstate_mirror.commands.listing import list_artifacts
    from sstate_mirror.signatures import Limits

    root = tmp_path / "cache"
    write_siginfo(root / sstate_path("big", "do_configure"), planted(
        variables={"X": f"{BUILD}/x " + "".join(  # incompressible
            hashlib.sha256(str(i).encode()).hexdigest() for i in range(200))}))
    write_siginfo(root / sstate_path("small", "do_configure"), planted(
        variables={"X": f"{BUILD}/x"}))
    backend = LocalBackend(str(root))
    files = select_siginfo(list_artifacts(backend))
    sizes = sorted(f.size for f in files)
    report = lint_files(backend, files, LintOptions(dirs=tuple(dirs_from([BUILD], []))),
                        jobs=2, limits=Limits(max_compressed=sizes[0]))
    assert report.files_checked == 1
    [bad] = report.unreadable
    assert "big" in bad.file and "limit" in bad.reason and not bad.backend_error
