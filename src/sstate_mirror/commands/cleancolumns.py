"""``clean``'s plan over the catalog's columns: groups, last uses and path order in C-level passes.

A plan of a mirror of millions of files cannot afford a Python statement per file: a loop
over a million rows costs seconds before it does anything. Here every step over all rows is
a pass of the standard library's C loops (``map``, ``itertools.compress``, ``dict``,
``sorted``) over the :class:`~sstate_mirror.catalog.Catalog`'s typed arrays; Python code runs
per rule, per part (head, tail, directory) or for the few rows a catalog keeps whole. It is
hand-written because the only library that vectorises arrays (numpy) would be a large
dependency for a few dozen lines of passes, and its arrays are no smaller than ``array``'s.

The tricks the passes rely on:

* ``deque(map(column.__setitem__, indexes, values), maxlen=0)`` stores without a loop in
  Python; of repeated indexes the last one stays, as a loop would leave it;
* a group's members are row numbers or ``NONE`` (-1), and a column read at -1 gives its last
  element: the copies read through member numbers end with a sentinel (an mtime older than
  any, a size of 0, a rule that counts as chosen);
* ``defaultdict(count().__next__)`` numbers keys in C in the order they are first seen.
"""

from __future__ import annotations

import math
from array import array
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from itertools import compress, count, filterfalse, repeat
from operator import add, ge, itemgetter, lshift, mul, not_, or_, rshift
from struct import iter_unpack
from typing import Callable, Dict, List, Optional, Set, Tuple

from ..catalog import OTHER, Catalog
from ..naming import GROUPED_KINDS, Kind

NONE = -1
#: kind of a row, as a byte
KIND_CODE = {kind: code for code, kind in enumerate(Kind)}
ARCHIVE, SIGINFO, SIG = KIND_CODE[Kind.ARCHIVE], KIND_CODE[Kind.SIGINFO], KIND_CODE[Kind.SIG]
TEMP, UNKNOWN = KIND_CODE[Kind.TEMP], KIND_CODE[Kind.UNKNOWN]
#: rows a grouping pass reads at once: its key buffer is 44 bytes a row
_CHUNK = 1 << 16
_big_endian = partial(int.from_bytes, byteorder="big")
#: rows per part of the hash space grouped at a time (see :class:`Groups`)
PART_ROWS = 1 << 21
first = itemgetter(0)
#: the member slot of a kind (rows of no group land anywhere in the spare group's slots)
_SLOT = bytes(ARCHIVE if b == ARCHIVE else SIGINFO if b == SIGINFO else SIG if b == SIG else 0
              for b in range(256))


def consume(iterator: Iterator[object]) -> None:
    """Run ``iterator`` to its end in C (its items are the ``None`` of ``__setitem__``)."""
    deque(iterator, maxlen=0)


def selector(kinds: Iterable[int]) -> bytes:
    """A ``bytes.translate`` table: 1 for the kind codes given, 0 for every other byte."""
    wanted = set(kinds)
    return bytes(1 if b in wanted else 0 for b in range(256))


