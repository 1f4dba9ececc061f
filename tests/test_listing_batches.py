"""Listing by batches (``Backend.list_batches``, ``Catalog.extend``): the path a directory
mirror of millions of files is read by gives the same files, catalog, summary and clean plan
as one ``Entry`` and one ``Artifact`` per file, on odd names, links and races."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from sstate_mirror.backends.base import BATCH_FILES, Backend, Entry, SkipCallback
from sstate_mirror.backends.local import LocalBackend
from sstate_mirror.catalog import OTHER, Catalog
from sstate_mirror.commands.clean import CleanOptions, plan_clean
from sstate_mirror.commands.info import summarize
from sstate_mirror.commands.listing import list_artifacts
from sstate_mirror.errors import AuthError
from sstate_mirror.naming import Artifact, make_artifact
from synthetic import gencache

NOW = 1_780_000_000.0
DAY = 86400
H = "0123456789abcdef" * 4
G = "fedcba9876543210" * 4
HEAD = "sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:"

#: Names that are no plain ``hh/hh`` archive, put in one directory with real ones.
ODD_NAMES = [
    f"{HEAD}{G}_package.tar.zst",  # another hash than its directory's: flat there
    f"{HEAD}{H.upper()}_package.tar.zst",  # upper-case hash: kept whole
    f"{HEAD}{H[:32]}_package.tar.zst",  # md5-length hash
    f"{HEAD}{H}_package.tar.zst.done",
    "sstate:zlib::1:r0::14:" + H[:62] + " 0_fetch.tar.zst",
    "README",
    f"sstate-mirror-upload-{H[:8]}.tmp",
]


def _fields(art: Artifact) -> Tuple[Any, ...]:
    return (art.path, art.size, art.mtime, art.kind, art.name, art.atime)


def _mirror(tmp_path: Path) -> Path:
    """A small realistic mirror (OE and Isar names, three layouts) with odd files and links."""
    root = tmp_path / "mirror"
    generator = gencache()
    entries = (generator.plan(400, seed=1, mtime_spread=90, now=int(NOW), junk=3)
               + generator.plan(150, seed=2, flavour="isar", mtime_spread=90, now=int(NOW)))
    generator.write_cache(root, entries, sparse=True)
    flat = root / "flat"
    flat.mkdir()
    for i, name in enumerate(ODD_NAMES):
        (root / "01" / "23").mkdir(parents=True, exist_ok=True)
        (root / "01" / "23" / name).write_bytes(b"x" * i)
        os.utime(root / "01" / "23" / name, (NOW - i * DAY, NOW - i * 3 * DAY))
    (root / "01" / "23" / f"{HEAD}{H}_populate_lic.tar.zst").write_bytes(b"lic")
    (flat / f"{HEAD}{H}_package.tar.zst").write_bytes(b"flat")
    (root / "01" / f"{HEAD}{H}_package_qa.tar.zst").write_bytes(b"one level")
    # links: to a file (its own mtime counts as use), dangling, a loop, a FIFO
    store = tmp_path / "store"
    store.mkdir()
    (store / "real").write_bytes(b"12345")
    os.utime(store / "real", (NOW - 50 * DAY, NOW - 50 * DAY))
    os.symlink(store / "real", flat / f"{HEAD}{G}_deploy_source_date_epoch.tar.zst")
    os.symlink(store / "missing", flat / "dangling")
    os.symlink(root, flat / "loop")
    os.mkfifo(flat / "fifo")
    return root


def _reference_entries(backend: LocalBackend) -> List[Entry]:
    """What ``list()`` yields, rebuilt file by file from the batches' paths and the OS."""
    out = []
    for batch in backend.list_batches():
        for name in batch.names:
            path = batch.directory + name
            full = os.path.join(backend.root, path)
            st, lst = os.stat(full), os.lstat(full)
            out.append(Entry(path, st.st_size, max(st.st_mtime, lst.st_mtime), st.st_atime))
    return out


