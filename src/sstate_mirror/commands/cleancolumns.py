"""``clean``'s plan over the catalog's columns: groups, last uses and path order in numpy.

A plan of a mirror of millions of files cannot afford a Python statement per file: a loop
over a million rows costs seconds before it does anything. Here every step over all rows is
a numpy operation over the :class:`~sstate_mirror.catalog.Catalog`'s typed arrays, read in
place (``np.frombuffer``: no copy); Python code runs per rule, per part (head, tail,
directory) or for the few rows a catalog keeps whole. numpy is used because what a plan does
with millions of rows is sorting (rows into groups by a key of 44 bytes, files into the order
of their paths), gathering and scattering by row or group number and reducing per group:
the standard library does these only through a Python object per row or per key (a
dictionary of keys, a list of integers to sort), numpy does them in C with temporaries of a
few bytes per row.

The passes stay exact whatever the rows hold:

* groups are found by sorting a 64-bit mix of each row's key (:func:`mixed_keys`); every
  two neighbours of equal mix are then compared by their whole keys, and any two that
  differ (a collision) make the pass sort by the whole keys instead;
* the path order sorts one 64-bit key per row made of a path's leading parts and as much of
  its hash as fits (:class:`PathOrder`); rows whose leading parts tie are then put in the
  order of their whole hashes, tails and rows;
* a group's members are the rows listed last for each of its kinds (``np.maximum.at`` of the
  row numbers: the largest is the last), read through their member numbers, ``NONE`` (-1)
  for a missing member, which reads the last element of a column: the columns read that way
  end with a sentinel (a size of 0, a rule that counts as chosen).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, TypeVar, Union

import numpy as np
from numpy.typing import NDArray

from ..catalog import OTHER, Catalog
from ..naming import GROUPED_KINDS, Kind

NONE = -1
#: kind of a row, as a byte
KIND_CODE = {kind: code for code, kind in enumerate(Kind)}
ARCHIVE, SIGINFO, SIG = KIND_CODE[Kind.ARCHIVE], KIND_CODE[Kind.SIGINFO], KIND_CODE[Kind.SIG]
TEMP, UNKNOWN = KIND_CODE[Kind.TEMP], KIND_CODE[Kind.UNKNOWN]
#: the member slot of a kind (rows of no group are left out)
_SLOT = np.array([ARCHIVE if b == ARCHIVE else SIGINFO if b == SIGINFO else SIG if b == SIG
                  else 0 for b in range(256)], np.int64)
#: odd constant of the multiplicative mix of :func:`mixed_keys`
_MIX = np.uint64(0x9E3779B97F4A7C15)
#: pairs of rows compared at a time
_CHUNK = 1 << 18
#: bits of the sort key of a row in path order (see :class:`PathOrder`)
KEY_BITS = 64

Rows = NDArray[np.int64]
#: group numbers of rows: 4 bytes each below 2**31 rows
Numbers = NDArray[Union[np.int32, np.int64]]
Mask = NDArray[np.bool_]
Item = TypeVar("Item", bound=np.generic)


def column(values: Union[bytearray, array[Any]], dtype: type[Item]) -> NDArray[Item]:
    """A catalog's column as a numpy array sharing its memory (read, never written)."""
    return np.frombuffer(values, dtype=dtype)


def hash_words(catalog: Catalog, dtype: str = "=u8") -> NDArray[np.uint64]:
    """The hashes as 4 words of 8 bytes per row (``>u8``: their values in the hash's order)."""
    return np.frombuffer(catalog.hashes, dtype=dtype).reshape(len(catalog), 4)


def mixed_keys(parts: List[NDArray[np.generic]]) -> NDArray[np.uint64]:
    """One 64-bit number per row, equal for rows whose ``parts`` are all equal (and, rarely,
    for others: a collision, which the caller must check for)."""
    out = parts[0].astype(np.uint64)
    for part in parts[1:]:
        out *= _MIX
        out ^= part.astype(np.uint64, copy=False)
    return out


