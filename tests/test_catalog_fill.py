"""Catalog.extend reads a batch of names at once: it must build exactly the catalog that
reading the names one at a time builds (the same rows, the same numbered heads, tails and
directories in the same order, the same files kept whole), on any batch: real names from
tests/data, and odd ones (uppercase, short and long hashes, ``:``, ``_`` and line breaks in
odd places, undecodable names, leftovers, names in a directory that is not theirs)."""

from __future__ import annotations

import math
import sys
from array import array
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from sstate_mirror.catalog import OTHER, Catalog, Directory, Head, Tail
from sstate_mirror.naming import (
    GROUPED_KINDS,
    SIG_SUFFIX,
    SIGINFO_SUFFIX,
    Kind,
    head_fields,
    make_artifact,
    parse_name,
)

DATA = Path(__file__).parent / "data"
#: The names of real sstate files bitbake wrote (the dumps of them less their ".txt").
REAL = sorted({p.name[:-4] if p.name.endswith(".txt") else p.name
               for p in DATA.rglob("sstate:*")})
H = "0123456789abcdef" * 4

Batch = Tuple[str, List[str], List[int], List[float], Optional[List[float]]]


# -- the reference: the catalog's fill as it read one name at a time ----------------------
# A frozen copy of that code on purpose (it repeats parts of the catalog's own): the
# reference must not change when the catalog does.

def _ref_new_name(c: Catalog, base: str, i: int, us: int) -> Tuple[Optional[int], Optional[int]]:
    ids = c._ids
    tail = ids.get(base[us:])
    if tail is not None:
        fields = base[:i].split(":")
        if len(fields) < 8:
            return None, None
        ids[base[:i]] = len(c.heads)
        c.heads.append(Head(base[:i], *map(sys.intern, head_fields(fields))))
        return len(c.heads) - 1, tail
    parsed = parse_name(base)
    if parsed is None or parsed.kind not in GROUPED_KINDS or parsed.hash != base[i:us]:
        return None, None
    head = ids.get(base[:i])
    if head is None:
        head = ids[base[:i]] = len(c.heads)
        c.heads.append(Head(base[:i], *map(sys.intern, parsed[:6])))
    archive_text = base[us:]
    if parsed.kind is not Kind.ARCHIVE:
        suffix = SIGINFO_SUFFIX if parsed.kind is Kind.SIGINFO else SIG_SUFFIX
        archive_text = archive_text[: -len(suffix)]
    archive = ids.get(archive_text)
    if archive is None:
        archive = ids[archive_text] = len(c.tails)
        c.tails.append(Tail(archive_text, parsed.task, parsed.ext, Kind.ARCHIVE, archive))
    tail = archive
    if parsed.kind is not Kind.ARCHIVE:
        tail = ids[base[us:]] = len(c.tails)
        c.tails.append(Tail(base[us:], parsed.task, parsed.ext, parsed.kind, archive))
    return head, tail


def _ref_directory(c: Catalog, directory: str, levels: int) -> int:
    where = (Directory(directory[:-6], 2) if levels == 2
             else Directory(directory[:-3], 1) if levels == 1 else Directory(directory, 0))
    dir_ = c._ids.get(where)
    if dir_ is None:
        dir_ = c._ids[where] = len(c.dirs)
        c.dirs.append(where)
    return dir_


def _ref_extend(c: Catalog, directory: str, names: Sequence[str], sizes: Sequence[int],
                mtimes: Sequence[float], atimes: Optional[Sequence[float]] = None) -> None:
    d = directory[:-1] if directory else ""
    n = len(d)
    level2 = d[-5:-3] + d[-2:] if n >= 5 and d[-3] == "/" and (n == 5 or d[-6] == "/") \
        else None
    level1 = d[-2:] if n == 2 or (n > 2 and d[-3] == "/") else None
    dir_ids: List[Optional[int]] = [None, None, None]
    ids, fromhex = c._ids, bytes.fromhex
    first = len(c.head)
    head_col: List[int] = []
    tail_col: List[int] = []
    dir_col: List[int] = []
    raws: List[bytes] = []
    for name in names:
        i = name.rfind(":") + 1
        us = name.find("_", i)
        if i and us - i == 64 and name.startswith("sstate:"):
            h = name[i:us]
            try:
                raw = fromhex(h)
            except ValueError:
                raw = b""
            if len(raw) == 32 and raw.hex() == h:
                head, tail = ids.get(name[:i]), ids.get(name[us:])
                if head is None or tail is None:
                    head, tail = _ref_new_name(c, name, i, us)
                if head is not None and tail is not None:
                    levels = (2 if level2 is not None and h.startswith(level2) else
                              1 if level1 is not None and h.startswith(level1) else 0)
                    dir_ = dir_ids[levels]
                    if dir_ is None:
                        dir_ = dir_ids[levels] = _ref_directory(c, directory, levels)
                    head_col.append(head)
                    tail_col.append(tail)
                    dir_col.append(dir_)
                    raws.append(raw)
                    continue
        k = len(head_col)
        c.others[first + k] = make_artifact(
            directory + name, sizes[k], mtimes[k], None if atimes is None else atimes[k])
        head_col.append(OTHER)
        tail_col.append(0)
        dir_col.append(0)
        raws.append(bytes(32))
    if atimes is not None and c.atime is None and names:
        c.atime = array("d", [math.nan]) * first
    c.head.extend(head_col)
    c.tail.extend(tail_col)
    c.dir.extend(dir_col)
    c.hashes += b"".join(raws)
    c.size.extend(sizes)
    c.mtime.extend(mtimes)
    if c.atime is not None:
        c.atime.extend([math.nan] * len(names) if atimes is None else atimes)


