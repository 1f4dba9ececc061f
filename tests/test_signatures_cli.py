"""``sstate-mirror dumpsig`` and ``sstate-mirror diffsigs`` from the command line."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any, Dict

import pytest

from runcli import writable_copy
from signature_helpers import OE, OE_EXPECTED, dumpsig_cases, index_pairs, pair_files
from sstate_mirror.cli import main


def _pair(pn: str, task: str) -> Dict[str, Any]:
    return next(p for p in index_pairs() if p["pn"] == pn and p["task"] == task)


def test_commands_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "dumpsig" in out and "diffsigs" in out


@pytest.mark.parametrize("case", dumpsig_cases(OE)[::15], ids=lambda c: c[0].name[:60])
def test_dumpsig_prints_what_bitbake_prints(case: Any, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    sigfile, expected = case
    assert main(["dumpsig", str(sigfile)]) == 0
    captured = capsys.readouterr()
    assert captured.out == expected.read_text()
    assert captured.err == ""


def test_dumpsig_json(capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = pair_files(_pair("beta-native", "do_fetch"))
    assert main(["dumpsig", "--json", str(a)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["task"] == "do_fetch"
    assert data["basehash_ignore_vars"] == sorted(data["basehash_ignore_vars"])
    assert data["hashes_match"] is True
    assert data["computed_taskhash"] == data["taskhash"]
    assert ["beta.sh", "046dfb3fd87920488b021ac511203de4"] in data["file_checksum_values"]


def test_dumpsig_warns_about_a_tampered_file(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from signature_helpers import base_sig

    path = tmp_path / "t.siginfo"
    path.write_bytes(pickle.dumps(base_sig(), protocol=5))
    assert main(["dumpsig", str(path)]) == 0
    captured = capsys.readouterr()
    assert "basehash" in captured.err and "does not match" in captured.err
    assert captured.out.startswith("basewhitelist: {'HOME', 'PATH'}\n")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("command", ["dumpsig", "diffsigs"])
def test_unsafe_file_exits_2_and_runs_nothing(command: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.siginfo"
    path.write_bytes(pickle.dumps({"task": _Evil(marker)}, protocol=4))
    argv = [command, str(path)] + ([str(path)] if command == "diffsigs" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unsafe" in err and str(path) in err
    assert not marker.exists()


def test_garbage_and_missing_files_exit_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.siginfo"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage")
    assert main(["dumpsig", str(path)]) == 2
    assert main(["dumpsig", str(tmp_path / "missing.siginfo")]) == 2
    err = capsys.readouterr().err
    assert [line.split(":")[0] for line in err.splitlines()] == ["error", "error"]


@pytest.mark.parametrize("pn, task", [("gamma-native", "do_prepare_recipe_sysroot"),
                                      ("alpha-native", "do_populate_sysroot"),
                                      ("beta-native", "do_fetch"),
                                      ("delta-native", "do_install")])
def test_diffsigs_recursive_and_not(pn: str, task: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    pair = _pair(pn, task)
    a, b = pair_files(pair)
    assert main(["diffsigs", str(a), str(b)]) == 0
    assert capsys.readouterr().out == (OE_EXPECTED / pair["diffsigs"]).read_text()
    assert main(["diffsigs", "--no-recurse", str(a), str(b)]) == 0
    assert capsys.readouterr().out == (OE_EXPECTED / pair["diffsigs-norecurse"]).read_text()


def test_diffsigs_color_always(capsys: pytest.CaptureFixture[str]) -> None:
    a, b = pair_files(_pair("gamma-native", "do_populate_sysroot"))
    expected = OE_EXPECTED / "extra" / "color.gamma-native.do_populate_sysroot.txt"
    assert main(["diffsigs", "--color", "always", str(a), str(b)]) == 0
    assert capsys.readouterr().out == expected.read_text()
    assert main(["--color", "always", "diffsigs", str(a), str(b)]) == 0
    assert capsys.readouterr().out == expected.read_text()
    assert main(["diffsigs", "--color", "never", str(a), str(b)]) == 0
    assert "\033[" not in capsys.readouterr().out


def _isolate(src: Path, dest_root: Path) -> Path:
    """Copy one signature file into a cache of its own, keeping its relative path."""
    for cache in (OE / "cache-a", OE / "cache-b"):
        if cache in src.parents:
            target = dest_root / src.relative_to(cache)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)
            return target
    raise AssertionError(src)


def test_diffsigs_missing_dependency(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    a, b = pair_files(_pair("alpha-native", "do_populate_sysroot"))
    lonely_b = _isolate(b, tmp_path / "b-only")
    expected = OE_EXPECTED / "extra" / "missing-dep.alpha-native.do_populate_sysroot.txt"
    assert main(["diffsigs", str(a), str(lonely_b)]) == 0
    assert capsys.readouterr().out == expected.read_text()


def test_diffsigs_search_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = _pair("gamma-native", "do_prepare_recipe_sysroot")
    a, b = pair_files(pair)
    lonely_a = _isolate(a, tmp_path / "a-only")
    lonely_b = _isolate(b, tmp_path / "b-only")
    assert main(["diffsigs", str(lonely_a), str(lonely_b)]) == 0
    assert "Unable to find matching sigdata" in capsys.readouterr().out
    assert main(["diffsigs", str(lonely_a), str(lonely_b), "--search-dir", str(OE / "cache-a"),
                 "--search-dir", str(OE / "cache-b")]) == 0
    assert capsys.readouterr().out == (OE_EXPECTED / pair["diffsigs"]).read_text()
    assert main(["diffsigs", str(a), str(b), "--search-dir", str(tmp_path / "nope")]) == 2


def test_diffsigs_json(capsys: pytest.CaptureFixture[str]) -> None:
    a, b = pair_files(_pair("alpha-native", "do_compile"))
    assert main(["diffsigs", "--json", "--color", "always", str(a), str(b)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["changed"] is True
    assert data["lines"][1] == 'Variable ALPHA_GREETING value changed:\n' \
        '"hello from variant [-A-] {+B+}"'
    assert main(["diffsigs", "--json", str(a), str(a)]) == 0
    assert json.loads(capsys.readouterr().out)["lines"] == []


def test_diffsigs_warns_about_unreadable_dependency(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pair = _pair("alpha-native", "do_install")
    _, b = pair_files(pair)
    cache = writable_copy(OE / "cache-a", tmp_path / "cache")
    dep = next(cache.rglob("*618c9677f21c*_compile.tar.zst.siginfo"))
    dep.write_bytes(b"broken")
    assert main(["diffsigs", str(cache / pair["cache-a"]), str(b)]) == 0
    captured = capsys.readouterr()
    assert "warning: skipping unreadable signature file" in captured.err
    assert "Unable to find matching sigdata for alpha-native:do_compile" in captured.out
