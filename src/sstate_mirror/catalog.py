"""Millions of listed files in a few dozen bytes each: the compact form of the naming model.

A mirror shared by a company's CI holds millions of objects. One :class:`~sstate_mirror.naming.
Artifact` per file (a dataclass, its path string, a parsed :class:`~sstate_mirror.naming.
SstateName` with nine more strings) costs over a kilobyte; ten million of them do not fit on
a CI runner. Yet nearly all of a name is repeated: a mirror holds the builds of a few thousand
recipes, tasks and architectures, and what differs from one file to the next is its hash, its
size and its times. So a :class:`Catalog` stores, per file, only

* the 64-hex hash as 32 bytes (one ``bytearray`` for all files),
* the size, the mtime and (only where a store gives one) the atime, in typed ``array`` columns,
* the numbers of the three parts of its path besides the hash, each stored and parsed once:
  its :class:`Head` (``sstate:PN:ARCHSPEC:PV:PR:PKGARCH:VERSION:``, shared by every task of a
  build), its :class:`Tail` (``_TASK.EXT`` and a companion suffix: a few dozen on a mirror)
  and its :class:`Directory` (the prefix above the ``hh/hh`` levels, and the layout).

Files that are no archive, ``.siginfo`` or ``.sig`` with a 64-hex hash (temporary leftovers,
unknown files, pins, legacy md5 names) are few: they are kept as plain :class:`Artifact`
objects. A catalog is a ``Sequence[Artifact]`` in listing order, so every command can read it
as before (each :class:`Artifact` is made when read, and is equal to the one
:func:`~sstate_mirror.naming.make_artifact` makes); the planners that read millions of rows
(``info``'s summary, ``clean``'s plan) use the columns directly.

It is hand-written, as a part of :mod:`sstate_mirror.naming` (the only code that reads sstate
names), because what it compresses is that model's own structure; ``array`` and ``bytearray``
are the standard library's compact containers.
"""

from __future__ import annotations

import gc
import math
import re
import sys
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain, repeat
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union, cast, overload

import numpy as np
import numpy.typing as npt

