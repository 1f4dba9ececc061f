"""The compact listing (sstate_mirror.catalog): the same artifacts and the same summary as
one Artifact object per file, on every flavour of name gencache writes and on odd paths."""

from __future__ import annotations

import json
import math
from typing import Dict, List, Set, Union

import pytest

from sstate_mirror.catalog import OTHER, Catalog
from sstate_mirror.commands.info import AGE_BUCKETS, InfoReport, Tally, _add_artifact, summarize
from sstate_mirror.commands.listing import EVERYTHING, Selection, select
from sstate_mirror.naming import Artifact, make_artifact
from synthetic import gencache

NOW = 1_780_000_000.0
H = "0123456789abcdef" * 4


ODD = [
    f"01/23/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H}_package.tar.zst",
    f"01/23/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H}_package.tar.zst.siginfo",
    f"01/23/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H}_package.tar.zst.sig",
    f"01/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H}_package.tgz",  # one level
    f"sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H}_package.tar.zst",  # flat, top
    f"x/y/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H}_package.tar.zst",  # flat
    f"/01/23/sstate:a::1:2:3::14:{H}_fetch.tar.zst.siginfo",  # leading slash
    f"01/23/sstate:zlib:a:b:c:d:14:{H}_package.tar.zst",  # the fewest fields
    "01/23/sstate:pv:with:colons:x:1.0:r0:x:14:" + H + "_package.tar.zst",
    f"d//01/23/sstate:a:b:1:c:d:e:14:{H}_fetch.tar.zst",  # empty directory name
    f"ab01/23/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H}_package.tar.zst",
    KEPT_WHOLE := f"01/23/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H.upper()}"
                  "_package.tar.zst",  # this one and the following are kept whole
    f"01/23/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H[:32]}_package.tar.zst",
    f"01/23/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{H}_package.tar.zst.done",
    "01/23/sstate:zlib::1:r0::14:" + H[:-2] + "g0_fetch.tar.zst",
    "01/23/sstate:zlib::1:r0::14:" + H[:62] + " 0_fetch.tar.zst",
    ".sstate-mirror/pins/release.json",
    "README",
    "hashserv.db",
]


def _listing() -> List[Artifact]:
    generator = gencache()
    entries = []
    for flavour, seed in (("oe", 1), ("isar", 2), ("legacy", 3)):
        entries += generator.plan(1500, seed=seed, flavour=flavour, mtime_spread=400,
                                 now=int(NOW), junk=5)
    arts = [make_artifact(e.path, e.size, float(e.mtime)) for e in entries]
    arts += [make_artifact(p, i, NOW - i * 1000.0, NOW if i % 2 else None)
             for i, p in enumerate(ODD)]
    return arts


def _fields(art: Artifact) -> tuple:  # type: ignore[type-arg]
    return (art.path, art.size, art.mtime, art.kind, art.name, art.atime)


def test_catalog_reads_back_every_artifact_as_make_artifact_makes_it() -> None:
    arts = _listing()
    catalog = Catalog()
    for art in arts:
        catalog.append(art.path, art.size, art.mtime, art.atime)
    assert len(catalog) == len(arts)
    assert [_fields(a) for a in catalog] == [_fields(a) for a in arts]
    assert _fields(catalog[-1]) == _fields(arts[-1]) and _fields(catalog[3]) == _fields(arts[3])
    # the columns hold nearly all of them: names are stored once per head and tail
    assert len(catalog.others) < len(arts) // 50
    assert len(catalog.heads) < len(arts) // 5 and len(catalog.tails) < 300


def test_odd_names_are_kept_whole() -> None:
    catalog = Catalog.of(make_artifact(p, 1, NOW) for p in ODD)
    whole = {catalog[i].path for i, h in enumerate(catalog.head) if h == OTHER}
    assert whole == set(ODD[ODD.index(KEPT_WHOLE):])


def _reference(arts: List[Artifact]) -> InfoReport:
    """The summary made one Artifact at a time (what summarize did before the catalog)."""
    report = InfoReport(now=NOW)
    for _, label in AGE_BUCKETS:
        report.by_age[label] = Tally()
    archives: Set[Union[bytes, str]] = set()
    siginfo: Set[str] = set()
    for art in arts:
        _add_artifact(report, art, archives, siginfo)
    report.archives_without_siginfo = sum(1 for key in archives if key not in siginfo)
    return report


def test_summary_of_a_catalog_is_the_summary_of_its_artifacts() -> None:
    arts = _listing()
    expected = _reference(arts).to_dict(top=1000, detail=True)
    got = summarize(Catalog.of(arts), NOW).to_dict(top=1000, detail=True)
    assert json.dumps(got) == json.dumps(expected)  # the same keys in the same order
    assert got["archives_without_siginfo"] > 0


@pytest.mark.parametrize("selection", [
    Selection(arch="core2-64"),
    Selection(hashes=frozenset({H})),
])
def test_select_keeps_what_the_selection_matches(selection: Selection) -> None:
    arts = _listing()
    picked = select(Catalog.of(arts), selection)
    assert [_fields(a) for a in picked] == [_fields(a) for a in arts if selection.matches(a)]
    assert len(picked) > 0
    assert select(picked, EVERYTHING) is picked


def test_atime_column_appears_with_the_first_atime() -> None:
    catalog = Catalog()
    catalog.append(ODD[0], 1, NOW)
    assert catalog.atime is None
    catalog.append(ODD[1], 1, NOW, NOW - 5)
    assert catalog.atime is not None and math.isnan(catalog.atime[0])
    assert [a.atime for a in catalog] == [None, NOW - 5]


def test_summary_reads_an_iterator_once() -> None:
    arts = _listing()
    counts: Dict[str, int] = {"read": 0}

    def stream():  # type: ignore[no-untyped-def]
        for art in arts:
            counts["read"] += 1
            yield art

    assert summarize(stream(), NOW).total.files == len(arts)
    assert counts["read"] == len(arts)
