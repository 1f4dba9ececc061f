"""The filesystem backend: the shared contract plus what only a directory can show."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from backend_contract import *  # noqa: F403 - the shared contract tests
from backend_contract import ContractEnv
from sstate_mirror.backends import open_backend
from sstate_mirror.backends.base import Entry, EntryBatch
from sstate_mirror.backends.local import LocalBackend
from sstate_mirror.errors import NotFoundError, PermanentError


@pytest.fixture
def contract_env(tmp_path: Path) -> ContractEnv:
    root = tmp_path / "mirror"
    root.mkdir()
    backend = LocalBackend(str(root))

    def backdate(path: str, seconds: float) -> None:
        t = time.time() - seconds
        os.utime(root / path, (t, t))

    return ContractEnv(backend=backend, backdate=backdate)


def test_file_url_forms(tmp_path: Path) -> None:
    assert open_backend(f"file://{tmp_path}").root == str(tmp_path)  # type: ignore[attr-defined]
    assert open_backend(str(tmp_path)).root == str(tmp_path)  # type: ignore[attr-defined]


def test_check_missing_root(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path / "nope"))
    with pytest.raises(NotFoundError):
        b.check()
    with pytest.raises(NotFoundError):
        list(b.list())
    b.check(create=True)
    assert (tmp_path / "nope").is_dir()


def test_check_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermanentError):
        LocalBackend(str(tmp_path / "file")).check()


def test_delete_prunes_empty_directories_but_not_root(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path))
    b.put("aa/bb/one", io.BytesIO(b"1"), 1)
    b.put("aa/cc/two", io.BytesIO(b"2"), 1)
    assert b.delete(["aa/bb/one"]) == {}
    assert not (tmp_path / "aa" / "bb").exists()
    assert (tmp_path / "aa" / "cc" / "two").exists()
    assert b.delete(["aa/cc/two"]) == {}
    assert not (tmp_path / "aa").exists()
    assert tmp_path.is_dir()


def test_put_is_atomic_rename_with_readable_mode(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path))
    b.put("aa/bb/x", io.BytesIO(b"data"), 4)
    mode = (tmp_path / "aa" / "bb" / "x").stat().st_mode & 0o777
    # a shared mirror is read by other users and web servers: no 0600 temp-file modes
    assert mode == 0o666 & ~_umask()
    assert sorted(os.listdir(tmp_path / "aa" / "bb")) == ["x"]


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def _cache_with_links(tmp_path: Path, *names: str) -> Path:
    """A cache directory ``aa/`` holding a symbolic link ``name`` to one real file each."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "real").write_bytes(b"12345")
    cache = tmp_path / "cache"
    (cache / "aa").mkdir(parents=True)
    for name in names:
        os.symlink(store / "real", cache / "aa" / name)
    return cache


def test_list_follows_symlinks_and_reports_dangling(tmp_path: Path) -> None:
    cache = _cache_with_links(tmp_path, "linked")
    store = tmp_path / "store"
    os.symlink(store / "missing", cache / "aa" / "dangling")
    os.symlink(cache, cache / "aa" / "loop")  # directory loop
    skipped: list[tuple[str, str]] = []
    entries = list(LocalBackend(str(cache)).list(on_skip=lambda p, why: skipped.append((p, why))))
    assert [(e.path, e.size) for e in entries] == [("aa/linked", 5)]
    assert sorted(p for p, _ in skipped) == ["aa/dangling", "aa/loop"]



class _VanishingEntry:
    """A directory entry whose symbolic link is removed right after it was followed: the
    instant a clean (or bitbake) deletes it while the listing looks at it."""

    def __init__(self, entry: os.DirEntry[str]) -> None:
        self._entry = entry
        self.name, self.path = entry.name, entry.path

    def is_symlink(self) -> bool:
        return self._entry.is_symlink()

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        if follow_symlinks:
            return self._entry.stat()
        if self.name == "vanishing":
            os.unlink(self.path)
        return os.lstat(self.path)


def test_symlink_vanishing_during_the_listing_is_passed_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = _cache_with_links(tmp_path, "vanishing", "stays")
    real_scandir = os.scandir

    class _Scan:
        def __init__(self, path: str) -> None:
            self._it = real_scandir(path)

        def __enter__(self) -> list[_VanishingEntry]:
            return [_VanishingEntry(e) for e in self._it]

        def __exit__(self, *exc: object) -> None:
            self._it.close()

    monkeypatch.setattr(os, "scandir", _Scan)
    entries = list(LocalBackend(str(cache)).list())
    assert [e.path for e in entries] == ["aa/stays"]


def test_list_keeps_the_files_of_a_batch_without_access_times(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``list`` reads ``list_batches``: a batch that gives no access times still gives
    every file (with no access time), not none."""
    backend = LocalBackend(str(tmp_path))
    batch = EntryBatch("ab/", ["x", "y"], [1, 2], [10.0, 20.0], None)
    monkeypatch.setattr(LocalBackend, "list_batches", lambda self, prefix="", on_skip=None:
                        iter([batch]))
    assert list(backend.list()) == [Entry("ab/x", 1, 10.0, None), Entry("ab/y", 2, 20.0, None)]
