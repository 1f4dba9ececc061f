"""How files are deleted from a WebDAV mirror, and the collections they leave empty pruned.

``DELETE`` per file (pipelined), then each collection left empty, never the mirror root.
WebDAV has no "delete if empty" and a collection's ``DELETE`` is recursive, so a collection
is first renamed to a private name (``MOVE``, atomic on the server), then checked
(``PROPFIND Depth: 1``) and deleted there, where no upload writes; if it held something
after all it is moved back (entry by entry if an upload created the collection again).
Pruning is tidying up: its failures are never a delete failure.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Dict, List, Set, Tuple, cast

from .. import events
from ..errors import BackendError
from .base import BackendOptions, check_relative_path
from .daverrors import NO_DAV_STATUSES, AnyResponse
from .davlisting import DavListing
from .davpaths import split_rel
from .davtransport import XML_HEADERS, OneByOne, Sender
from .davxml import PROPFIND_BODY
from .httppipe import PipeRequest

#: DELETE answers meaning "gone" (404/410: already gone, which is what was asked).
DELETED = (200, 202, 204, 404, 410)


class DavPruning(DavListing):
    """Deleting and pruning (see the module docstring)."""

    #: Pipelined connections of each delete() call (clean runs several).
    delete_connections = 1

    def __init__(self, url: str, options: BackendOptions) -> None:
        super().__init__(url, options)
        #: one lock per top-level collection, held while pruning below it
        self._prune_locks: Dict[str, threading.Lock] = {}

    def delete(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        failures: Dict[str, BackendError] = {}
        parents: Set[str] = set()
        wanted: List[str] = []
        for path in paths:
            try:
                wanted.append(check_relative_path(path))
            except BackendError as exc:
                failures[path] = exc
        with self._pipeline(self.delete_connections) as pipe:
            sender: Sender = pipe if pipe is not None else OneByOne()
            for path in wanted:
                sender.submit(PipeRequest("DELETE", self.paths.target(path), tag=path))
            for request, outcome in sender.results():
                path = cast(str, request.tag)
                try:
                    answer = self._settle(sender, request, outcome, f"cannot delete {path}",
                                          path)
                    if answer.status_code not in DELETED:
                        raise self._fail(answer, f"cannot delete {path}", path)
                except BackendError as exc:
                    failures[path] = exc
                    continue
                self._deleted_file(path, parents)
            self._prune(parents, sender)
        return failures

    def _deleted_file(self, path: str, parents: Set[str]) -> None:
        if "/" in path:
            parent = path.rsplit("/", 1)[0]
            with self._lock:
                if parent in self._file_counts:
                    self._file_counts[parent] -= 1
            parents.add(parent)

    def _may_be_empty(self, rel_dir: str) -> bool:
        """False when the last listing (or this run) saw files or collections still in it."""
        with self._lock:
            if self._file_counts.get(rel_dir, 0) > 0:
                return False
            return not self._known_children.get(
                tuple(self.paths.base_segments + split_rel(rel_dir)))

    def _prune(self, parents: Set[str], pipe: Sender) -> None:
        """Delete these collections and their parents while empty (never the mirror root),
        one tree level per round.

        WebDAV has no "delete if empty", and DELETE of a collection is recursive: a file
        moved into it between a check and the DELETE would go with it. So a collection is
        first renamed (``MOVE`` to a private name next to it, atomic on the server), then
        the renamed one is checked and deleted: nobody else can write there. Should it hold
        something after all (an upload that landed just before), it is moved back. Uploads
        that come after the rename find the collection gone and create it again.
        Its parent is looked at in the next round, once everything below has had its turn.
        """
        level = {p for p in parents if self._may_be_empty(p)}
        while level:
            with self._pruning(level):
                emptied = self._prune_round(level, pipe)
            level = {p.rsplit("/", 1)[0] for p in emptied if "/" in p}
            level = {p for p in level if self._may_be_empty(p)}

    @contextmanager
    def _pruning(self, collections: Set[str]) -> Iterator[None]:
        """Hold the pruning lock of each top-level collection these are under.

        Renaming a collection while another thread of this process renames (or puts back)
        one inside it would leave that one's files under a private name: within a top-level
        collection, one prune round at a time. Locks are taken in order (no deadlock).
        """
        with self._lock:
            locks = [self._prune_locks.setdefault(top, threading.Lock())
                     for top in sorted({c.split("/", 1)[0] for c in collections})]
        for lock in locks:
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(locks):
                lock.release()

    def _prune_round(self, level: Set[str], pipe: Sender) -> Set[str]:
        """Prune the collections of one tree level; the ones now gone."""
        for rel_dir in level:
            pipe.submit(self._prune_move(rel_dir))
        emptied: Set[str] = set()
        for request, outcome in pipe.results():
            step, rel_dir, hidden = cast(Tuple[str, str, str], request.tag)
            try:
                answer = self._settle(pipe, request, outcome,
                                      f"cannot remove collection {rel_dir}/", rel_dir)
            except BackendError as exc:  # pruning is tidying up, never a delete failure
                events.debug("not pruning %s: %s", rel_dir, exc)
                if step != "delete" and hidden != rel_dir:
                    self._unhide_quietly(hidden, rel_dir)  # the rename may have happened
                continue
            status = answer.status_code
            if step == "move":
                if status in (404, 410):  # gone already: its parent may be empty
                    self._forget_collection(tuple(self.paths.base_segments + split_rel(rel_dir)))
                    emptied.add(rel_dir)
                elif status in (201, 204):
                    pipe.submit(self._propfind_request(hidden, ("check", rel_dir, hidden)))
                elif status in NO_DAV_STATUSES:  # no MOVE: check, then delete in place
                    pipe.submit(self._propfind_request(rel_dir, ("check", rel_dir, rel_dir)))
                # else (412, 403...): not pruned
            elif step == "check" and hidden == rel_dir:
                if status == 207 and self._holds_nothing(answer, rel_dir):
                    pipe.submit(PipeRequest("DELETE", self.paths.target(rel_dir, True),
                                            tag=("delete", rel_dir, rel_dir)), first=True)
            elif step == "check":
                if status == 207 and self._holds_nothing(answer, hidden):
                    pipe.submit(PipeRequest("DELETE", self.paths.target(hidden, True),
                                            tag=("delete", rel_dir, hidden)))
                else:
                    self._unhide(hidden, rel_dir)
            elif status in DELETED:
                self._forget_collection(tuple(self.paths.base_segments + split_rel(rel_dir)))
                emptied.add(rel_dir)
        return emptied

    def _prune_move(self, rel_dir: str) -> PipeRequest:
        """The MOVE of a collection to a private name next to it, the first step of pruning."""
        parent = rel_dir.rsplit("/", 1)[0] + "/" if "/" in rel_dir else ""
        hidden = f"{parent}.sstate-mirror-prune-{secrets.token_hex(8)}"
        return PipeRequest("MOVE", self.paths.target(rel_dir, True),
                           (("Destination", self.paths.url_of(hidden, True)), ("Overwrite", "F")),
                           tag=("move", rel_dir, hidden), idempotent=False)

    def _unhide(self, hidden: str, rel_dir: str) -> None:
        """Put back what a pruned collection turned out to hold (one by one: rare).

        Back whole if the name is free; if an upload has created the collection again
        meanwhile, entry by entry, where an entry of the same name already there wins (an
        sstate name says what the file holds). The private collection is deleted only once
        everything in it went back; else it stays, and a warning names it.
        """
        what = f"cannot put back {rel_dir}/"
        response = self._request("MOVE", self.paths.target(hidden, True), what=what,
                                 headers={"Destination": self.paths.url_of(rel_dir, True),
                                          "Overwrite": "F"}, idempotent=False)
        if response.status_code in (201, 204):
            events.notice("%s: %s/ was not empty any more, kept", self.url, rel_dir)
            return
        if response.status_code in (404, 410):
            return  # nothing was hidden (the rename did not happen)
        if response.status_code == 412 and self._merge_back(hidden, rel_dir):
            return
        events.warning("%s: could not put %s/ back in place: its files are in %s/",
                    self.url, rel_dir, hidden)

    def _unhide_quietly(self, hidden: str, rel_dir: str) -> None:
        try:
            self._unhide(hidden, rel_dir)
        except BackendError as exc:
            events.warning("%s: could not put %s/ back in place (%s): its files may be in %s/",
                        self.url, rel_dir, exc, hidden)

    def _merge_back(self, source: str, target: str) -> bool:
        """Move each entry of ``source`` into the existing ``target``; True when all went."""
        listing = self._request("PROPFIND", self.paths.target(source, True),
                                what=f"cannot list {source}/",
                                headers={"Depth": "1", **XML_HEADERS}, content=PROPFIND_BODY)
        if listing.status_code != 207:
            return False
        entries = [(self.paths.rel_from_href(item.href, source), item.is_collection)
                   for item in self._multistatus(listing, source, self.max_xml_bytes)]
        done = True
        for path, is_collection in entries:
            if path == source:
                continue
            name = path.rsplit("/", 1)[-1]
            answer = self._request(
                "MOVE", self.paths.target(path, is_collection), what=f"cannot put back {name}",
                headers={"Destination": self.paths.url_of(f"{target}/{name}", is_collection),
                         "Overwrite": "F"}, idempotent=False)
            if answer.status_code in (201, 204):
                continue
            if answer.status_code == 412 and is_collection:
                done = self._merge_back(path, f"{target}/{name}") and done
            elif answer.status_code == 412:  # the same sstate name is there again
                self._delete_quietly(path)
            else:
                done = False
        if done:
            self._request("DELETE", self.paths.target(source, True), what=f"cannot delete {source}/"
                          ).close()
        return done

    def _holds_nothing(self, response: AnyResponse, rel_dir: str) -> bool:
        """Whether a Depth: 1 answer about ``rel_dir`` lists nothing but the collection."""
        try:
            for item in self._multistatus(response, rel_dir, self.max_xml_bytes):
                if self.paths.rel_from_href(item.href, rel_dir) != rel_dir:
                    return False
        except BackendError as exc:
            events.debug("not pruning %s: %s", rel_dir, exc)
            return False
        return True
