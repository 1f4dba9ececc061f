"""``--hashserve`` against the real bitbake-hashserv: clean, info and verify keep the mirror and
its hash equivalence server in step, and every way that can go wrong stops before harm.

One server per kind per module (TCP, unix socket, websockets, read-only); each test empties
the database through the server and fills it the way builds do (tests/hashserv_servers.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Dict, Iterator, List, Set

import pytest

from hashserv_servers import (
    ADMIN,
    ADMIN_TOKEN,
    METHOD,
    HashServer,
    Report,
    build_reports,
    extra_reports,
    known,
    report_all,
    reset,
    running,
)
from runcli import run, writable_copy
from sstate_mirror.cli import main
from sstate_mirror.naming import Kind, make_artifact

pytestmark = pytest.mark.server

TOKEN_VAR = "SSTATE_MIRROR_HASHSERVE_TOKEN"


@pytest.fixture(scope="module")
def tcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HashServer]:
    yield from running(tmp_path_factory.mktemp("hs-tcp"), "tcp")


@pytest.fixture(scope="module")
def unix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HashServer]:
    yield from running(tmp_path_factory.mktemp("hs-unix"), "unix")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HashServer]:
    yield from running(tmp_path_factory.mktemp("hs-ws"), "ws")


@pytest.fixture(scope="module")
def mirror_ab(tmp_path_factory: pytest.TempPathFactory, oe_cache_a: Path,
              oe_cache_b: Path) -> Path:
    """Both fixture caches uploaded into one directory mirror (copied per test)."""
    root = tmp_path_factory.mktemp("mirror-ab") / "mirror"
    for cache in (oe_cache_a, oe_cache_b):
        assert main(["upload", "-q", str(cache), str(root)]) == 0
    return root


@pytest.fixture
def mirror(tmp_path: Path, mirror_ab: Path) -> Path:
    return writable_copy(mirror_ab, tmp_path / "mirror")


@pytest.fixture
def admin_env(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    monkeypatch.setenv(TOKEN_VAR, ADMIN_TOKEN)
    monkeypatch.delenv("SSTATE_MIRROR_HASHSERVE", raising=False)
    return ["--hashserve-user", ADMIN]


def snapshot(root: Path) -> Dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


def archive_unihashes(root: Path) -> Set[str]:
    out = set()
    for p in root.rglob("*"):
        art = make_artifact(str(p.relative_to(root)), 0, 0.0)
        if art.kind is Kind.ARCHIVE and art.name is not None:
            out.add(art.name.hash)
    return out


def backdate(root: Path, prefix: str, days: float) -> None:
    t = time.time() - days * 86400
    for p in root.rglob("*"):
        if p.is_file() and p.name.startswith(prefix):
            os.utime(p, (t, t))


def fill(server: HashServer, caches: List[Path], extras: int = 5) -> List[str]:
    """Empty the server, report the caches' archives and ``extras`` more; all unihashes."""
    reset(server)
    reports = list(build_reports(caches).values()) + extra_reports(extras)
    report_all(server, reports)
    return sorted({r.unihash for r in reports})


