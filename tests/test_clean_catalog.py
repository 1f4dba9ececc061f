"""clean's plan on the compact catalog decides exactly what the plan made of one Artifact and
one Group object per file decided (kept here as the reference), on realistic listings with
every rule, pins and ties in last use."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, Dict, List, Optional, Tuple

import pytest

from sstate_mirror.catalog import Catalog
from sstate_mirror.commands.clean import CleanOptions, CleanPlan, Deletion, Spared, plan_clean
from sstate_mirror.commands.cleancolumns import PathOrder
from sstate_mirror.commands.pins import PinSet
from sstate_mirror.naming import Artifact, Group, Kind, group_artifacts, make_artifact
from synthetic import gencache

NOW = 1_780_000_000.0
DAY = 86400


# --- the reference: the plan as it was made one object per file -----------------------------

class _RefChooser:
    """Collects deletions; the first rule that picks a file is the one reported.

    Files of a pinned group are never chosen: they are noted as spared instead.
    """

    def __init__(self, pinned: Optional[Dict[str, str]] = None) -> None:
        self.chosen: Dict[str, Deletion] = {}
        self.pinned = pinned or {}
        self.spared: Dict[str, Spared] = {}

    def file(self, art: Artifact, rule: str) -> None:
        pin = self.pinned.get(art.group_key) if self.pinned else None
        if pin is not None:
            self.spared.setdefault(art.path, Spared(art, rule, pin))
        elif art.path not in self.chosen:
            self.chosen[art.path] = Deletion(art, rule)

    def group(self, group: Group, rule: str) -> None:
        if group.archive is None:
            for member in group.members():
                self.file(member, rule)
            return
        self.file(group.archive, rule)
        for companion in (group.siginfo, group.sig):
            if companion is not None:
                self.file(companion, "with-archive")

    def remaining(self, group: Group) -> int:
        return sum(m.size for m in group.members() if m.path not in self.chosen)

    def gone(self, group: Group) -> bool:
        return all(m.path in self.chosen for m in group.members())


def _reference_plan(artifacts: Iterable[Artifact], options: CleanOptions, now: float,
               pins: Optional[PinSet] = None) -> CleanPlan:
    """Decide what to delete. Pure: the listing, the options, ``now`` and the mirror's pins
    are all it sees."""
    arts = list(artifacts)
    plan = CleanPlan(max_size=options.max_size)
    for art in arts:
        plan.counts[art.kind.value] = plan.counts.get(art.kind.value, 0) + 1
        plan.size_before += art.size
    groups = sorted(group_artifacts(arts).values(), key=lambda g: g.key)
    sstate_tasks = {g.archive.task for g in groups if g.archive is not None}
    pinned = _ref_pinned_groups(groups, pins)
    plan.pinned_bytes = sum(g.size for g in groups if g.key in pinned)
    pick = _RefChooser(pinned)

    def age(g: Group) -> float:
        return max(0.0, now - g.last_used)

    def protected(g: Group) -> bool:
        return age(g) < options.min_age

    if options.max_age is not None:
        for g in groups:
            if g.archive is not None and age(g) >= options.max_age and not protected(g):
                pick.group(g, "max-age")

    sig_age = options.effective_max_sig_age
    for g in groups:
        if g.archive is not None:
            continue
        if g.sig is not None and not protected(g):
            pick.file(g.sig, "orphan-sig")
        if (g.siginfo is not None and sig_age is not None and age(g) >= sig_age
                and not protected(g)):
            orphan = g.siginfo.task in sstate_tasks
            pick.file(g.siginfo, "orphan-siginfo" if orphan else "max-sig-age")

    if options.max_versions is not None:
        versions: Dict[Tuple[str, str, str], List[Group]] = {}
        for g in groups:
            if g.archive is not None and not pick.gone(g):
                key = (g.archive.pn, g.archive.arch, g.archive.task)
                versions.setdefault(key, []).append(g)
        for same in versions.values():
            same.sort(key=lambda g: (-g.last_used, g.key))
            for g in same[options.max_versions:]:
                if not protected(g):
                    pick.group(g, "max-versions")
                else:
                    plan.versions_protected += 1

    for art in arts:
        if art.kind is Kind.TEMP and art.age(now) >= options.temp_age:
            pick.file(art, "stale-temp")
        elif art.kind is Kind.UNKNOWN:
            plan.unknown.append(art)

    if options.max_size is not None:
        size = plan.size_before - sum(d.artifact.size for d in pick.chosen.values())
        for g in sorted(groups, key=lambda g: (g.last_used, g.key)):
            if size <= options.max_size:
                break
            left = pick.remaining(g)
            if left == 0:
                continue
            if g.key in pinned:
                pick.group(g, "max-size")  # noted as spared, not chosen
                continue
            if protected(g):
                plan.protected_bytes += left
                continue
            pick.group(g, "max-size")
            size -= left

    # archives first: an interrupted run must not leave an archive without its signature
    order = {Kind.ARCHIVE: 0, Kind.SIGINFO: 1, Kind.SIG: 1, Kind.TEMP: 2, Kind.UNKNOWN: 3}
    plan.deletions = sorted(pick.chosen.values(),
                            key=lambda d: (order[d.artifact.kind], d.path))
    plan.pinned = sorted(pick.spared.values(), key=lambda p: p.path)
    for art in arts:
        if art.path not in pick.chosen:
            plan.kept += 1
            plan.kept_bytes += art.size
    return plan


def _ref_pinned_groups(groups: Iterable[Group], pins: Optional[PinSet]) -> Dict[str, str]:
    """Group key -> the pin that keeps it."""
    if pins is None or not pins.keep:
        return {}
    out: Dict[str, str] = {}
    for g in groups:
        pin = pins.protecting(g)
        if pin is not None:
            out[g.key] = pin
    return out


# --- the comparison ------------------------------------------------------------------------


def _listing(flavours: Tuple[str, ...] = ("oe", "legacy")) -> List[Artifact]:
    generator = gencache()
    entries = []
    for flavour, seed in zip(flavours, (11, 12)):
        entries += generator.plan(2500, seed=seed, flavour=flavour, mtime_spread=120,
                                 now=int(NOW), junk=4, temp=20)
    arts = [make_artifact(e.path, e.size, float(e.mtime)) for e in entries]
    # the same hashes in a second cache below a directory: groups of their own
    arts += [make_artifact("other/" + a.path, a.size, a.mtime - DAY) for a in arts[::9]]
    # hashes that differ only in their last bytes (as the builds of a recipe do not, but a
    # crafted or synthetic mirror may): groups of their own, found past each other
    for i in range(1, 4):
        arts += [make_artifact(a.path.replace(a.hash, a.hash[:56] + f"{i:08x}"), a.size,
                               a.mtime - i * DAY) for a in arts[:600:7] if a.name is not None]
    # bitbake's access-time mark on a few .siginfo
    return [make_artifact(a.path, a.size, a.mtime, NOW - DAY if i % 7 == 0 else None)
            if a.kind is Kind.SIGINFO else a for i, a in enumerate(arts)]


def _summary(plan: CleanPlan) -> Tuple[Any, ...]:
    return (plan.to_dict(), [(d.path, d.rule, d.artifact) for d in plan.deletions],
            [(p.path, p.rule, p.pin, p.artifact) for p in plan.pinned],
            [a.path for a in plan.unknown], list(plan.counts.items()))


OPTIONS = [
    CleanOptions(max_age=30 * DAY),
    CleanOptions(max_age=30 * DAY, max_sig_age=60 * DAY, min_age=0),
    CleanOptions(max_versions=1),
    CleanOptions(max_versions=2, min_age=40 * DAY),
    CleanOptions(max_size=10 * 2**20),
    CleanOptions(max_size=10 * 2**20, min_age=30 * DAY),
    CleanOptions(max_age=90 * DAY, max_size=1, max_versions=3, temp_age=0),
]


def _ordered(arts: List[Artifact], order: str) -> List[Artifact]:
    """The listing as a store may give it: a group's files together or far apart."""
    if order == "shuffled":
        return random.Random(5).sample(arts, len(arts))
    if order == "by-kind":  # every group split: its archive and its signatures far apart
        return sorted(arts, key=lambda a: (a.kind.value, a.path))
    if order == "reversed":
        return arts[::-1]
    return sorted(arts, key=lambda a: a.path) if order == "sorted" else arts