def _state(c: Catalog) -> Dict[str, Any]:
    """Everything a catalog holds (NaN atimes compared by their bytes)."""
    return {
        "heads": c.heads, "tails": c.tails, "dirs": c.dirs, "ids": c._ids,
        "head": c.head.tolist(), "tail": c.tail.tolist(), "dir": c.dir.tolist(),
        "hashes": bytes(c.hashes), "size": c.size.tolist(), "mtime": c.mtime.tolist(),
        "atime": None if c.atime is None else c.atime.tobytes(),
        "others": list(c.others.items()),
        "others_atime": [a.atime for a in c.others.values()],
        "others_name": [a.name for a in c.others.values()],
    }


def _fill(batches: Sequence[Batch]) -> Tuple[Catalog, Catalog]:
    got, want = Catalog(), Catalog()
    for directory, names, sizes, mtimes, atimes in batches:
        got.extend(directory, names, sizes, mtimes, atimes)
        _ref_extend(want, directory, names, sizes, mtimes, atimes)
    return got, want


# -- batches --------------------------------------------------------------------------------

_hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
_odd_hash = st.one_of(
    _hex64.map(str.upper),
    _hex64.map(lambda h: h[:63]),
    _hex64.map(lambda h: h + "a"),
    _hex64.map(lambda h: h[:32]),  # a legacy md5 name
    _hex64.map(lambda h: h[:30] + " " + h[31:]),
    _hex64.map(lambda h: h[:30] + "_" + h[31:]),
    _hex64.map(lambda h: h[:30] + ":" + h[31:]),
    _hex64.map(lambda h: h[:30] + "\n" + h[31:]),
    _hex64.map(lambda h: h[:63] + "g"),
    _hex64.map(lambda h: h[:63] + "\u0660"),  # a digit, but not a hex one
    st.just("INVALID"),
)
_field = st.sampled_from(["zlib", "core2-64-poky-linux", "1.3", "r0", "core2-64", "14", "",
                          "a:b", "x_y", "1.0+git", "all-oe-linux", "allarch", "n\nl",
                          "\udcff", "7"])
_fields = st.lists(_field, min_size=4, max_size=9).map(lambda f: ":".join(f))
_tail = st.sampled_from([
    "_package.tar.zst", "_package.tar.zst.siginfo", "_package.tar.zst.sig",
    "_populate_lic.tgz", "_populate_lic.tgz.siginfo", "_deploy_source_date_epoch.tar.zst",
    "_package.tar.zst.done", "_package.tar.zst.3MgAUEZn", "_package.tar.zst.siginfo.x",
    "_fetch.zip", "_a:b.tar.zst", "_x\n.tar.zst", "_", "", "_a_b.tar.zst", "_.tar.zst",
    "_t.tar.zst\udcff", "_fetch.tgz.sig",
])