class Groups:
    """The artifact groups of a catalog, by number: members, last use and the row kinds.

    A group is an archive with its ``.siginfo`` and ``.sig``: the rows with the same hash,
    head, directory and archive tail (one key of 44 bytes per row, numbered by a dictionary
    in C), or, for the few rows kept whole, the same :attr:`~sstate_mirror.naming.Artifact.
    group_key`. A member listed twice is the copy listed last.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        n = len(catalog)
        tails = catalog.tails
        tail_kind = [KIND_CODE[t.kind] for t in tails] or [UNKNOWN]
        self.kinds = kinds = bytearray(map(tail_kind.__getitem__, catalog.tail))
        for row, art in catalog.others.items():
            kinds[row] = KIND_CODE[art.kind]
        number = count().__next__
        tail_archive = array("I", [t.archive for t in tails] or [0])
        heads, dirs, tails_of = catalog.head, catalog.dir, catalog.tail
        # groups are numbered by a dictionary of one key per group: above a few million rows,
        # it holds a part of the hash space at a time, each part a pass over the rows
        parts = 1 + n // PART_ROWS
        self.group = group = array("i", [NONE]) * n if parts > 1 else array("i")
        firsts = catalog.hashes[0::32]
        # the key of a row: its hash, head, directory and archive tail, as 11 words of 4 bytes
        words = memoryview(catalog.hashes).cast("I")
        try:
            for part in range(parts):
                ids: Dict[bytes, int] = defaultdict(number)
                # the key of every row kept whole: no group (they are grouped below)
                ids[bytes(32) + array("I", [OTHER, 0, tail_archive[0]]).tobytes()] = NONE
                inside = firsts.translate(bytes(
                    int(b * parts >> 8 == part) for b in range(256))) if parts > 1 else b""
                for start in range(0, n, _CHUNK):
                    end = min(n, start + _CHUNK)
                    buf = bytearray(44 * (end - start))
                    key = memoryview(buf).cast("I")
                    for k in range(8):
                        key[k::11] = words[8 * start + k: 8 * end: 8]
                    key[8::11] = heads[start:end]
                    key[9::11] = dirs[start:end]
                    key[10::11] = array("I", map(tail_archive.__getitem__,
                                                 tails_of[start:end]))
                    key.release()
                    keys = map(first, iter_unpack("44s", bytes(buf)))
                    del buf
                    if parts == 1:
                        group.extend(map(ids.__getitem__, keys))
                    else:
                        mine = inside[start:end]
                        consume(map(group.__setitem__, compress(count(start), mine),
                                    map(ids.__getitem__, compress(keys, mine))))
                del ids
        finally:
            words.release()
        spill: Dict[str, int] = defaultdict(number)
        for row, art in catalog.others.items():
            if art.kind in GROUPED_KINDS:
                group[row] = spill[art.group_key]
        self.spilled = bool(spill)
        """Whether some group is made of rows kept whole."""
        del spill
        self.count = number()
        # members and their times: slot 3 * group + kind of one array, by a store per row in
        # listing order (the copy listed last stays); a row of no group lands in the slots
        # of a group past the last
        slots = 3 * (self.count + 1)
        where = array("i" if slots < 1 << 31 else "q", map(add, map(
            mul, group, repeat(3)), kinds.translate(_SLOT)))
        members = array("i", [NONE]) * slots
        consume(map(members.__setitem__, where, count()))
        end = 3 * self.count
        self.archive = members[ARCHIVE:end:3]
        self.siginfo = members[SIGINFO:end:3]
        self.sig = members[SIG:end:3]
        del members
        times = array("d", [-math.inf]) * slots
        consume(map(times.__setitem__, where, catalog.mtime))
        last = [times[ARCHIVE:end:3], times[SIGINFO:end:3], times[SIG:end:3]]
        if catalog.atime is not None:
            times = array("d", [math.nan]) * slots
            infos = kinds.translate(selector([SIGINFO]))
            consume(map(times.__setitem__, compress(where, infos),
                        compress(catalog.atime, infos)))
            last.append(times[SIGINFO:end:3])  # last: NaN is never the max
        del times, where
        self.last_used = array("d", map(max, zip(*last)))

    def __len__(self) -> int:
        return self.count

    def members(self, g: int) -> List[int]:
        """Present members, companions first (as :meth:`~sstate_mirror.naming.Group.members`)."""
        return [r for r in (self.siginfo[g], self.sig[g], self.archive[g]) if r != NONE]

    def any_member(self, groups: Iterable[int]) -> Iterator[int]:
        """A member of each of ``groups`` (they all share the hash, head and directory)."""
        return map(max, map(self.archive.__getitem__, groups),
                   map(self.siginfo.__getitem__, groups), map(self.sig.__getitem__, groups))

    def key(self, g: int) -> str:
        """The group's key: the path of its archive (present or not)."""
        row = max(self.archive[g], self.siginfo[g], self.sig[g])
        catalog = self.catalog
        if catalog.head[row] == OTHER:
            return catalog.others[row].group_key
        return catalog.path(row, tail=catalog.tails[catalog.tail[row]].archive)


