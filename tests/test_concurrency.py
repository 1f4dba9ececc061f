"""Two uploads of overlapping caches and a clean, all at once, on every kind of store.

The mirror starts with cache-b's artifacts, backdated by 40 days: old and unused, what
``clean --max-age 30d`` removes. Then, at the same time, as separate processes (as on a CI
farm): cache-a and a copy of cache-a (fully overlapping) are uploaded, while a clean runs.
cache-a and cache-b share directories (the ``hh/hh/`` levels), so the clean's pruning of
emptied directories races with the uploads' writes into them.

Afterwards the project's own ``verify --all`` must find every archive complete with its
companions, and every artifact the uploads sent (new on the mirror) must still be there with
its exact bytes: a clean must never delete what was uploaded during its run. Every process
must succeed, on WebDAV too: an upload creates again what the clean prunes under it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from mirrors import make_mirror
from sstate_mirror.cli import main

DAY = 86400
ENV = {"PYTHONPATH": str(Path(__file__).parents[1] / "src")}


def _start(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "sstate_mirror", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ENV})


@pytest.mark.parametrize("kind", ["dir", "s3-moto", "dav-nginx", "dav-apache"])
def test_two_uploads_and_a_clean_at_once(kind: str, request: pytest.FixtureRequest,
                                         tmp_path: Path, oe_cache_a: Path, oe_cache_b: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    m = make_mirror(request, kind)
    assert main(["-q", "upload", str(oe_cache_b), m.url, *m.cli_args]) == 0
    m.age_all(40 * DAY)
    old = set(m.sizes())
    copy = tmp_path / "copy-of-a"
    shutil.copytree(oe_cache_a, copy)
    new = {str(p.relative_to(oe_cache_a)) for p in oe_cache_a.rglob("*") if p.is_file()} - old
    assert new
    procs: List[subprocess.Popen[str]] = [
        _start("upload", "-j", "4", str(oe_cache_a), m.url, *m.cli_args),
        _start("clean", "--max-age", "30d", "-j", "4", m.url, *m.cli_args),
        _start("upload", "-j", "4", str(copy), m.url, *m.cli_args),
    ]
    results = [(p.args, *p.communicate(timeout=180), p.returncode) for p in procs]
    for args, out, err, code in results:
        assert code == 0, (args, out, err)
    capsys.readouterr()
    code = main(["verify", "--all", "--min-age", "0s", m.url, *m.cli_args])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    sizes = m.sizes()
    missing = sorted(new - set(sizes))
    assert not missing, f"uploaded during the clean, then lost: {missing[:5]}"
    with m.backend() as b:
        for path in sorted(new):
            assert b.read(path, 1 << 24) == (oe_cache_a / path).read_bytes(), path