def test_batches_list_every_file_once_as_list_does(tmp_path: Path) -> None:
    backend = LocalBackend(str(_mirror(tmp_path)))
    skipped: List[Tuple[str, str]] = []
    batches = list(backend.list_batches(on_skip=lambda p, why: skipped.append((p, why))))
    entries = list(backend.list())
    assert [(b.directory + n, s, m, a) for b in batches
            for n, s, m, a in zip(b.names, b.sizes, b.mtimes, b.atimes or ())] == \
        [(e.path, e.size, e.mtime, e.atime) for e in entries]
    assert entries == _reference_entries(backend)
    # one batch per directory, every file found by a walk of the tree (links followed)
    directories = [b.directory for b in batches]
    assert len(directories) == len(set(directories)) > 100
    walked = {os.path.relpath(os.path.join(d, f), backend.root)
              for d, _, files in os.walk(backend.root) for f in files}
    assert {e.path for e in entries} == walked - {"flat/dangling", "flat/loop", "flat/fifo"}
    assert sorted(skipped) == [("flat/dangling", "dangling symbolic link"),
                               ("flat/fifo", "not a regular file"),
                               ("flat/loop", "directory already listed (link loop)")]
    linked = next(e for e in entries if e.path.startswith("flat/") and e.size == 5)
    assert linked.size == 5 and linked.mtime > NOW  # the link's own (fresh) time counts
    # a prefix lists the same files below it, with the same paths
    assert [e.path for e in backend.list("01")] == [e.path for e in entries
                                                     if e.path.startswith("01/")]


def _by_entries(backend: Backend) -> Catalog:
    """The listing read one Entry and one Artifact at a time (the path before batches)."""
    return Catalog.of(make_artifact(e.path, e.size, e.mtime, e.atime) for e in backend.list())


