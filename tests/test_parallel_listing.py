"""A directory listing walked and catalogued by worker processes (``commands.listing_parts``)
is the listing of one process: the same rows in the same order, the same tables, the same
skips in the same order, the same error; links between parts, a directory that vanishes
and a worker that dies included. Small mirrors, and machines of one CPU, start no pool."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest

from realparts import tool
from sstate_mirror import catalog as catalog_module
from sstate_mirror.backends.base import EntryBatch, ListingPart, SkipCallback, SplitListing
from sstate_mirror.backends.local import LocalBackend, _DirectoryPart, _SplitWalk
from sstate_mirror.catalog import Catalog
from sstate_mirror.commands import listing, listing_parts
from sstate_mirror.commands.info import Summary, summarize
from sstate_mirror.commands.listing import list_artifacts
from sstate_mirror.errors import BackendError
from sstate_mirror.naming import make_artifact
from sstate_mirror.transfer import Progress
from synthetic import gencache
from test_listing_batches import NOW, ODD_NAMES, _fields, _mirror

Skips = List[Tuple[str, str]]


@pytest.fixture
def split(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Every listing is split (two workers, from the first directory level with parts);
    the paths of the parts listed again in this process are collected."""
    monkeypatch.setattr(listing_parts, "PARALLEL_FILES", 0)
    monkeypatch.setattr(listing_parts, "usable_cpus", lambda: 2)
    redone: List[str] = []
    real_redo = _SplitWalk.redo

    def redo(self: _SplitWalk, part: ListingPart) -> Iterator[EntryBatch]:
        assert isinstance(part, _DirectoryPart)
        redone.append(part.pending[1])
        return real_redo(self, part)

    monkeypatch.setattr(_SplitWalk, "redo", redo)
    return redone


def _listed(backend: LocalBackend) -> Tuple[Catalog, Skips]:
    skips: Skips = []
    catalog = list_artifacts(backend, on_skip=lambda path, why: skips.append((path, why)))
    return catalog, skips


