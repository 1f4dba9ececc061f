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
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Deque, List, NamedTuple, Optional, Tuple

from ..backends.base import EntryBatch, ListingPart, SplitListing
from ..catalog import Catalog
from ..transfer import Progress

#: Files listed in this process before the rest is split among workers: a smaller mirror is
#: listed in one process (starting workers costs more than it saves there). Tests set 0.
PARALLEL_FILES = 20_000
#: Most worker processes: beyond a few, the disk's metadata rate bounds the walk.
MAX_WORKERS = 4
#: Runs of parts per worker: enough for uneven parts and a moving progress display, few
#: enough that the names' heads are parsed a few times over, not once per directory.
RUNS_PER_WORKER = 3


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
    parts after it, are not in ``ends``."""

    catalog: Catalog
    ends: List[int]
    skips: List[List[Tuple[str, str]]]
    traces: List[bytes]


def list_run(parts: List[ListingPart], report_skips: bool) -> _RunListed:
    """Catalogue ``parts`` one after the other (in a worker process)."""
    catalog = Catalog()
    listed = _RunListed(catalog, [], [], [])
    for part in parts:
        skipped: List[Tuple[str, str]] = []
        try:
            for batch in part.batches(_recorder(skipped) if report_skips else None):
                catalog.extend(*batch)
        except Exception:
            break
        listed.ends.append(len(catalog))
        listed.skips.append(skipped)
        listed.traces.append(part.trace)
    return listed


def _recorder(skipped: List[Tuple[str, str]]) -> Callable[[str, str], None]:
    return lambda path, why: skipped.append((path, why))


def catalog_parts(split: SplitListing, catalog: Catalog, workers: int,
                  on_skip: Optional[Callable[[str, str], None]], progress: Progress) -> None:
    """Add the parts of ``split`` (its head read) to ``catalog``, listed by ``workers``
    processes, in the listing's order."""
    parts = split.parts
    count = min(len(parts), workers * RUNS_PER_WORKER)
    cuts = [len(parts) * i // count for i in range(count + 1)]
    runs = [parts[a:b] for a, b in zip(cuts, cuts[1:])]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, count), mp_context=context)
    try:
        pending: Deque[Future[_RunListed]] = deque(
            pool.submit(list_run, run, on_skip is not None) for run in runs)
        for run in runs:
            future = pending.popleft()  # a run joined is dropped at once: memory
            try:
                listed = future.result()
            except Exception:
                listed = _RunListed(Catalog(), [], [], [])
            _join(split, run, listed, catalog, on_skip, progress)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _join(split: SplitListing, run: List[ListingPart], listed: _RunListed, catalog: Catalog,
          on_skip: Optional[Callable[[str, str], None]], progress: Progress) -> None:
    """Add a run's parts in order: as the worker listed them where the store admits it,
    else listed again here (after the rows admitted before them)."""
    first = row = 0  # rows of listed.catalog admitted and not added yet: first..row

    def flush() -> None:
        if row > first:
            catalog.concat(listed.catalog, first, row)
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