class Groups:
    """The artifact groups of a catalog, by number: members, last use and the row kinds.

    A group is an archive with its ``.siginfo`` and ``.sig``: the rows with the same hash,
    head, directory and archive tail (found by sorting, see the module's doc), or, for the
    few rows kept whole, the same :attr:`~sstate_mirror.naming.Artifact.group_key`. Groups
    are numbered in the order of their first row. A member listed twice is the copy listed
    last.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        n = len(catalog)
        tails = catalog.tails
        tail_kind = np.array([KIND_CODE[t.kind] for t in tails] or [UNKNOWN], np.uint8)
        tail_col = column(catalog.tail, np.uint32)
        self.kinds: NDArray[np.uint8] = tail_kind[tail_col]
        self.whole: Rows = np.fromiter(catalog.others, np.int64, len(catalog.others))
        """The rows kept whole."""
        for row, art in catalog.others.items():
            self.kinds[row] = KIND_CODE[art.kind]
        self.group = self._number(np.array([t.archive for t in tails] or [0], np.uint32))
        """The group of each row (``NONE``: of none)."""
        self.count = int(self.group.max(initial=NONE)) + 1
        spill: Dict[str, int] = {}
        for row, art in catalog.others.items():
            if art.kind in GROUPED_KINDS:
                self.group[row] = self.count + spill.setdefault(art.group_key, len(spill))
        self.spilled = bool(spill)
        """Whether some group is made of rows kept whole."""
        self.count += len(spill)
        # members: slot 3 * group + kind, the largest row number (the last listed) of each,
        # a chunk of rows at a time
        members = np.full(3 * self.count, NONE, np.int64)
        for start in range(0, n, _CHUNK):
            group = self.group[start:start + _CHUNK].astype(np.int64)
            where = group * 3 + _SLOT[self.kinds[start:start + _CHUNK]]
            rows = np.arange(start, start + len(group), dtype=np.int64)
            if (group < 0).any():
                rows, where = rows[group >= 0], where[group >= 0]
            np.maximum.at(members, where, rows)
        slots = members.reshape(self.count, 3)
        self.archive: Rows = slots[:, ARCHIVE].copy()
        self.siginfo: Rows = slots[:, SIGINFO].copy()
        self.sig: Rows = slots[:, SIG].copy()
        del members, slots
        mtime = column(catalog.mtime, np.float64)
        # the newest time of its members, as ``max`` reads them in this order (NaN, an
        # atime not known, never wins)
        last = [self._read(mtime, m, -np.inf) for m in (self.archive, self.siginfo, self.sig)]
        if catalog.atime is not None:
            last.append(self._read(column(catalog.atime, np.float64), self.siginfo, np.nan))
        used = last[0]
        for other in last[1:]:
            used = np.where(other > used, other, used)
        self.last_used: NDArray[np.float64] = used

    @staticmethod
    def _read(values: NDArray[np.float64], rows: Rows, missing: float) -> NDArray[np.float64]:
        return np.where(rows >= 0, values[rows], missing)

    def _number(self, tail_archive: NDArray[np.uint32]) -> Numbers:
        """The group of each row, for the rows the columns hold (``NONE`` for the others),
        numbered in the order of their first row."""
        catalog = self.catalog
        n = len(catalog)
        index = np.int32 if n < 1 << 31 else np.int64
        if not n:
            return np.zeros(0, index)
        words = hash_words(catalog)
        parts: List[NDArray[np.generic]] = [
            words[:, 0], words[:, 1], words[:, 2], words[:, 3], column(catalog.head, np.uint32),
            column(catalog.dir, np.uint32), tail_archive[column(catalog.tail, np.uint32)]]
        mixed = mixed_keys(parts)
        order: Rows = np.argsort(mixed)
        same = np.empty(n - 1, np.bool_)
        for start in range(0, n - 1, _CHUNK):
            sorted_mix = mixed[order[start:start + _CHUNK + 1]]
            same[start:start + _CHUNK] = sorted_mix[1:] == sorted_mix[:-1]
        del mixed
        if not _pairs_equal(words, parts[4:], order, same):  # a collision: by whole keys
            order = np.lexsort(parts[::-1])
            same[:] = True
            for part in parts:
                sorted_part = part[order]
                same &= sorted_part[1:] == sorted_part[:-1]
                del sorted_part
        del parts
        starts = np.concatenate(([True], ~same))
        del same
        firsts = np.minimum.reduceat(order, np.flatnonzero(starts))
        run = np.cumsum(starts, dtype=index)
        np.subtract(run, 1, out=run)
        del starts
        first = np.zeros(n, np.bool_)
        first[firsts] = True
        if len(self.whole):  # their run (one key: no hash, no head) is no group
            first[firsts[run[np.flatnonzero(order == self.whole[0])[0]]]] = False
        number = np.cumsum(first, dtype=index)
        del first
        np.subtract(number, 1, out=number)
        of_run = number[firsts]
        del number, firsts
        group: Numbers = np.empty(n, index)
        group[order] = of_run[run]
        group[self.whole] = NONE
        return group

    def __len__(self) -> int:
        return self.count

    def members(self, g: int) -> List[int]:
        """Present members, companions first (as :meth:`~sstate_mirror.naming.Group.members`)."""
        return [int(r) for r in (self.siginfo[g], self.sig[g], self.archive[g]) if r != NONE]

    def any_member(self, groups: Rows) -> Rows:
        """A member of each of ``groups`` (they all share the hash, head and directory)."""
        return np.maximum(np.maximum(self.archive[groups], self.siginfo[groups]),
                          self.sig[groups])

    def key(self, g: int) -> str:
        """The group's key: the path of its archive (present or not)."""
        row = int(max(self.archive[g], self.siginfo[g], self.sig[g]))
        catalog = self.catalog
        if catalog.head[row] == OTHER:
            return catalog.others[row].group_key
        return catalog.path(row, tail=catalog.tails[catalog.tail[row]].archive)