def _sequential(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> Tuple[Catalog, Skips]:
    with monkeypatch.context() as m:
        m.setattr(listing_parts, "usable_cpus", lambda: 1)
        return _listed(backend)


def _assert_same(got: Catalog, want: Catalog) -> None:
    assert [_fields(a) for a in got] == [_fields(a) for a in want]
    assert (got.heads, got.tails, got.dirs) == (want.heads, want.tails, want.dirs)
    assert (got.head, got.tail, got.dir, got.hashes, got.size, got.mtime) == \
        (want.head, want.tail, want.dir, want.hashes, want.size, want.mtime)
    assert (got.atime is None) == (want.atime is None)
    assert got.atime is None or want.atime is None or got.atime.tobytes() == want.atime.tobytes()
    assert list(got.others.items()) == list(want.others.items())
    assert got._ids == want._ids


def test_the_odd_mirror_walked_in_parts_is_the_listing_of_one_process(
        tmp_path: Path, split: List[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """OE and Isar names in three layouts, odd names, a link to a file, a dangling link,
    a FIFO and a link back to the root (met again by the part holding it: listed again
    here, where the whole walk's directories are known)."""
    backend = LocalBackend(str(_mirror(tmp_path)))
    (got, got_skips), (want, want_skips) = _listed(backend), _sequential(backend, monkeypatch)
    _assert_same(got, want)
    assert got_skips == want_skips
    assert sorted(want_skips) == [("flat/dangling", "dangling symbolic link"),
                                  ("flat/fifo", "not a regular file"),
                                  ("flat/loop", "directory already listed (link loop)")]
    assert split == ["flat/"]  # only the part with the loop; every other came from a worker
    assert len(got) > 500 and 0 < len(got.others) < 30


def test_links_between_parts_list_each_directory_where_the_walk_first_meets_it(
        tmp_path: Path, split: List[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "mirror"
    generator = gencache()
    generator.write_cache(root, generator.plan(300, seed=5, now=int(NOW)), sparse=True)
    outside = tmp_path / "outside"  # linked from two parts: listed in the first one met
    (outside / "ab").mkdir(parents=True)
    (outside / "ab" / ODD_NAMES[0]).write_bytes(b"out")
    tops = sorted(p for p in root.iterdir() if p.is_dir())
    assert len(tops) > 12
    os.symlink(outside, tops[0] / "out")
    os.symlink(outside, tops[-1] / "out")
    os.symlink(tops[3], tops[7] / "sibling")  # a part reaching into another part
    os.symlink(tops[9], tops[9] / "self")
    os.symlink(tops[2] / "nowhere", tops[2] / "dangling")
    (got, got_skips), (want, want_skips) = _listed(backend := LocalBackend(str(root))), \
        _sequential(backend, monkeypatch)
    _assert_same(got, want)
    assert got_skips == want_skips
    assert sum(why.endswith("(link loop)") for _, why in want_skips) == 3
    assert sum(a.path.endswith(ODD_NAMES[0]) for a in want) == 1
    assert 0 < len(split) <= 4  # the parts whose walk met an earlier part's directory


def _deep(top: Path, levels: int = 22) -> None:
    """Directories nested deeper than a path may name (ENAMETOOLONG), as root or not."""
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def _small_mirror(root: Path, files: int = 200) -> List[Path]:
    generator = gencache()
    generator.write_cache(root, generator.plan(files, seed=7, now=int(NOW)), sparse=True)
    return sorted(p for p in root.iterdir() if p.is_dir())


def _error(backend: LocalBackend) -> BackendError:
    with pytest.raises(BackendError) as caught:
        list_artifacts(backend)
    return caught.value


def test_a_part_that_cannot_be_listed_fails_as_the_listing_of_one_process(
        tmp_path: Path, split: List[str], monkeypatch: pytest.MonkeyPatch) -> None:
    tops = _small_mirror(tmp_path / "mirror")
    _deep(tops[len(tops) // 2])
    backend = LocalBackend(str(tmp_path / "mirror"))
    got = _error(backend)
    with monkeypatch.context() as m:
        m.setattr(listing_parts, "usable_cpus", lambda: 1)
        want = _error(backend)
    assert (type(got), str(got), got.hint) == (type(want), str(want), want.hint)
    assert "File name too long" in str(got)
    assert split == [tops[len(tops) // 2].name + "/"]  # the worker failed: listed again here


_LIST_AND_SAY_WHY = """
import sys
from sstate_mirror.backends.local import LocalBackend
from sstate_mirror.commands import listing_parts
from sstate_mirror.commands.listing import list_artifacts
from sstate_mirror.errors import BackendError
listing_parts.PARALLEL_FILES = 0
listing_parts.usable_cpus = lambda: int(sys.argv[2])
try:
    list_artifacts(LocalBackend(sys.argv[1]))
except BackendError as exc:
    print(type(exc).__name__, exc, exc.hint, sep="|")
"""


def _failure_as_build_user(mirror: Path, cpus: int) -> str:
    """The listing's error, in a process without the capabilities that let root read a
    directory of mode 000 (the suite usually runs as root)."""
    prefix: List[str] = []
    if os.geteuid() == 0:
        prefix = [tool("setpriv", "Debian package util-linux"),
                  "--bounding-set", "-dac_override,-dac_read_search"]
    done = subprocess.run([*prefix, sys.executable, "-c", _LIST_AND_SAY_WHY, str(mirror),
                           str(cpus)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_unreadable_directory_in_a_part_fails_the_listing_the_same(tmp_path: Path) -> None:
    tops = _small_mirror(tmp_path / "mirror")
    victim = next(tops[-2].iterdir())
    victim.chmod(0)
    try:
        got = _failure_as_build_user(tmp_path / "mirror", 2)
        want = _failure_as_build_user(tmp_path / "mirror", 1)
    finally:
        victim.chmod(0o755)
    assert "Permission denied" in want
    assert got == want


def test_a_directory_removed_before_its_part_is_listed_is_empty(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tops = _small_mirror(tmp_path / "mirror")
    backend = LocalBackend(str(tmp_path / "mirror"))
    skips: Skips = []
    splitting = backend.split_listing(0, 6, lambda path, why: skips.append((path, why)))
    catalog = Catalog()
    for batch in splitting.head():
        catalog.extend(*batch)
    assert len(splitting.parts) >= 6
    gone = splitting.parts[2]
    assert isinstance(gone, _DirectoryPart)
    shutil.rmtree(gone.pending[0])  # as a clean pruning it would, after its parent was listed
    listing_parts.catalog_parts(splitting, catalog, 2, lambda path, why: skips.append(
        (path, why)), Progress())
    want, want_skips = _sequential(backend, monkeypatch)
    _assert_same(catalog, want)
    assert skips == want_skips == []
    assert len(tops) - 1 == sum(1 for p in Path(tmp_path / "mirror").iterdir() if p.is_dir())


class _Part(ListingPart):
    """A part of a listing made of given batches; ``die``: its worker process dies."""

    def __init__(self, batches: List[EntryBatch], die: bool) -> None:
        self._batches, self._die, self.trace = batches, die, b""

    def batches(self, on_skip: Optional[SkipCallback] = None) -> Iterator[EntryBatch]:
        if self._die:
            os._exit(9)  # as the kernel's out-of-memory killer would
        yield from self._batches


class _Split(SplitListing):
    def __init__(self, parts: List[_Part]) -> None:
        self.parts: List[ListingPart] = list(parts)
        self.redone = 0

    def head(self) -> Iterator[EntryBatch]:
        return iter(())

    def admit(self, part: ListingPart, trace: bytes) -> bool:
        return True

    def redo(self, part: ListingPart) -> Iterator[EntryBatch]:
        self.redone += 1
        assert isinstance(part, _Part)
        return iter(part._batches)


def _batches(seed: int) -> List[EntryBatch]:
    entries = gencache().plan(120, seed=seed, now=int(NOW), junk=2)
    out = []
    for directory, group in groupby(entries, key=lambda e: e.path[:e.path.rfind("/") + 1]):
        files = list(group)
        out.append(EntryBatch(directory, [e.path[len(directory):] for e in files],
                              [e.size for e in files], [float(e.mtime) for e in files],
                              [float(e.mtime) for e in files]))
    return out


def test_a_worker_that_dies_leaves_its_parts_to_this_process() -> None:
    parts = [_Part(_batches(seed), die=seed == 3) for seed in range(6)]
    splitting = _Split(parts)
    catalog = Catalog()
    listing_parts.catalog_parts(splitting, catalog, 2, None, Progress())
    want = Catalog()
    for part in parts:
        for batch in part._batches:
            want.extend(*batch)
    _assert_same(catalog, want)
    assert 1 <= splitting.redone < len(parts)


class _NoPool:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a pool was started")


@pytest.mark.parametrize("cpus, files", [(1, 0), (2, 10_000)])
def test_one_cpu_or_a_small_mirror_starts_no_pool(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpus: int, files: int) -> None:
    backend = LocalBackend(str(_mirror(tmp_path)))
    want, want_skips = _listed(backend)
    monkeypatch.setattr(listing_parts, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(listing_parts, "PARALLEL_FILES", files)
    monkeypatch.setattr(listing_parts, "ProcessPoolExecutor", _NoPool)
    got, got_skips = _listed(backend)
    _assert_same(got, want)
    assert got_skips == want_skips


class _Recorder(Progress):
    def __init__(self) -> None:
        self.advances: List[Tuple[int, int]] = []

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        self.advances.append((items, nbytes))


def test_progress_moves_as_the_parts_come(tmp_path: Path, split: List[str]) -> None:
    _small_mirror(tmp_path / "mirror", 400)
    progress = _Recorder()
    catalog = list_artifacts(LocalBackend(str(tmp_path / "mirror")), progress=progress)
    assert sum(n for n, _ in progress.advances) == len(catalog)
    assert sum(b for _, b in progress.advances) == sum(catalog.size)
    assert len(progress.advances) >= 6 and split == []  # a run at least: six here


def _pieces(catalog_rows: List[Any], cuts: List[int]) -> List[Catalog]:
    out = []
    for a, b in zip(cuts, cuts[1:]):
        piece = Catalog()
        for art in catalog_rows[a:b]:
            piece.append(art.path, art.size, art.mtime, art.atime)
        out.append(piece)
    return out


def test_concat_of_pieces_catalogued_apart_is_the_whole_catalog() -> None:
    """Pieces with their own numbering, cut anywhere (odd rows, companions before their
    archive, atimes only in some pieces), and unpickled as from a worker."""
    arts = [make_artifact(e.path, e.size, float(e.mtime))
            for e in gencache().plan(500, seed=11, now=int(NOW), junk=5)]
    arts[40:40] = [make_artifact(f"01/23/{name}", i, NOW, NOW - i)
                   for i, name in enumerate(ODD_NAMES)]
    arts.reverse()  # companions come before their archives
    whole = Catalog.of(arts)
    cuts = [0, 1, 7, 39, 40, 44, 200, 201, 333, len(arts)]
    joined = Catalog()
    for piece in _pieces(arts, cuts):
        joined.concat(pickle.loads(pickle.dumps(piece)))
    _assert_same(joined, whole)
    # a slice of a piece: what the rows use is numbered, not the rest of its tables
    part = Catalog.of(arts)
    sliced = Catalog()
    sliced.concat(part, 100, 300)
    _assert_same(sliced, Catalog.of(arts[100:300]))


def test_a_mirror_below_one_directory_is_split_at_its_hash_directories(tmp_path: Path) -> None:
    """``prefix/hh/hh``: the parts are the ``hh`` directories the walk has not reached (not
    the one ``prefix``), whose batches, after the head's, are the whole listing's."""
    _small_mirror(tmp_path / "mirror" / "sstate-cache", 300)
    backend = LocalBackend(str(tmp_path / "mirror"))
    splitting = backend.split_listing(50, 6)
    head = list(splitting.head())
    assert sum(len(b.names) for b in head) >= 50
    assert len(splitting.parts) >= 6
    assert {p.pending[1].count("/") for p in splitting.parts  # type: ignore[attr-defined]
            } == {2}
    rest = [b for part in splitting.parts for b in part.batches()]
    assert head + rest == list(backend.list_batches())
    small = backend.split_listing(10_000, 6)
    assert list(small.head()) == list(backend.list_batches()) and small.parts == []


def test_whole_trees_below_prefixes_start_first_and_join_in_the_listings_order(
        tmp_path: Path, split: List[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory that is no hash level (``universal/``, a prefix) holds a whole ``hh/hh``
    tree: its part is a run of its own, sent to a worker before every other run, and still
    joined at its place, with the heads its worker met first numbered where the listing of
    one process numbers them."""
    root = tmp_path / "mirror"
    generator = gencache()
    generator.write_cache(root, generator.plan(400, seed=3, now=int(NOW)), sparse=True)
    for seed, prefix in ((4, "universal"), (5, "zz-prefix"), (6, "aa-prefix")):
        generator.write_cache(root / prefix, generator.plan(300, seed=seed, now=int(NOW)),
                              sparse=True)
    backend = LocalBackend(str(root))
    sent: List[List[str]] = []
    real_submit = listing_parts._submit

    def submit(pool: Any, run: List[ListingPart], report_skips: bool) -> Any:
        sent.append([part.where for part in run])
        return real_submit(pool, run, report_skips)

    monkeypatch.setattr(listing_parts, "_submit", submit)
    got, skips = _listed(backend)
    want, want_skips = _sequential(backend, monkeypatch)
    _assert_same(got, want)
    assert skips == want_skips and split == []
    trees = [where for run in sent for where in run
             if where.rstrip("/") in ("universal", "zz-prefix", "aa-prefix")]
    assert len(trees) == 3
    assert [run for run in sent[:3]] == [[where] for where in trees]


def test_heads_numbered_by_text_in_pieces_join_to_the_whole_catalog() -> None:
    """A worker's pieces hold their heads as text only (parsed where they are joined, all
    of a piece's new ones together): the joined catalog is the one of one process, heads
    with ``:`` in PV, empty fields and odd characters included."""
    arts = [make_artifact(e.path, e.size, float(e.mtime))
            for e in gencache().plan(400, seed=12, now=int(NOW), junk=5)]
    h = "0123456789abcdef" * 4
    odd_heads = ["sstate:a::1:2:3:r0::14:", "sstate:b:x:::::", "sstate:c\nd:x:1:r0:x:14:",
                 "sstate:e:\udcff:1:r0:x:14:", "sstate:f:sstate:g:1:r0:x:14:"]
    arts[30:30] = [make_artifact(f"01/23/{head}{h}_package.tar.zst", 1, NOW)
                   for head in odd_heads]
    whole = Catalog.of(arts)
    joined = Catalog()
    numbers: List[int] = []
    tables = Catalog(parse_heads=False)
    for a, b in ((0, 20), (20, 33), (33, 34), (34, len(arts))):
        piece = tables.sharing()
        for art in arts[a:b]:
            piece.append(art.path, art.size, art.mtime, art.atime)
        assert piece.heads == [] and piece.head_texts is not None
        joined.concat(pickle.loads(pickle.dumps(piece)), numbers=numbers)
    _assert_same(joined, whole)


def test_heads_parsed_together_are_those_parsed_one_by_one() -> None:
    texts = ["sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:", "sstate:a::1:2:3:r0::14:",
             "sstate:b:x:::::", "sstate:c\nd:x:1:r0:x:14:", "sstate:e:\udcff:1:r0:x:14:",
             "sstate:f:sstate:g:1:r0:x:14:", "sstate:pv:with:colons:x:1:r0:x:14:"]
    assert catalog_module._parse_heads(texts) == [catalog_module._head(t) for t in texts]
    # a text that is no such head: each is parsed alone, the same
    texts.insert(3, "xsstate:a:b:c:d:e:f:")
    assert catalog_module._parse_heads(texts) == [catalog_module._head(t) for t in texts]


def test_a_summary_fed_while_the_parts_come_is_the_summary_of_the_listing(
        tmp_path: Path, split: List[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``info`` sums the rows as they are listed (after the head's batches and after each
    run joined here): the report is the one of the whole listing read after."""
    monkeypatch.setattr(listing, "FEED_ROWS", 7)
    root = _mirror(tmp_path)
    summary = Summary(NOW)
    fed: List[int] = []

    def feed(catalog: Catalog) -> None:
        fed.append(len(catalog))
        summary.feed(catalog)

    catalog = list_artifacts(LocalBackend(str(root)), on_rows=feed)
    assert len(fed) >= 3 and fed == sorted(fed) and fed[-1] <= len(catalog)
    got = summary.report(catalog).to_dict(top=10_000, detail=True)
    assert got == summarize(_sequential(LocalBackend(str(root)), monkeypatch)[0], NOW
                            ).to_dict(top=10_000, detail=True)
