"""A listing of millions of files catalogued on several cores.

One process walks a directory tree at the pace of ``os.scandir`` and a ``stat`` per file,
and cataloguing what it lists (:meth:`~sstate_mirror.catalog.Catalog.extend`) costs half as
much again, while the machine's other cores wait. A store that can split its listing
(:meth:`~sstate_mirror.backends.base.Backend.split_listing`: the directory backend) lists
its first files here, then hands the directories left, in runs, to worker processes; each
worker catalogues its run and sends the catalog back (arrays, and the small tables of the
names' parts: bytes, not an object per file), joined here in the listing's order by
:meth:`~sstate_mirror.catalog.Catalog.concat`.

The catalog is the one listing in one process would give, row for row; the skipped files
are reported in the same order, and a listing that fails raises the same error: a part
the store does not admit (its walk met a directory that the whole walk met before it: a
link), or whose worker failed or died, is listed again here, where it fails, if it still
does, as the whole listing would. Nothing partial is returned.

Hand-written on the standard library's process pool, started by ``forkserver`` (``spawn``
where there is none), never ``fork``: the progress display runs a thread. Runs are few and
contiguous so that each worker's catalog parses a name's head once per run, not per
directory, and so that the parent joins a few large catalogs.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from ..backends.base import EntryBatch, ListingPart, SplitListing
from ..catalog import Catalog, collector_paused
from ..naming import is_hash_directory
from ..transfer import Progress

#: Files listed in this process before the rest is split among workers: a smaller mirror is
#: listed in one process (starting workers costs more than it saves there). Tests set 0.
PARALLEL_FILES = 20_000
#: Most worker processes: beyond a few, the disk's metadata rate bounds the walk.
MAX_WORKERS = 4
#: Runs of parts per worker: enough for uneven parts, a moving progress display and small
#: catalogs in flight (the parent's memory), few enough that joining them costs little.
RUNS_PER_WORKER = 8
#: Names a worker catalogues in one pass, from consecutive directories (see
#: :meth:`~sstate_mirror.catalog.Catalog.extend_batches`): a pass costs per name and per
#: call; a few hundred names cost a quarter less than a directory's dozen at a time, and
#: thousands more again (its lists outgrow the processor's caches).
GATHERED_NAMES = 256
#: Parts per worker, at least, at the directory level the walk splits at.
PARTS_PER_WORKER = 3


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parallel_workers() -> int:
    """How many worker processes a split listing uses (1: none, list in one process)."""
    return min(usable_cpus(), MAX_WORKERS)


class _RunListed(NamedTuple):
    """What a worker made of a run of parts: their rows, one after the other, in
    ``catalog``; ``ends[i]`` is the row after part ``i``'s. A part that failed, and the
    parts after it, are not in ``ends``.

    A worker numbers names' parts in tables it keeps from run to run, its heads by their
    text alone (the parent parses each head once, not once per worker); it sends only the
    entries new since its last run, as ``tables``, and ``catalog`` without tables: the
    parent adds them to the tables it holds for that worker (the runs of one worker are
    joined in the order that worker listed them) and reads the rows with those.
    """

    worker: int
    tables: Catalog
    catalog: Catalog
    ends: List[int]
    skips: List[List[Tuple[str, str]]]
    traces: List[bytes]


#: This worker process's tables of names' parts (see :class:`_RunListed`).
_WORKER_TABLES: Dict[str, Catalog] = {}


def list_run(parts: List[ListingPart], report_skips: bool) -> _RunListed:
    """Catalogue ``parts`` one after the other (in a worker process).

    The cycle collector is paused meanwhile (a walk makes only lists and strings that its
    batches drop at once; collecting rescanned the worker's tables: an eighth of a walk's
    time).
    """
    with collector_paused():
        return _list_run(parts, report_skips)


def _list_run(parts: List[ListingPart], report_skips: bool) -> _RunListed:
    tables = _WORKER_TABLES.setdefault("tables", Catalog(parse_heads=False))
    assert tables.head_texts is not None
    sent = len(tables.head_texts), len(tables.tails), len(tables.dirs)
    catalog = tables.sharing()
    listed = _RunListed(os.getpid(), Catalog(parse_heads=False), catalog, [], [], [])
    for part in parts:
        skipped: List[Tuple[str, str]] = []
        try:
            gathered: List[EntryBatch] = []
            names = 0
            for batch in part.batches(_recorder(skipped) if report_skips else None):
                gathered.append(batch)
                names += len(batch.names)
                if names >= GATHERED_NAMES:
                    catalog.extend_batches(gathered)
                    gathered, names = [], 0
            catalog.extend_batches(gathered)
        except Exception:  # listed again by the parent, which raises it there
            break
        listed.ends.append(len(catalog))
        listed.skips.append(skipped)
        listed.traces.append(part.trace)
    listed.tables.head_texts, listed.tables.tails, listed.tables.dirs = (
        tables.head_texts[sent[0]:], tables.tails[sent[1]:], tables.dirs[sent[2]:])
    catalog.head_texts, catalog.tails, catalog.dirs = [], [], []
    return listed


def _recorder(skipped: List[Tuple[str, str]]) -> Callable[[str, str], None]:
    return lambda path, why: skipped.append((path, why))


def catalog_parts(split: SplitListing, catalog: Catalog, workers: int,
                  on_skip: Optional[Callable[[str, str], None]], progress: Progress,
                  on_rows: Optional[Callable[[Catalog], None]] = None) -> None:
    """Add the parts of ``split`` (its head read) to ``catalog``, listed by ``workers``
    processes, in the listing's order; ``on_rows`` is called with it after each run.

    The cycle collector is paused meanwhile: the join makes the tables of a mirror's parts
    (tens of thousands of heads, each a tuple), whose making set off collections that each
    walked every object alive for nothing (nothing here makes a cycle).
    """
    with collector_paused():
        _catalog_parts(split, catalog, workers, on_skip, progress, on_rows)


def _catalog_parts(split: SplitListing, catalog: Catalog, workers: int,
                   on_skip: Optional[Callable[[str, str], None]], progress: Progress,
                   on_rows: Optional[Callable[[Catalog], None]]) -> None:
    runs = _runs(split.parts, workers * RUNS_PER_WORKER)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        # the server imports what a worker runs, once, before it forks the workers (a
        # worker would import it itself: a tenth of a second of each one's CPU and wait)
        context.set_forkserver_preload(["__main__", __name__])
    workers = min(workers, len(runs))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    tables: Dict[int, Catalog] = {}  # each worker's, by process id
    numbers: Dict[int, List[int]] = {}  # the number here of each head in a worker's tables
    taken: Dict[int, threading.Event] = {}  # by run: its tables taken

    def take_tables(future: Future[_RunListed], done: threading.Event) -> None:
        # the new entries of a worker's tables are added in the order the worker sent
        # them (the order its results arrive in, which is the order of these calls), not
        # the order the runs are joined in
        try:
            if not future.cancelled() and future.exception() is None:
                listed = future.result()
                mine = tables.setdefault(listed.worker, Catalog(parse_heads=False))
                assert mine.head_texts is not None and listed.tables.head_texts is not None
                mine.head_texts += listed.tables.head_texts
                mine.tails += listed.tables.tails
                mine.dirs += listed.tables.dirs
                listed.catalog.head_texts, listed.catalog.tails, listed.catalog.dirs = (
                    mine.head_texts, mine.tails, mine.dirs)
        finally:
            done.set()  # the very event: the joining thread may have taken it out already

    def submit(i: int) -> Future[_RunListed]:
        done = taken[i] = threading.Event()
        future = _submit(pool, runs[i], on_skip is not None)
        future.add_done_callback(lambda f: take_tables(f, done))
        return future

    # the parts below a prefix (a whole hh/hh tree in one directory) start first, wherever
    # they are in the listing: one of them is worth many hash directories, and started
    # last it would leave the other workers idle at the end; the rest go in order, a few
    # runs ahead for each worker, no more: a worker does not wait for the parent to join
    # (on a busy machine), and the parent holds few catalogs at once
    trees = [i for i, run in enumerate(runs) if _whole_tree(run)]
    futures = {i: submit(i) for i in trees}
    ahead = iter([i for i in range(len(runs)) if i not in futures])
    in_order = 0  # runs sent in the listing's order and not joined yet
    try:
        for i, run in enumerate(runs):
            while in_order < 2 * workers + 1:
                k = next(ahead, None)
                if k is None:
                    break
                futures[k] = submit(k)
                in_order += 1
            try:
                listed = futures.pop(i).result()
            except Exception:  # the worker died (killed, out of memory): listed here
                listed = _RunListed(0, Catalog(), Catalog(), [], [], [])
            if i not in trees:
                in_order -= 1
            taken.pop(i).wait()  # set after the result, by the thread that sets it
            _join(split, run, listed, catalog, numbers.setdefault(listed.worker, []),
                  on_skip, progress)
            if on_rows is not None:
                on_rows(catalog)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _runs(parts: List[ListingPart], count: int) -> List[List[ListingPart]]:
    """``parts`` in about ``count`` runs of neighbours, in order; a part below a prefix (see
    :func:`_whole_tree`) is a run of its own."""
    runs: List[List[ListingPart]] = []
    small: List[ListingPart] = []

    def cut() -> None:
        if small:
            pieces = max(1, min(len(small), count * len(small) // len(parts)))
            bounds = [len(small) * i // pieces for i in range(pieces + 1)]
            runs.extend(small[a:b] for a, b in zip(bounds, bounds[1:]))
            small.clear()

    for part in parts:
        if _whole_tree([part]):
            cut()
            runs.append([part])
        else:
            small.append(part)
    cut()
    return runs


def _whole_tree(run: List[ListingPart]) -> bool:
    """Whether ``run`` is one directory that is no hash level (``universal/``, a prefix):
    a whole ``hh/hh`` tree below it, as many files as many hash directories."""
    if len(run) != 1:
        return False
    name = run[0].where.rstrip("/").rpartition("/")[2]
    return bool(name) and not is_hash_directory(name)


def _submit(pool: ProcessPoolExecutor, run: List[ListingPart], report_skips: bool
            ) -> Future[_RunListed]:
    try:
        return pool.submit(list_run, run, report_skips)
    except BrokenExecutor as exc:  # a worker died: the runs left are listed here
        future: Future[_RunListed] = Future()
        future.set_exception(exc)
        return future


def _join(split: SplitListing, run: List[ListingPart], listed: _RunListed, catalog: Catalog,
          numbers: List[int], on_skip: Optional[Callable[[str, str], None]],
          progress: Progress) -> None:
    """Add a run's parts in order: as the worker listed them where the store admits it,
    else listed again here (after the rows admitted before them)."""
    first = row = 0  # rows of listed.catalog admitted and not added yet: first..row

    def flush() -> None:
        if row > first:
            catalog.concat(listed.catalog, first, row, numbers)
            progress.advance(row - first, sum(listed.catalog.size[first:row]))

    for i, part in enumerate(run):
        if i < len(listed.ends) and split.admit(part, listed.traces[i]):
            if on_skip is not None:
                for path, why in listed.skips[i]:
                    on_skip(path, why)
            row = listed.ends[i]
            continue
        flush()
        for batch in split.redo(part):
            add_batch(catalog, batch, progress)
        first = row = listed.ends[i] if i < len(listed.ends) else row
    flush()


def add_batch(catalog: Catalog, batch: EntryBatch, progress: Progress) -> None:
    """Catalogue one batch of a listing, and say so."""
    catalog.extend(*batch)
    progress.advance(len(batch.names), sum(batch.sizes))