@pytest.mark.parametrize("options", OPTIONS, ids=range(len(OPTIONS)))
@pytest.mark.parametrize("pinned", [False, True], ids=["no-pins", "pins"])
def test_plan_is_the_plan_made_one_object_per_file(options: CleanOptions, pinned: bool) -> None:
    _compare(_listing(), options, pinned)


@pytest.mark.parametrize("options", [OPTIONS[i] for i in (1, 3, 6)], ids=[1, 3, 6])
@pytest.mark.parametrize("order", ["sorted", "shuffled", "by-kind", "reversed"])
def test_plan_is_the_same_whatever_the_order_of_the_listing(options: CleanOptions,
                                                            order: str) -> None:
    """Groups are found whether their files are listed together or far apart."""
    _compare(_ordered(_listing(), order), options, pinned=True)


@pytest.mark.parametrize("options", [OPTIONS[i] for i in (0, 3, 5, 6)], ids=[0, 3, 5, 6])
def test_plan_of_a_mirror_in_one_layout_is_the_same(options: CleanOptions) -> None:
    """An OE mirror in ``hh/hh`` (and another cache below it): the path order is had from
    the catalog's columns, not from paths."""
    arts = _listing(("oe",))
    assert PathOrder(Catalog.of(arts)).usable
    _compare(_ordered(arts, "shuffled"), options, pinned=True)


