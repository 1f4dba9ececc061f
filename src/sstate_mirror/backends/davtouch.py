"""How a file on a WebDAV mirror is marked as used: its time refreshed without an upload.

``PROPPATCH getlastmodified`` where the server allows it (wsgidav with
``mutable_live_props``), else ``COPY`` to a temporary name and a ``MOVE`` back that is
conditional on the file's entity tag, so that a file a clean deletes meanwhile is not
brought back (Apache; servers that ignore the condition are not touched this way). The
method is found once, before the first touch, by :meth:`DavTouch._probe_touch` (called
from the backend's ``settle``).
"""

from __future__ import annotations

import email.utils
import threading
from collections.abc import Sequence
from typing import Dict, Optional

from .. import events
from ..errors import BackendError, NotFoundError, PermanentError
from .base import BackendOptions, check_relative_path, new_temp_name
from .daverrors import NO_DAV_STATUSES
from .davlisting import DavListing
from .davtransport import XML_HEADERS
from .davxml import PROPFIND_ETAG_BODY, proppatch_lastmodified_body


class DavTouch(DavListing):
    """Touching (see the module docstring)."""

    def __init__(self, url: str, options: BackendOptions) -> None:
        super().__init__(url, options)
        self._touch_method: Optional[str] = None  # "proppatch" | "copy" | "none"
        #: whether a MOVE with an ``If`` about a missing file is refused (see touch)
        self._if_honoured: Optional[bool] = None
        #: one thread checks the condition; the others wait for its answer instead of each
        #: sending the same probe (the threads of a touch all start at once)
        self._if_checking = threading.Lock()

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
        """Refresh one file's time by the method this server honours (found by ``settle``)."""
        self.settle()
        method = self._touch_method
        if method == "none":
            raise PermanentError(
                f"cannot mark {path} as used: {self.url} offers no way to refresh a file's"
                " time without uploading it again", url=self.url, path=path,
                hint="see docs/webdav.md: Apache (COPY) and wsgidav (PROPPATCH with"
                " mutable_live_props) can",
            )
        if not self._touch_with(method or "copy", path):
            raise PermanentError(f"cannot mark {path} as used: the server refused",
                                 url=self.url, path=path)

    def _probe_touch(self) -> str:
        """How this server refreshes a file's time, asked of the mirror root without
        changing it: ``proppatch`` where it sets the root's ``getlastmodified`` to the value
        it has (wsgidav with ``mutable_live_props``), else ``copy`` where it gives entity
        tags (the copy's ``MOVE`` back is conditional on one: Apache), else ``none``
        (nginx)."""
        response = self._request("PROPFIND", self.paths.target(""),
                                 what="cannot ask the server how it marks files as used",
                                 headers={"Depth": "0", **XML_HEADERS},
                                 content=PROPFIND_ETAG_BODY)
        if not 200 <= response.status_code < 300:
            raise self._fail(response, "cannot ask the server how it marks files as used")
        etag: Optional[str] = None
        modified: Optional[float] = None
        for item in self._multistatus(response, "", self.max_xml_bytes):
            if self.paths.rel_from_href(item.href, "") == "":
                etag, modified = item.etag, item.mtime
        if modified is not None and self._touch_with("proppatch", "", when=modified):
            return "proppatch"
        return "copy" if etag is not None else "none"

    def _touch_with(self, method: str, path: str, when: Optional[float] = None) -> bool:
        """Apply one touch method (``proppatch``: set the time to ``when``, default now);
        False if the server does not offer it."""
        if method == "proppatch":
            body = proppatch_lastmodified_body(email.utils.formatdate(when, usegmt=True))
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
        """
        etag = self._etag(path)
        if etag is None:
            events.debug("%s: no entity tag for %s, so no safe touch by copy", self.url, path)
            return False
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
                with self._if_checking:
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
            if response.status_code == 412:  # deleted or replaced since the COPY
                if self._etag(path) is None:
                    raise NotFoundError(f"cannot mark {path} as used: it was deleted while"
                                        " being marked (not brought back)", url=self.url,
                                        path=path)
                return True  # replaced by an upload: fresh anyway
            if not 200 <= response.status_code < 300:
                raise self._fail(response, f"cannot touch {path}", path)
            moved = True
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
