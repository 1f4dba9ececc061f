"""clean's plan in passes over the catalog's columns decides exactly what the plan made one
object per file decides, on generated mirrors with what the passes must tell apart: the same
hash under two heads or two directories, hashes alike in their first or last bytes, groups
with and without archive, pins, temporary and unknown files, ties in last use and in
versions; and its path order without paths is the order of the paths."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstate_mirror.catalog import OTHER, Catalog
from sstate_mirror.commands import cleancolumns
from sstate_mirror.commands.clean import CleanOptions, plan_clean
from sstate_mirror.commands.cleancolumns import PathOrder
from sstate_mirror.commands.pins import PinSet
from sstate_mirror.naming import Artifact, Kind, make_artifact
from test_clean_catalog import _reference_plan, _summary

NOW = 1_780_000_000.0
DAY = 86400

#: alike in their first bytes (one ``hh/hh`` directory), in all but their last, or not at all
HASHES = ["ab12" + "0" * 60, "ab12" + "0" * 59 + "1", "ab12" + "f" * 60, "00" * 32,
          "ff" * 32, "ab" + "3" * 62]
HEADS = ["sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:",
         "sstate:zlib-native:x86_64-linux:1.3:r0:x86_64:14:",
         "sstate:zlib:core2-64-poky-linux:1.3:r1:core2-64:14:",
         "sstate:busybox:core2-64-poky-linux:1.36:r0:core2-64:14:"]
TASKS = ["populate_sysroot", "package", "compile"]
#: (directory, hash levels): the ordinary layouts, and directories whose paths interleave
LAYOUTS = [("", 2), ("other/", 2), ("universal/", 2), ("", 0), ("flat/", 0), ("a/", 1),
           ("a/b/", 2), ("", 1), ("0/", 2), ("sstate/", 0)]
SUFFIXES = ["", ".siginfo", ".sig"]


def _path(layout: Tuple[str, int], head: str, h: str, task: str, suffix: str) -> str:
    directory, levels = layout
    hexdirs = f"{h[:2]}/{h[2:4]}/" if levels == 2 else f"{h[:2]}/" if levels == 1 else ""
    return f"{directory}{hexdirs}{head}{h}_{task}.tar.zst{suffix}"


_file = st.tuples(st.integers(0, len(LAYOUTS) - 1), st.sampled_from(HEADS),
                  st.sampled_from(HASHES), st.sampled_from(TASKS), st.sampled_from(SUFFIXES),
                  st.sampled_from([0.0, 0.01, 1.0, 10.0, 40.0, 90.0]),  # days since use
                  st.integers(0, 4),                                   # size (ties)
                  st.sampled_from([None, 0.5, 50.0]))                  # .siginfo atime, days
_extra = st.sampled_from(["ab/12/sstate:zlib:x:1:r0:y:14:" + HASHES[0] + "_package.tar.zst.Xy1",
                          "README", "other/index.html", "ab/cd/sigtask.abc123",
                          ".sstate-mirror/pins/release-1",
                          "sstate:zlib:x:1:r0:y:14:" + "ab" * 16 + "_package.tar.zst"])


def _mirror(files: List[tuple], extras: List[Tuple[str, float]],
            layouts: List[int]) -> List[Artifact]:
    seen = {}
    for layout, head, h, task, suffix, age, size, atime in files:
        path = _path(LAYOUTS[layouts[layout % len(layouts)]], head, h, task, suffix)
        seen[path] = make_artifact(
            path, size, NOW - age * DAY,
            None if atime is None or not path.endswith(".siginfo") else NOW - atime * DAY)
    for path, age in extras:
        seen[path] = make_artifact(path, 3, NOW - age * DAY)
    return list(seen.values())


_options = st.builds(
    lambda age, size, versions, min_age, temp: CleanOptions(
        max_age=age, max_size=size, max_versions=versions, min_age=min_age, temp_age=temp)
    if (age, size, versions) != (None, None, None) else CleanOptions(max_age=0),
    st.sampled_from([None, 0, 5 * DAY, 30 * DAY]), st.sampled_from([None, 0, 6, 20, 10**6]),
    st.sampled_from([None, 1, 2]), st.sampled_from([0, 3600, 2 * DAY]),
    st.sampled_from([0, DAY]))


@settings(max_examples=400, deadline=None)
@given(st.lists(_file, max_size=40),
       st.lists(st.tuples(_extra, st.sampled_from([0.0, 3.0])), max_size=3),
       st.lists(st.integers(0, len(LAYOUTS) - 1), min_size=1, max_size=3),
       _options, st.sets(st.sampled_from(HASHES), max_size=2), st.randoms())
def test_plan_is_the_plan_made_one_object_per_file(files: List[tuple], extras: List[tuple],
                                                   layouts: List[int], options: CleanOptions,
                                                   pinned: set, order: object) -> None:
    arts = _mirror(files, extras, layouts)
    order.shuffle(arts)  # type: ignore[attr-defined]
    pins: Optional[PinSet] = None
    if pinned:
        pins = PinSet(pins=[], now=NOW)
        pins.add_keep("--keep", {h: ("zlib", "do_package") for h in pinned})
    expected = _reference_plan(arts, options, NOW, pins)
    assert _summary(plan_clean(iter(arts), options, NOW, pins)) == _summary(expected)


@settings(max_examples=300, deadline=None)
@given(st.lists(_file, min_size=1, max_size=40),
       st.lists(st.integers(0, len(LAYOUTS) - 1), min_size=1, max_size=4))
def test_path_order_without_paths_is_the_order_of_the_paths(files: List[tuple],
                                                            layouts: List[int]) -> None:
    """Rows sorted by their column keys are sorted by path, wherever the columns can say
    (and with the archive tail, by the key of their group)."""
    catalog = Catalog.of(_mirror(files, [], layouts))
    order = PathOrder(catalog)
    rows = [row for row in range(len(catalog)) if catalog.head[row] != OTHER]
    if not order.usable:
        assert len({LAYOUTS[i] for i in layouts}) > 1  # one directory always can
        return
    assert list(order.sorted(rows)) == sorted(rows, key=lambda row: (catalog.path(row), row))
    archive = [order.tail_rank[t.archive] for t in catalog.tails]
    assert list(order.sorted(rows, archive)) == sorted(rows, key=lambda row: (
        catalog.path(row, tail=catalog.tails[catalog.tail[row]].archive), row))


def test_the_usual_layouts_are_ordered_from_the_columns() -> None:
    """A mirror in ``hh/hh`` with its ``universal/`` and another cache below it: no paths."""
    arts = _mirror([(i, HEADS[0], h, "package", s, 1.0, 1, None)
                    for i in range(3) for h in HASHES for s in SUFFIXES], [], [0, 1, 2])
    assert PathOrder(Catalog.of(arts)).usable
    flat_too = _mirror([(i, HEADS[0], h, "package", "", 1.0, 1, None)
                        for i in range(2) for h in HASHES], [], [0, 3])
    assert PathOrder(Catalog.of(flat_too)).usable  # hex digits sort before ``sstate:``
    for layouts in ([0, 7], [3, 9], [5, 7], [5, 6], [0, 8]):  # paths of one fall between the other's
        arts = _mirror([(i, HEADS[0], h, "package", "", 1.0, 1, None)
                        for i in range(2) for h in HASHES], [], layouts)
        assert not PathOrder(Catalog.of(arts)).usable, layouts


@pytest.mark.parametrize("key_bits", [64, 34, 26])
def test_sort_keys_that_collide_or_fall_short_plan_the_same(monkeypatch: Any,
                                                            key_bits: int) -> None:
    """Rows are grouped by sorting a 64-bit mix of their keys, and put in path order by a
    64-bit key holding what fits of their hash: when every mix collides, and when the path
    key holds few bits of the hash (ties to sort by the rest) or none (a sort by the whole
    keys), the plan is the same."""
    arts = _mirror([(i % 3, head, h, task, s, float(i % 5) * 20, i % 3, None)
                    for i, (head, h, task, s) in enumerate(
                        (head, h, task, s) for head in HEADS for h in HASHES for task in TASKS
                        for s in SUFFIXES)],
                   [("README", 0.0), ("ab/cd/sigtask.abc123", 3.0)], [0, 1, 2])
    options = CleanOptions(max_age=30 * DAY, max_size=40, max_versions=2)
    expected = _summary(_reference_plan(arts, options, NOW))
    monkeypatch.setattr(cleancolumns, "mixed_keys", lambda parts: np.zeros(
        len(parts[0]), np.uint64))
    monkeypatch.setattr(cleancolumns, "KEY_BITS", key_bits)
    assert _summary(plan_clean(iter(arts), options, NOW)) == expected
    catalog = Catalog.of(arts)
    rows = [row for row in range(len(catalog)) if catalog.head[row] != OTHER]
    assert list(PathOrder(catalog).sorted(rows)) == sorted(
        rows, key=lambda row: (catalog.path(row), row))


def test_a_group_listed_apart_is_one_group() -> None:
    """An archive and its signatures far apart in the listing, with other groups of the same
    hash between them: found as one group, whose last use is its newest member's."""
    h = HASHES[0]
    arts = [make_artifact(_path(("", 2), HEADS[0], h, "package", ""), 1, NOW - 40 * DAY),
            make_artifact(_path(("other/", 2), HEADS[0], h, "package", ".siginfo"), 1,
                          NOW - 40 * DAY),
            make_artifact(_path(("", 2), HEADS[1], h, "package", ".siginfo"), 1,
                          NOW - 40 * DAY),
            make_artifact(_path(("", 2), HEADS[0], h, "package", ".siginfo"), 1,
                          NOW - DAY)]
    plan = plan_clean(arts, CleanOptions(max_age=30 * DAY), NOW)
    assert [(d.path, d.rule) for d in plan.deletions] == [
        (arts[2].path, "orphan-siginfo"), (arts[1].path, "orphan-siginfo")]
    assert all(d.artifact.kind is Kind.SIGINFO for d in plan.deletions)
