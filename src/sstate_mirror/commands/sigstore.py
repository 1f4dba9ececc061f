"""Signature files read through backends, fetched in parallel and remembered for one run.

``analyze`` reads the same signatures many times: a dependency shared by a hundred misses is
compared once per miss by the printed diffs. :class:`SignatureStore` fetches each file once
(through any :class:`~sstate_mirror.backends.base.Backend`), parses it with the safe reader,
and keeps the parsed signature in a least-recently-used cache bounded by count, so memory stays
flat on a mirror of any size. A file that cannot be fetched or read is recorded once, with the
error naming it, and reads as "not there" afterwards: one bad file never stops the analysis.

:class:`UnionFinder` looks a dependency's signature up by ``pn:do_task`` and hash in several
listings at once (the local cache and the mirror) and reads it from the right backend.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from ..backends.base import Backend
from ..errors import SstateMirrorError
from ..naming import Artifact
from ..signatures.bounds import FETCHES
from ..signatures.finder import IndexedFinder
from ..signatures.model import Signature
from ..signatures.reader import DEFAULT_LIMITS, Limits, read_signature
from ..transfer import Progress, as_backend_error, call_with_retries, run_parallel

#: Where a signature file is: (origin name, path relative to that backend's root).
Location = Tuple[str, str]

#: Parsed signatures kept at once. Real ones take tens to hundreds of KiB in memory.
DEFAULT_CAPACITY = 2048


class SignatureStore:
    """Fetch, parse and remember signature files from named backends (thread-safe)."""

    def __init__(self, backends: Mapping[str, Backend], *, limits: Limits = DEFAULT_LIMITS,
                 capacity: int = DEFAULT_CAPACITY, retries: int = 2) -> None:
        self.backends = dict(backends)
        self.limits = limits
        self.capacity = max(1, capacity)
        self.retries = retries
        self._cache: OrderedDict[Location, Signature] = OrderedDict()
        self._lock = threading.Lock()
        #: Files that could not be used, by location, with why (kept for the report).
        self.errors: Dict[Location, SstateMirrorError] = {}
        self.fetches = 0

    def source_of(self, location: Location) -> str:
        """The file's full name for messages: the backend's URL and the path."""
        origin, path = location
        return f"{self.backends[origin].url.rstrip('/')}/{path}"

    def cached(self, location: Location) -> Optional[Signature]:
        with self._lock:
            sig = self._cache.get(location)
            if sig is not None:
                self._cache.move_to_end(location)
            return sig

    def load(self, location: Location) -> Optional[Signature]:
        """The parsed signature, or None when it failed (the error is in :attr:`errors`)."""
        sig = self.cached(location)
        if sig is not None:
            return sig
        with self._lock:
            if location in self.errors:
                return None
        origin, path = location
        backend = self.backends[origin]
        try:
            with FETCHES.hold():  # bytes in flight: FETCH_SLOTS x max_compressed at most
                data = call_with_retries(
                    lambda: backend.read(path, self.limits.max_compressed),
                    retries=self.retries, what=path)
                sig = read_signature(data, source=self.source_of(location),
                                     limits=self.limits)
        except SstateMirrorError as exc:
            with self._lock:
                self.errors[location] = exc
            return None
        except OSError as exc:  # a backend that let one through: still one file's failure
            with self._lock:
                self.errors[location] = as_backend_error(exc, self.source_of(location))
            return None
        with self._lock:
            self.fetches += 1
            self._cache[location] = sig
            self._cache.move_to_end(location)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return sig

    def prefetch(self, locations: Iterable[Location], *, jobs: int,
                 progress: Optional[Progress] = None) -> None:
        """Fetch and parse the files not cached yet, ``jobs`` at a time.

        At most :attr:`capacity` files are fetched ahead: more would evict each other.
        """
        todo: List[Location] = []
        seen = set()
        for loc in locations:
            if loc in seen or self.cached(loc) is not None or loc in self.errors:
                continue
            seen.add(loc)
            todo.append(loc)
        todo = todo[: self.capacity]
        if not todo:
            return
        progress = progress or Progress()
        progress.phase("reading signatures", len(todo))
        run_parallel(todo, self._load_quietly, jobs=jobs, describe=lambda loc: loc[1],
                     progress=progress)
        progress.done()

    def _load_quietly(self, location: Location) -> None:
        self.load(location)


class UnionFinder:
    """A :class:`~sstate_mirror.signatures.finder.SignatureFinder` over several listings.

    Listings are searched in the order given (the local cache first: it is the cheapest to
    read); the indexing of names, including legacy recipe-file ids, is
    :class:`~sstate_mirror.signatures.finder.IndexedFinder`'s.
    """

    def __init__(self, store: SignatureStore,
                 listings: Sequence[Tuple[str, Iterable[Artifact]]]) -> None:
        self.store = store
        self._indexes = [(origin, IndexedFinder(arts)) for origin, arts in listings]

    def locations(self, key: str, hash: str) -> List[Location]:
        return [(origin, path) for origin, index in self._indexes
                for path in index.paths(key, hash)]

    def find(self, key: str, hash: str) -> Optional[Signature]:
        for location in self.locations(key, hash):
            sig = self.store.load(location)
            if sig is not None:
                return sig
        return None