@st.composite
def _name(draw: st.DrawFn, hashes: List[str]) -> str:
    """A name: a real one (maybe with another hash), a made one, or an odd file."""
    known = draw(st.booleans())
    h = draw(st.sampled_from(hashes)) if hashes and known else draw(_hex64)
    kind = draw(st.integers(0, 9))
    if kind <= 3 and REAL:
        real = draw(st.sampled_from(REAL))
        if draw(st.booleans()):
            i = real.rfind(":") + 1
            real = real[:i] + h + real[i + 64:]
        return real
    if kind <= 6:
        head = draw(st.sampled_from(["sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:",
                                     "sstate:a::1:r0::14:", "sstate:pv:with:colons:x:1:r0:x:14:"])
                    if draw(st.booleans()) else _fields.map(lambda f: f"sstate:{f}:"))
        return head + h + draw(_tail)
    if kind <= 8:
        return draw(st.one_of(
            _fields.map(lambda f: f"sstate:{f}:") .flatmap(
                lambda head: st.tuples(_odd_hash, _tail).map(lambda t: head + t[0] + t[1])),
            st.just("sstate:" + h + "_package.tar.zst"),
            st.just("Sstate:zlib:a:1:r0:a:14:" + h + "_package.tar.zst"),
            st.just(".sstate:zlib:a:1:r0:a:14:" + h + "_package.tar.zst.Xy12"),
            st.just("zlib:a:1:r0:a:14:" + h + "_package.tar.zst"),
        ))
    return draw(st.sampled_from([
        "README", "index.html", "sigtask.abc123", ".sstate-mirror-0123abcd.tmp",
        "hashserv.db", "\udcff\udcfe", "", "a\nb", "sstate:", ":", "_", "\n",
    ]))


@st.composite
def _batches(draw: st.DrawFn) -> List[Batch]:
    hashes = draw(st.lists(_hex64, max_size=4))
    out: List[Batch] = []
    for _ in range(draw(st.integers(0, 6))):
        names = draw(st.lists(_name(hashes), max_size=12))
        theirs = draw(st.booleans())
        if names and theirs:  # the directory of one of its names' hashes
            h = draw(st.sampled_from(hashes or [H]))
            directory = draw(st.sampled_from([f"{h[:2]}/{h[2:4]}/", f"{h[:2]}/",
                                              f"universal/{h[:2]}/{h[2:4]}/", f"x/{h[:2]}/"]))
        else:
            directory = draw(st.sampled_from(["", "01/23/", "ab/", "AB/CD/", "x/y/", "d//01/23/",
                                              "ab01/23/", "/01/23/", "a\nb/", "\udcff/"]))
        count = len(names)
        sizes = list(range(count))
        mtimes = [1_780_000_000.0 - i for i in range(count)]
        atimes = draw(st.none() | st.just([1_790_000_000.0 + i for i in range(count)]))
        out.append((directory, names, sizes, mtimes, atimes))
    return out


@settings(max_examples=300, deadline=None)
@given(_batches())
def test_a_batch_fills_the_catalog_as_its_names_one_at_a_time(batches: List[Batch]) -> None:
    got, want = _fill(batches)
    assert _state(got) == _state(want)


@settings(max_examples=100, deadline=None)
@given(_batches())
def test_a_filled_catalog_reads_back_what_make_artifact_makes(batches: List[Batch]) -> None:
    got, _ = _fill(batches)
    expected = [make_artifact(directory + name, size, mtime, None if atimes is None else at)
                for directory, names, sizes, mtimes, atimes in batches
                for name, size, mtime, at in zip(names, sizes, mtimes, atimes or sizes)]
    assert [(a.path, a.size, a.mtime, a.kind, a.name, a.atime) for a in got] == \
        [(a.path, a.size, a.mtime, a.kind, a.name, a.atime) for a in expected]


def _sstate(h: str, tail: str = "_package.tar.zst", head: str = "sstate:z:a:1:r0:a:14:") -> str:
    return head + h + tail


H2 = "fedcba9876543210" * 4


def _real_batches() -> List[Batch]:
    """Real names, each directory's in a batch, and the first five batches again."""
    batches: List[Batch] = []
    for directory in sorted({p.parent for p in DATA.rglob("sstate:*")}):
        names = sorted({p.name for p in directory.iterdir() if p.is_file()})
        rel = "/".join(directory.relative_to(DATA).parts) + "/"
        batches.append((rel, names, [1] * len(names), [2.0] * len(names), None))
    return batches + batches[:5]


def test_the_batches_of_a_real_mirror_fill_as_one_name_at_a_time() -> None:
    """Real names, in the directories of their hashes, some of them twice (known parts)."""
    batches = _real_batches()
    got, want = _fill(batches)
    assert len(got) > 300 and len(got.others) < len(got) // 2
    assert _state(got) == _state(want)


