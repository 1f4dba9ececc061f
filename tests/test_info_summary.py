"""``info``'s summary of a catalog, against the algorithm it replaced, on random listings.

``summarize`` reads a catalog's columns block by block with C iterators. What it must give is
exactly what the previous summary gave (kept below as ``_previous``: one Python step per
row): every tally, every key in the same order, the same recipes (their tasks and
architectures in the same order) and the same count of archives without ``.siginfo``, on
listings with odd names, rows kept whole, ages on each bucket's bound, the same hash under
two heads and archives whose ``.siginfo`` is listed before them, after them or elsewhere.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import json
import math
from typing import Any, Dict, Iterator, List, Set, Tuple, Union

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstate_mirror.catalog import OTHER, Catalog, Head
from sstate_mirror.commands import info
from sstate_mirror.commands.info import (
    AGE_BUCKETS,
    NO_ARCH,
    NO_PREFIX,
    InfoReport,
    RecipeInfo,
    Tally,
    _add_artifact,
    summarize,
)
from sstate_mirror.naming import (
    Kind,
    make_artifact,
)

NOW = 1_780_000_000.0


# -- the previous summary, one Python step per row ------------------------------------------
# (the rows kept whole are counted by info._add_artifact, which the new summary calls too)

def _previous(catalog: Catalog, now: float) -> InfoReport:
    report = InfoReport(now=now)
    for _, label in AGE_BUCKETS:
        report.by_age[label] = Tally()
    bounds = [bound for bound, _ in AGE_BUCKETS]
    age_files = [0] * len(bounds)
    age_bytes = [0] * len(bounds)
    heads, tails, dirs = catalog.heads, catalog.tails, catalog.dirs
    head_files, head_bytes = [0] * len(heads), [0] * len(heads)
    head_oldest, head_newest = [math.inf] * len(heads), [-math.inf] * len(heads)
    head_archives = [0] * len(heads)
    tail_files, tail_bytes = [0] * len(tails), [0] * len(tails)
    dir_files, dir_bytes = [0] * len(dirs), [0] * len(dirs)
    is_archive = [tail.kind is Kind.ARCHIVE for tail in tails]
    archive_tasks: Dict[Tuple[str, str], int] = {}
    archives: Set[Union[bytes, str]] = set()
    siginfo_keys: Set[str] = set()
    hashes = catalog.hashes
    columns = zip(catalog.head, catalog.tail, catalog.dir, catalog.size, catalog.mtime)
    for row, (hd, tl, dr, size, mtime) in enumerate(columns):
        if hd == OTHER:
            _add_artifact(report, catalog.others[row], archives, siginfo_keys)
            continue
        if not tail_files[tl]:
            report.by_kind.setdefault(tails[tl].kind.value, Tally())
            report.by_task.setdefault(tails[tl].task, Tally())
        if not head_files[hd]:
            head = heads[hd]
            report.by_arch.setdefault(head.pkgarch or NO_ARCH, Tally())
            if head.pn not in report.recipes:
                report.recipes[head.pn] = RecipeInfo(head.pn)
        if not dir_files[dr]:
            report.by_prefix.setdefault(dirs[dr].prefix or NO_PREFIX, Tally())
            report.by_layout.setdefault(dirs[dr].layout, Tally())
        if not head_files[hd]:
            report.by_version.setdefault(heads[hd].version, Tally())
        head_files[hd] += 1
        head_bytes[hd] += size
        if mtime < head_oldest[hd]:
            head_oldest[hd] = mtime
        if mtime > head_newest[hd]:
            head_newest[hd] = mtime
        tail_files[tl] += 1
        tail_bytes[tl] += size
        dir_files[dr] += 1
        dir_bytes[dr] += size
        bucket = bisect.bisect_right(bounds, now - mtime)
        age_files[bucket] += 1
        age_bytes[bucket] += size
        if is_archive[tl]:
            head_archives[hd] += 1
            key = (heads[hd].pn, tails[tl].task)
            archive_tasks[key] = archive_tasks.get(key, 0) + 1
            archives.add(bytes(hashes[32 * row: 32 * row + 32])
                         + (dr << 64 | hd << 32 | tl).to_bytes(12, "little"))
    for hd, head in enumerate(heads):
        if head_files[hd]:
            _previous_head(report, head, head_files[hd], head_bytes[hd], head_oldest[hd],
                           head_newest[hd], head_archives[hd])
    for (pn, task), n in archive_tasks.items():
        tasks = report.recipes[pn].tasks
        tasks[task] = tasks.get(task, 0) + n
    for tail, n, size in zip(tails, tail_files, tail_bytes):
        _previous_add(report.by_kind, tail.kind.value, n, size)
        _previous_add(report.by_task, tail.task, n, size)
    for where, n, size in zip(dirs, dir_files, dir_bytes):
        _previous_add(report.by_prefix, where.prefix or NO_PREFIX, n, size)
        _previous_add(report.by_layout, where.layout, n, size)
    for (_, label), n, size in zip(AGE_BUCKETS, age_files, age_bytes):
        _previous_add(report.by_age, label, n, size)
    siginfo_tails = {tl: tail.archive for tl, tail in enumerate(tails)
                     if tail.kind is Kind.SIGINFO}
    for row, (hd, tl, dr) in enumerate(zip(catalog.head, catalog.tail, catalog.dir)):
        if hd != OTHER and tl in siginfo_tails:
            archives.discard(bytes(hashes[32 * row: 32 * row + 32])
                             + (dr << 64 | hd << 32 | siginfo_tails[tl]).to_bytes(12, "little"))
    report.archives_without_siginfo = sum(1 for key in archives if key not in siginfo_keys)
    return report


def _previous_add(tallies: Dict[str, Tally], key: str, files: int, size: int) -> None:
    if files:
        tally = tallies[key]
        tally.files += files
        tally.bytes += size


def _previous_head(report: InfoReport, head: Head, files: int, size: int, oldest: float,
                   newest: float, archives: int) -> None:
    report.total.files += files
    report.total.bytes += size
    _previous_add(report.by_arch, head.pkgarch or NO_ARCH, files, size)
    _previous_add(report.by_version, head.version, files, size)
    report.oldest = oldest if report.oldest is None else min(report.oldest, oldest)
    report.newest = newest if report.newest is None else max(report.newest, newest)
    recipe = report.recipes[head.pn]
    recipe.files += files
    recipe.bytes += size
    if archives:
        recipe.archives += archives
        arch = head.pkgarch or NO_ARCH
        recipe.archs[arch] = recipe.archs.get(arch, 0) + archives
    recipe.oldest = min(recipe.oldest, oldest)
    recipe.newest = max(recipe.newest, newest)


# -- what is compared -----------------------------------------------------------------------

def _everything(report: InfoReport) -> Dict[str, Any]:
    """Every field of a report, with every dict's keys in their order."""
    def tallies(d: Dict[str, Tally]) -> List[Tuple[str, int, int]]:
        return [(k, v.files, v.bytes) for k, v in d.items()]

    return {
        "dict": json.dumps(report.to_dict(top=10_000, detail=True)),
        "total": (report.total.files, report.total.bytes),
        "tallies": [tallies(getattr(report, name)) for name in (
            "by_kind", "by_arch", "by_task", "by_prefix", "by_layout", "by_version", "by_age")],
        "recipes": [(r.pn, r.files, r.bytes, r.archives, list(r.tasks.items()),
                     list(r.archs.items()), r.oldest, r.newest)
                    for r in report.recipes.values()],
        "times": (report.oldest, report.newest),
        "unmatched": report.archives_without_siginfo,
    }


