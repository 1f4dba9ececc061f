"""How a WebDAV mirror is listed, and what the backend remembers of its collections.

``PROPFIND Depth: infinity`` where the server allows it (one streamed request; Apache
refuses it by default with 403), else a walk of ``Depth: 1`` requests, pipelined (or
parallel through httpx). A ``Depth: infinity`` answer cut short (Apache's, when a clean
removes a collection during its walk) goes on as a walk. The collections a listing or an
upload saw are remembered (uploads need no ``MKCOL`` for them), indexed by parent so that
forgetting a pruned one costs what was below it; the files per collection a complete
listing saw tell pruning which collections cannot be empty.

A ``Depth: infinity`` listing also asks each file's entity tag (``getetag``: a few dozen
bytes an entry, read by the same expat handlers) and remembers it, so that a touch by copy
can make its ``MOVE`` conditional on the tag the listing saw instead of asking for it
(:mod:`.davtouch`: two requests a file instead of three). A ``Depth: 1`` walk asks too
until the first answer shows whether the server gives tags at all (Apache does, also with
its default ``DavDepthInfinity Off``; nginx does not, and cannot touch by copy anyway: from
its second request on, its answers stay as small as before). At most
:data:`MAX_REMEMBERED_ETAGS` tags are kept (about 100 bytes each); a file beyond them is
touched with one ``PROPFIND`` more.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Deque, Dict, List, Optional, Set, Tuple, cast

import httpx

from .. import events
from ..errors import NotFoundError, PermanentError, TransientError
from .base import BackendOptions, Entry, SkipCallback, check_relative_path
from .daverrors import AnyResponse, no_dav_or
from .davpaths import split_rel
from .davtransport import DavTransport
from .davxml import PROPFIND_BODY, PROPFIND_ETAG_BODY, DavResponse, parse_http_date
from .httppipe import Pipeline

#: Entity tags a listing remembers for touch (memory is bounded: about 100 bytes each).
MAX_REMEMBERED_ETAGS = 1_000_000


class DavListing(DavTransport):
    """Listing and the memory of collections (see the module docstring)."""

    #: Parallel PROPFIND requests of a Depth: 1 walk without pipelining.
    walk_concurrency = 8
    #: Pipelined connections of a walk.
    walk_connections = 4

    def __init__(self, url: str, options: BackendOptions) -> None:
        super().__init__(url, options)
        self._known_collections: Set[Tuple[str, ...]] = set()
        #: the known collections by parent, so that forgetting one and what is below it
        #: costs what is below it, not a scan of every collection the listing saw
        self._known_children: Dict[Tuple[str, ...], Set[Tuple[str, ...]]] = {}
        #: files per collection as the last complete listing saw them (minus what this
        #: backend deleted since): a collection known to hold files is not probed for pruning
        self._file_counts: Dict[str, int] = {}
        self._infinity: Optional[bool] = None  # unknown until the first listing
        #: the entity tag of each file as the last Depth: infinity listing saw it (touch)
        self._listed_etags: Dict[str, str] = {}
        #: whether the server gives entity tags in a walk's answers (None: not known yet)
        self._walk_etags: Optional[bool] = None

    def list(self, prefix: str = "", on_skip: Optional[SkipCallback] = None) -> Iterator[Entry]:
        counts: Dict[str, int] = {}
        for entry in self._list(prefix):
            parent = entry.path.rsplit("/", 1)[0] if "/" in entry.path else ""
            counts[parent] = counts.get(parent, 0) + 1
            yield entry
        # only a listing that ran to its end says how many files each collection holds
        with self._lock:
            rel = prefix.strip("/")
            for key in [k for k in self._file_counts if not rel or k == rel
                        or k.startswith(rel + "/")]:
                del self._file_counts[key]
            self._file_counts.update(counts)

    def _list(self, prefix: str) -> Iterator[Entry]:
        rel = prefix.strip("/")
        if rel:
            check_relative_path(rel)
        if self._infinity is not False:
            response = self._propfind(rel, "infinity", True, PROPFIND_ETAG_BODY)
            status = response.status_code
            if status == 207:
                self._infinity = True
                seen = array("q")  # what the answer listed, 8 bytes a file (a hash)
                try:
                    for entry in self._list_infinity(response, rel):
                        seen.append(hash(entry.path))
                        yield entry
                    return
                except TransientError as exc:
                    # Apache cuts the answer short when a collection vanishes during its
                    # walk (a clean running meanwhile): the Depth: 1 walk, whose requests
                    # are each retried, lists the rest
                    events.notice("%s: the Depth: infinity listing broke off (%s); walking with"
                             " Depth: 1", self.url, exc)
                listed = set(seen)
                del seen
                for entry in self._walk(rel):
                    if hash(entry.path) not in listed:
                        yield entry
                return
            if status in (400, 403, 409, 412, 501):
                # 403 propfind-finite-depth (Apache, nginx), 400/501 (servers without
                # infinity); if the status meant something else, Depth: 1 says so below.
                response.close()
                events.debug("%s refuses PROPFIND Depth: infinity (%d), walking with Depth: 1",
                          self.url, status)
                self._infinity = False
            elif status == 404:
                response.close()
                if rel:
                    return  # nothing below this prefix
                raise NotFoundError(f"the mirror {self.url} does not exist on the server (404)",
                                    url=self.url, hint="check the URL; an upload creates it")
            else:
                raise no_dav_or(self._fail(response, f"cannot list {rel or self.url}",
                                            rel or None), response, self.url)
        yield from self._walk(rel)

    def _list_infinity(self, response: httpx.Response, rel: str) -> Iterator[Entry]:
        for item in self._multistatus(response, rel, self.max_stream_bytes):
            entry = self._entry(item, rel)
            if entry is not None:
                yield entry

    def _entry(self, item: DavResponse, request_rel: str, path: Optional[str] = None
               ) -> Optional[Entry]:
        """A file entry, or None for collections (remembered as existing)."""
        if path is None:
            path = self.paths.rel_from_href(item.href, request_rel)
        if item.status is not None and not 200 <= item.status < 300:
            raise PermanentError(
                f"{self.url}: the server could not list {path or 'the root'} (status"
                f" {item.status}); the listing would be incomplete",
                url=self.url, path=path or None,
            )
        if item.is_collection:
            self._remember_collection(tuple(self.paths.base_segments + split_rel(path)))
            return None
        if not path:
            raise PermanentError(f"{self.url} is a file, not a collection", url=self.url)
        if item.size is None or item.mtime is None:
            raise PermanentError(
                f"{self.url}: the server gave no size or no time for {path}",
                url=self.url, path=path,
                hint="the server must return getcontentlength and getlastmodified"
                " (or creationdate) in PROPFIND",
            )
        if item.etag is not None and len(self._listed_etags) < MAX_REMEMBERED_ETAGS:
            self._listed_etags[path] = item.etag  # one dict store: atomic, no lock needed
        return Entry(path, item.size, item.mtime)

    def _walk(self, rel: str) -> Iterator[Entry]:
        """Depth: 1 PROPFINDs, several at a time, over the whole tree below ``rel``."""
        with self._pipeline(self.walk_connections) as pipe:
            if pipe is not None:
                yield from self._walk_pipelined(rel, pipe)
                return
        workers = max(1, self.walk_concurrency)
        todo: Deque[str] = deque([rel])
        inflight: Set[Future[Tuple[List[Entry], List[str]]]] = set()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="propfind")
        try:
            while todo or inflight:
                while todo and len(inflight) < 2 * workers:
                    collection = todo.pop()
                    inflight.add(pool.submit(self._list_collection, collection,
                                             collection == rel))
                done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    files, children = future.result()
                    todo.extend(children)
                    yield from files
        finally:
            for future in inflight:
                future.cancel()
            pool.shutdown(wait=True)

    def _walk_pipelined(self, rel: str, pipe: Pipeline) -> Iterator[Entry]:
        pipe.submit(self._propfind_request(rel, rel, self._walk_body()))
        for request, outcome in pipe.results():
            collection = cast(str, request.tag)
            answer = self._settle(pipe, request, outcome,
                                  f"cannot list {collection or 'the mirror root'}",
                                  collection or None)
            if answer.overflow:  # too big to hold: list this one streamed, on its own
                files, children = self._list_collection(collection, collection == rel)
            else:
                files, children = self._collection(answer, collection, collection == rel)
            for child in children:
                pipe.submit(self._propfind_request(child, child, self._walk_body()))
            yield from files

    def _list_collection(self, rel: str, is_start: bool) -> Tuple[List[Entry], List[str]]:
        return self._collection(self._propfind(rel, "1", True, self._walk_body()), rel,
                                is_start)

    def _walk_body(self) -> bytes:
        """A walk's PROPFIND body: with ``getetag`` unless the server is known not to give
        one (module docstring)."""
        return PROPFIND_BODY if self._walk_etags is False else PROPFIND_ETAG_BODY

    def _collection(self, response: AnyResponse, rel: str, is_start: bool
                    ) -> Tuple[List[Entry], List[str]]:
        """The files and child collections a Depth: 1 answer about ``rel`` names."""
        if response.status_code == 404:
            response.close()
            if is_start and not rel:
                raise NotFoundError(f"the mirror {self.url} does not exist on the server (404)",
                                    url=self.url)
            return [], []  # a prefix that is not there, or a collection pruned meanwhile
        files: List[Entry] = []
        children: List[str] = []
        depth = len(split_rel(rel))
        for item in self._multistatus(response, rel, self.max_xml_bytes):
            if self._walk_etags is None:  # the first entry of the first answer tells
                self._walk_etags = item.etag is not None
            path = self.paths.rel_from_href(item.href, rel)
            if len(split_rel(path)) != depth + 1:
                continue  # the collection itself, or deeper (a server ignoring Depth: 1)
            if item.is_collection:
                self._remember_collection(tuple(self.paths.base_segments + split_rel(path)))
                children.append(path)
                continue
            entry = self._entry(item, rel, path)
            if entry is not None:
                files.append(entry)
        return files, children

    def stat(self, path: str) -> Optional[Entry]:
        check_relative_path(path)
        response = self._send("HEAD", self.paths.url_of(path), what=f"cannot stat {path}",
                              path=path, headers={"Accept-Encoding": "identity"})
        response.close()
        status = response.status_code
        if status in (404, 410) or 300 <= status < 400:
            return None  # 3xx: a collection (the server wants a trailing slash)
        if status in (403, 405):
            return self._propfind_entry(path)  # a collection without listing, or no HEAD
        if status != 200:
            raise self._fail(response, f"cannot stat {path}", path)
        length = response.headers.get("Content-Length")
        mtime = parse_http_date(response.headers.get("Last-Modified") or "")
        if length is not None and length.isdigit() and mtime is not None:
            return Entry(path, int(length), mtime)
        return self._propfind_entry(path)

    def _propfind_entry(self, path: str) -> Optional[Entry]:
        response = self._propfind(path, "0", False)
        if response.status_code == 404:
            response.close()
            return None
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        result: Optional[Entry] = None
        for item in self._multistatus(response, parent, self.max_xml_bytes):
            if self.paths.rel_from_href(item.href, parent) == path and not item.is_collection:
                result = self._entry(item, parent)
        return result

    def _remember_collection(self, segments: Tuple[str, ...]) -> None:
        """Note that a collection exists (no MKCOL needed); safe from several threads.

        It is linked below each of its parents, remembered or not, so that forgetting any
        of them forgets it too: another thread may have forgotten a parent (after a 409)
        between this one learning that the collection exists and noting it here.
        """
        with self._lock:
            self._known_collections.add(segments)
            child = segments
            while child:
                siblings = self._known_children.setdefault(child[:-1], set())
                if child in siblings:
                    break
                siblings.add(child)
                child = child[:-1]

    def _forget_collection(self, segments: Tuple[str, ...]) -> None:
        """Forget a deleted collection and every known collection below it."""
        with self._lock:
            if segments:
                self._known_children.get(segments[:-1], set()).discard(segments)
            todo = [segments]
            while todo:
                current = todo.pop()
                self._known_collections.discard(current)
                todo.extend(self._known_children.pop(current, ()))