def _compare(arts: List[Artifact], options: CleanOptions, pinned: bool) -> None:
    pins: Optional[PinSet] = None
    if pinned:
        pins = PinSet(pins=[], now=NOW)
        named = [a.hash for a in arts[::40] if a.name is not None]
        pins.add_keep("--keep", {h: ("pn", "do_task") for h in named})
    expected = _reference_plan(arts, options, NOW, pins)
    assert expected.deletions  # the options choose something on this listing
    assert _summary(plan_clean(Catalog.of(arts), options, NOW, pins)) == _summary(expected)
    assert _summary(plan_clean(iter(arts), options, NOW, pins)) == _summary(expected)


def test_the_listing_has_what_the_grouping_must_tell_apart() -> None:
    """Signatures without archives, the same hash in several groups, and (in the sorted
    listing) most groups' files next to each other, so that both ways to a group are used."""
    arts = sorted(_listing(), key=lambda a: a.path)
    groups = group_artifacts(arts)
    assert any(g.archive is None and g.siginfo is not None for g in groups.values())
    assert any(g.archive is None and g.sig is not None for g in groups.values())
    by_hash: Dict[str, int] = {}
    for g in groups.values():
        first = g.members()[0]
        if first.name is not None:
            by_hash[first.hash] = by_hash.get(first.hash, 0) + 1
    assert max(by_hash.values()) > 1
    assert len({a.hash[:56] for a in arts if a.name is not None}) < len(by_hash)
    together = sum(1 for a, b in zip(arts, arts[1:]) if a.group_key == b.group_key)
    assert together > len(arts) // 4


def test_duplicate_paths_plan_as_their_last_listing() -> None:
    """A store that lists a member of a group twice: the plan is that of the listing without
    the first copy (the copy listed last stands for the file), wherever the copies are."""
    arts = _listing()
    twice = [a for a in arts[::13] if a.kind in (Kind.ARCHIVE, Kind.SIGINFO, Kind.SIG)]
    listing = twice + arts
    options = CleanOptions(max_age=30 * DAY, max_versions=2)
    plan, expected = plan_clean(iter(listing), options, NOW), _reference_plan(arts, options, NOW)
    assert [(d.path, d.rule) for d in plan.deletions] == [
        (d.path, d.rule) for d in expected.deletions]
    assert plan.kept == expected.kept + len(twice)