# --- clean ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["tcp", "ws"])
def test_clean_leaves_the_server_knowing_exactly_the_mirrors_unihashes(
        request: pytest.FixtureRequest, kind: str, mirror: Path, oe_cache_a: Path,
        oe_cache_b: Path, admin_env: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    server: HashServer = request.getfixturevalue(kind)
    everything = fill(server, [oe_cache_a, oe_cache_b])
    before = archive_unihashes(mirror)
    assert before < set(everything)
    backdate(mirror, "sstate:zeta:", 40)

    code, out, err = run(capsys, "clean", "--json", "--max-age", "30d", "--hashserve",
                         server.address, *admin_env, str(mirror))
    assert code == 0, err
    after = archive_unihashes(mirror)
    assert after < before and after  # zeta's archives went
    answers = known(server, everything)
    assert {u for u, k in answers.items() if k} == after
    hs = json.loads(out)["hashserve"]
    assert hs["plan"]["unihashes_to_keep"] == len(after)
    assert hs["result"]["swept_rows"] == len(everything) - len(after)
    assert hs["result"]["unused_outhashes_removed"] == len(everything) - len(after)
    with server.client() as c:
        status = c.gc_status()  # the sweep ended the collection: no mark, one row each
        assert not status["mark"] and status["keep"] + status["remove"] == len(after)
        # a build's next report is still answered: the server works on after the sweep
        r = extra_reports(1, seed="later")[0]
        assert c.report_unihash(r.taskhash, METHOD, r.outhash, r.unihash)["unihash"] == r.unihash


def test_clean_marks_the_whole_mirror_whatever_filter_cleans(
        tcp: HashServer, mirror: Path, oe_cache_a: Path, oe_cache_b: Path,
        admin_env: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    everything = fill(tcp, [oe_cache_a, oe_cache_b])
    backdate(mirror, "sstate:", 40)  # everything is old, but only zeta is selected
    code, _, err = run(capsys, "clean", "-q", "--max-age", "30d", "--filter", "zeta$",
                       "--hashserve", tcp.address, *admin_env, str(mirror))
    assert code == 0, err
    after = archive_unihashes(mirror)
    assert any("alpha" in p.name for p in mirror.rglob("*.tar.zst"))
    assert {u for u, k in known(tcp, everything).items() if k} == after


def test_dry_run_marks_nothing_and_says_what_it_can(
        tcp: HashServer, mirror: Path, oe_cache_a: Path, oe_cache_b: Path,
        admin_env: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    everything = fill(tcp, [oe_cache_a])  # cache-b's archives are unknown to the server
    backdate(mirror, "sstate:zeta:", 40)
    before = snapshot(mirror)
    code, out, err = run(capsys, "clean", "--json", "--dry-run", "--max-age", "30d",
                         "--hashserve", tcp.address, *admin_env, str(mirror))
    assert code == 0, err
    assert snapshot(mirror) == before
    assert all(known(tcp, everything).values())
    with tcp.client() as c:
        status = c.gc_status()
    assert status["mark"] in ("", None) and status["remove"] == 0
    hs = json.loads(out)["hashserve"]
    left = {u for u in archive_unihashes(mirror)} - {
        make_artifact(d["path"], 0, 0.0).name.hash for d in json.loads(out)["plan"]["to_delete"]
        if d["kind"] == "archive"}
    assert hs["plan"]["unihashes_to_keep"] == len(left)
    assert hs["result"]["unihashes_known"] == len(left & set(everything))
    assert hs["result"]["rows_before"] == len(everything)
    assert "known only once they are marked" in err


def test_empty_mirror_never_sweeps_the_server(
        tcp: HashServer, tmp_path: Path, oe_cache_a: Path, admin_env: List[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    everything = fill(tcp, [oe_cache_a])
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "clean", "--max-age", "30d", "--hashserve", tcp.address,
                       *admin_env, str(empty))
    assert code == 1
    assert "sweeping would empty the server" in err
    assert all(known(tcp, everything).values())


def test_server_knowing_none_of_the_mirror_is_never_swept(
        tcp: HashServer, mirror: Path, admin_env: List[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    reset(tcp)
    others = extra_reports(7, seed="another-team")
    report_all(tcp, others)
    code, out, err = run(capsys, "clean", "--json", "--max-age", "30d", "--hashserve",
                         tcp.address, *admin_env, str(mirror))
    assert code == 1
    assert "does not belong with this mirror" in err
    assert all(known(tcp, [r.unihash for r in others]).values())
    assert json.loads(out)["hashserve"]["result"]["swept_rows"] == 0


# --- failures before the mirror is touched --------------------------------------------------

@pytest.fixture(scope="module")
def builder(tcp: HashServer) -> str:
    """A user who may read and report (a build), but not administer the database."""
    with tcp.client() as c:
        with contextlib.suppress(Exception):
            c.delete_user("builder")
        return str(c.new_user("builder", ["@read", "@report"])["token"])


def _assert_refused_before_mirror(mirror: Path, everything: List[str], server: HashServer,
                                  code: int, err: str, message: str) -> None:
    assert code == 3, err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("who", ["anonymous", "builder"])
def test_user_without_admin_permission_fails_before_the_mirror_is_touched(
        tcp: HashServer, builder: str, who: str, mirror: Path, oe_cache_a: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    everything = fill(tcp, [oe_cache_a])
    backdate(mirror, "sstate:zeta:", 40)
    before = snapshot(mirror)
    argv = ["clean", "--max-age", "30d", "--hashserve", tcp.address, str(mirror)]
    if who == "builder":
        monkeypatch.setenv(TOKEN_VAR, builder)
        argv += ["--hashserve-user", "builder"]
    code, out, err = run(capsys, *argv)
    assert code == 3, err
    assert "not allowed" in err and "@db-admin" in err
    assert builder not in out + err
    assert snapshot(mirror) == before
    assert all(known(tcp, everything).values())


def test_read_only_server_fails_before_the_mirror_is_touched(
        tcp: HashServer, tmp_path: Path, mirror: Path, oe_cache_a: Path,
        admin_env: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    everything = fill(tcp, [oe_cache_a])
    backdate(mirror, "sstate:zeta:", 40)
    before = snapshot(mirror)
    for ro in running(tmp_path, "tcp", database=tcp.database, read_only=True):
        code, _, err = run(capsys, "clean", "--max-age", "30d", "--hashserve", ro.address,
                           str(mirror))
        assert code == 3, err
        assert "read-only" in err
        # a read-only server still answers info: consumers use it that way
        code, out, err = run(capsys, "info", "--json", "--hashserve", ro.address, str(mirror))
        assert code == 0, err
        assert json.loads(out)["hashserve"]["known"] > 0
    assert snapshot(mirror) == before
    assert all(known(tcp, everything).values())


def test_wrong_token_is_an_error_and_never_printed(
        tcp: HashServer, mirror: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    secret = "wrong-secret-token-4711"
    monkeypatch.setenv(TOKEN_VAR, secret)
    before = snapshot(mirror)
    code, out, err = run(capsys, "-vv", "clean", "--max-age", "30d", "--hashserve", tcp.address,
                         "--hashserve-user", ADMIN, str(mirror))
    assert code == 3
    assert "cannot log in as 'admin'" in err
    assert secret not in out + err
    assert snapshot(mirror) == before


def test_user_without_token_is_a_usage_error(mirror: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    code, _, err = run(capsys, "info", "--hashserve", "127.0.0.1:1", "--hashserve-user", "u",
                       str(mirror))
    assert code == 2 and TOKEN_VAR in err


def test_unreachable_server_fails_before_the_mirror_is_touched(
        tmp_path: Path, mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(mirror)
    code, _, err = run(capsys, "clean", "--max-age", "1s", "--hashserve",
                       f"unix://{tmp_path / 'nobody.sock'}", str(mirror))
    assert code == 3 and "cannot connect to hash server unix://" in err
    assert snapshot(mirror) == before


def test_failed_listing_never_sweeps(tcp: HashServer, mirror: Path, oe_cache_a: Path,
                                     admin_env: List[str], monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from sstate_mirror.backends import local
    from sstate_mirror.errors import TransientError

    everything = fill(tcp, [oe_cache_a])
    real_batches = local._Walk.batches

    # the directory walk itself, under both the listing of one process and a split one
    def cut_short(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        for n, batch in enumerate(real_batches(self, *args, **kwargs)):
            if n == 3:
                raise TransientError("connection reset while listing", url=str(mirror))
            yield batch

    monkeypatch.setattr(local._Walk, "batches", cut_short)
    code, _, err = run(capsys, "clean", "--max-age", "30d", "--hashserve", tcp.address,
                       *admin_env, str(mirror))
    assert code == 3 and "connection reset while listing" in err
    assert all(known(tcp, everything).values())


# --- info and verify ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["tcp", "unix", "ws"])
def test_info_counts_archives_known_and_unknown(
        request: pytest.FixtureRequest, kind: str, mirror: Path, oe_cache_a: Path,
        oe_cache_b: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server: HashServer = request.getfixturevalue(kind)
    fill(server, [oe_cache_a])
    reports_a = build_reports([oe_cache_a])
    on_mirror = {p.name for p in mirror.rglob("*.tar.zst")}
    expected_known = len(on_mirror & set(reports_a))
    expected_unknown = len(on_mirror) - expected_known
    assert expected_known and expected_unknown
    code, out, err = run(capsys, "-v", "info", "--json", "--hashserve", server.address,
                         str(mirror))
    assert code == 0, err
    hs = json.loads(out)["hashserve"]
    assert (hs["known"], hs["unknown"]) == (expected_known, expected_unknown)
    zeta_b = [n for n in on_mirror if n.startswith("sstate:zeta:") and n not in reports_a]
    assert hs["by_recipe"]["zeta"]["unknown"] == len(zeta_b)
    assert hs["by_recipe"]["delta-native"]["unknown"] == 0  # unchanged between the builds
    code, out, _ = run(capsys, "-v", "info", "--hashserve", server.address, str(mirror))
    assert code == 0
    assert f"{expected_known} archives have a unihash it knows, {expected_unknown}" in out
    assert "  zeta" in out


def test_verify_reports_the_same_counts(tcp: HashServer, mirror: Path, oe_cache_a: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    fill(tcp, [oe_cache_a])
    on_mirror = {p.name for p in mirror.rglob("*.tar.zst")}
    expected_known = len(on_mirror & set(build_reports([oe_cache_a])))
    code, out, err = run(capsys, "verify", "--json", "--hashserve", tcp.address, str(mirror))
    assert code == 0, err
    hs = json.loads(out)["hashserve"]
    assert (hs["known"], hs["unknown"]) == (expected_known, len(on_mirror) - expected_known)


def test_address_from_the_environment(tcp: HashServer, mirror: Path, oe_cache_a: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    fill(tcp, [oe_cache_a])
    monkeypatch.setenv("SSTATE_MIRROR_HASHSERVE", tcp.address)
    code, out, err = run(capsys, "info", "--json", str(mirror))
    assert code == 0, err
    assert json.loads(out)["hashserve"]["known"] > 0


# --- analyze --------------------------------------------------------------------------------

def test_analyze_explains_misses_by_the_servers_unihash(
        tcp: HashServer, tmp_path: Path, oe_cache_a: Path, oe_cache_b: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Build B's eta-native output equals build A's (only a DEPENDS it does not use changed):
    the server maps B's taskhash to A's unihash, whose archive is on the mirror."""
    mirror = tmp_path / "mirror"
    assert main(["upload", "-q", str(oe_cache_a), str(mirror)]) == 0
    reset(tcp)
    reports_a = build_reports([oe_cache_a])
    report_all(tcp, list(reports_a.values()))

    def eta_sysroot(reports: Dict[str, Report]) -> Report:
        return next(r for n, r in reports.items()
                    if n.startswith("sstate:eta-native:") and "_populate_sysroot." in n)

    a, b = eta_sysroot(reports_a), eta_sysroot(build_reports([oe_cache_b]))
    assert a.unihash != b.unihash
    with tcp.client() as c:  # B's build reports the same output: the server says "use A's"
        assert c.report_unihash(b.taskhash, METHOD, a.outhash, b.unihash)["unihash"] == a.unihash

    code, out, err = run(capsys, "analyze", "--json", "--task", "populate_sysroot",
                         "--hashserve", tcp.address, str(oe_cache_b), str(mirror))
    assert code == 0, err
    tasks = {t["pn"]: t for t in json.loads(out)["tasks"] if t["status"] == "miss"}
    assert tasks["eta-native"]["causes"][0]["kind"] == "server-equivalent"
    assert any(a.unihash[:8] in n for n in tasks["eta-native"]["notes"])
    assert tasks["alpha-native"]["causes"][0]["kind"] == "server-unknown"
    kinds = {g["kind"] for g in json.loads(out)["root_causes"]}
    assert {"server-equivalent", "server-unknown"} <= kinds
    assert "1 miss has an equivalent archive" in err


def test_upload_names_the_hash_server_database_among_skipped_files(
        tmp_path: Path, oe_cache_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = writable_copy(oe_cache_a, tmp_path / "sstate-cache")
    (cache / "hashserv.db").write_bytes(b"SQLite format 3\0")
    (cache / "hashserv.db-wal").write_bytes(b"wal")
    code, out, _ = run(capsys, "upload", "-v", str(cache), str(tmp_path / "mirror"))
    assert code == 0
    assert "2 hash equivalence database (never uploaded)" in out
    assert "[SKIP] hashserv.db: hash equivalence database" in out
    assert not list((tmp_path / "mirror").glob("hashserv.db*"))
