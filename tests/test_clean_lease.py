"""A clean announces itself on the mirror; an upload checks its signatures only then.

The rule (:func:`clean_may_have_run`) as a pure function, and on real servers: an upload
next to no clean sends no ``stat`` for the companions of the archives it sent (counted by
the servers themselves), an upload next to a running clean's lease checks every one, and a
clean leaves an ended lease behind (and removes old ones). The interleavings themselves
are in tests/test_clean_upload_race.py.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import List

import pytest

from mirrors import Mirror, make_mirror
from sstate_mirror.backends.local import LocalBackend
from sstate_mirror.commands.cleanlease import (
    ALIVE_FOR,
    KEEP_ENDED,
    CleanLease,
    clean_may_have_run,
    list_leases,
)
from sstate_mirror.commands.listing import EVERYTHING
from sstate_mirror.commands.upload import execute_upload, plan_against_mirror
from sstate_mirror.naming import CLEANS_DIR, Kind, classify

NOW = 1_700_000_000.0


def test_no_clean_no_check() -> None:
    assert not clean_may_have_run({}, {}, now=NOW, elapsed=5)
    ended = {"a.running": NOW - 900, "a.ended": NOW - 600,  # over
             "b.running": NOW - ALIVE_FOR - 1}  # killed long ago
    assert not clean_may_have_run(ended, dict(ended), now=NOW, elapsed=5)


def test_a_clean_that_ran_meanwhile_is_seen() -> None:
    # started and ended between the two listings: a name the first one did not have
    assert clean_may_have_run({}, {"c.ended": NOW - 1}, now=NOW, elapsed=5)
    # running before the upload began, ended since
    assert clean_may_have_run({"c.running": NOW - 60}, {"c.ended": NOW - 1}, now=NOW,
                              elapsed=5)
    # running and alive at either listing
    assert clean_may_have_run({"c.running": NOW - 60}, {"c.running": NOW - 60}, now=NOW,
                              elapsed=5)
    # rewritten since the first listing
    assert clean_may_have_run({"c.running": NOW - ALIVE_FOR - 600},
                              {"c.running": NOW - 1}, now=NOW, elapsed=5)


def test_when_in_doubt_check() -> None:
    assert clean_may_have_run(None, {}, now=NOW, elapsed=5)
    assert clean_may_have_run({}, None, now=NOW, elapsed=5)
    # so long that a lease could have come and been removed in between
    assert clean_may_have_run({}, {}, now=NOW, elapsed=KEEP_ENDED)


def test_leases_are_the_mirrors_own_data() -> None:
    assert classify(f"{CLEANS_DIR}/0123456789abcdef.running") is Kind.META
    assert classify(f"{CLEANS_DIR}/0123456789abcdef.ended") is Kind.META


def _cache(oe_cache_a: Path, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(oe_cache_a, cache)
    for d, _, _ in os.walk(cache):
        os.chmod(d, 0o755)
    return cache


def _upload(cache: Path, m: Mirror) -> None:
    local = LocalBackend(str(cache))
    with m.backend() as target:
        plan = plan_against_mirror(local, target, EVERYTHING, now=time.time(),
                                   used_within=None, jobs=2)
        assert plan.archives
        result = execute_upload(plan, local, target, jobs=2)
    assert not result.failed, result.failed


def _archives_with_companions(cache: Path) -> List[Path]:
    return [p for p in sorted(cache.rglob("*.tar.zst")) if Path(f"{p}.siginfo").exists()]


@pytest.mark.parametrize("kind", ["s3-moto", "dav-nginx", "dav-apache"])
def test_upload_checks_signatures_only_next_to_a_clean(
        request: pytest.FixtureRequest, kind: str, oe_cache_a: Path, tmp_path: Path) -> None:
    m = make_mirror(request, kind)
    assert m.requests is not None
    cache = _cache(oe_cache_a, tmp_path)
    _upload(cache, m)
    archives = _archives_with_companions(cache)
    assert len(archives) >= 4

    def upload_new(fresh: List[Path]) -> List[str]:
        """Send ``fresh`` archives (deleted from the mirror) again; the requests it took."""
        with m.backend() as b:
            assert b.delete([str(p.relative_to(cache)) for p in fresh]) == {}
        before = len(m.requests())
        _upload(cache, m)
        return m.requests()[before:]

    # no clean: the upload's companions are not looked at again (no HEAD at all)
    sent = upload_new(archives[:2])
    assert "HEAD" not in sent, sent

    # a clean is running: every companion of an archive sent is checked (a HEAD each)
    with m.backend() as b:
        lease = CleanLease(b)
        lease.start()
    sent = upload_new(archives[2:4])
    assert sent.count("HEAD") == 2, sent

    # ended since the upload began... and before it: the ended lease of an earlier clean
    # costs nothing
    with m.backend() as b:
        lease.target = b
        lease.end()
        leases = list_leases(b)
    assert leases is not None and sorted(leases) == [f"{lease.name}.ended",
                                                     f"{lease.name}.running"]
    sent = upload_new(archives[:2])
    assert "HEAD" not in sent, sent


def test_a_clean_leaves_its_ended_lease_and_removes_old_ones(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    root.mkdir()
    with LocalBackend(str(root)) as b:
        old, dead, recent = (CleanLease(b) for _ in range(3))
        old.start()
        old.end()
        dead.start()  # killed: never ended
        recent.start()
        for name in (f"{old.name}.ended", f"{old.name}.running", f"{dead.name}.running"):
            past = time.time() - KEEP_ENDED - 60
            os.utime(root / CLEANS_DIR / name, (past, past))
        recent.end()
        now = pytest.approx(time.time(), abs=60)
        assert list_leases(b) == {f"{recent.name}.ended": now, f"{recent.name}.running": now}
