"""Unreadable files and directories in the local cache: a clear error, nothing partial.

The suite usually runs as root, who reads everything; the CLI is therefore run without the
capabilities that let root ignore file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so
that mode 000 means for it what it means for a build user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

SRC = str(Path(__file__).parents[1] / "src")


def _as_build_user(argv: List[str]) -> Tuple[int, str, str]:
    prefix: List[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv (util-linux) is needed to drop root's file-mode bypass")
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    env = dict(os.environ, PYTHONPATH=SRC)
    res = subprocess.run([*prefix, sys.executable, "-m", "sstate_mirror", *argv],
                         capture_output=True, text=True, env=env, timeout=120)
    return res.returncode, res.stdout, res.stderr


@pytest.fixture
def cache(tmp_path: Path, oe_cache_a: Path) -> Path:
    dst = tmp_path / "cache"
    shutil.copytree(oe_cache_a, dst)
    for d, _, _ in os.walk(dst):
        os.chmod(d, 0o755)
    return dst


def test_unreadable_file_fails_alone_and_holds_back_its_archive(cache: Path,
                                                               tmp_path: Path) -> None:
    siginfo = next(p for p in cache.rglob("*.tar.zst.siginfo") if ":zeta::" in p.name
                   and Path(str(p)[: -len(".siginfo")]).exists())
    archive = Path(str(siginfo)[: -len(".siginfo")])
    siginfo.chmod(0)
    mirror = tmp_path / "mirror"
    code, out, err = _as_build_user(["--json", "upload", str(cache), str(mirror)])
    assert code == 1, err
    failed = json.loads(out)["result"]["failed"]
    rel = str(siginfo.relative_to(cache))
    assert set(failed) == {rel, str(archive.relative_to(cache))}
    assert "Permission denied" in failed[rel] or "permission" in failed[rel].lower()
    assert f"error: {rel}" in err
    uploaded = {str(p.relative_to(mirror)) for p in mirror.rglob("*") if p.is_file()}
    assert len(uploaded) == 91 and rel not in uploaded
    assert not any(".sstate-mirror-" in p for p in uploaded)


def test_unreadable_directory_fails_the_listing_and_sends_nothing(cache: Path,
                                                                  tmp_path: Path) -> None:
    hidden = next(p for p in cache.glob("debian-12/*") if p.is_dir())
    hidden.chmod(0)
    mirror = tmp_path / "mirror"
    try:
        code, _out, err = _as_build_user(["upload", str(cache), str(mirror)])
    finally:
        hidden.chmod(0o755)
    assert code == 3, err
    assert "cannot list" in err and str(hidden) in err and "Traceback" not in err
    assert not [p for p in mirror.rglob("*") if p.is_file()]
