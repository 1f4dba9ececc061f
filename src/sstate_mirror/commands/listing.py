"""Listing a backend into classified artifacts (the input of every plan)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Callable, Dict, FrozenSet, Optional, Pattern, Sequence

from ..backends.base import Backend, Listing
from ..catalog import Catalog
from ..naming import Artifact, make_artifact, member_paths
from ..transfer import Progress, run_parallel
from . import listing_parts


@dataclass(frozen=True)
class Selection:
    """Which artifacts a command looks at: ``--filter`` on PN, ``--arch`` on SSTATE_PKGARCH,
    ``hashes`` on the task hash (``verify --pin``)."""

    pn_filter: Optional[Pattern[str]] = None
    arch: Optional[str] = None
    hashes: Optional[FrozenSet[str]] = None

    @property
    def everything(self) -> bool:
        return self.pn_filter is None and self.arch is None and self.hashes is None

    def matches(self, art: Artifact) -> bool:
        if self.pn_filter is not None and not self.pn_filter.match(art.pn):
            return False
        if self.hashes is not None and art.hash not in self.hashes:
            return False
        return self.arch is None or art.arch == self.arch


#: Rows listed between two calls of a listing's ``on_rows``.
FEED_ROWS = 1 << 16

#: The selection of a command run without ``--filter`` and ``--arch``.
EVERYTHING = Selection()


def list_artifacts(
    backend: Listing,
    *,
    on_skip: Optional[Callable[[str, str], None]] = None,
    progress: Optional[Progress] = None,
    on_rows: Optional[Callable[[Catalog], None]] = None,
) -> Catalog:
    """Every file of ``backend`` (or of a report of its files), read as :class:`Artifact`s.

    The entries the backend yields are consumed into a :class:`~sstate_mirror.catalog.Catalog`
    as they come: no list of every entry or every artifact is held (a mirror of ten million
    objects fits in a few hundred MiB). A store that can split its listing (a directory) and
    holds more than :data:`~sstate_mirror.commands.listing_parts.PARALLEL_FILES` files is
    walked and catalogued on the machine's cores (:mod:`.listing_parts`), to the same
    catalog. A listing that fails raises; callers never see a partial list as if it were
    complete.
    """
    progress = progress or Progress()
    progress.phase(f"listing {backend.url}", 0)
    artifacts = Catalog()
    workers = listing_parts.parallel_workers()
    split = (backend.split_listing(listing_parts.PARALLEL_FILES,
                                   workers * listing_parts.PARTS_PER_WORKER, on_skip)
             if workers > 1 and isinstance(backend, Backend) else None)
    fed = 0
    for batch in backend.list_batches(on_skip=on_skip) if split is None else split.head():
        listing_parts.add_batch(artifacts, batch, progress)
        if on_rows is not None and len(artifacts) - fed >= FEED_ROWS:
            on_rows(artifacts)
            fed = len(artifacts)
    if split is not None and split.parts:
        listing_parts.catalog_parts(split, artifacts, workers, on_skip, progress, on_rows)
    progress.done()
    return artifacts


def remote_artifacts(
    target: Backend,
    wanted: Sequence[Artifact],
    *,
    jobs: int,
    progress: Optional[Progress] = None,
) -> Dict[str, Artifact]:
    """The mirror's copies of ``wanted`` (path -> artifact with the mirror's size and times).

    One listing (then every file of the mirror in ``wanted``'s groups is in the answer), or
    one ``stat`` per file when the store says that costs fewer requests (a CI job with a
    small local cache and a mirror of millions of objects; then only the wanted paths that
    exist are). Any failure raises: a partial answer would read as "missing" and cause
    needless uploads.
    """
    progress = progress or Progress()
    if target.choose_lookup(len(wanted)) == "list":
        return _listed_groups(target, {a.group_key for a in wanted}, progress)
    found: Dict[str, Artifact] = {}
    progress.phase(f"checking {len(wanted)} files on {target.url}", len(wanted))

    def probe(art: Artifact) -> None:
        entry = target.stat(art.path)
        if entry is not None:
            found[art.path] = make_artifact(entry.path, entry.size, entry.mtime, entry.atime)

    failures = run_parallel(list(wanted), probe, jobs=jobs, describe=lambda a: a.path,
                            progress=progress)
    progress.done()
    if failures:
        raise next(iter(failures.values()))
    return found


def _listed_groups(target: Backend, keys: AbstractSet[str],
                   progress: Progress) -> Dict[str, Artifact]:
    """The files of the mirror whose group is one of ``keys``, from one listing.

    Only the few paths a group's members can have (its key, with ``.siginfo`` or ``.sig``)
    are held, and only the entries with one of them are read: what an upload of a few
    thousand files holds does not grow with a mirror of millions.
    """
    paths = {path for key in keys for path in member_paths(key)}
    found: Dict[str, Artifact] = {}
    progress.phase(f"listing {target.url}", 0)
    for entry in target.list():
        if entry.path in paths:
            art = make_artifact(entry.path, entry.size, entry.mtime, entry.atime)
            if art.group_key in keys:
                found[art.path] = art
        progress.advance(1, entry.size)
    progress.done()
    return found


def select(artifacts: Sequence[Artifact], selection: Selection) -> Catalog:
    """The artifacts a ``--filter``/``--arch`` selection keeps (all without one)."""
    catalog = Catalog.of(artifacts)
    if selection.everything:
        return catalog
    return catalog.where(selection.matches)
