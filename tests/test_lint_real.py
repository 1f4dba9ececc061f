"""``lint`` on the reference caches written by real bitbake (2.18 and 1.52).

What is really in them, checked by hand (every string of every file scanned for absolute
paths, see ``test_where_the_legacy_build_path_really_is``):

* legacy-honister: the build directory ``/home/builder/legacy`` (with the layer checkout
  ``/home/builder/legacy/meta-sstatetest``) appears only in ``runtaskdeps`` and the keys of
  ``runtaskhashes`` — bitbake 1.52 names dependencies by their recipe file — and those names
  do not enter the task hash. No hashed value holds it: zero findings.
* oe-wrynose: no file records the build directory at all (the variables that hold it,
  ``TOPDIR``, ``TMPDIR``, ``WORKDIR``, ... are in ``basehash_ignore_vars`` or are not
  dependencies of any task, so bitbake does not store them). Zero findings for any build dir.
* With ``--pedantic``, both data sets hold exactly one absolute path outside the system
  directories in a hashed value: ``/sysroot-only`` in ``SYSROOT_DIRS`` (an OE-core default,
  the same on every machine), in the five native recipes' ``do_populate_sysroot``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import pytest

from signature_helpers import LEGACY, OE, read_raw, write_siginfo
from sstate_mirror.cli import main

LEGACY_BUILD = "/home/builder/legacy"
LEGACY_LAYER = "/home/builder/legacy/meta-sstatetest"
NATIVE = ["alpha-native", "beta-native", "delta-native", "eta-native", "gamma-native"]
PEDANTIC_EXPECTED = {("SYSROOT_DIRS", "absolute", "/sysroot-only"):
                     {(pn, "do_populate_sysroot") for pn in NATIVE}}

CACHES = {"oe-a": OE / "cache-a", "oe-b": OE / "cache-b", "legacy": LEGACY / "cache-a"}
FILES = {"oe-a": 67, "oe-b": 67, "legacy": 53}


@pytest.fixture(autouse=True)
def _no_builddir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUILDDIR", raising=False)


def lint_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, Dict[str, Any]]:
    code = main(["lint", "--json", *argv])
    out, _err = capsys.readouterr()
    return code, json.loads(out)


def findings(data: Dict[str, Any]) -> Dict[Tuple[str, str, str], Set[Tuple[str, str]]]:
    return {(f["variable"], f["kind"], f["path"]): {(t["pn"], t["task"]) for t in f["tasks"]}
            for f in data["findings"]}


def _strings(value: Any, where: str) -> List[Tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += _strings(k, f"{where}.<key>")
            out += _strings(v, f"{where}.{k}" if where in ("", ".varvals") else f"{where}.*")
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [s for v in value for s in _strings(v, f"{where}[]")]
    return []


def test_where_the_legacy_build_path_really_is() -> None:
    places = set()
    for f in (LEGACY / "cache-a").rglob("*.siginfo"):
        for where, text in _strings(read_raw(f), ""):
            if LEGACY_BUILD in text:
                places.add(where)
    assert places == {".runtaskdeps[]", ".runtaskhashes.<key>"}


def test_the_oe_build_path_is_recorded_nowhere() -> None:
    for f in (OE / "cache-a").rglob("*.siginfo"):
        for _where, text in _strings(read_raw(f), ""):
            assert "/home/" not in text and "/build/" not in text


@pytest.mark.parametrize("cache", sorted(CACHES))
@pytest.mark.parametrize("dirs", [
    ["--build-dir", LEGACY_BUILD],
    ["--sources-dir", LEGACY_LAYER],
    ["--build-dir", LEGACY_BUILD + "/build", "--sources-dir", LEGACY_LAYER],
])
def test_no_findings_for_the_build_and_sources_dirs(capsys: pytest.CaptureFixture[str],
                                                    cache: str, dirs: List[str]) -> None:
    code, data = lint_json(capsys, str(CACHES[cache]), *dirs)
    assert (code, data["files_checked"], data["unreadable"], data["findings"]) == (
        0, FILES[cache], [], [])


@pytest.mark.parametrize("cache", sorted(CACHES))
def test_pedantic_finds_exactly_sysroot_only(capsys: pytest.CaptureFixture[str],
                                             cache: str) -> None:
    code, data = lint_json(capsys, str(CACHES[cache]), "--pedantic",
                           "--build-dir", LEGACY_BUILD)
    assert code == 1
    assert findings(data) == PEDANTIC_EXPECTED


def test_ignored_variables_never_count(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    """Every real file with the build directory in the variables bitbake ignores (each of
    the file's own basehash_ignore_vars, made a dependency of the task as well) stays clean;
    the same value in one variable that is not ignored is found in every file."""
    src = LEGACY / "cache-a"
    clean = tmp_path / "clean"
    dirty = tmp_path / "dirty"
    for f in src.rglob("*.siginfo"):
        raw = read_raw(f)
        ignored = sorted(raw["basehash_ignore_vars"])
        raw["taskdeps"] = sorted(set(raw["taskdeps"]) | set(ignored))
        for name in ignored:
            raw["varvals"][name] = f"{LEGACY_BUILD}/build/tmp/{name}"
        rel = str(f.relative_to(src)).replace(".tgz.siginfo", ".tar.zst.siginfo")
        write_siginfo(clean / rel, raw)
        raw["varvals"]["NOT_IGNORED"] = f"{LEGACY_BUILD}/build/x"
        raw["taskdeps"] = sorted(set(raw["taskdeps"]) | {"NOT_IGNORED"})
        write_siginfo(dirty / rel, raw)
    code, data = lint_json(capsys, str(clean), "--build-dir", LEGACY_BUILD)
    assert (code, data["files_checked"], data["findings"]) == (0, FILES["legacy"], [])
    code, data = lint_json(capsys, str(dirty), "--build-dir", LEGACY_BUILD)
    assert code == 1
    assert [(f["variable"], f["path"], len(f["tasks"])) for f in data["findings"]] == [
        ("NOT_IGNORED", f"{LEGACY_BUILD}/...", FILES["legacy"])]