# -- random listings ------------------------------------------------------------------------

HASHES = ["0123456789abcdef" * 4, "fedcba9876543210" * 4, "00" * 32, "ab" * 32]
HEADS = [
    "sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:",
    "sstate:zlib:core2-64-poky-linux:1.3:r1:core2-64:14:",  # same recipe, another head
    "sstate:zlib:x86_64-linux:1.3:r0:x86_64:14:",
    "sstate:base-files:qemux86_64-poky-linux:3.0:r0:qemux86_64:10:",
    "sstate:a::1:2:3::14:",  # no arch
    "sstate:pv:with:colons:x:1.0:r0:x:14:",
    "sstate:zlib:a:b:c:d:14:",  # the fewest fields
]
TAILS = ["_package.tar.zst", "_package.tar.zst.siginfo", "_package.tar.zst.sig",
         "_populate_sysroot.tgz", "_populate_sysroot.tgz.siginfo", "_fetch.tar.zst.siginfo",
         "_package_write_rpm.tar.zst", "_package_write_rpm.tar.zst.siginfo"]
WHOLE = [
    ".sstate-mirror/pins/release.json",  # the mirror's own data
    "README",
    "01/23/sigtask.abcdef",  # temporary
    "01/23/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:" + HASHES[0].upper()
    + "_package.tar.zst",
    "01/23/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:" + HASHES[0].upper()
    + "_package.tar.zst.siginfo",
    "sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:" + "0123456789abcdef" * 2
    + "_package.tgz",  # legacy (md5)
    "sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:" + "0123456789abcdef" * 2
    + "_package.tgz.siginfo",
    "01/23/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:" + HASHES[1][:32]
    + "_package.tar.zst",
]
# each age bucket's bound, either side of it, the future and the far past
AGES = [0.0, -5.0, 1.0, 400 * 86400.0] + [
    age for bound, _ in AGE_BUCKETS[:-1]
    for age in (float(bound), math.nextafter(float(bound), 0), math.nextafter(float(bound), 1e12),
                bound - 1.0, bound + 0.5)]


