"""Where a WebDAV request goes: mirror-relative paths to URLs, and hrefs back to paths.

Pure functions of the mirror URL, no I/O: quoting as bitbake does (``:`` -> ``%3A``),
collections with a trailing slash (nginx insists on it for ``MKCOL`` and ``DELETE``), and the
resolution of the hrefs a server lists, which are untrusted: an href that leaves the mirror
(another host, ``..``, an absolute path elsewhere, a name that is not UTF-8) is refused.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from typing import List

from ..errors import PermanentError, UsageError
from .base import ambiguous_userinfo, redact_url

#: Characters after which an href needs the full resolution of :meth:`DavPaths.rel_from_href`.
_UNPLAIN = re.compile(r"[%?#\\\x00-\x20\x7f]")
#: A path segment that percent-encoding leaves as it is.
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]+")


class DavPaths:
    """The URLs of one mirror (``http(s)://host[:port]/base/``)."""

    def __init__(self, url: str) -> None:
        if ambiguous_userinfo(url):
            raise UsageError(
                f"cannot tell the password from the host in {redact_url(url)}",
                hint="percent-encode '/', '?', '#' and '@' in the user name and password"
                     " (%2F, %3F, %23, %40), or give the password in SSTATE_MIRROR_PASSWORD")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise UsageError(f"not an HTTP(S) URL: {redact_url(url)}")
        if parts.query or parts.fragment:
            raise UsageError(f"a mirror URL takes no query or fragment: {redact_url(url)}")
        self.parts = parts
        self.scheme = parts.scheme.lower()
        self.host = parts.hostname.lower()
        try:
            port = parts.port
        except ValueError:
            raise UsageError(f"invalid port in {redact_url(url)}") from None
        self.port = port if port is not None else (443 if self.scheme == "https" else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.netloc = host if port is None else f"{host}:{port}"
        self.base_segments: List[str] = [
            urllib.parse.unquote(s) for s in parts.path.split("/") if s
        ]
        self.origin = f"{self.scheme}://{self.netloc}"
        self.base_path = "/" + "".join(quote_segment(s) + "/" for s in self.base_segments)
        self.url = self.origin + self.base_path
        """The mirror's URL, normalised (no credentials)."""

    def abs_path(self, segments: Sequence[str], collection: bool) -> str:
        """The percent-encoded absolute path of a collection or file given by segments."""
        path = "/" + "/".join(quote_segment(s) for s in segments)
        if collection and segments:
            path += "/"
        return path

    def url_of(self, rel: str, collection: bool = False) -> str:
        """The absolute URL of a mirror-relative path (a ``Destination``)."""
        return self.origin + self.target(rel, collection)

    def target(self, rel: str, collection: bool = False) -> str:
        """The percent-encoded absolute path of a mirror-relative path."""
        if not rel:
            return self.base_path
        path = self.base_path + "/".join(quote_segment(s) for s in rel.split("/"))
        return path + "/" if collection else path

    def rel_from_href(self, href: str, request_rel: str) -> str:
        """The mirror-relative path an href names; PermanentError if it leaves the mirror.

        ``request_rel`` is the collection that was asked about: an answer about anything
        outside it is as suspicious as one about another host.
        """
        # the common case, decided without parsing: the href is the requested collection's
        # own path followed by plain names (nothing to decode, nothing to resolve)
        prefix = self.target(request_rel, True)
        if href.startswith(prefix) and not _UNPLAIN.search(href, len(prefix)):
            rest = href[len(prefix):-1] if href.endswith("/") else href[len(prefix):]
            names = rest.split("/") if rest else []
            if "" not in names and "." not in names and ".." not in names:
                if not names:
                    return request_rel
                return f"{request_rel}/{rest}" if request_rel else rest
        shown = href if len(href) <= 200 else href[:200] + "..."

        def reject(why: str) -> PermanentError:
            return PermanentError(
                f"the server listed {shown!r}, {why}; refusing the listing of {self.url}",
                url=self.url,
                hint="the server or something in front of it is misconfigured or hostile",
            )

        try:
            parts = urllib.parse.urlsplit(href)
        except ValueError:
            raise reject("which is not a valid URL") from None
        if parts.scheme or parts.netloc:
            try:
                port = parts.port
            except ValueError:
                raise reject("which has an invalid port") from None
            scheme = parts.scheme.lower()
            if port is None:
                port = 443 if scheme == "https" else 80
            if scheme != self.scheme or (parts.hostname or "").lower() != self.host or (
                port != self.port
            ):
                raise reject("which is on another server")
        path = parts.path
        if not path.startswith("/"):
            path = self.abs_path(
                self.base_segments + (request_rel.split("/") if request_rel else []), True
            ) + path
        raw = path.split("/")[1:]
        if raw and raw[-1] == "":
            raw = raw[:-1]
        segments = []
        for seg in raw:
            try:
                dec = urllib.parse.unquote(seg, errors="strict")
            except UnicodeDecodeError:
                raise reject("whose name is not UTF-8") from None
            if dec in ("", ".", "..") or "/" in dec or "\x00" in dec or "\\" in dec:
                raise reject("which is outside the mirror")
            segments.append(dec)
        base = self.base_segments
        if segments[: len(base)] != base:
            raise reject("which is outside the mirror")
        rel = "/".join(segments[len(base):])
        if request_rel and not (rel == request_rel or rel.startswith(request_rel + "/")):
            raise reject(f"which is outside the collection {request_rel}/ that was asked for")
        return rel


def quote_segment(segment: str) -> str:
    """Percent-encode one path segment as bitbake does (``:`` -> ``%3A``, ``+``, spaces...)."""
    if _PLAIN_SEGMENT.fullmatch(segment):
        return segment  # nothing to encode (the hh/ directories), decided cheaply
    return urllib.parse.quote(segment, safe="")


def split_rel(rel: str) -> List[str]:
    """The segments of a mirror-relative path (none for the root)."""
    return rel.split("/") if rel else []
