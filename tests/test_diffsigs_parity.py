"""bitbake-diffsigs' command lines: one file is printed, ``-t PN TASK`` and ``-s H1 H2`` find
the files in a cache or on a mirror, and ``dumpsig`` reads a mirror URL or names the file to
give instead of an archive."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Tuple

import pytest

from sstate_mirror.cli import main
from webdav_servers import DavServer

EXPECTED = Path(__file__).parent / "data" / "oe-wrynose" / "expected"
BETA_A = "9dcc451fde6d3b516c0529daedfbcb27eb36d28a9dc5a1d14bb291ad1e4782d4"
BETA_B = "9f271270a3defbb74d4c28f8445fea865aa1043b2ac66562ae472431cf238ef0"
_dirs = itertools.count()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def siginfo(cache: Path, pn: str, task: str) -> Path:
    return next(cache.rglob(f"sstate:{pn}:*_{task}.tar.zst.siginfo"))


@pytest.fixture
def both(tmp_path: Path, oe_cache_a: Path, oe_cache_b: Path,
         capsys: pytest.CaptureFixture[str]) -> Path:
    """A mirror holding both builds' files (cache A uploaded first: older)."""
    m = tmp_path / "both"
    assert run(capsys, "upload", "-q", "--no-touch", str(oe_cache_a), str(m))[0] == 0
    for p in m.rglob("*"):  # cache A's files an hour older, whatever the clock did
        if p.is_file():
            os.utime(p, (p.stat().st_mtime - 3600, p.stat().st_mtime - 3600))
    assert run(capsys, "upload", "-q", "--no-touch", str(oe_cache_b), str(m))[0] == 0
    return m


def test_one_file_alone_is_printed_as_dumpsig_does(oe_cache_a: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    f = siginfo(oe_cache_a, "zeta", "populate_lic")
    code, out, _ = run(capsys, "diffsigs", str(f))
    assert code == 0
    expected = EXPECTED / "dumpsig" / "cache-a" / (str(f.relative_to(oe_cache_a)) + ".txt")
    assert out == expected.read_text()
    assert run(capsys, "dumpsig", str(f))[1] == out


def test_task_and_signatures_in_a_cache(both: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "diffsigs", "-t", "beta-native", "do_populate_sysroot",
                       "-s", BETA_A, BETA_B, str(both))
    assert code == 0
    assert out == (EXPECTED / "diffsigs" / "beta-native.do_populate_sysroot.txt").read_text()
    # a unique prefix will do, and the task may be named without do_
    code, short, _ = run(capsys, "diffsigs", "-t", "beta-native", "populate_sysroot",
                         "-s", BETA_A[:8], BETA_B[:8], str(both))
    assert (code, short) == (0, out)


def test_task_alone_compares_the_two_newest(both: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "diffsigs", "-t", "alpha-native", "do_populate_sysroot",
                       str(both))
    assert code == 0
    assert out == (EXPECTED / "diffsigs" / "alpha-native.do_populate_sysroot.txt").read_text()


@pytest.mark.parametrize("argv,message", [
    (["-t", "zeta", "do_nosuch"], "No sigdata files found matching zeta do_nosuch"),
    (["-t", "epsilon", "do_populate_lic"],
     "Only one matching sigdata file found for the specified task (epsilon do_populate_lic)"),
    (["-t", "zeta", "do_populate_lic", "-s", "5c13e276", "0000"],
     "No sigdata files found matching zeta do_populate_lic with signature 0000"),
])
def test_task_lookups_that_find_nothing_say_so(both: Path, capsys: pytest.CaptureFixture[str],
                                               argv: list, message: str) -> None:
    code, _, err = run(capsys, "diffsigs", *argv, str(both))
    assert code == 1 and message in err


def test_signatures_need_a_task(both: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "diffsigs", "-s", BETA_A, BETA_B, str(both))
    assert code == 2 and "-s/--signature can only be used together with -t/--task" in err


def test_an_archive_names_its_siginfo(oe_cache_a: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    archive = str(siginfo(oe_cache_a, "zeta", "populate_lic"))[:-len(".siginfo")]
    for command in ("dumpsig", "diffsigs"):
        code, _, err = run(capsys, command, archive)
        assert code == 2 and "is an sstate archive, not a signature file" in err
        assert f"hint: give its signature file: {archive}.siginfo" in err


def test_on_a_webdav_mirror(wsgidav_server: DavServer, oe_cache_a: Path, oe_cache_b: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    url = wsgidav_server.location_url("open") + f"parity-{next(_dirs)}/"
    for cache in (oe_cache_a, oe_cache_b):
        assert run(capsys, "upload", "-q", str(cache), url)[0] == 0
    f = siginfo(oe_cache_a, "zeta", "populate_lic")
    rel = str(f.relative_to(oe_cache_a))
    code, out, _ = run(capsys, "dumpsig", url + rel)
    assert code == 0
    assert out == (EXPECTED / "dumpsig" / "cache-a" / (rel + ".txt")).read_text()
    code, out, _ = run(capsys, "--json", "dumpsig", url + rel)
    assert code == 0 and json.loads(out)["hashes_match"] is True
    code, out, _ = run(capsys, "diffsigs", "-t", "beta-native", "do_populate_sysroot",
                       "-s", BETA_A, BETA_B, url)
    assert code == 0
    assert out == (EXPECTED / "diffsigs" / "beta-native.do_populate_sysroot.txt").read_text()
