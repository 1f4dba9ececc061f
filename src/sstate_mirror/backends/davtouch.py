"""How a file on a WebDAV mirror is marked as used: its time refreshed without an upload.

``PROPPATCH getlastmodified`` where the server allows it (wsgidav with
``mutable_live_props``), else ``COPY`` to a temporary name and a ``MOVE`` back that is
conditional on the file's entity tag, so that a file a clean deletes meanwhile is not
brought back (Apache; servers that ignore the condition are not touched this way): two
requests a file, the tag being the one the listing saw (:mod:`.davlisting`), or three when
the file was not listed in this run (a ``PROPFIND`` asks the tag). The first touch of a
file old enough finds the method that works and checks that the time really moved (nginx
and wsgidav keep the source's time on ``COPY``).
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Dict, Optional, Tuple

from .. import events
from ..errors import BackendError, NotFoundError, PermanentError
from .base import BackendOptions, Entry, check_relative_path, new_temp_name
from .daverrors import NO_DAV_STATUSES
from .davlisting import DavListing
from .davtransport import XML_HEADERS
from .davxml import PROPFIND_ETAG_BODY, parse_http_date, proppatch_lastmodified_body


class DavTouch(DavListing):
    """Touching (see the module docstring)."""

    def __init__(self, url: str, options: BackendOptions) -> None:
        super().__init__(url, options)
        self._touch_method: Optional[str] = None  # "proppatch" | "copy" | "none"
        #: whether a MOVE with an ``If`` about a missing file is refused (see touch)
        self._if_honoured: Optional[bool] = None
        # one thread at a time finds out how the server refreshes a time; the others wait
        # for its answer instead of spending the same probes on their own files
        self._touch_learning = threading.Lock()

    def touch(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        failures: Dict[str, BackendError] = {}
        for path in paths:
            try:
                check_relative_path(path)
                self._touch_one(path)
            except BackendError as exc:
                failures[path] = exc
        return failures

    def _touch_one(self, path: str) -> None:
        """Refresh one file's time by the method this server honours (found on first use).

        The first touch of a file that is old enough checks that the time really moved:
        some servers accept COPY but keep the source's time (nginx, wsgidav).
        """
        method = self._touch_method
        if method is None:
            with self._touch_learning:
                method = self._touch_method
                if method is None:
                    self._learn_touch(path)
                    return
        if method == "none":
            raise PermanentError(
                f"cannot mark {path} as used: {self.url} offers no way to refresh a file's"
                " time without uploading it again", url=self.url, path=path,
                hint="see docs/webdav.md: Apache (COPY) and wsgidav (PROPPATCH with"
                " mutable_live_props) can",
            )
        if not self._touch_with(method, path):
            raise PermanentError(f"cannot mark {path} as used: the server refused",
                                 url=self.url, path=path)

    def _learn_touch(self, path: str) -> None:
        """Touch ``path`` by the first method that really moves its time, and remember it
        (``none`` when no method does); a file too new to tell leaves it unknown."""
        before, server_now = self._stat_with_date(path)
        if before is None:
            raise NotFoundError(f"cannot mark {path} as used: it does not exist",
                                url=self.url, path=path)
        for candidate in ("proppatch", "copy"):
            if not self._touch_with(candidate, path):
                continue
            if before.mtime >= server_now - 5:
                return  # too recent to tell whether the method works; it is fresh anyway
            after, _ = self._stat_with_date(path)
            if after is not None and after.mtime >= server_now - 5:
                self._set_touch_method(candidate)
                return
            events.debug("%s: touch by %s did not change the time", self.url, candidate)
        self._set_touch_method("none")
        self._touch_one(path)

    def _set_touch_method(self, method: str) -> None:
        with self._lock:
            self._touch_method = method
            kind = {"proppatch": "mtime", "copy": "copy", "none": "none"}[method]
            cost = "flat" if method == "proppatch" else "size"
            self.properties = replace(self.properties, touch=kind, touch_cost=cost)
        if method == "none":
            # said to the user once, by the command, from the failures and this property
            events.debug("%s cannot refresh file times without a new upload: objects on this"
                         " mirror cannot be marked as used", self.url)

    def _stat_with_date(self, path: str) -> Tuple[Optional[Entry], float]:
        """The entry (from PROPFIND, the same source a listing uses) and the server's time."""
        response = self._propfind(path, "0", False)
        now = parse_http_date(response.headers.get("Date", "")) or time.time()
        if response.status_code == 404:
            response.close()
            return None, now
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        entry: Optional[Entry] = None
        for item in self._multistatus(response, parent, self.max_xml_bytes):
            if not item.is_collection and self.paths.rel_from_href(item.href, parent) == path:
                entry = self._entry(item, parent)
        return entry, now

    def _touch_with(self, method: str, path: str) -> bool:
        """Apply one touch method; False if the server does not offer it."""
        if method == "proppatch":
            body = proppatch_lastmodified_body(email.utils.formatdate(usegmt=True))
            response = self._request("PROPPATCH", self.paths.target(path),
                                     what=f"cannot touch {path}", path=path,
                                     headers=XML_HEADERS, content=body)
            if response.status_code == 404:
                response.close()
                raise NotFoundError(f"cannot mark {path} as used: it does not exist",
                                    url=self.url, path=path)
            if response.status_code in NO_DAV_STATUSES or response.status_code in (400, 403,
                                                                                    409):
                response.close()
                return False
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            ok = False
            for item in self._multistatus(response, parent, self.max_xml_bytes):
                ok = item.prop_status is not None and 200 <= item.prop_status < 300
            return ok
        return self._touch_by_copy(path)

    def _touch_by_copy(self, path: str) -> bool:
        """COPY to a temporary name (a fresh file, so a fresh time), then MOVE it back.

        The MOVE is conditional (``If: <path> (["etag"])``, RFC 4918 10.4): should a clean
        delete the file between the two requests, the server refuses the MOVE instead of
        bringing the file back. Only servers that honour the condition for a file that is
        gone are touched this way (checked once: Apache does; nginx and wsgidav ignore it,
        and neither needs the copy); False where the server cannot.

        The tag is the one the listing saw (no request), else asked with a PROPFIND. A tag
        that no longer matches (412) means the file was deleted or rewritten since: asked
        again, a file that is gone is reported as such (the temporary copy is removed, the
        file is not brought back), and a rewritten one is touched once more with its new
        tag — its copy made again, since the one made may hold the older content.
        """
        etag = self._listed_etags.get(path)
        from_listing = etag is not None
        if etag is None:
            etag = self._etag(path)
        if etag is None:
            events.debug("%s: no entity tag for %s, so no safe touch by copy", self.url, path)
            return False
        outcome = self._copy_and_move_back(path, etag)
        if outcome is not None:
            return outcome
        # 412: the file is not the one the tag named any more
        current = self._etag(path)
        if current is None:
            raise NotFoundError(f"cannot mark {path} as used: it was deleted while being"
                                " marked (not brought back)", url=self.url, path=path)
        self._listed_etags.pop(path, None)
        if from_listing and current != etag:
            outcome = self._copy_and_move_back(path, current)
            if outcome is not None:
                return outcome
        return True  # rewritten while being marked: its time is fresh anyway

    def _copy_and_move_back(self, path: str, etag: str) -> Optional[bool]:
        """One COPY and conditional MOVE; None when the condition failed (412), else
        whether the server offers the method. The temporary copy never stays."""
        tmp = new_temp_name(path)
        response = self._request(
            "COPY", self.paths.target(path), what=f"cannot touch {path}", path=path,
            headers={"Destination": self.paths.url_of(tmp), "Overwrite": "T", "Depth": "0"},
        )
        response.close()
        if response.status_code in (404, 410):
            raise NotFoundError(f"cannot mark {path} as used: it does not exist",
                                url=self.url, path=path)
        if response.status_code in NO_DAV_STATUSES:
            return False
        if not 200 <= response.status_code < 300:
            raise self._fail(response, f"cannot touch {path}", path)
        moved = False
        try:
            if self._if_honoured is None:
                self._if_honoured = self._honours_if(path, tmp, etag)
            if not self._if_honoured:
                return False
            response = self._request(
                "MOVE", self.paths.target(tmp), what=f"cannot touch {path}", path=path,
                headers={"Destination": self.paths.url_of(path), "Overwrite": "T",
                         "If": f"<{self.paths.target(path)}> ([{etag}])"}, idempotent=False,
            )
            response.close()
            if response.status_code in NO_DAV_STATUSES:
                return False
            if response.status_code == 412:  # deleted or replaced since the tag was read
                return None
            if not 200 <= response.status_code < 300:
                raise self._fail(response, f"cannot touch {path}", path)
            moved = True
            self._listed_etags.pop(path, None)  # the file's tag changed with its time
            return True
        finally:
            if not moved:
                self._delete_quietly(tmp)

    def _etag(self, path: str) -> Optional[str]:
        """The file's entity tag as the server's ``If`` evaluation sees it (PROPFIND)."""
        response = self._request("PROPFIND", self.paths.target(path), what=f"cannot touch {path}",
                                 path=path, headers={"Depth": "0", **XML_HEADERS},
                                 content=PROPFIND_ETAG_BODY)
        if response.status_code in (404, 410):
            response.close()
            return None
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        etag: Optional[str] = None
        for item in self._multistatus(response, parent, self.max_xml_bytes):
            if not item.is_collection and self.paths.rel_from_href(item.href, parent) == path:
                etag = item.etag
        return etag

    def _honours_if(self, path: str, tmp: str, etag: str) -> bool:
        """Whether the server refuses a MOVE whose ``If`` names a file that does not exist.

        Asked with the fresh copy and a name nobody uses: a server that honours the
        condition answers 412; one that ignores it moves the copy there (removed again).
        """
        probe = new_temp_name(path)
        response = self._request(
            "MOVE", self.paths.target(tmp), what=f"cannot touch {path}", path=path,
            headers={"Destination": self.paths.url_of(probe), "Overwrite": "T",
                     "If": f"<{self.paths.target(probe)}> ([{etag}])"}, idempotent=False)
        response.close()
        if response.status_code == 412:
            return True
        if 200 <= response.status_code < 300:
            self._delete_quietly(probe)
        events.debug("%s ignores If conditions on a missing file (MOVE answered %d): touch by"
                  " copy could bring back a file deleted meanwhile", self.url,
                  response.status_code)
        return False
