"""An HTTP/WebDAV server as a mirror (Apache mod_dav_fs, nginx dav + dav-ext, wsgidav, ...).

bitbake reads the mirror with plain ``GET``/``HEAD``; this backend writes and lists it with
WebDAV. Servers differ, and each difference is handled where it bites: listing by
``PROPFIND Depth: infinity`` or a ``Depth: 1`` walk, parents made with ``MKCOL`` bottom-up,
``PUT`` to a temporary name then ``MOVE`` onto the final one (a direct ``PUT`` and a warning
where there is no ``MOVE``), touch by ``PROPPATCH`` or a conditional ``COPY`` + ``MOVE``,
collections always with a trailing slash (nginx insists on it for ``MKCOL`` and ``DELETE``).
Whether the server has ``MOVE`` and how it refreshes a time are asked once, by
:meth:`WebDAVBackend.settle`, before anything is written; ``properties`` never change after.

Module layout, one job each. A request's URL is built in :mod:`.davpaths` (pure: quoting,
href resolution, nothing leaves the mirror) and its XML body in :mod:`.davxml`; it is sent
by :mod:`.davtransport` (the one request API: httpx, or the HTTP/1.1 pipeline of
:mod:`.httppipe` for small requests), retried by the one policy of
:mod:`sstate_mirror.retry`, its failure worded in :mod:`.daverrors`, its body streamed by
:mod:`.davio` and its multistatus parsed by :mod:`.davxml` (expat without DTDs or entities,
size limits);
credentials come from :mod:`.davauth`. On top of the transport, each layer a class in its
own module: :mod:`.davlisting` (listing, and the collections remembered), :mod:`.davprune`
(deleting, and pruning what that empties), :mod:`.davtouch` (marking files as used); this
module reads and writes files and ties the layers into :class:`WebDAVBackend`. Retries,
fallbacks and warnings are reported through :mod:`sstate_mirror.events`, never printed.

Everything the server sends is untrusted, and credentials never appear in a message.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from typing import IO, List, Optional, Tuple

from .. import events
from ..errors import NotFoundError, PermanentError, TransientError
from ..retry import jitter
from .base import BackendOptions, check_relative_path, new_temp_name
from .daverrors import NO_DAV_STATUSES, AnyResponse
from .davio import CHUNK, Body, ResponseReader
from .davpaths import split_rel
from .davprune import DavPruning
from .davtouch import DavTouch
from .davtransport import XML_HEADERS
from .davxml import PROPFIND_BODY, parse_http_date

#: Attempts of one put while a concurrent clean keeps pruning its collection.
PUT_ATTEMPTS = 5


class WebDAVBackend(DavTouch, DavPruning):
    """A mirror on an HTTP/WebDAV server (``http://`` or ``https://``).

    The layers (each a module) build on each other: :class:`~.davtransport.DavTransport`
    sends requests, :class:`~.davlisting.DavListing` lists and remembers collections,
    :class:`~.davprune.DavPruning` deletes and prunes, :class:`~.davtouch.DavTouch`
    touches; this class adds reading and writing files.
    """

    #: Largest upload read into memory and sent on a pipeline connection (larger ones are
    #: streamed through httpx, where the per-request cost does not matter).
    max_pipelined_put = 4 * 1024 * 1024

    def __init__(self, url: str, options: BackendOptions) -> None:
        super().__init__(url, options)
        self._move_supported: Optional[bool] = None
        self._settled = False
        self._settling = threading.Lock()
        # whether a PUT creates its missing parent collections (nginx with
        # create_full_put_path): learned from the first PUT into a collection not known to
        # exist; then no MKCOL is spent on new hash directories (a few hundred an upload)
        self._put_makes_parents: Optional[bool] = None
        self._put_learning = threading.Lock()

    def check(self, create: bool = False) -> None:
        response = self._propfind("", "0", True)
        if response.status_code == 404 and create:
            response.close()
            self._mkcol_chain(tuple(self.paths.base_segments))
            response = self._propfind("", "0", True)
        if response.status_code == 404:
            response.close()
            raise NotFoundError(
                f"the mirror {self.url} does not exist on the server (404)",
                url=self.url,
                hint="check the URL; an upload creates it",
            )
        found = False
        for item in self._multistatus(response, "", self.max_xml_bytes):
            rel = self.paths.rel_from_href(item.href, "")
            if rel == "":
                found = True
                if not item.is_collection:
                    raise PermanentError(f"{self.url} is a file, not a collection",
                                         url=self.url)
        if not found:
            raise PermanentError(f"{self.url}: the PROPFIND answer does not describe the URL",
                                 url=self.url)
        self._remember_collection(tuple(self.paths.base_segments))

    def settle(self) -> None:
        """Ask the server, once and without writing anything, whether it offers ``MOVE``
        (``atomic_put``) and how it refreshes a file's time (``touch``, ``touch_cost``).

        Three requests at most, about names nobody uses and the mirror root: a ``MOVE`` of
        a missing name (404 where the method exists, 405/501 where it does not), a
        ``PROPFIND`` of the root and a ``PROPPATCH`` setting the root's own time again
        (see :meth:`~.davtouch.DavTouch._probe_touch`). ``properties`` never changes after.
        """
        if self._settled:
            return
        with self._settling:
            if self._settled:
                return
            moves = self._probe_move()
            method = self._probe_touch()
            self._move_supported = moves
            self._touch_method = method
            self.properties = replace(
                self.properties, atomic_put=moves,
                touch={"proppatch": "mtime", "copy": "copy", "none": "none"}[method],
                touch_cost="flat" if method == "proppatch" else "size")
            self._settled = True
        if not moves:
            events.warning(
                "%s does not support WebDAV MOVE: uploading directly to the final names;"
                " a reader may see a partly written file while it uploads", self.url)
        if method == "none":
            # said to the user once, by the command, from this property
            events.debug("%s cannot refresh file times without a new upload: objects on this"
                         " mirror cannot be marked as used", self.url)

    def _probe_move(self) -> bool:
        """Whether the server offers ``MOVE``: asked about a name nobody uses, so nothing
        moves (404 where the method exists, 405 or 501 where it does not)."""
        source, destination = new_temp_name("probe"), new_temp_name("probe")
        response = self._request(
            "MOVE", self.paths.target(source), what="cannot ask the server about MOVE",
            headers={"Destination": self.paths.url_of(destination), "Overwrite": "F"})
        response.close()
        return response.status_code not in NO_DAV_STATUSES

    def server_time(self) -> Optional[float]:
        """The ``Date`` of the answer to a ``PROPFIND`` of the root (any status has one)."""
        response = self._propfind("", "0", True)
        date = response.headers.get("Date")
        response.close()
        return parse_http_date(date) if date else None

    @contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        check_relative_path(path)
        response = self._stream("GET", self.paths.url_of(path), what=f"cannot read {path}",
                                path=path, headers={"Accept-Encoding": "identity"})
        try:
            if response.status_code in (404, 410):
                raise NotFoundError(f"{path} does not exist on {self.url}", url=self.url,
                                    path=path)
            if response.status_code != 200:
                raise self._fail(response, f"cannot read {path}", path)
            yield io.BufferedReader(ResponseReader(response, self.url, path), CHUNK)
        finally:
            response.close()

    def put(self, path: str, src: IO[bytes], size: int) -> None:
        check_relative_path(path)
        if not self._settled:
            try:
                self.settle()
            except NotFoundError:  # no mirror root yet: a put makes it, then asks again
                self._mkcol_chain(tuple(self.paths.base_segments))
                self.settle()
        body = Body(src, size, path)
        parent = tuple(self.paths.base_segments + split_rel(path)[:-1])
        try:  # a PUT that may be refused is only tried where the source can be read again
            rewindable = src.seekable()
        except (OSError, ValueError):
            rewindable = False
        for attempt in range(PUT_ATTEMPTS):
            # a collection not known to exist is created by MKCOL first, unless the server
            # is known (or not yet known not) to create it for the PUT itself
            if (attempt == 0 and self._put_makes_parents is not False and rewindable
                    and parent not in self._known_collections
                    and self._put_without_mkcol(path, body, parent)):
                return
            self._mkcol_chain(parent)
            try:
                self._put_once(path, body)
                return
            except _ParentVanished:
                # a concurrent clean pruned the collection (and maybe its parents): create
                # them again, after a short pause that lets its pruning pass move on. The
                # 409 (or the MOVE's 404) is about this very collection: forget it, whatever
                # else is remembered, so that the next attempt starts with its MKCOL
                self._forget_collection(parent)
                time.sleep(jitter(0.1 * (attempt + 1)))
                if attempt == PUT_ATTEMPTS - 1 or not body.replayable:
                    # transient: the caller's retry, seconds later, finds the clean's
                    # pruning of this part of the tree over (and re-opens the source)
                    raise TransientError(
                        f"cannot write {path}: its collection keeps disappearing"
                        " (is a clean running at the same time?)", url=self.url, path=path
                    ) from None

    def _put_once(self, path: str, body: Body, learning: bool = False) -> None:
        """One PUT (and MOVE); ``learning``: a 500 to the PUT reads as "no parent" (nginx
        without create_full_put_path answers that) instead of a failure."""
        if self._move_supported is False:
            self._put_direct(path, body, learning)
        else:
            self._put_atomic(path, body, learning)

    def _put_without_mkcol(self, path: str, body: Body, parent: Tuple[str, ...]) -> bool:
        """Put ``path`` without creating its parent first; False when that did not work.

        The first such PUT finds out whether the server creates missing parents (nginx's
        ``create_full_put_path``), one thread at a time, so that a server that does not
        answers that once: 409 (Apache), or 500 from nginx without the option (a real 500
        then shows again on the PUT after the MKCOL: one more PUT, once per run). Any other
        failure is the caller's, and leaves the question open.
        """
        with self._put_learning if self._put_makes_parents is None else nullcontext():
            if self._put_makes_parents is False:
                return False
            try:
                self._put_once(path, body, learning=self._put_makes_parents is None)
            except _ParentVanished:
                if self._put_makes_parents is None:
                    self._put_makes_parents = False
                return False  # known to work: pruned meanwhile, MKCOL and try again
            self._put_makes_parents = True
        self._remember_collection(parent)
        return True

    def _put_request(self, target: str, body: Body, what_path: str) -> AnyResponse:
        what = f"cannot upload {what_path}"
        if body.size <= self.max_pipelined_put and self.options.pipelining:
            body.rewind()
            data = b"".join(body)  # in memory: cheaper to send, and any retry can replay it
            return self._request("PUT", self.paths.target(target), what=what, path=what_path,
                                 headers={"Content-Type": "application/octet-stream"},
                                 content=data)
        return self._send(
            "PUT", self.paths.url_of(target), what=what, path=what_path,
            headers={"Content-Length": str(body.size),
                     "Content-Type": "application/octet-stream"},
            content=body,
        )

    def _put_atomic(self, path: str, body: Body, learning: bool = False) -> None:
        tmp = new_temp_name(path)
        moved = nothing_left = False
        try:
            response = self._put_request(tmp, body, path)
            response.close()
            if response.status_code == 409:
                nothing_left = True  # the PUT created nothing
                raise _ParentVanished()
            if learning and response.status_code == 500:
                raise _ParentVanished()
            if not 200 <= response.status_code < 300:
                raise self._fail(response, f"cannot upload {path}", path)
            response = self._request(
                "MOVE", self.paths.target(tmp), what=f"cannot move {path} into place",
                path=path, headers={"Destination": self.paths.url_of(path), "Overwrite": "T"},
                idempotent=False,
            )
            response.close()
            status = response.status_code
            if status in (200, 201, 204):
                moved = True
                return
            if status in (404, 409):
                raise _ParentVanished()
            if status == 502:
                raise PermanentError(
                    f"cannot move {path} into place: the server says 502 Bad Gateway",
                    url=self.url, path=path,
                    hint="a proxy in front of the WebDAV server changes the scheme or host;"
                    " the server must accept Destination headers for the URL used here",
                )
            raise self._fail(response, f"cannot move {path} into place", path)
        finally:
            if not (moved or nothing_left):
                self._delete_quietly(tmp)

    def _put_direct(self, path: str, body: Body, learning: bool = False) -> None:
        response = self._put_request(path, body, path)
        response.close()
        if response.status_code == 409 or (learning and response.status_code == 500):
            raise _ParentVanished()
        if not 200 <= response.status_code < 300:
            raise self._fail(response, f"cannot upload {path}", path)

    def _mkcol_chain(self, segments: Tuple[str, ...]) -> None:
        """Make sure the collection exists, creating missing parents (bottom-up on 409).

        A parent this backend created or listed may have been pruned since by a concurrent
        clean: a 409 walks up past what is remembered, and one while creating the chain
        again (a parent pruned a moment after its MKCOL) forgets what is known of that
        subtree and starts over (a few times; a collection that keeps vanishing is an error).
        """
        top = segments[: len(self.paths.base_segments) + 1]
        for _attempt in range(3):
            try:
                self._mkcol_chain_once(segments)
                return
            except _ParentVanished:
                self._forget_collection(top)
        raise PermanentError(
            f"cannot create collection {self.paths.abs_path(segments, True)} on {self.paths.origin}"
            " (409 Conflict: a parent is missing, or keeps disappearing while a clean runs)",
            url=self.url)

    def _mkcol_chain_once(self, segments: Tuple[str, ...]) -> None:
        missing: List[Tuple[str, ...]] = []
        current = segments
        # once a MKCOL answered 409 its parent is missing, whatever this backend remembers
        # of it (a concurrent clean may have pruned it since): walk up asking the server
        while current and (missing or current not in self._known_collections):
            status = self._mkcol(current)
            if status == 409:  # parent missing
                missing.append(current)
                current = current[:-1]
                continue
            self._remember_collection(current)
            break
        for seg in reversed(missing):
            status = self._mkcol(seg)
            if status == 409:
                raise _ParentVanished()
            self._remember_collection(seg)

    def _mkcol(self, segments: Tuple[str, ...]) -> int:
        """MKCOL one collection; 201 created, 405 exists, 409 parent missing."""
        target = self.paths.abs_path(segments, True)
        rel = "/".join(segments)
        response = self._request("MKCOL", target, what=f"cannot create collection {rel}/")
        response.close()
        status = response.status_code
        if status in (200, 201, 204, 405, 409):
            return status
        if 300 <= status < 400:
            return 405  # the collection exists (some servers redirect)
        # Apache answers 403 when another request created it a moment ago: look before failing
        check = self._request("PROPFIND", target, what=f"cannot create collection {rel}/",
                              headers={"Depth": "0", **XML_HEADERS}, content=PROPFIND_BODY)
        check.close()
        if check.status_code == 207:
            return 405
        raise self._fail(response, f"cannot create collection {rel}/")


class _ParentVanished(Exception):
    """A PUT or MOVE found no parent collection (409): create it and try again."""

