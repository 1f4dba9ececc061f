"""What marking use costs on real servers, counted by the servers themselves.

The plan (tests/test_usemark.py) says which groups to mark; these tests check what reaches
the server: nothing for a mirror whose marks are fresh, one touch per stale used group (two
requests on S3 and on Apache), and on nginx, which cannot refresh a time, only the few requests
that find that out, once per run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import List, Tuple

import pytest

from mirrors import Mirror, make_mirror
from sstate_mirror.cli import main
from sstate_mirror.naming import group_key

DAY = 86400

#: PROPFINDs a WebDAV backend spends once per run around touching: before and after its first
#: touch, to learn how (and whether) the server refreshes a time, and three to check that
#: pipelined answers match their requests, where nothing else used the pipeline before.
ONCE_PER_RUN_PROPFIND = 2 + 3


def run(capsys: pytest.CaptureFixture[str], m: Mirror, *argv: str) -> Tuple[int, dict, str]:
    code = main(["--json", *argv, *m.cli_args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def counted(capsys: pytest.CaptureFixture[str], m: Mirror, *argv: str
            ) -> Tuple[dict, str, List[str]]:
    """Run the CLI; its report, stderr and the requests the server logged meanwhile."""
    assert m.requests is not None
    before = len(m.requests())
    code, report, err = run(capsys, m, *argv)
    assert code in (0, 1), err
    return report, err, m.requests()[before:]


@pytest.mark.parametrize("kind", ["s3-moto", "dav-apache", "dav-nginx"])
def test_marking_costs_per_used_group(request: pytest.FixtureRequest, kind: str,
                                      oe_cache_a: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    m = make_mirror(request, kind)
    cache = tmp_path / "cache"
    shutil.copytree(oe_cache_a, cache)
    for d, _, _ in os.walk(cache):
        os.chmod(d, 0o755)
    # a build that used everything in its cache just now
    now = time.time()
    for p in cache.rglob("*"):
        if p.is_file():
            os.utime(p, (now, now))
    groups = {group_key(str(p.relative_to(cache))) for p in cache.rglob("*") if p.is_file()}
    assert run(capsys, m, "upload", str(cache), m.url)[0] == 0

    # fresh: the upload's own files are the marks; the next upload adds no request to the
    # ones the same upload without marking sends
    _, _, plain = counted(capsys, m, "upload", "--no-touch", str(cache), m.url)
    report, _, marking = counted(capsys, m, "upload", str(cache), m.url)
    assert report["plan"]["to_touch"] == []
    assert report["plan"]["used_groups_fresh"] == len(groups)
    assert sorted(marking) == sorted(plain)

    # stale: one mark per used group
    m.age_all(3 * DAY)
    _, _, plain = counted(capsys, m, "upload", "--no-touch", str(cache), m.url)
    report, err, marking = counted(capsys, m, "upload", str(cache), m.url)
    marks = report["plan"]["to_touch"]
    assert len(marks) == len(groups) and {group_key(p) for p in marks} == groups
    extra = Counter(marking)
    extra.subtract(Counter(plain))
    if kind == "dav-nginx":
        # nginx cannot refresh a time: found out once, not once per file, and said once
        assert report["result"]["touched"] == 0
        assert extra["COPY"] <= 1 and extra["MOVE"] <= 1 and extra["PROPPATCH"] <= 1, extra
        assert extra["PROPFIND"] <= ONCE_PER_RUN_PROPFIND, extra
        said = [line for line in err.splitlines() if "record use" in line or "refresh" in line]
        assert len(said) == 1, err
        return
    assert report["result"]["touched"] == len(groups)
    if kind == "s3-moto":
        # a HEAD for the object's metadata, and a copy onto itself
        assert +extra == Counter({"HEAD": len(groups), "PUT(copy)": len(groups)}), extra
    else:
        # a COPY to a temporary name and a MOVE back conditional on the file's entity tag
        # (the one the listing saw, so that a file a clean deletes meanwhile is not brought
        # back); once a run, a PROPPATCH tried and a MOVE that checks the condition is kept:
        # two requests per group, no PROPFIND per group
        assert extra["COPY"] == len(groups) and len(groups) <= extra["MOVE"] <= len(groups) + 1
        assert extra["PROPPATCH"] <= 1, extra
        assert extra["PROPFIND"] <= ONCE_PER_RUN_PROPFIND, extra
        assert sum(extra.values()) <= 2 * len(groups) + 2 + ONCE_PER_RUN_PROPFIND
    # and now they are fresh again
    _, _, again = counted(capsys, m, "upload", str(cache), m.url)
    assert sorted(again) == sorted(plain)