from .naming import (
    GROUPED_KINDS,
    SIG_SUFFIX,
    SIGINFO_SUFFIX,
    Artifact,
    Kind,
    SstateName,
    head_fields,
    make_artifact,
    parse_name,
)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run a pass over millions of rows with Python's cycle collector paused (as it was
    after): such a pass makes lists, strings and numbers, never a cycle, yet the objects
    it makes set off collections, each walking every object alive (a catalog's tables, a
    worker's) for nothing; a tenth to a third of the pass's time at a million rows."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: The head number of a row kept as a whole :class:`Artifact`.
OTHER = 0xFFFFFFFF
_NO_TIME = math.nan
_LAYOUTS = {2: "hh/hh", 1: "hh", 0: "flat"}
#: The end of each sstate name in a batch's names joined by line breaks: the ``:`` before
#: the hash, 64 characters that are the hash when they are lowercase hex (checked after,
#: for the whole batch at once), and from the ``_`` after them to the end of the line.
#: What lies between two of them is a name's head, but for its last ``:``.
_HASH_TAIL = re.compile(r":([^:]{64})(_.*)\n?")
_NO_HASH = bytes(32)
#: The numbers of the head, tail and directory columns, as numpy reads them.
_U32 = np.dtype(f"=u{array('I').itemsize}")
#: Batches of this many names or fewer are read one name at a time.
_FEW = 4
#: The head, tail and directory numbers of a batch's rows, and their hashes.
_Columns = Tuple[List[int], List[int], List[int], bytes]
#: A directory's listed files as :meth:`Catalog.extend` takes them: the directory, the
#: names, sizes, mtimes and atimes (an :class:`~sstate_mirror.backends.base.EntryBatch`).
Batch = Tuple[str, Sequence[str], Sequence[int], Sequence[float], Optional[Sequence[float]]]
#: An sstate name's head and tail numbers, its hash and the hash's hex digits.
_Split = Tuple[int, int, bytes, str]


def _first_uses(column: npt.NDArray[Any], wanted: npt.NDArray[np.bool_]) -> List[int]:
    """The distinct values of ``column`` that are ``wanted`` (by value), in the order of
    their first row."""
    return list(dict.fromkeys(column[wanted[column]].tolist()))


#: A head's fields, between NULs (the heads of a batch joined): PV may hold ``:`` (see
#: :func:`~sstate_mirror.naming.head_fields`); a match spans one head, from its start (the
#: NUL before it) to its end (the NUL after it, not consumed: the next head's start).
_HEAD_FIELDS = re.compile(
    r"\0sstate:([^:\0]*):([^:\0]*):([^\0]*):([^:\0]*):([^:\0]*):([^:\0]*):(?=\0)")


def _parse_heads(texts: List[str]) -> List[Head]:
    """The :class:`Head` of each of ``texts`` (``sstate:`` and eight ``:``-fields or more),
    parsed together by one regular expression (one by one where it does not match each)."""
    found = _HEAD_FIELDS.findall("\0" + "\0".join(texts) + "\0")
    if len(found) != len(texts):  # some text is no such head: each alone
        return [_head(text) for text in texts]
    columns = [list(map(sys.intern, column)) for column in zip(*found)]
    return list(map(Head._make, zip(texts, *columns)))


class Head(NamedTuple):
    """``sstate:PN:ARCHSPEC:PV:PR:PKGARCH:VERSION:``, shared by every task of a build."""

    text: str
    pn: str
    archspec: str
    pv: str
    pr: str
    pkgarch: str
    version: str


class Tail(NamedTuple):
    """``_TASK.EXT`` after the hash, with the companion suffix: a few dozen on any mirror."""

    text: str
    task: str
    ext: str
    kind: Kind
    archive: int
    """The tail of the archive this file belongs with (itself for an archive)."""


class Directory(NamedTuple):
    """The directories of a path above its name, less the hash levels."""

    head: str
    """With its trailing ``/`` ('' at the top); the whole directory when ``levels`` is 0."""
    levels: int
    """Hash directory levels between ``head`` and the name: 2 (``hh/hh``), 1 or 0."""

    @property
    def layout(self) -> str:
        """:func:`~sstate_mirror.naming.layout_of` every path with this directory."""
        return _LAYOUTS[self.levels]

    @property
    def prefix(self) -> str:
        """:func:`~sstate_mirror.naming.directory_prefix` of every path with it."""
        return self.head[:-1] if self.head else ""


def _hash_levels(directory: str) -> Tuple[Optional[str], Optional[str]]:
    """The hash's first four, and first two, hex digits that would make ``directory`` (with
    its ``/``, or '') two hash levels, and one, above a name (None: it cannot be)."""
    d = directory[:-1] if directory else ""
    n = len(d)
    level2 = d[-5:-3] + d[-2:] if n >= 5 and d[-3] == "/" and (n == 5 or d[-6] == "/") \
        else None
    level1 = d[-2:] if n == 2 or (n > 2 and d[-3] == "/") else None
    return level2, level1


def _levels(h: str, level2: Optional[str], level1: Optional[str]) -> int:
    """The hash levels of a directory above a name with the hash ``h`` (see ``extend``)."""
    return (2 if level2 is not None and h.startswith(level2) else
            1 if level1 is not None and h.startswith(level1) else 0)


def _head(text: str, fields: Optional[Sequence[str]] = None) -> Head:
    """The :class:`Head` of ``text`` (eight ``:``-fields or more), with its ``fields`` when
    they are parsed already; each field interned (PN, PV, ...: shared by many heads)."""
    if fields is None:
        fields = head_fields(text.split(":"))
    return Head(text, *map(sys.intern, fields))


class Catalog(Sequence[Artifact]):
    """Files of one listing, in listing order, stored by columns (see the module's doc)."""

    def __init__(self, parse_heads: bool = True) -> None:
        self.heads: List[Head] = []
        self.head_texts: Optional[List[str]] = None if parse_heads else []
        """A listing worker's catalog (``parse_heads`` False) numbers its heads by their
        text alone, here, and leaves ``heads`` empty: the process that joins the workers'
        catalogs parses each head once (:meth:`concat`), not once per worker. Such a
        catalog's rows are read only by :meth:`concat`."""
        self.tails: List[Tail] = []
        self.dirs: List[Directory] = []
        self._ids: Dict[object, int] = {}
        self.head = array("I")
        self.tail = array("I")
        self.dir = array("I")
        self.hashes = bytearray()
        self.size = array("q")
        self.mtime = array("d")
        self.atime: Optional[array[float]] = None
        """Only once some file has one (NaN for the others)."""
        self.others: Dict[int, Artifact] = {}

    @classmethod
    def of(cls, artifacts: Iterable[Artifact]) -> Catalog:
        """``artifacts`` as a catalog (itself when it is one): an iterator is consumed once."""
        if isinstance(artifacts, Catalog):
            return artifacts
        out = cls()
        for art in artifacts:
            out.add(art)
        return out

    # -- building ----------------------------------------------------------------------------

    def append(self, path: str, size: int, mtime: float, atime: Optional[float] = None) -> None:
        """Add one listed file (what :func:`~sstate_mirror.naming.make_artifact` reads)."""
        cut = path.rfind("/") + 1
        self.extend(path[:cut], [path[cut:]], [size], [mtime], None if atime is None else [atime])

    def extend(self, directory: str, names: Sequence[str], sizes: Sequence[int],
               mtimes: Sequence[float], atimes: Optional[Sequence[float]] = None) -> None:
        """Add the listed files ``directory + name`` (``directory`` ends with ``/`` or is '').

        A backend lists a directory's files together, so what the directory says of a name
        (is it ``hh/hh`` of its hash, ``hh``, or neither) is worked out here once per
        directory, and the names are read together (see :meth:`_split_batch`).
        """
        count = len(names)
        # below a few names, reading them together costs more than it saves
        columns = self._split_batch([directory], [0], names, sizes, mtimes, atimes) \
            if count > _FEW else None
        if columns is None:
            columns = self._split_names(directory, names, sizes, mtimes, atimes,
                                        *_hash_levels(directory))
        self._add_rows(columns, sizes, mtimes, atimes)

    def extend_batches(self, batches: Sequence[Batch]) -> None:
        """Add several directories' batches (``directory, names, sizes, mtimes, atimes``,
        as :meth:`extend` takes them), in order: the rows and tables :meth:`extend` of each
        makes, read in one pass when :meth:`_split_batch` can take them all.

        A pass costs per name and per call; a mirror of millions in ``hh/hh`` directories
        holds a dozen names per directory, read a quarter cheaper some hundreds at a time.
        """
        batches = [batch for batch in batches if batch[1]]  # an empty one adds nothing
        with_atimes = sum(batch[4] is not None for batch in batches)
        columns = None
        if len(batches) > 1 and with_atimes in (0, len(batches)):
            names = list(chain.from_iterable([batch[1] for batch in batches]))
            sizes = list(chain.from_iterable([batch[2] for batch in batches]))
            mtimes = list(chain.from_iterable([batch[3] for batch in batches]))
            atimes = list(chain.from_iterable([cast(Sequence[float], batch[4])
                                               for batch in batches])) if with_atimes else None
            starts = [0]
            for batch in batches[:-1]:
                starts.append(starts[-1] + len(batch[1]))
            columns = self._split_batch([batch[0] for batch in batches], starts, names, sizes,
                                        mtimes, atimes)
        if columns is None:
            for batch in batches:
                self.extend(*batch)
        else:
            self._add_rows(columns, sizes, mtimes, atimes)

    def _add_rows(self, columns: _Columns, sizes: Sequence[int], mtimes: Sequence[float],
                  atimes: Optional[Sequence[float]]) -> None:
        """Append the rows of a batch read into ``columns``."""
        head_col, tail_col, dir_col, raws = columns
        first = len(self.head)
        count = len(head_col)
        if atimes is not None and self.atime is None and count:
            self.atime = array("d", [_NO_TIME]) * first
        self.head.fromlist(head_col)
        self.tail.fromlist(tail_col)
        self.dir.fromlist(dir_col)
        self.hashes += raws
        # fromlist copies a list at once (extend converts item by item)
        if isinstance(sizes, list) and isinstance(mtimes, list):
            self.size.fromlist(sizes)
            self.mtime.fromlist(mtimes)
        else:
            self.size.extend(sizes)
            self.mtime.extend(mtimes)
        if self.atime is not None:
            if atimes is None:
                self.atime.fromlist([_NO_TIME] * count)
            elif isinstance(atimes, list):
                self.atime.fromlist(atimes)
            else:
                self.atime.extend(atimes)

    def _split_batch(self, directories: List[str], starts: List[int], names: Sequence[str],
                     sizes: Sequence[int], mtimes: Sequence[float],
                     atimes: Optional[Sequence[float]]) -> Optional[_Columns]:
        """What :meth:`_split_names` makes of a batch, made for the whole batch at once; None
        (before anything is added) for a batch it cannot take whole. The batch holds the
        files of ``directories``, those of ``directories[j]`` from the row ``starts[j]``.

        A listing of millions spends much of its time here, so the work per name is left to
        the standard library's C code over the whole batch: one regular expression cuts the
        names, joined by line breaks, into heads, hashes and tails; one ``bytes.fromhex``
        decodes and checks every hash; the numbers of the heads and tails are dictionary
        lookups mapped over the batch. A name whose head and tail are both known is then
        read as :meth:`_split_name` reads it: both are what it would cut (a known head ends
        at ``:`` and a known tail holds none, so the ``:`` cut at is the name's last one).
        Any other name (a head or tail not seen yet, a file that is no archive) is left to
        :meth:`_split_name` itself, in listing order, so that the parts are numbered as one
        name at a time would number them. A batch with a name without a 64-hex hash (rare:
        unknown files, legacy md5 names) or with a line break is left to _split_names whole.
        Each directory's rows are then numbered as :meth:`_split_names` numbers them (see
        :meth:`_dir_column`).
        """
        count = len(names)
        parts = _HASH_TAIL.split("\n".join(names))
        if parts[-1]:
            return None  # a last line without such an end
        text = "".join(parts[1::3])
        try:
            raws = bytes.fromhex(text)
        except ValueError:
            return None
        if len(raws) != 32 * count or raws.hex() != text:
            # not count matches, or not 64 lowercase hex digits each ('fromhex' skips spaces)
            return None
        heads = (":\n".join(parts[0:-1:3]) + ":").split("\n")
        if len(heads) != count:
            # A line break in a name: the lines are not the names. (Otherwise each of the
            # count matches ends one of the count lines, and each name is a head, a hash
            # and a tail.)
            return None
        tails = parts[2::3]
        ids = self._ids

        def directory(k: int) -> str:  # of row k
            return directories[bisect_right(starts, k) - 1]

        head_col: List[Optional[int]] = list(map(ids.get, heads))
        tail_col: List[Optional[int]] = list(map(ids.get, tails))
        whole: List[int] = []  # the rows kept as an Artifact
        if None in tail_col:  # a tail not seen yet (a few dozen in a catalog): name by name
            changed: Dict[int, bytes] = {}
            for k in [k for k in range(count) if head_col[k] is None or tail_col[k] is None]:
                split = self._split_name(names[k])
                if split is None:
                    self._keep_whole(directory(k), names, sizes, mtimes, atimes, k)
                    head_col[k], tail_col[k] = OTHER, 0
                    changed[k] = _NO_HASH
                    whole.append(k)
                else:
                    head_col[k], tail_col[k], raw, _ = split
                    if raw != raws[32 * k: 32 * k + 32]:  # its tail held a ":"
                        changed[k] = raw
            if changed:
                patched = bytearray(raws)
                for k, raw in changed.items():
                    patched[32 * k: 32 * k + 32] = raw
                raws = bytes(patched)
                text = raws.hex()
        elif None in head_col:  # heads not seen yet, with known tails: what _new_name reads
            for k in [k for k, head in enumerate(head_col) if head is None]:
                head = ids.get(heads[k])  # a name before it in the batch may have added it
                if head is None and names[k].startswith("sstate:"):
                    head = self._new_head(heads[k])
                if head is None:
                    self._keep_whole(directory(k), names, sizes, mtimes, atimes, k)
                    head_col[k], tail_col[k] = OTHER, 0
                    whole.append(k)
                else:
                    head_col[k] = head
            if whole:
                patched = bytearray(raws)
                for k in whole:
                    patched[32 * k: 32 * k + 32] = _NO_HASH
                raws = bytes(patched)
        dir_col: List[int] = []
        rows = cast(List[int], head_col)
        bounds = [*starts, count]
        for j, where in enumerate(directories):
            a, b = bounds[j], bounds[j + 1]
            segment = rows[a:b]
            dir_col += self._dir_column(where, text[64 * a: 64 * b], segment,
                                        bool(whole) and segment.count(OTHER) == b - a)
        for k in whole:
            dir_col[k] = 0
        return rows, cast(List[int], tail_col), dir_col, raws

    def _dir_column(self, directory: str, text: str, head_col: List[int], whole: bool
                    ) -> List[int]:
        """The directory numbers of a directory's rows, read together: their heads, their
        hashes' hex digits one after the other, and whether every one is kept whole."""
        count = len(head_col)
        level2, level1 = _hash_levels(directory)
        if not count:
            return []
        if whole:
            return [0] * count
        if level2 is not None and text[0::64] == level2[0] * count and \
                text[1::64] == level2[1] * count and text[2::64] == level2[2] * count and \
                text[3::64] == level2[3] * count:
            return [self._directory(directory, 2)] * count
        if level2 is None and level1 is None:
            return [self._directory(directory, 0)] * count
        # a directory of one hash level, or with names of other directories in it
        dir_ids: List[Optional[int]] = [None, None, None]  # by levels
        dir_col = [0] * count
        for k in range(count):
            if head_col[k] != OTHER:
                levels = _levels(text[64 * k: 64 * k + 64], level2, level1)
                dir_ = dir_ids[levels]
                if dir_ is None:
                    dir_ = dir_ids[levels] = self._directory(directory, levels)
                dir_col[k] = dir_
        return dir_col

    def _split_names(self, directory: str, names: Sequence[str], sizes: Sequence[int],
                     mtimes: Sequence[float], atimes: Optional[Sequence[float]],
                     level2: Optional[str], level1: Optional[str]) -> _Columns:
        """The columns of a batch's rows, one name at a time (see :meth:`extend`)."""
        dir_ids: List[Optional[int]] = [None, None, None]  # by levels
        head_col: List[int] = []
        tail_col: List[int] = []
        dir_col: List[int] = []
        raws: List[bytes] = []
        for k, name in enumerate(names):
            split = self._split_name(name)
            if split is None:
                self._keep_whole(directory, names, sizes, mtimes, atimes, k)
                head_col.append(OTHER)
                tail_col.append(0)
                dir_col.append(0)
                raws.append(_NO_HASH)
                continue
            head, tail, raw, h = split
            levels = _levels(h, level2, level1)
            dir_ = dir_ids[levels]
            if dir_ is None:
                dir_ = dir_ids[levels] = self._directory(directory, levels)
            head_col.append(head)
            tail_col.append(tail)
            dir_col.append(dir_)
            raws.append(raw)
        return head_col, tail_col, dir_col, b"".join(raws)

    def _split_name(self, name: str) -> Optional[_Split]:
        """The head and tail numbers and the hash of an archive, ``.siginfo`` or ``.sig``
        name with a 64-hex hash; None for any other file (kept as an :class:`Artifact`).

        What a row of the columns is: :meth:`_split_batch` reads only names it can prove
        this reads the same way.
        """
        i = name.rfind(":") + 1
        us = name.find("_", i)
        if not (i and us - i == 64 and name.startswith("sstate:")):
            return None
        h = name[i:us]
        try:
            raw = bytes.fromhex(h)
        except ValueError:
            return None
        if len(raw) != 32 or raw.hex() != h:
            return None
        ids = self._ids
        head, tail = ids.get(name[:i]), ids.get(name[us:])
        if head is None or tail is None:
            head, tail = self._new_name(name, i, us)
            if head is None or tail is None:
                return None
        return head, tail, raw, h

    def _directory(self, directory: str, levels: int) -> int:
        """The number of ``directory``'s part when its names' hash has ``levels`` in it."""
        # a Directory is equal to the plain tuple, which is cheaper to make once per batch
        key = ((directory[:-6], 2) if levels == 2
               else (directory[:-3], 1) if levels == 1 else (directory, 0))
        dir_ = self._ids.get(key)
        if dir_ is None:
            where = Directory(*key)
            dir_ = self._ids[where] = len(self.dirs)
            self.dirs.append(where)
        return dir_

    def add(self, art: Artifact) -> None:
        """Add a listed file that is already an :class:`Artifact`."""
        self.append(art.path, art.size, art.mtime, art.atime)
        if self.head[-1] == OTHER:
            self.others[len(self.head) - 1] = art  # the very object: it may carry more

    def _row(self, head: int, tail: int, dir_: int, raw: bytes, size: int, mtime: float,
             atime: Optional[float]) -> None:
        self.head.append(head)
        self.tail.append(tail)
        self.dir.append(dir_)
        self.hashes += raw
        self.size.append(size)
        self.mtime.append(mtime)
        if atime is not None and self.atime is None:
            self.atime = array("d", [_NO_TIME]) * (len(self.head) - 1)
        if self.atime is not None:
            self.atime.append(_NO_TIME if atime is None else atime)

    def _new_name(self, base: str, i: int, us: int) -> Tuple[Optional[int], Optional[int]]:
        """Parse a name with a head or tail not seen yet; their numbers (None: kept whole).

        The parse is separable: with the hash fixed at 64 hex digits, what the head says
        does not depend on the tail, nor the reverse (see :func:`~sstate_mirror.naming.
        parse_name`), so each part is parsed once per catalog.
        """
        ids = self._ids
        tail = ids.get(base[us:])
        if tail is not None:  # a known tail: the head alone decides, by position
            head = self._new_head(base[:i])
            return (None, None) if head is None else (head, tail)
        parsed = parse_name(base)
        if parsed is None or parsed.kind not in GROUPED_KINDS or parsed.hash != base[i:us]:
            return None, None
        head = ids.get(base[:i])
        if head is None:
            head = self._number_head(base[:i], parsed[:6])
        if tail is None:
            archive_text = base[us:]
            if parsed.kind is not Kind.ARCHIVE:
                suffix = SIGINFO_SUFFIX if parsed.kind is Kind.SIGINFO else SIG_SUFFIX
                archive_text = archive_text[: -len(suffix)]
            archive = ids.get(archive_text)
            if archive is None:
                archive = ids[archive_text] = len(self.tails)
                self.tails.append(Tail(archive_text, parsed.task, parsed.ext, Kind.ARCHIVE,
                                       archive))
            tail = archive
            if parsed.kind is not Kind.ARCHIVE:
                tail = ids[base[us:]] = len(self.tails)
                self.tails.append(Tail(base[us:], parsed.task, parsed.ext, parsed.kind,
                                       archive))
        return head, tail

    def _new_head(self, text: str) -> Optional[int]:
        """The number of a head not seen yet, ``sstate:`` to the ``:`` before the hash, of a
        name with a known tail; None when it has too few fields (the name is kept whole)."""
        if self.head_texts is not None:  # parsed where the catalogs are joined
            return None if text.count(":") < 7 else self._number_head(text, None)
        fields = text.split(":")
        if len(fields) < 8:
            return None
        return self._number_head(text, head_fields(fields))

    def _number_head(self, text: str, fields: Optional[Sequence[str]]) -> int:
        """Number a head not seen yet, with its fields (None: parse them from ``text``)."""
        texts = self.head_texts
        if texts is not None:
            head = self._ids[text] = len(texts)
            texts.append(text)
            return head
        head = self._ids[text] = len(self.heads)
        self.heads.append(_head(text, fields))
        return head

    def _keep_whole(self, directory: str, names: Sequence[str], sizes: Sequence[int],
                    mtimes: Sequence[float], atimes: Optional[Sequence[float]], k: int) -> None:
        """Keep the batch's ``k``-th file as an :class:`Artifact` (it is no archive with a
        64-hex hash)."""
        self.others[len(self.head) + k] = make_artifact(
            directory + names[k], sizes[k], mtimes[k], None if atimes is None else atimes[k])

    def sharing(self) -> Catalog:
        """An empty catalog numbering names' parts in this one's tables, and adding to them:
        the runs of one worker process share them, so that it parses each head once."""
        out = Catalog()
        out.heads, out.tails, out.dirs, out._ids = self.heads, self.tails, self.dirs, self._ids
        out.head_texts = self.head_texts
        return out

    # -- joining -----------------------------------------------------------------------------

    def concat(self, other: Catalog, start: int = 0, stop: Optional[int] = None,
               numbers: Optional[List[int]] = None) -> None:
        """Add rows ``start`` to ``stop`` of ``other``: files listed next, read apart (a part
        of the same listing that another process catalogued).

        The rows and tables become what :meth:`extend` would have made of those files here:
        ``other``'s heads, tails and directories not known here are numbered in the order of
        their first row (a tail's archive tail just before it), as :meth:`extend` numbers
        them; a head ``other`` holds as text only (a worker's) is parsed here. The columns
        are renumbered by numpy, in C, with no Python object per row: this is how a listing
        of millions walked on several cores is put together.

        ``numbers``, kept by a caller that joins rows read with the same growing tables
        again and again (a worker's), holds this catalog's number of each of ``other``'s
        heads found so far (-1: none yet), so that each is looked up once.
        """
        stop = len(other.head) if stop is None else min(stop, len(other.head))
        if stop <= start:
            return
        first = len(self.head)
        texts = other.head_texts
        if texts is None:
            texts = [head.text for head in other.heads]
        heads = np.frombuffer(other.head, dtype=_U32)[start:stop]
        tails = np.frombuffer(other.tail, dtype=_U32)[start:stop]
        dirs = np.frombuffer(other.dir, dtype=_U32)[start:stop]
        named = heads != OTHER  # the others' tail and directory are placeholders
        others = [row for row in other.others if start <= row < stop]
        ids = self._ids

        def add_tail(t: int) -> int:
            tail = other.tails[t]
            archive = -1 if tail.archive == t else tail_map[tail.archive]
            if archive < 0 and tail.archive != t:  # its archive's first row comes later
                archive = tail_map[tail.archive] = add_tail(tail.archive)
            mine = ids[tail.text] = len(self.tails)
            self.tails.append(tail._replace(archive=mine if archive < 0 else archive))
            return mine

        def add_dir(d: int) -> int:
            ids[other.dirs[d]] = len(self.dirs)
            self.dirs.append(other.dirs[d])
            return len(self.dirs) - 1

        numbers = [] if numbers is None else numbers
        numbers += map(ids.get, texts[len(numbers):], repeat(-1))
        head_map = np.array([*numbers, OTHER], dtype=np.int64)
        if -1 in numbers:
            new: List[int] = []  # in the order of their first rows
            lately: List[int] = []  # added since they were looked up (by another's rows)
            for h in _first_uses(heads[named], head_map < 0):
                known = ids.get(texts[h])
                if known is None:
                    new.append(h)
                else:
                    numbers[h] = known
                    lately.append(h)
            # a worker's heads are parsed here, together; another catalog's are its own
            # (their fields interned, by extend or by unpickling)
            added = _parse_heads([texts[h] for h in new]) if other.head_texts is not None \
                else [other.heads[h] for h in new]
            for h, head in zip(new, added):
                numbers[h] = ids[head.text] = len(self.heads)
                self.heads.append(head)
            found = np.array(new + lately, dtype=np.int64)
            head_map[found] = [numbers[h] for h in found.tolist()]
        tail_map = [ids.get(t.text, -1) for t in other.tails]  # add_tail numbers archives
        tail_map = self._renumber(tail_map, tails[named], add_tail)
        dir_map = self._renumber([ids.get(d, -1) for d in other.dirs], dirs[named], add_dir)
        # rows kept whole: head OTHER (the map's last), tail and directory 0
        self._append_column(self.head, head_map[np.minimum(heads, len(numbers))])
        self._append_column(self.tail, np.where(named, np.array(tail_map or [0])[tails], 0))
        self._append_column(self.dir, np.where(named, np.array(dir_map or [0])[dirs], 0))
        for row in others:
            self.others[first + row - start] = other.others[row]
        self.hashes += other.hashes[32 * start: 32 * stop]
        self.size.extend(other.size[start:stop])
        self.mtime.extend(other.mtime[start:stop])
        atimes = other.atime[start:stop] if other.atime is not None else None
        if self.atime is None and atimes is not None and any(t == t for t in atimes):  # not NaN
            self.atime = array("d", [_NO_TIME]) * first
        if self.atime is not None:
            self.atime.extend(atimes if atimes is not None
                              else array("d", [_NO_TIME]) * (stop - start))

    @staticmethod
    def _append_column(column: array[int], values: npt.NDArray[Any]) -> None:
        column.frombytes(values.astype(_U32).tobytes())

    @staticmethod
    def _renumber(numbers: List[int], column: npt.NDArray[Any], add: Callable[[int], int]
                  ) -> List[int]:
        """This catalog's numbers for another's table: ``numbers`` has those known here and
        -1 for the others, added by ``add`` in the order of ``column``'s first use of them
        (0 for those unused)."""
        if -1 in numbers:
            unknown = np.array([*[n < 0 for n in numbers], False])  # (a whole row's 0)
            for i in _first_uses(np.minimum(column, len(numbers)), unknown):
                if numbers[i] < 0:
                    numbers[i] = add(i)
            if -1 in numbers:
                numbers = [max(n, 0) for n in numbers]
        return numbers

    def __getstate__(self) -> Dict[str, object]:
        """A catalog pickles with its heads as one string and without its index of parts
        by text (rebuilt from the tables): a worker process sends back a part of a listing
        of millions, with tens of thousands of heads, in a tenth of the time."""
        state = dict(self.__dict__)
        del state["_ids"]
        state["heads"] = "\0".join(chain.from_iterable(self.heads))  # no name holds a NUL
        if self.head_texts is not None:
            state["head_texts"] = "\0".join(self.head_texts)
        return state

    def __setstate__(self, state: Dict[str, object]) -> None:
        heads = state.pop("heads")
        texts = state.pop("head_texts")
        assert isinstance(heads, str) and (texts is None or isinstance(texts, str))
        self.__dict__.update(state)
        fields = heads.split("\0") if heads else []
        width = len(Head._fields)
        for k in range(width):  # PN, PV, ...: shared by many heads, interned as by extend
            fields[k::width] = map(sys.intern, fields[k::width])
        self.heads = list(map(Head._make, zip(*[iter(fields)] * width)))
        self.head_texts = None if texts is None else texts.split("\0") if texts else []
        ids: Dict[object, int] = {head.text: i for i, head in enumerate(self.heads)}
        ids.update((text, i) for i, text in enumerate(self.head_texts or ()))
        ids.update((tail.text, i) for i, tail in enumerate(self.tails))
        ids.update((where, i) for i, where in enumerate(self.dirs))
        self._ids = ids

    # -- reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.head)

    @overload
    def __getitem__(self, index: int) -> Artifact: ...

    @overload
    def __getitem__(self, index: slice) -> List[Artifact]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Artifact, List[Artifact]]:
        if isinstance(index, slice):
            return [self._artifact(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("catalog index out of range")
        return self._artifact(index)

    def __iter__(self) -> Iterator[Artifact]:
        for i in range(len(self.head)):
            yield self._artifact(i)

    def hash_bytes(self, row: int) -> bytes:
        return bytes(self.hashes[32 * row: 32 * row + 32])

    def path(self, row: int, tail: Optional[int] = None) -> str:
        """The path of a row the columns hold (with another ``tail`` when one is given)."""
        h = self.hashes[32 * row: 32 * row + 32].hex()
        where = self.dirs[self.dir[row]]
        if where.levels == 2:
            dirs = f"{where.head}{h[:2]}/{h[2:4]}/"
        elif where.levels == 1:
            dirs = f"{where.head}{h[:2]}/"
        else:
            dirs = where.head
        text = self.tails[self.tail[row] if tail is None else tail].text
        return f"{dirs}{self.heads[self.head[row]].text}{h}{text}"

    def _artifact(self, row: int) -> Artifact:
        head_id = self.head[row]
        if head_id == OTHER:
            return self.others[row]
        head, tail = self.heads[head_id], self.tails[self.tail[row]]
        h = self.hashes[32 * row: 32 * row + 32].hex()
        atime = self.atime[row] if self.atime is not None else _NO_TIME
        name = SstateName(head.pn, head.archspec, head.pv, head.pr, head.pkgarch, head.version,
                          h, tail.task, tail.ext, tail.kind)
        return Artifact(path=self.path(row), size=self.size[row], mtime=self.mtime[row],
                        kind=tail.kind, name=name, atime=None if math.isnan(atime) else atime)

    def where(self, keep: Callable[[Artifact], bool]) -> Catalog:
        """The rows whose artifact ``keep`` accepts, as a catalog sharing this one's parts."""
        out = Catalog()
        out.heads, out.tails, out.dirs, out._ids = self.heads, self.tails, self.dirs, self._ids
        for row in range(len(self.head)):
            art = self._artifact(row)
            if not keep(art):
                continue
            if self.head[row] == OTHER:
                out.others[len(out.head)] = art
            out._row(self.head[row], self.tail[row], self.dir[row], self.hash_bytes(row),
                     self.size[row], self.mtime[row], art.atime)
        return out