def _pairs_equal(words: NDArray[np.uint64], parts: List[NDArray[np.generic]], order: Rows,
                 same: Mask) -> bool:
    """Whether every two neighbours in ``order`` that ``same`` says are alike have the same
    hash ``words`` and ``parts`` (read a chunk of pairs at a time: a hash is one read)."""
    pairs = np.flatnonzero(same)
    for start in range(0, len(pairs), _CHUNK):
        at = pairs[start:start + _CHUNK]
        a, b = order[at], order[at + 1]
        if not (words[a] == words[b]).all() or any((p[a] != p[b]).any() for p in parts):
            return False
    return True


class PathOrder:
    """Sorts rows in the order of their paths, made without any path.

    The path of a row is ``dir.head + hexdirs + head.text + hash + tail.text``, where
    ``hexdirs`` are the hash's first bytes (``hh/hh/``, ``hh/`` or none, as the directory
    says). In one directory two paths compare by those bytes, then by their head texts (when
    no head text is the beginning of another, their first difference is within them), then
    by hash (64 hex digits, in the order of its bytes), then by tail. Directories compare by
    their head followed by the first character their names can start with, unless a path
    below one can fall between two paths of another (``a/`` and ``a/b/``, or ``x/`` in
    ``hh/hh`` and ``x/`` flat with ``hh``): then :attr:`usable` is False and the caller
    sorts by whole paths. The order is that of ``(dir rank, hexdir bytes, head rank, hash,
    tail rank, row)``: one 64-bit key per row holds all of it but the hash's end and the row,
    and the runs of rows that tie in what it holds of the hash are sorted by the rest.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        texts = [h.text for h in catalog.heads]
        heads = sorted(range(len(texts)), key=texts.__getitem__)
        self.head_rank = _ranks(heads)
        tails = [t.text for t in catalog.tails]
        self.tail_rank: List[int] = _ranks(sorted(range(len(tails)), key=tails.__getitem__)
                                           ).tolist()
        texts = list(map(texts.__getitem__, heads))
        self.usable = (not any(map(str.startswith, texts[1:], texts[:-1]))
                       and _dirs_apart(catalog))
        dirs = catalog.dirs
        order = sorted(range(len(dirs)),
                       key=lambda d: dirs[d].head + ("0" if dirs[d].levels else "s"))
        self.dir_rank = _ranks(order)
        self.levels = np.array([d.levels for d in dirs], np.uint64)

    def sorted(self, rows: Rows, tail_rank: Optional[Sequence[int]] = None) -> Rows:
        """``rows`` (none kept whole) in the order of their paths, or of the paths with the
        tails ``tail_rank`` gives for each tail (ranks of :attr:`tail_rank`'s order)."""
        rows = np.asarray(rows, np.int64)
        if len(rows) < 2:
            few: Rows = rows.copy()
            return few
        catalog = self.catalog
        ranks = np.asarray(self.tail_rank if tail_rank is None else tail_rank, np.uint64)
        dir_bits = _bits(len(self.dir_rank))
        hex_bits = 16 if self.levels.any() else 0
        head_bits = _bits(len(self.head_rank))
        tail_bits = _bits(len(ranks))
        hash_bits = KEY_BITS - dir_bits - hex_bits - head_bits - tail_bits
        tails = ranks[column(catalog.tail, np.uint32)[rows]]
        if hash_bits < 8:  # parts too many for one key: sort by whole keys
            ordered: Rows = rows[np.lexsort([*self._rest(rows, tails)[::-1], self._top(rows)])]
            return ordered
        where = column(catalog.dir, np.uint32)[rows]
        levels = self.levels[where]
        first = hash_words(catalog, ">u8")[rows, 0].astype(np.uint64)
        key = self.dir_rank[where].astype(np.uint64)
        key <<= np.uint64(hex_bits)
        key |= (first >> np.uint64(48)) >> (np.uint64(16) - np.uint64(8) * levels)
        key <<= np.uint64(head_bits)
        key |= self.head_rank[column(catalog.head, np.uint32)[rows]].astype(np.uint64)
        key <<= np.uint64(hash_bits)
        key |= (first << (np.uint64(8) * levels)) >> np.uint64(64 - min(64, hash_bits))
        key <<= np.uint64(tail_bits)
        key |= tails
        del first, levels, where, tails
        order = np.argsort(key)
        key = key[order]
        rows = rows[order]
        del order
        # neighbours that tie but for the tail: right when of one hash, by tail, then row
        tie = np.flatnonzero((key[1:] >> np.uint64(tail_bits)) == (key[:-1] >> np.uint64(
            tail_bits)))
        if not len(tie):
            return rows
        words = hash_words(catalog)
        a, b = rows[tie], rows[tie + 1]
        right = (words[a] == words[b]).all(axis=1) & ((key[tie] != key[tie + 1]) | (a < b))
        del a, b, words
        wrong = tie[~right]
        if not len(wrong):
            return rows
        # runs of ties with a wrong pair: by (run, hash, tail, row)
        run = np.cumsum(np.concatenate(([0], (key[1:] >> np.uint64(tail_bits)) != (
            key[:-1] >> np.uint64(tail_bits)))), dtype=np.int64)
        at = np.flatnonzero(np.isin(run, run[wrong]))
        sub = rows[at]
        rest = self._rest(sub, ranks[column(catalog.tail, np.uint32)[sub]])
        rows[at] = sub[np.lexsort([*rest[::-1], run[at]])]
        return rows

    def _top(self, rows: Rows) -> NDArray[np.uint64]:
        """Per row: its directory's rank, hexdir bytes and head rank, as one number."""
        catalog = self.catalog
        where = column(catalog.dir, np.uint32)[rows]
        levels = self.levels[where]
        first = hash_words(catalog, ">u8")[rows, 0].astype(np.uint64)
        top = self.dir_rank[where].astype(np.uint64) << np.uint64(16)
        top |= (first >> np.uint64(48)) >> (np.uint64(16) - np.uint64(8) * levels)
        top *= np.uint64(max(1, len(self.head_rank)))
        top += self.head_rank[column(catalog.head, np.uint32)[rows]].astype(np.uint64)
        out: NDArray[np.uint64] = top
        return out

    def _rest(self, rows: Rows, tails: NDArray[np.uint64]) -> List[NDArray[np.generic]]:
        """Per row: the hash's words in its order, the tail rank and the row: what orders
        rows of the same directory, hexdir bytes and head."""
        words = hash_words(self.catalog, ">u8")[rows].astype(np.uint64)
        return [words[:, 0], words[:, 1], words[:, 2], words[:, 3], tails, rows]


def _bits(count: int) -> int:
    """Bits that hold the numbers below ``count``."""
    return max(0, count - 1).bit_length()


def _ranks(order: Sequence[int]) -> Rows:
    out = np.empty(len(order), np.int64)
    out[np.asarray(order, np.int64)] = np.arange(len(order), dtype=np.int64)
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


def by_key(groups: Groups, order: PathOrder, chosen: Rows) -> Rows:
    """``chosen`` groups in the order of their keys (the paths of their archives)."""
    if not order.usable or groups.spilled:
        return np.array(sorted(chosen.tolist(), key=groups.key), np.int64)
    tails = groups.catalog.tails
    archive_rank = [order.tail_rank[t.archive] for t in tails]
    out: Rows = groups.group[order.sorted(groups.any_member(chosen), archive_rank)].astype(
        np.int64)
    return out


def ties_by_key(groups: Groups, order: PathOrder, ranked: Rows, same: Mask,
                resort: Callable[[Rows], Rows]) -> None:
    """Put in key order, in place, the runs of ``ranked`` that its sort could not tell apart.

    ``ranked`` is sorted (stably) by something that ``resort`` sorts by too; ``same`` says
    for each pair of neighbours whether they are equal in it. Keys are made for the groups in
    such runs only; sorted by key, then ``resort``-ed, they are the runs in their order in
    ``ranked`` (runs are whole, and no two runs are equal), each run in key order.
    """
    if not same.any():
        return
    tied = np.zeros(len(ranked), np.bool_)
    tied[:-1] |= same
    tied[1:] |= same
    at = np.flatnonzero(tied)
    ranked[at] = resort(by_key(groups, order, ranked[at]))


class Picks:
    """The rule code chosen per row (0: kept) and the rows pins spare, by rule passes.

    The first rule that picks a file is the one reported. Files of a pinned group are never
    chosen: they are noted as spared instead (``row -> (rule, pin)``).
    """

    def __init__(self, groups: Groups, pinned: Dict[int, str], names: Dict[int, str]) -> None:
        self.groups = groups
        self.rule = np.zeros(len(groups.catalog) + 1, np.uint8)
        self.rule[-1] = 255  # what a missing member reads: counts as chosen, never chosen
        self.pinned = pinned
        self.pinned_groups: Rows = np.fromiter(pinned, np.int64, len(pinned))
        self.names = names
        self.spared: Dict[int, Tuple[str, str]] = {}

    def is_pinned(self, groups: Rows) -> Mask:
        """Per group of ``groups``: whether a pin keeps it."""
        if not self.pinned:
            return np.zeros(len(groups), np.bool_)
        return np.isin(groups, self.pinned_groups)

    def rows(self, rows: Rows, code: int) -> None:
        """Choose ``rows`` (NONE: none) not chosen yet, for rule ``code``."""
        rule = self.rule
        rule[rows[rule[rows] == 0]] = code

    def unpinned(self, chosen: Rows, code: int, companions: int) -> Rows:
        """Of ``chosen`` groups, those no pin keeps; the files of the others are spared."""
        if not self.pinned:
            return chosen
        kept = self.is_pinned(chosen)
        groups, pinned = self.groups, self.pinned
        for g in chosen[kept].tolist():
            archive = groups.archive[g]
            for row in groups.members(g):
                rule = code if archive in (NONE, row) else companions
                self.spared.setdefault(row, (self.names[rule], pinned[g]))
        return chosen[~kept]

    def whole(self, chosen: Rows, code: int, companions: int) -> None:
        """Choose whole groups: an archive by ``code``, its companions by ``companions``; the
        members of a group without archive by ``code``."""
        groups = self.groups
        chosen = self.unpinned(chosen, code, companions)
        archive = groups.archive[chosen]
        self.rows(archive, code)
        with_archive = archive >= 0
        if not with_archive.all():
            alone = chosen[~with_archive]
            self.rows(groups.siginfo[alone], code)
            self.rows(groups.sig[alone], code)
        chosen = chosen[with_archive]
        self.rows(groups.siginfo[chosen], companions)
        self.rows(groups.sig[chosen], companions)

    def file(self, row: int, g: int, code: int) -> None:
        pin = self.pinned.get(g) if self.pinned else None
        if pin is not None:
            self.spared.setdefault(row, (self.names[code], pin))
        elif not self.rule[row]:
            self.rule[row] = code

    def chosen_bytes(self) -> int:
        size = column(self.groups.catalog.size, np.int64)
        return int(size[self.rule[:-1] != 0].sum())

    def left(self) -> Rows:
        """Per group, the bytes of its members not chosen yet."""
        groups, rule = self.groups, self.rule
        size = np.append(column(groups.catalog.size, np.int64), np.int64(0))

        def kept(members: Rows) -> Rows:
            return np.where(rule[members] == 0, size[members], 0)

        return kept(groups.archive) + kept(groups.siginfo) + kept(groups.sig)

    def gone(self) -> Mask:
        """Per group: whether every member is chosen."""
        groups, rule = self.groups, self.rule
        out: Mask = np.minimum(np.minimum(rule[groups.archive], rule[groups.siginfo]),
                               rule[groups.sig]) != 0
        return out


def aged(ages: NDArray[np.float64], at_least: float) -> Mask:
    """Per group: ``max(0, age) >= at_least``."""
    if at_least <= 0:
        return np.ones(len(ages), np.bool_)
    return ages >= at_least


def first_seen(kinds: NDArray[np.uint8]) -> List[int]:
    """The kind codes present in ``kinds`` (one per row), in the order of their first row."""
    raw = kinds.tobytes()
    first = {code: raw.find(code) for code in KIND_CODE.values()}
    return sorted((code for code, row in first.items() if row >= 0), key=first.__getitem__)


def deletion_order(catalog: Catalog, groups: Groups, order: PathOrder, rule: NDArray[np.uint8],
                   by_paths: Callable[[Iterable[int]], Sequence[int]]) -> Rows:
    """The chosen rows by kind (archives first) and path (``by_paths`` when the path order
    cannot be had from the columns)."""
    chosen = np.flatnonzero(rule[:len(catalog)])
    kinds = groups.kinds
    whole = [row for row in catalog.others if rule[row]]
    if not order.usable or any(kinds[row] <= SIG for row in whole):
        return np.asarray(by_paths(chosen.tolist()), np.int64)
    of_kind = kinds[chosen]
    out = [order.sorted(chosen[of_kind == ARCHIVE]),
           order.sorted(chosen[(of_kind == SIGINFO) | (of_kind == SIG)])]
    del of_kind
    for kind in (TEMP, UNKNOWN):
        out.append(np.array(sorted((row for row in whole if kinds[row] == kind),
                                   key=lambda row: (catalog.others[row].path, row)), np.int64))
    return np.concatenate(out)


def tasks_of_archives(groups: Groups) -> Set[str]:
    """The tasks that have an archive on the mirror."""
    catalog = groups.catalog
    archives = groups.kinds == ARCHIVE
    archives[groups.whole] = False  # its tail column says nothing
    present = np.bincount(column(catalog.tail, np.uint32)[archives],
                          minlength=len(catalog.tails))
    out = {catalog.tails[t].task for t in np.flatnonzero(present).tolist()}
    if groups.spilled:
        out.update(art.task for row, art in catalog.others.items()
                   if groups.kinds[row] == ARCHIVE and groups.archive[groups.group[row]] == row)
    return out