def test_catalog_summary_and_plan_from_batches_are_those_from_entries(tmp_path: Path) -> None:
    backend = LocalBackend(str(_mirror(tmp_path)))
    fast, slow = list_artifacts(backend), _by_entries(backend)
    assert [_fields(a) for a in fast] == [_fields(a) for a in slow]
    assert (fast.heads, fast.tails, fast.dirs) == (slow.heads, slow.tails, slow.dirs)
    assert (fast.head, fast.tail, fast.dir, fast.hashes) == \
        (slow.head, slow.tail, slow.dir, slow.hashes)
    assert 0 < len(fast.others) < 30 and {d.levels for d in fast.dirs} == {0, 1, 2}
    assert json.dumps(summarize(fast, NOW).to_dict(top=1000, detail=True)) == \
        json.dumps(summarize(slow, NOW).to_dict(top=1000, detail=True))
    for options in (CleanOptions(max_age=30 * DAY), CleanOptions(max_size=sum(fast.size) // 2),
                    CleanOptions(max_versions=1, min_age=0)):
        fast_plan = plan_clean(list_artifacts(backend), options, NOW + 60)
        slow_plan = plan_clean(_by_entries(backend), options, NOW + 60)
        assert fast_plan.to_dict() == slow_plan.to_dict()
        assert fast_plan.deletions


def test_extend_by_directory_is_append_one_file_at_a_time() -> None:
    """Odd names between archives of one directory, every layout, atimes that come late."""
    arts = [make_artifact(e.path, e.size, float(e.mtime))
            for e in gencache().plan(600, seed=3, mtime_spread=30, now=int(NOW), junk=4)]
    arts += [make_artifact(f"01/23/{name}", i, NOW - i, NOW - i if i % 2 else None)
             for i, name in enumerate([*ODD_NAMES, f"{HEAD}{H}_package.tar.zst", *ODD_NAMES])]
    arts += [make_artifact(f"01/{HEAD}{H}_fetch.tar.zst", 1, NOW),
             make_artifact(f"/{HEAD}{H}_fetch.tar.zst", 1, NOW),  # leading slash: kept as is
             make_artifact(f"a//01/23/{HEAD}{H}_fetch.tar.zst", 1, NOW)]
    one, batched = Catalog(), Catalog()
    for art in arts:
        one.append(art.path, art.size, art.mtime, art.atime)
    for (directory, _), group in groupby(
            arts, key=lambda a: (a.path[:a.path.rfind("/") + 1], a.atime is None)):
        files = list(group)
        times = [a.atime for a in files if a.atime is not None]
        batched.extend(directory, [a.path[len(directory):] for a in files],
                       [a.size for a in files], [a.mtime for a in files], times or None)
    assert [_fields(a) for a in batched] == [_fields(a) for a in one]
    assert sorted(batched.others) == sorted(one.others)
    assert (batched.heads, batched.tails, batched.dirs) == (one.heads, one.tails, one.dirs)
    assert batched.head == one.head and batched.hashes == one.hashes
    assert [a.path for a in batched] == [a.path for a in arts]
    assert sum(1 for h in batched.head if h == OTHER) == len(batched.others) > 10


class _ListedBackend(Backend):
    """Just a listing (what a remote store's ``list()`` gives), for the default batches."""

    url = "mem://listed"

    def __init__(self, entries: List[Entry]) -> None:
        self.entries = entries

    def check(self, create: bool = False) -> None:
        pass

    def list(self, prefix: str = "", on_skip: Optional[SkipCallback] = None
             ) -> Iterator[Entry]:
        return iter(self.entries)

    def stat(self, path: str) -> Optional[Entry]:
        raise NotImplementedError

    def open(self, path: str) -> Any:
        raise NotImplementedError

    def put(self, path: str, src: Any, size: int) -> None:
        raise NotImplementedError

    def delete(self, paths: Any) -> Dict[str, Any]:
        raise NotImplementedError

    def touch(self, paths: Any) -> Dict[str, Any]:
        raise NotImplementedError


def test_default_batches_group_the_entries_of_list_in_order() -> None:
    entries = [Entry(f"a/{i}", i, float(i)) for i in range(BATCH_FILES + 3)]
    entries += [Entry("a/x", 1, 1.0, 5.0), Entry("a/y", 1, 1.0, 6.0), Entry("a/z", 1, 1.0),
                Entry("top", 2, 2.0), Entry("b/c/d", 3, 3.0), Entry("a/w", 4, 4.0)]
    batches = list(_ListedBackend(entries).list_batches())
    assert [(b.directory, len(b.names), b.atimes) for b in batches] == [
        ("a/", BATCH_FILES, None), ("a/", 3, None), ("a/", 2, [5.0, 6.0]), ("a/", 1, None),
        ("", 1, None), ("b/c/", 1, None), ("a/", 1, None)]
    flat = [Entry(b.directory + n, s, m, a) for b in batches
            for n, s, m, a in zip(b.names, b.sizes, b.mtimes, b.atimes or [None] * len(b.names))]
    assert flat == entries
    assert [_fields(a) for a in list_artifacts(_ListedBackend(entries))] == \
        [_fields(make_artifact(e.path, e.size, e.mtime, e.atime)) for e in entries]


class _Racing:
    """A directory entry that a clean deletes, or that cannot be read, as the listing looks."""

    def __init__(self, entry: os.DirEntry[str], error: Optional[OSError]) -> None:
        self._entry, self._error = entry, error
        self.name, self.path = entry.name, entry.path

    def is_symlink(self) -> bool:
        return self._entry.is_symlink()

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        if self._error is not None:
            raise self._error
        return self._entry.stat(follow_symlinks=follow_symlinks)


def _racing_scandir(monkeypatch: pytest.MonkeyPatch, errors: Dict[str, OSError]) -> None:
    real_scandir = os.scandir

    class _Scan:
        def __init__(self, path: str) -> None:
            if os.path.basename(path) in errors and os.path.isdir(path):
                raise errors[os.path.basename(path)]
            self._it = real_scandir(path)

        def __enter__(self) -> List[_Racing]:
            return [_Racing(e, None if e.is_dir() else errors.get(e.name)) for e in self._it]

        def __exit__(self, *exc: object) -> None:
            self._it.close()

    monkeypatch.setattr(os, "scandir", _Scan)


def test_a_file_deleted_while_listed_is_passed_over(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "mirror"
    (root / "01" / "23").mkdir(parents=True)
    for name in ("gone", "stays", "also"):
        (root / "01" / "23" / name).write_bytes(b"1")
    _racing_scandir(monkeypatch, {"gone": FileNotFoundError(2, "No such file")})
    skipped: List[str] = []
    batches = list(LocalBackend(str(root)).list_batches(on_skip=lambda p, w: skipped.append(p)))
    assert sorted(n for b in batches for n in b.names) == ["also", "stays"]
    assert skipped == []
    assert [len(b.names) == len(b.sizes) == len(b.mtimes) == len(b.atimes or ())
            for b in batches] == [True]


def test_an_unreadable_directory_fails_the_listing(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "mirror"
    for d in ("01/23", "45/67"):
        (root / d).mkdir(parents=True)
        (root / d / "file").write_bytes(b"1")
    _racing_scandir(monkeypatch, {"45": PermissionError(13, "Permission denied")})
    with pytest.raises(AuthError, match="cannot list"):
        list_artifacts(LocalBackend(str(root)))