class PathOrder:
    """Sort keys of rows that order as their paths do, made without any path.

    The path of a row is ``dir.head + hexdirs + head.text + hash + tail.text``, where
    ``hexdirs`` are the hash's first bytes (``hh/hh/``, ``hh/`` or none, as the directory
    says). In one directory two paths compare by those bytes, then by their head texts (when
    no head text is the beginning of another, their first difference is within them), then
    by hash (64 hex digits, in the order of its bytes), then by tail. Directories compare by
    their head followed by the first character their names can start with, unless a path
    below one can fall between two paths of another (``a/`` and ``a/b/``, or ``x/`` in
    ``hh/hh`` and ``x/`` flat with ``hh``): then :attr:`usable` is False and the caller
    sorts by whole paths. The key is one integer per row:
    ``(dir rank, hexdir bytes, head rank, hash, tail rank, row)``.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        texts = [h.text for h in catalog.heads]
        heads = sorted(range(len(texts)), key=texts.__getitem__)
        self.head_rank = _ranks(heads)
        tails = [t.text for t in catalog.tails]
        self.tail_rank = _ranks(sorted(range(len(tails)), key=tails.__getitem__))
        texts = list(map(texts.__getitem__, heads))
        self.usable = (not any(b.startswith(a) for a, b in zip(texts, texts[1:]))
                       and _dirs_apart(catalog))
        dirs = catalog.dirs
        order = sorted(range(len(dirs)),
                       key=lambda d: dirs[d].head + ("0" if dirs[d].levels else "s"))
        dir_rank = _ranks(order)
        self.dir_top = [r << 16 for r in dir_rank]
        self.dir_shift = [256 - 8 * d.levels for d in dirs]
        self.row_bits = max(1, len(catalog).bit_length())

    def sorted(self, rows: Sequence[int],
               tail_rank: Optional[List[int]] = None) -> array[int]:
        """``rows`` (none kept whole) in the order of their paths, or of the paths with the
        tails ``tail_rank`` gives for each tail (ranks of :attr:`tail_rank`'s order)."""
        keys: List[int] = []
        for start in range(0, len(rows), _CHUNK):  # one key per row; the rest per chunk
            keys += self._keys(rows[start:start + _CHUNK], tail_rank)
        keys.sort()
        return array("q", map(((1 << self.row_bits) - 1).__and__, keys))

    def _keys(self, rows: Sequence[int], tail_rank: Optional[List[int]]) -> Iterator[int]:
        catalog = self.catalog
        ranks = self.tail_rank if tail_rank is None else tail_rank
        hashes = catalog.hashes
        starts = array("q", map(mul, rows, repeat(32)))
        value = list(map(_big_endian, map(hashes.__getitem__, map(
            slice, starts, map(add, starts, repeat(32))))))
        shifts = set(self.dir_shift)
        if len(self.dir_top) == 1:
            prefix = map(rshift, value, repeat(self.dir_shift[0]))
        else:
            where = array("I", map(catalog.dir.__getitem__, rows))
            if len(shifts) == 1:
                prefix = map(rshift, value, repeat(self.dir_shift[0]))
            else:
                prefix = map(rshift, value, map(self.dir_shift.__getitem__, where))
            prefix = map(or_, map(self.dir_top.__getitem__, where), prefix)
        low = self.row_bits + max(1, len(ranks)).bit_length()
        high = low + 256
        top = map(add, map(mul, prefix, repeat(len(self.head_rank))),
                  map(self.head_rank.__getitem__, map(catalog.head.__getitem__, rows)))
        tail = map(or_, map(lshift, map(ranks.__getitem__, map(catalog.tail.__getitem__, rows)),
                            repeat(self.row_bits)), rows)
        return map(or_, map(or_, map(lshift, top, repeat(high)), map(
            lshift, value, repeat(low))), tail)


def _ranks(order: Sequence[int]) -> List[int]:
    out = [0] * len(order)
    consume(map(out.__setitem__, order, count()))
    return out


def _dirs_apart(catalog: Catalog) -> bool:
    """Whether no path below one directory part can fall between two paths of another."""
    dirs = sorted(catalog.dirs)
    for i, a in enumerate(dirs):
        for b in dirs[i + 1:]:
            if not b.head.startswith(a.head):
                break
            if b.head == a.head:
                if a.levels and b.levels:
                    return False  # ``hh/hh/`` and ``hh/`` below the same directory
                continue  # hex digits come before the ``s`` of ``sstate:``
            c = b.head[len(a.head)]
            low, high = ("0", "f") if a.levels else ("s", "s")
            if low <= c <= high:
                return False
    return True


def by_key(groups: Groups, order: PathOrder, chosen: Sequence[int]) -> List[int]:
    """``chosen`` groups in the order of their keys (the paths of their archives)."""
    if not order.usable or groups.spilled:
        return sorted(chosen, key=groups.key)
    tails = groups.catalog.tails
    archive_rank = [order.tail_rank[t.archive] for t in tails]
    rows = array("q", groups.any_member(chosen))
    number = dict(zip(rows, chosen))
    return list(map(number.__getitem__, order.sorted(rows, archive_rank)))


def ties_by_key(groups: Groups, order: PathOrder, ranked: List[int], same: Iterable[bool],
                resort: Callable[[List[int]], List[int]]) -> None:
    """Put in key order, in place, the runs of ``ranked`` that its sort could not tell apart.

    ``ranked`` is sorted (stably) by something that ``resort`` sorts by too; ``same`` says
    for each pair of neighbours whether they are equal in it. Keys are made for the groups in
    such runs only; sorted by key, then ``resort``-ed, they are the runs in their order in
    ``ranked`` (runs are whole, and no two runs are equal), each run in key order.
    """
    tied = bytearray(len(ranked))
    for i in compress(count(), same):
        tied[i] = tied[i + 1] = 1
    if not any(tied):
        return
    at = array("q", compress(count(), tied))
    runs = resort(by_key(groups, order, list(map(ranked.__getitem__, at))))
    consume(map(ranked.__setitem__, at, runs))


class Picks:
    """The rule code chosen per row (0: kept) and the rows pins spare, by rule passes.

    The first rule that picks a file is the one reported. Files of a pinned group are never
    chosen: they are noted as spared instead (``row -> (rule, pin)``).
    """

    def __init__(self, groups: Groups, pinned: Dict[int, str], names: Dict[int, str]) -> None:
        self.groups = groups
        self.rule = bytearray(len(groups.catalog) + 1)
        self.rule[-1] = 255  # what a missing member reads: counts as chosen, never chosen
        self.pinned = pinned
        self.names = names
        self.spared: Dict[int, Tuple[str, str]] = {}

    def rows(self, rows: Iterable[int], code: int) -> None:
        """Choose ``rows`` (NONE: none) not chosen yet, for rule ``code``."""
        rows = rows if isinstance(rows, (list, array)) else array("q", rows)
        rule = self.rule
        consume(map(rule.__setitem__, compress(rows, map(not_, map(rule.__getitem__, rows))),
                    repeat(code)))

    def unpinned(self, chosen: Iterable[int], code: int, companions: int) -> List[int]:
        """Of ``chosen`` groups, those no pin keeps; the files of the others are spared."""
        if not self.pinned:
            return chosen if isinstance(chosen, list) else list(chosen)
        chosen = list(chosen)
        groups, pinned = self.groups, self.pinned
        for g in filter(pinned.__contains__, chosen):
            archive = groups.archive[g]
            for row in groups.members(g):
                rule = code if archive in (NONE, row) else companions
                self.spared.setdefault(row, (self.names[rule], pinned[g]))
        return list(filterfalse(pinned.__contains__, chosen))

    def whole(self, chosen: Iterable[int], code: int, companions: int) -> None:
        """Choose whole groups: an archive by ``code``, its companions by ``companions``; the
        members of a group without archive by ``code``."""
        groups = self.groups
        chosen = self.unpinned(chosen, code, companions)
        self.rows(map(groups.archive.__getitem__, chosen), code)
        with_archive = list(compress(chosen, map(ge, map(groups.archive.__getitem__, chosen),
                                                 repeat(0))))
        if len(with_archive) < len(chosen):
            alone = [g for g in chosen if groups.archive[g] == NONE]
            self.rows(map(groups.siginfo.__getitem__, alone), code)
            self.rows(map(groups.sig.__getitem__, alone), code)
        self.rows(map(groups.siginfo.__getitem__, with_archive), companions)
        self.rows(map(groups.sig.__getitem__, with_archive), companions)

    def file(self, row: int, g: int, code: int) -> None:
        pin = self.pinned.get(g) if self.pinned else None
        if pin is not None:
            self.spared.setdefault(row, (self.names[code], pin))
        elif not self.rule[row]:
            self.rule[row] = code

    def chosen_bytes(self) -> int:
        return sum(compress(self.groups.catalog.size, self.rule))

    def left(self) -> array[int]:
        """Per group, the bytes of its members not chosen yet."""
        groups, rule = self.groups, self.rule
        size = array("q", groups.catalog.size)
        size.append(0)

        def kept(members: array[int]) -> Iterator[int]:
            return map(mul, map(size.__getitem__, members),
                       map(not_, map(rule.__getitem__, members)))

        return array("q", map(add, map(add, kept(groups.archive), kept(groups.siginfo)),
                               kept(groups.sig)))

    def gone(self) -> Iterator[int]:
        """Per group: nonzero when every member is chosen."""
        groups, get = self.groups, self.rule.__getitem__
        return map(min, map(get, groups.archive), map(get, groups.siginfo),
                   map(get, groups.sig))


def aged(ages: array[float], at_least: float) -> Iterator[bool]:
    """Per group: ``max(0, age) >= at_least``."""
    if at_least <= 0:
        return repeat(True, len(ages))
    return map(ge, ages, repeat(at_least))


def first_seen(kinds: bytearray) -> List[int]:
    """The kind codes present in ``kinds`` (one per row), in the order of their first row."""
    first = {code: kinds.find(code) for code in KIND_CODE.values()}
    return sorted((code for code, row in first.items() if row >= 0), key=first.__getitem__)


def deletion_order(catalog: Catalog, groups: Groups, order: PathOrder, rule: bytearray,
                   by_paths: Callable[[Iterable[int]], array[int]]) -> array[int]:
    """The chosen rows by kind (archives first) and path (``by_paths`` when the path order
    cannot be had from the columns)."""
    n = len(catalog)
    chosen = array("q", compress(range(n), rule))
    kinds = groups.kinds
    whole = [row for row in catalog.others if rule[row]]
    if not order.usable or any(kinds[row] <= SIG for row in whole):
        return by_paths(chosen)
    of_kind = bytes(map(kinds.__getitem__, chosen))
    out = order.sorted(array("q", compress(chosen, of_kind.translate(selector([ARCHIVE])))))
    out.extend(order.sorted(array("q", compress(chosen, of_kind.translate(
        selector([SIGINFO, SIG]))))))
    for kind in (TEMP, UNKNOWN):
        out.extend(sorted((row for row in whole if kinds[row] == kind),
                          key=lambda row: (catalog.others[row].path, row)))
    return out


def tasks_of_archives(groups: Groups) -> Set[str]:
    """The tasks that have an archive on the mirror."""
    catalog = groups.catalog
    archives = groups.kinds.translate(selector([ARCHIVE]))
    for row in catalog.others:
        archives[row] = 0  # its tail column says nothing
    out = {catalog.tails[t].task for t in set(compress(catalog.tail, archives))}
    if groups.spilled:
        out.update(art.task for row, art in catalog.others.items()
                   if groups.kinds[row] == ARCHIVE and groups.archive[groups.group[row]] == row)
    return out