@st.composite
def _paths(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(WHOLE))
    h = draw(st.sampled_from(HASHES))
    where = draw(st.sampled_from(["", "universal/", "x/y/"]))
    levels = draw(st.sampled_from([f"{h[:2]}/{h[2:4]}/", f"{h[:2]}/", ""]))
    return f"{where}{levels}{draw(st.sampled_from(HEADS))}{h}{draw(st.sampled_from(TAILS))}"


_rows = st.lists(st.tuples(_paths(), st.integers(0, 1 << 40), st.sampled_from(AGES)),
                 max_size=60)


def _catalog(rows: List[Tuple[str, int, float]]) -> Catalog:
    return Catalog.of(make_artifact(path, size, NOW - age) for path, size, age in rows)


@contextlib.contextmanager
def _blocks_of_three() -> Iterator[None]:
    """Blocks of three rows: an archive and its companions are split over blocks."""
    block = info._BLOCK
    info._BLOCK = 3
    try:
        yield
    finally:
        info._BLOCK = block


@pytest.fixture
def small_blocks() -> Iterator[None]:
    with _blocks_of_three():
        yield


@settings(max_examples=300)
@given(rows=_rows)
def test_summary_is_the_previous_summary_on_random_listings(rows: List[Tuple[str, int, float]]
                                                            ) -> None:
    catalog = _catalog(rows)
    assert _everything(summarize(catalog, NOW)) == _everything(_previous(catalog, NOW))


@settings(max_examples=300)
@given(rows=_rows)
def test_summary_is_the_same_when_groups_are_split_over_blocks(
        rows: List[Tuple[str, int, float]]) -> None:
    catalog = _catalog(rows)
    with _blocks_of_three():
        got = _everything(summarize(catalog, NOW))
    assert got == _everything(_previous(catalog, NOW))


@settings(max_examples=200)
@given(rows=_rows, cuts=st.lists(st.integers(0, 60), max_size=6))
def test_a_summary_fed_as_the_catalog_grows_is_the_summary_of_the_whole(
        rows: List[Tuple[str, int, float]], cuts: List[int]) -> None:
    """What a listing does: feed the summary after each part of the listing, the catalog's
    tables growing in between (new heads, tails, directories, rows kept whole)."""
    catalog = Catalog()
    summary = info.Summary(NOW)
    for start, stop in zip([0, *sorted(cuts)], [*sorted(cuts), len(rows)]):
        for path, size, age in rows[start:stop]:
            catalog.add(make_artifact(path, size, NOW - age))
        summary.feed(catalog)
    assert _everything(summary.report(catalog)) == _everything(_previous(catalog, NOW))


def test_a_summary_fed_one_catalog_reports_another_whole() -> None:
    """info --filter: the listing fed, the report made of the selection (another catalog)."""
    h = HASHES[0]
    listing = _catalog([(f"{HEADS[0]}{h}_package.tar.zst", 1, 0.0),
                        (f"{HEADS[1]}{h}_package.tar.zst", 2, 0.0)])
    selection = listing.where(lambda art: art.size == 2)
    summary = info.Summary(NOW)
    summary.feed(listing)
    assert _everything(summary.report(selection)) == _everything(_previous(selection, NOW))