def test_odd_batches_fill_as_one_name_at_a_time() -> None:
    """Each batch here takes another way through the batch reader (and one more name)."""
    known = _sstate(H)
    cases: List[List[str]] = [
        [known, _sstate(H2)],  # heads and tails known after the first batch
        [known, _sstate(H2, "_package.tar.zst.done")],  # a leftover with a 64-hex hash
        [known, _sstate(H2, head="sstate:new:a:1:r0:a:14:")],  # a new head, known tail
        [known, _sstate(H2, head="sstate:few:1:r0:")],  # a new head with too few fields
        [known, _sstate(H2, "_new_task.tar.zst.siginfo")],  # a new tail
        [known, _sstate(H, "_x:" + H2 + "_package.tar.zst")],  # a ":" in what follows "_"
        [known, _sstate(H.upper())],  # not lowercase
        [known, _sstate("0123456789" * 6 + "0123")],  # digits only
        [known, "README"],
        [known, "a\n" + known],  # a line break in a name
        [known + "\n" + known],
        [known + "\n" + known, "README"],  # two lines of one name, and a line of none
        [known, ""],
        [known, _sstate(H, head="Xstate:z:a:1:r0:a:14:")],  # a known tail, no "sstate:"
        [_sstate(H, head="sstate:dup:a:1:r0:a:14:")] * 2,  # one new head twice
    ]
    many = [_sstate(H2, tail) for tail in ("_a.tgz", "_b.tgz", "_c.tgz", "_d.tgz", "_e.tgz")]
    for directory in ("01/23/", "fe/dc/", "01/", "", "x/01/23/", "01/23/x/"):
        # each with more names than a batch read name by name has
        batches: List[Batch] = [(directory, many + names, list(range(len(many + names))),
                                 [float(i) for i in range(len(many + names))], None)
                                for names in cases]
        batches.insert(3, ("01/23/", [known], [9], [9.0], [5.0]))  # atimes from here on
        got, want = _fill(batches)
        assert _state(got) == _state(want)


def test_a_directory_one_digit_off_its_names_hashes_is_not_their_hash_levels() -> None:
    names = [_sstate(H, tail) for tail in ("_a.tgz", "_b.tgz", "_c.tgz", "_d.tgz", "_e.tgz")]
    for directory in ("01/23/", "11/23/", "00/23/", "01/13/", "01/22/", "01/", "02/", "x/01/23/"):
        got, want = _fill([(directory, names, [1] * 5, [2.0] * 5, None)])
        assert _state(got) == _state(want)
        assert got.dirs[0].levels == (2 if directory.endswith("01/23/") else
                                      1 if directory == "01/" else 0)


def _fill_together(batches: Sequence[Batch], cuts: Sequence[int]) -> Catalog:
    """``batches`` added by extend_batches, cut into groups at ``cuts``."""
    got = Catalog()
    bounds = sorted({0, len(batches), *cuts})
    for a, b in zip(bounds, bounds[1:]):
        got.extend_batches(batches[a:b])
    return got


@settings(max_examples=300, deadline=None)
@given(_batches(), st.lists(st.integers(0, 6), max_size=3))
def test_several_directories_filled_together_fill_as_each_one_apart(
        batches: List[Batch], cuts: List[int]) -> None:
    _, want = _fill(batches)
    assert _state(_fill_together(batches, cuts)) == _state(want)


def test_the_directories_of_a_real_mirror_filled_together_fill_as_each_one_apart() -> None:
    """Real names in the directories of their hashes (``hh/hh`` and others), some of them
    twice, then odd batches (kept whole, new heads and tails, a directory of other
    directories' names, atimes from some batch on), in groups of every size."""
    batches = _real_batches()
    known = _sstate(H)
    odd = [[known, _sstate(H2, head="sstate:new:a:1:r0:a:14:")], [known, "README"],
           [_sstate(H2, head="sstate:few:1:r0:")], [_sstate(H, "_new_task.tar.zst.siginfo")],
           [_sstate(H2)], [], [known, _sstate(H2, "_package.tar.zst.done")]]
    for where in ("01/23/", "fe/dc/", "01/", "", "x/01/23/"):
        batches += [(where, names, list(range(len(names))),
                     [float(i) for i in range(len(names))], None) for names in odd]
    batches += [(f"{H2[:2]}/{H2[2:4]}/", [_sstate(H2, "_a.tgz"), _sstate(H2, "_b.tgz")],
                 [1, 2], [3.0, 4.0], [5.0, 6.0])] * 3
    _, want = _fill(batches)
    for size in (2, 3, 7, len(batches)):
        got = _fill_together(batches, range(0, len(batches), size))
        assert _state(got) == _state(want)
