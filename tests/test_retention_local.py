"""Retention by last use and size, end to end on a directory mirror."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mirrors import is_lease
from runcli import run_json, writable_copy
from sstate_mirror.cli import main

DAY = 86400


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code, report, _ = run_json(capsys, *argv)
    return code, report


def set_times(path: Path, days_ago: float, atime_days_ago: float | None = None) -> None:
    t = time.time() - days_ago * DAY
    a = t if atime_days_ago is None else time.time() - atime_days_ago * DAY
    os.utime(path, (a, t))


def marks(used: set[str]) -> set[str]:
    """What marks the use of these groups on a directory mirror: each group's .siginfo."""
    return {p for p in used if p.endswith(".siginfo")}


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not is_lease(str(p.relative_to(root)))}


@pytest.fixture
def setup(tmp_path: Path, oe_cache_a: Path, capsys: pytest.CaptureFixture[str]):
    """A mirror made from cache A 60 days ago, and a local cache whose build used some of it."""
    cache = tmp_path / "cache"
    writable_copy(oe_cache_a, cache)
    mirror = tmp_path / "mirror"
    assert run(capsys, "upload", str(cache), str(mirror))[0] == 0
    for p in list(mirror.rglob("*")) + list(cache.rglob("*")):
        if p.is_file():
            set_times(p, 60)
    # today's build used (bitbake refreshed the local copies of) alpha-native's artifacts
    used = [p for p in cache.rglob("*") if p.is_file() and ":alpha-native:" in p.name]
    for p in used:
        set_times(p, 0)
    return cache, mirror, {str(p.relative_to(cache)) for p in used}


def test_upload_marks_used_artifacts_and_clean_keeps_them(
        setup, capsys: pytest.CaptureFixture[str]) -> None:
    cache, mirror, used = setup
    code, report = run(capsys, "upload", str(cache), str(mirror))
    assert code == 0
    # one mark per used group (every group of alpha-native has a .siginfo)
    assert len(marks(used)) == 11
    assert set(report["plan"]["to_touch"]) == marks(used)
    assert report["result"]["touched"] == len(marks(used))
    assert report["result"]["uploaded"] == 0  # nothing re-sent
    # the next build's upload finds the marks fresh: nothing to do
    code, report = run(capsys, "upload", str(cache), str(mirror))
    assert code == 0 and report["plan"]["to_touch"] == []
    assert report["plan"]["used_groups_fresh"] == len(marks(used))
    # unless asked to mark on every use
    code, report = run(capsys, "upload", "--dry-run", "--refresh-interval", "0s", str(cache),
                       str(mirror))
    assert code == 0 and set(report["plan"]["to_touch"]) == marks(used)
    code, report = run(capsys, "clean", "--max-age", "30d", str(mirror))
    assert code == 0
    # alpha-native's used artifacts survive; everything unused for 60 days is gone
    assert files(mirror) == used


def test_no_touch_and_touch_command(setup, capsys: pytest.CaptureFixture[str]) -> None:
    cache, mirror, used = setup
    code, report = run(capsys, "upload", "--no-touch", str(cache), str(mirror))
    assert code == 0 and report["plan"]["to_touch"] == [] and report["result"]["touched"] == 0
    code, report = run(capsys, "touch", "--dry-run", str(cache), str(mirror))
    assert code == 0 and set(report["to_touch"]) == marks(used)
    assert run(capsys, "clean", "--dry-run", "--max-age", "30d", str(mirror))[1]["plan"][
        "files_to_delete"] == 93
    code, report = run(capsys, "touch", str(cache), str(mirror))
    assert code == 0 and report["touched"] == len(marks(used))
    # touched: fresh now, so a second touch has nothing to do
    code, report = run(capsys, "touch", "--dry-run", str(cache), str(mirror))
    assert code == 0 and report["to_touch"] == [] and report["used_groups_fresh"] == 11
    # --used-within narrows what counts as used
    code, report = run(capsys, "touch", "--dry-run", "--used-within", "0s",
                       "--refresh-interval", "0s", str(cache), str(mirror))
    assert code == 0 and report["to_touch"] == []
    assert run(capsys, "clean", "--max-age", "30d", str(mirror))[0] == 0
    assert files(mirror) == used


def test_siginfo_access_time_is_bitbakes_use_mark(setup,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, mirror, _ = setup
    # bitbake touched the .siginfo's atime through its symlink on a file:// mirror
    sig = next(p for p in mirror.rglob("*.siginfo") if ":zeta:" in p.name
               and Path(str(p)[: -len(".siginfo")]).exists())
    set_times(sig, 60, atime_days_ago=1)
    archive = Path(str(sig)[: -len(".siginfo")])
    code, report = run(capsys, "clean", "--max-age", "30d", str(mirror))
    assert code == 0
    assert sig.exists() and archive.exists()
    assert report["result"]["deleted"] == 91


def test_bitbakes_read_of_the_siginfo_spares_the_mark(
        setup, capsys: pytest.CaptureFixture[str]) -> None:
    cache, mirror, used = setup
    # a build read alpha-native's .siginfo files through its symlinks an hour ago; their
    # mtimes (and the archives') say 60 days
    for p in marks(used):
        set_times(mirror / p, 60, atime_days_ago=1 / 24)
    code, report = run(capsys, "upload", "--dry-run", str(cache), str(mirror))
    assert code == 0 and report["plan"]["to_touch"] == []
    assert report["plan"]["used_groups_fresh"] == len(marks(used))
    # a day later the mark is stale again
    for p in marks(used):
        set_times(mirror / p, 60, atime_days_ago=1.5)
    code, report = run(capsys, "upload", "--dry-run", str(cache), str(mirror))
    assert code == 0 and set(report["plan"]["to_touch"]) == marks(used)


def test_clean_by_size(setup, capsys: pytest.CaptureFixture[str]) -> None:
    cache, mirror, used = setup
    assert run(capsys, "touch", str(cache), str(mirror))[0] == 0
    total = sum((mirror / p).stat().st_size for p in files(mirror))
    used_size = sum((mirror / p).stat().st_size for p in used)
    code, report = run(capsys, "clean", "--max-size", str(used_size + 100), "--min-age", "0s",
                       str(mirror))
    assert code == 0
    plan = report["plan"]
    assert plan["size_before"] == total and plan["size_after"] <= used_size + 100
    assert not plan["budget_unmet"]
    assert used <= files(mirror)  # the recently used group is evicted last
    # a budget that only recently used files exceed: said, and they are kept
    code, report = run(capsys, "clean", "--max-size", "1K", str(mirror))
    assert code == 0 and report["plan"]["budget_unmet"] is True
    assert used <= files(mirror)


def test_clean_rules_are_validated_first(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--max-size", "lots"], ["--max-versions", "0"], ["--min-age", "1.5h",
                                                                    "--max-age", "1d"], []):
        code = main(["clean", str(tmp_path / "nope"), *args])
        assert code == 2, args
    capsys.readouterr()
