"""Bad command-line values: exit 2, one clear error line, and nothing touched.

Every numeric, age and size option of every command gets values that make no sense
(negative, zero where zero is meaningless, a wrong unit, not a number). The mirror is a
directory whose files (and their times) are compared before and after: a bad value must be
refused before anything is read or written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from sstate_mirror.cli import main

#: (command, option, bad value); SRC and DST stand for the cache and the mirror
BAD: List[Tuple[str, str, str]] = [
    *[(cmd, opt, v) for cmd in ("upload", "touch", "clean", "info", "verify", "analyze", "lint")
      for opt, v in (("--timeout", "0"), ("--timeout", "-1"), ("--timeout", "soon"),
                     ("--timeout", "nan"), ("--retries", "-1"), ("--retries", "many"))],
    *[(cmd, opt, v) for cmd in ("upload", "touch", "clean", "verify")
      for opt, v in (("--jobs", "0"), ("--jobs", "-3"), ("--jobs", "100000"), ("--jobs", "x"))],
    *[(cmd, "--used-within", v) for cmd in ("upload", "touch")
      for v in ("1x", "-1d", "", "1.5.d", "99999999999999999999w")],
    *[("clean", opt, v) for opt in ("--max-age", "--max-sig-age", "--min-age")
      for v in ("30", "30x", "-1d", "d", "1e9999d")
      if (opt, v) not in (("--max-age", "30"), ("--max-sig-age", "30"))],  # days, as isar-sstate
    *[("clean", "--max-size", v) for v in ("10Q", "-1G", "G", "1e999G", "nan")],
    *[("clean", "--max-versions", v) for v in ("0", "-1", "two")],
    *[("verify", opt, v) for opt, v in (("--sample", "-1"), ("--sample", "x"),
                                        ("--max-decompressed", "10Q"),
                                        ("--max-decompressed", "-1G"),
                                        ("--max-members", "0"), ("--max-members", "-5"),
                                        ("--min-age", "1x"), ("--seed", "x"))],
    *[("info", "--top", v) for v in ("-1", "x")],
    *[("analyze", "--max-candidates", v) for v in ("-1", "0", "x")],
    *[("lint", "--exit-code", v) for v in ("-1", "256", "x")],
    *[(cmd, "--filter", "(") for cmd in ("upload", "touch")],
]

_ARGS = {
    "upload": ["SRC", "DST"], "touch": ["SRC", "DST"], "analyze": ["SRC", "DST"],
    "clean": ["DST", "--max-age", "30d"], "info": ["DST"], "verify": ["DST"], "lint": ["DST", "--build-dir", "SRC"],
}


def _snapshot(root: Path) -> Dict[str, Tuple[int, int, int]]:
    out = {}
    for p in root.rglob("*"):
        st = p.lstat()
        # a directory's atime moves whenever anyone lists it (relatime); a file's is bitbake's
        # mark of use on a directory mirror, so it must not move
        atime = 0 if p.is_dir() else st.st_atime_ns
        out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, atime)
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, oe_cache_b: Path) -> Tuple[Path, Path]:
    base = tmp_path_factory.mktemp("bad-values")
    cache, mirror = base / "cache", base / "mirror"
    shutil.copytree(oe_cache_b, cache)
    shutil.copytree(oe_cache_b, mirror)
    for d, _, _ in os.walk(base):
        os.chmod(d, 0o755)
    return cache, mirror


@pytest.mark.parametrize(("command", "option", "value"), BAD,
                         ids=[f"{c}{o}={v}" for c, o, v in BAD])
def test_bad_value_is_refused_before_anything_is_touched(
        command: str, option: str, value: str, tree: Tuple[Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    cache, mirror = tree
    before = (_snapshot(cache), _snapshot(mirror))
    argv = [{"SRC": str(cache), "DST": str(mirror)}.get(a, a) for a in _ARGS[command]]
    code = main([command, *argv, f"{option}={value}"])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and option.lstrip("-") in errors[0].lower(), err
    assert "Traceback" not in err
    assert out == ""
    assert (_snapshot(cache), _snapshot(mirror)) == before
