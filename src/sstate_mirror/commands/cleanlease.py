"""A clean announces itself, so that an upload checks its signatures only when one ran.

An upload checks the companions of every archive it sent again after the archive arrived,
because a clean running at the same time may have deleted them (the race and its proof are
in docs/reliability.md, "Clean next to upload"). That check costs a request per companion,
on every upload, and is needed only when a clean deleted something while the upload was
sending. So each clean run writes a small object of its own, a *lease*, below
:data:`~sstate_mirror.naming.CLEANS_DIR` before its first delete (``ID.running``), rewrites
it at least every :data:`REFRESH_EVERY` seconds while deleting (a batch is not deleted when
that rewrite fails), and when done writes ``ID.ended`` next to it. ``ID.running`` is not
removed then: that would cost a request, and on WebDAV a directory a delete may have emptied
is renamed for a moment to be checked, so that a listing at that moment would see no lease
at all. Leases stay :data:`KEEP_ENDED`; the next clean removes older ones (the directory
then still holds its own two, so it is never emptied), and so ``running`` leases not
rewritten for as long (a clean killed outright).

The upload lists that one directory twice: before it sends the first companion and after
its archives arrived (one request each on every store: the directory is listed by its own
path, since nginx leaves dot-directories out of its parents' listings). It checks the
companions when :func:`clean_may_have_run` says so:

* a lease in the second listing that is not in the first, or was rewritten since (a clean
  that started after the first listing; even one that started *and ended* between the
  upload's signature and its check leaves its ``ID.ended``, kept a day);
* a ``running`` lease without its ``ended`` one, rewritten within :data:`ALIVE_FOR`, in
  either listing (a clean that was deleting before the upload began, or still is);
* a listing that failed, or an upload that took so long (half of :data:`KEEP_ENDED`) that a
  lease could have come and been removed between its two listings.

Otherwise every clean either ended before the first listing (an ``ended`` lease, or a
``running`` one that has not been rewritten for :data:`ALIVE_FOR`: its process stopped
deleting long before) or never deleted at all; no clean deleted anything after the upload
sent its first companion, and the check would find every companion in place. The second
listing comes after the archives arrived, which is what the check's own argument needs:
a clean whose deletions came later still looks for the archive again after deleting its
signature, and deletes it again (docs/reliability.md).

What the argument rests on: each store's listing shows an object once its ``put`` returned
(S3 has been strongly consistent since 2020; WebDAV servers and directories are), and a clock
of the mirror and of the upload's machine within :data:`ALIVE_FOR` of each other (a
``running`` lease is judged by its age; ended ones by name only). A clean of a version
that writes no lease is not seen: every clean of a mirror must be of a version that does.
"""

from __future__ import annotations

import io
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Callable, Dict, Optional

from .. import events
from ..backends.base import Backend
from ..errors import BackendError
from ..naming import CLEANS_DIR

RUNNING = ".running"
ENDED = ".ended"
#: Seconds between rewrites of a running lease (on this machine's monotonic clock).
REFRESH_EVERY = 300.0
#: A running lease rewritten within this many seconds belongs to a clean that may be deleting.
ALIVE_FOR = 3600.0
#: Seconds an ended lease is kept (and a running one not rewritten, before it is removed).
KEEP_ENDED = 86400.0

#: A listing of the leases: name (below CLEANS_DIR) -> the mirror's mtime of it.
Leases = Dict[str, float]


def list_leases(target: Backend) -> Optional[Leases]:
    """The leases on the mirror (one listing), or None when they cannot be listed."""
    try:
        return {entry.path[len(CLEANS_DIR) + 1:]: entry.mtime
                for entry in target.list(CLEANS_DIR)
                if entry.path.endswith((RUNNING, ENDED))}
    except BackendError as exc:
        events.debug("%s: cannot list %s (%s): checking every signature", target.url,
                     CLEANS_DIR, exc)
        return None


def clean_may_have_run(before: Optional[Mapping[str, float]],
                       after: Optional[Mapping[str, float]], *, now: float,
                       elapsed: float) -> bool:
    """Whether a clean may have deleted something between the two listings (module doc).

    ``now`` is this machine's time at the second listing, ``elapsed`` the seconds between
    the two. Pure.
    """
    if before is None or after is None or elapsed >= KEEP_ENDED / 2:
        return True
    if any(before.get(name) != mtime for name, mtime in after.items()):
        return True
    return any(name.endswith(RUNNING) and now - mtime < ALIVE_FOR
               and name[:-len(RUNNING)] + ENDED not in leases
               for leases in (before, after) for name, mtime in leases.items())


class CleanLease:
    """The lease of one clean run: :meth:`start`, :meth:`keep_alive` before each delete,
    :meth:`end` (module docstring)."""

    def __init__(self, target: Backend, clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self.name = secrets.token_hex(8)
        self._clock = clock
        self._written: Optional[float] = None
        self._lock = threading.Lock()

    def _path(self, suffix: str) -> str:
        return f"{CLEANS_DIR}/{self.name}{suffix}"

    def _write(self, suffix: str) -> None:
        data = f"sstate-mirror clean {self.name}\n".encode()
        self.target.put(self._path(suffix), io.BytesIO(data), len(data))

    def start(self) -> None:
        """Announce the clean; raises when the mirror does not take the lease (then
        nothing may be deleted)."""
        with self._lock:
            self._write(RUNNING)
            self._written = self._clock()

    def keep_alive(self) -> None:
        """Rewrite the lease when it is due; raises when that fails (the batch that asked
        is then not deleted, so no deletion happens on a lease older than
        :data:`REFRESH_EVERY`)."""
        with self._lock:
            if self._written is None or self._clock() - self._written >= REFRESH_EVERY:
                self._write(RUNNING)
                self._written = self._clock()

    def end(self) -> None:
        """Mark the clean ended and remove old leases; never raises (an ``ID.running``
        left without its ``ID.ended`` only makes uploads check their signatures for
        :data:`ALIVE_FOR`)."""
        try:
            self._write(ENDED)
            leases = list_leases(self.target)
            now = time.time()
            old = [f"{CLEANS_DIR}/{name}" for name, mtime in (leases or {}).items()
                   if now - mtime >= KEEP_ENDED]
            if old:
                self.target.delete(old)
        except BackendError as exc:
            events.warning("%s: could not record the end of this clean (%s); uploads check"
                           " their signatures for an hour more", self.target.url, exc)