@pytest.mark.parametrize("order", ["archive first", "siginfo first", "far apart", "twice"])
def test_an_archive_matches_its_siginfo_in_any_block(small_blocks: None, order: str) -> None:
    h = HASHES[0]
    archive = f"{h[:2]}/{h[2:4]}/{HEADS[0]}{h}_package.tar.zst"
    filler = [f"{h[:2]}/{h[2:4]}/{HEADS[1]}{h}_package.tar.zst.sig"] * 7
    rows = {"archive first": [archive, *filler, archive + ".siginfo"],
            "siginfo first": [archive + ".siginfo", *filler, archive],
            "far apart": [*filler, archive, *filler, *filler, archive + ".siginfo"],
            "twice": [archive, *filler, archive + ".siginfo", *filler, archive]}[order]
    catalog = _catalog([(path, 1, 0.0) for path in rows])
    report = summarize(catalog, NOW)
    assert report.archives_without_siginfo == 0
    assert _everything(report) == _everything(_previous(catalog, NOW))


def test_a_siginfo_beside_another_head_or_directory_matches_nothing() -> None:
    h = HASHES[0]
    archive = f"{h[:2]}/{h[2:4]}/{HEADS[0]}{h}_package.tar.zst"
    rows = [archive, f"{h[:2]}/{h[2:4]}/{HEADS[1]}{h}_package.tar.zst.siginfo",
            f"universal/{h[:2]}/{h[2:4]}/{HEADS[0]}{h}_package.tar.zst.siginfo",
            f"{h[:2]}/{h[2:4]}/{HEADS[0]}{h}_populate_sysroot.tgz.siginfo"]
    catalog = _catalog([(path, 1, 0.0) for path in rows])
    assert summarize(catalog, NOW).archives_without_siginfo == 1


def test_a_file_on_a_bound_is_in_the_older_bucket() -> None:
    labels = [label for _, label in AGE_BUCKETS]
    h = HASHES[0]
    for i, (bound, label) in enumerate(AGE_BUCKETS[:-1]):
        on = NOW - bound  # exactly ``bound`` old; the next float is younger
        catalog = Catalog.of([make_artifact(f"{HEADS[0]}{h}_package.tar.zst", 1, on),
                              make_artifact(f"{HEADS[0]}{h}_package.tar.zst.siginfo", 2,
                                            math.nextafter(on, math.inf))])
        by_age = summarize(catalog, NOW).by_age
        assert (by_age[labels[i + 1]].bytes, by_age[label].bytes) == (1, 2)


def test_the_catalog_grows_after_a_summary() -> None:
    h = HASHES[0]
    catalog = _catalog([(f"{HEADS[0]}{h}_package.tar.zst", 1, 0.0)])
    summarize(catalog, NOW)
    catalog.append(f"{HEADS[1]}{h}_package.tar.zst", 1, NOW)  # no view of its bytes is left
    assert summarize(catalog, NOW).total.files == 2


@pytest.mark.parametrize("enabled", [True, False])
def test_the_garbage_collector_is_left_as_it_was(enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        summarize(_catalog([(WHOLE[1], 1, 0.0)]), NOW)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


@settings(max_examples=200)
@given(blocks=st.lists(st.lists(st.integers(0, 20), max_size=12), max_size=8),
       limit=st.integers(1, 40))
def test_pair_counts_summed_now_and_then_are_the_counts_in_first_listed_order(
        blocks: List[List[int]], limit: int) -> None:
    counts = info._PairCounts()
    counts._limit = limit  # sums the blocks held whenever they hold more than this
    want: Dict[int, int] = {}
    row = 0
    for block in blocks:
        rows = np.arange(row, row + len(block), dtype=np.int64)
        row += len(block)
        counts.add(np.array(block, np.int64), rows)
        assert counts._held <= counts._limit  # what is held stays bounded
        for pair in block:
            want[pair] = want.get(pair, 0) + 1
    got = counts.result()
    assert list(got.items()) == list(want.items())
