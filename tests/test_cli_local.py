"""End to end on directories: the real caches uploaded, cleaned and described via the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirrors import is_lease
from realparts import tool
from runcli import run
from sstate_mirror.backends import _BACKENDS


def snapshot(root: Path) -> dict[str, tuple[int, float, str]]:
    """Relative path -> (size, mtime, sha256) of every file, links followed."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime,
                                             hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def stats(root: Path) -> dict[str, tuple[int, float]]:
    """Relative path -> (size, mtime), without reading (reads would count as use by atime);
    the leases a clean leaves (``.sstate-mirror/cleans/``) left out."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime)
            for p in sorted(root.rglob("*"))
            if p.is_file() and not is_lease(str(p.relative_to(root)))}


def contents(root: Path) -> dict[str, str]:
    return {k: v[2] for k, v in snapshot(root).items()}


@pytest.fixture
def cache(writable_cache: Path) -> Path:
    """A writable copy of real cache A."""
    return writable_cache


def test_upload_reproduces_the_cache_exactly(tmp_path: Path, oe_cache_a: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "mirror"
    before = snapshot(oe_cache_a)
    code, out, _ = run(capsys, "upload", str(oe_cache_a), str(mirror))
    assert code == 0
    assert "93 files (426.1 KiB) uploaded" in out and "0 failed" in out
    # what bitbake fetches with PATH = relative path: same paths, same bytes
    assert contents(mirror) == contents(oe_cache_a)
    assert snapshot(oe_cache_a) == before  # the local cache is never modified
    # a second upload transfers nothing
    code, out, _ = run(capsys, "upload", str(oe_cache_a), f"file://{mirror}")
    assert code == 0 and "0 files (0 B) uploaded, 93 already present" in out


def test_upload_legacy_and_both_caches_into_one_mirror(tmp_path: Path, data_dir: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "m"
    for cache in ("oe-wrynose/cache-a", "oe-wrynose/cache-b", "legacy-honister/cache-a"):
        assert run(capsys, "upload", "-q", str(data_dir / cache), str(mirror))[0] == 0
    # same path and size: the copy already there stays; a different size is replaced
    union: dict[str, tuple[int, float, str]] = {}
    for cache in ("oe-wrynose/cache-a", "oe-wrynose/cache-b", "legacy-honister/cache-a"):
        for path, info in snapshot(data_dir / cache).items():
            if path not in union or union[path][0] != info[0]:
                union[path] = info
    assert contents(mirror) == {p: info[2] for p, info in union.items()}


def test_upload_order_companions_before_archives(tmp_path: Path, oe_cache_a: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "upload", "-v", "-j", "1", "--dry-run", str(oe_cache_a),
                       str(tmp_path / "m"))
    assert code == 0
    lines = [ln.split()[1] for ln in out.splitlines() if ln.startswith("[UPLOAD]")]
    assert len(lines) == 93
    first_archive = next(i for i, p in enumerate(lines) if p.endswith(".tar.zst"))
    assert all(p.endswith(".tar.zst") for p in lines[first_archive:])
    assert not (tmp_path / "m").exists()  # a dry run creates nothing


def test_upload_skips_junk_reports_dangling_links(tmp_path: Path, cache: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    archive = next(cache.rglob("*.tar.zst"))
    (archive.parent / (archive.name + ".Xk3j4h5g")).write_bytes(b"partial")
    (archive.parent / "sigtask.abcdef").write_bytes(b"tmp")
    (cache / "README").write_text("not sstate")
    os.symlink(tmp_path / "gone", archive.parent / (archive.name.replace(".tar.zst", "") + "x.tar.zst"))
    mirror = tmp_path / "mirror"
    code, out, _ = run(capsys, "upload", "-v", str(cache), str(mirror))
    assert code == 0
    assert "4 skipped" in out
    assert "1 dangling symbolic link" in out and "2 temporary or partial files" in out
    assert "1 not an sstate file" in out
    uploaded = set(contents(mirror))
    assert len(uploaded) == 93
    assert not any("Xk3j4h5g" in p or "sigtask" in p or p == "README" for p in uploaded)


def test_upload_follows_symlinks_in_the_cache(tmp_path: Path, oe_cache_a: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # bitbake fills SSTATE_DIR with links into file:// mirrors
    linked = tmp_path / "linked"
    for p in oe_cache_a.rglob("*"):
        if p.is_file():
            dst = linked / p.relative_to(oe_cache_a)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(p, dst)
    mirror = tmp_path / "mirror"
    assert run(capsys, "upload", str(linked), str(mirror))[0] == 0
    assert contents(mirror) == contents(oe_cache_a)
    assert not any(p.is_symlink() for p in mirror.rglob("*"))


def test_truncated_remote_copy_is_replaced(tmp_path: Path, oe_cache_a: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "mirror"
    assert run(capsys, "upload", "-q", str(oe_cache_a), str(mirror))[0] == 0
    victim = next(mirror.rglob("*populate_sysroot.tar.zst"))
    victim.write_bytes(victim.read_bytes()[:10])
    code, out, _ = run(capsys, "upload", str(oe_cache_a), str(mirror))
    assert code == 0 and "2 files " in out  # the archive and, with it, its .siginfo
    assert contents(mirror) == contents(oe_cache_a)


def test_filter_and_arch(tmp_path: Path, oe_cache_a: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    m1, m2 = tmp_path / "m1", tmp_path / "m2"
    assert run(capsys, "upload", "--filter", "zeta$", str(oe_cache_a), str(m1))[0] == 0
    assert {p.split(":")[1] for p in contents(m1)} == {"zeta"}
    assert run(capsys, "upload", "--arch", "allarch", str(oe_cache_a), str(m2))[0] == 0
    assert len(contents(m2)) == 4 and all(":allarch:" in p for p in contents(m2))


def test_failed_transfer_is_nonzero_and_holds_back_the_archive(
        tmp_path: Path, oe_cache_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    # a file where a directory must go: every upload below 2a/ fails
    (mirror / "debian-12").mkdir()
    (mirror / "debian-12" / "2a").write_text("in the way")
    code, out, err = run(capsys, "upload", "--json", str(oe_cache_a), str(mirror))
    assert code == 1
    report = json.loads(out)
    failed = report["result"]["failed"]
    assert failed and all(p.startswith("debian-12/2a/") for p in failed)
    assert any("not uploaded because its .siginfo/.sig failed" in msg for msg in failed.values())
    assert "error: debian-12/2a/" in err
    # everything else arrived, and no temporary file was left behind
    assert len(contents(mirror)) == 93 - len(failed) + 1  # + the blocking file
    assert not list(mirror.rglob(".sstate-mirror-*"))


def test_missing_source_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "upload", str(tmp_path / "nope"), str(tmp_path / "m"))
    assert code == 3 and "does not exist" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("command", ["upload", "touch", "analyze"])
def test_missing_source_is_named_as_the_cache(tmp_path: Path, command: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m").mkdir()
    code, _, err = run(capsys, command, str(tmp_path / "nope"), str(tmp_path / "m"))
    assert code == 3
    assert f"error: sstate cache file://{tmp_path / 'nope'} does not exist" in err
    assert "SSTATE_DIR" in err and "mirror" not in err


def _backdate(root: Path, pred, days: float) -> None:
    t = time.time() - days * 86400
    for p in root.rglob("*"):
        if p.is_file() and pred(p.name):
            os.utime(p, (t, t))


def test_clean_with_backdated_mtimes(tmp_path: Path, oe_cache_a: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "mirror"
    assert run(capsys, "upload", "-q", str(oe_cache_a), str(mirror))[0] == 0
    # zeta's artifacts are 40 days old; every non-sstate siginfo (no archive) is 20 days old
    _backdate(mirror, lambda n: n.startswith("sstate:zeta:"), 40)
    archives = {p.name for p in mirror.rglob("*.tar.zst")}
    _backdate(mirror, lambda n: n.endswith(".siginfo") and n[: -len(".siginfo")] not in archives, 20)
    _backdate(mirror, lambda n: n.startswith("sstate:zeta:"), 40)
    (mirror / "08" / "d8" / ".sstate-mirror-00112233aabbccdd.tmp").write_bytes(b"partial")
    _backdate(mirror, lambda n: n.startswith(".sstate-mirror-"), 2)
    (mirror / "index.html").write_text("<html/>")
    _backdate(mirror, lambda n: n == "index.html", 900)

    before = stats(mirror)
    expected_gone = sorted(
        p for p in before
        if Path(p).name.startswith("sstate:zeta:") and (
            Path(p).name.endswith(".tar.zst") or Path(p).name.endswith(".tar.zst.siginfo"))
        and (Path(p).name.endswith(".tar.zst") or Path(p).name[:-8] in archives)
    )
    expected_gone.append("08/d8/.sstate-mirror-00112233aabbccdd.tmp")
    code, out, _ = run(capsys, "clean", "--json", "--dry-run", "--max-age", "30d",
                       "--max-sig-age", "60d", str(mirror))
    assert code == 0
    plan = json.loads(out)["plan"]
    assert sorted(d["path"] for d in plan["to_delete"]) == sorted(expected_gone)
    assert stats(mirror) == before  # dry run
    freed = sum(before[p][0] for p in expected_gone)
    assert plan["bytes_to_free"] == freed

    code, out, _ = run(capsys, "clean", "--json", "--max-age", "30d", "--max-sig-age", "60d",
                       str(mirror))
    assert code == 0
    result = json.loads(out)["result"]
    assert result["deleted"] == len(expected_gone) and result["freed_bytes"] == freed
    assert set(stats(mirror)) == set(before) - set(expected_gone)
    assert (mirror / "index.html").exists()  # unknown files are never deleted

    # with a shorter signature age, the 20-day-old task signatures go too
    code, out, _ = run(capsys, "clean", "--max-age", "15d", str(mirror))
    assert code == 0
    left = set(stats(mirror))
    assert all(p.endswith(".tar.zst") or p[: -len(".siginfo")] in left or p == "index.html"
               for p in left)
    # emptied hh/hh directories are pruned
    assert all(any(d.iterdir()) for d in mirror.rglob("*") if d.is_dir())


@pytest.mark.parametrize("args,message", [
    (["--max-age", "1.5d"], "--max-age '1.5d' is not an age"),
    (["--max-age=-3d"], "not an age"),
    (["--max-age", "abc"], "not an age"),
    (["--max-age", "7d", "--max-sig-age", "3x"], "not an age"),
])
def test_clean_bad_ages_exit_2_before_any_deletion(tmp_path: Path, oe_cache_a: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   args: list[str], message: str) -> None:
    mirror = tmp_path / "mirror"
    assert run(capsys, "upload", "-q", str(oe_cache_a), str(mirror))[0] == 0
    _backdate(mirror, lambda n: True, 400)
    before = snapshot(mirror)
    code, _, err = run(capsys, "clean", str(mirror), *args)
    assert code == 2 and message in err
    assert snapshot(mirror) == before


def test_clean_requires_max_age(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "clean", str(tmp_path))
    assert code == 2 and "--max-age" in err


def test_clean_missing_mirror_is_an_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "clean", "--max-age", "1d", str(tmp_path / "nope"))
    assert code == 3 and "does not exist" in err


def test_info_json_and_text(tmp_path: Path, oe_cache_b: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "info", "--json", str(oe_cache_b))
    assert code == 0
    data = json.loads(out)  # stdout is exactly one JSON document
    assert data["files"] == 93 and data["bytes"] == 436430
    assert data["by_kind"]["archive"]["files"] == 26
    assert "scanning" in err  # human text moved to stderr
    code, out, _ = run(capsys, "-v", "info", str(oe_cache_b))
    assert code == 0 and "\n93 files, 426.2 KiB\n" in out and "recipes:" in out


@pytest.mark.parametrize("target,message,code", [
    ("ftp://host/sstate", "unsupported URL scheme ftp://", 2),
    ("https:/host/sstate", "is not a valid URL", 2),
    ("s3:bucket", "is not a valid URL", 2),
])
def test_bad_urls_never_become_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str],
                                           target: str, message: str, code: int) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, "info", target)
    assert rc == code and message in err
    assert list(tmp_path.iterdir()) == []


def test_registered_backend_without_module_is_not_available(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(_BACKENDS, "gopher", ("gopher", "GopherBackend"))
    rc, _, err = run(capsys, "info", "gopher://host/sstate")
    assert rc == 3 and "not available yet" in err
    assert list(tmp_path.iterdir()) == []


def test_credentials_in_url_are_not_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "info", "ftp://alice:s3cr3t@host/x")
    assert rc == 2 and "s3cr3t" not in out + err and "alice" not in out + err


def test_entry_points(tmp_path: Path, oe_cache_a: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    out = subprocess.run([sys.executable, "-m", "sstate_mirror", "--version"],
                         capture_output=True, text=True, env=env, check=True)
    assert out.stdout.startswith("sstate-mirror ")
    exe = tool("sstate-mirror", "pip install -e . ; scripts/test installs it")
    res = subprocess.run([exe, "info", "-q", "--json", str(oe_cache_a)], capture_output=True,
                         text=True, env=env, check=True)
    assert json.loads(res.stdout)["files"] == 93


def test_clean_and_info_take_isar_sstates_filter(tmp_path: Path, oe_cache_a: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "mirror"
    assert run(capsys, "upload", "-q", str(oe_cache_a), str(mirror))[0] == 0
    code, out, _ = run(capsys, "--json", "info", "--filter", "zeta$", str(mirror))
    assert code == 0 and json.loads(out)["files"] == 9
    code, out, _ = run(capsys, "--json", "info", "--arch", "allarch", str(mirror))
    assert code == 0 and json.loads(out)["files"] == 4
    _backdate(mirror, lambda n: True, 40)
    # only the selected recipe is cleaned, however old the rest is
    code, out, _ = run(capsys, "--json", "clean", "--filter", "zeta$", "--max-age", "30d",
                       str(mirror))
    assert code == 0 and json.loads(out)["result"]["deleted"] == 9
    left = stats(mirror)
    assert len(left) == 84 and not any(":zeta:" in p for p in left)
