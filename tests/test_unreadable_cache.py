"""Unreadable files and directories in the local cache: a clear error, nothing partial.

The suite usually runs as root, who reads everything; the CLI is therefore run without the
capabilities that let root ignore file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so
that mode 000 means for it what it means for a build user.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Tuple

import pytest

from realparts import tool
from runcli import run_process


def _as_build_user(argv: List[str]) -> Tuple[int, str, str]:
    prefix: List[str] = []
    if os.geteuid() == 0:
        setpriv = tool("setpriv", "Debian package util-linux")
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    res = run_process(*argv, prefix=prefix)
    return res.returncode, res.stdout, res.stderr


@pytest.fixture
def cache(writable_cache: Path) -> Path:
    return writable_cache


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
