"""WebDAV XML: request bodies, and a safe streaming reader for ``207 Multi-Status`` answers.

Everything a server sends is untrusted. Responses are parsed only through :mod:`defusedxml`
with DTDs refused outright (a multistatus never needs one, and entity expansion is how a
"billion laughs" document exhausts memory). Parsing is incremental: one ``<D:response>`` is
built, handed to the caller and dropped before the next is read, so a Depth: infinity listing
of a million files needs no more memory than one entry. Two byte limits bound what a hostile
or broken server can make us hold: the whole body, and the bytes of any one element.
"""

from __future__ import annotations

import calendar
import email.utils
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Optional
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET

from ..chunkstream import ChunkStream

DAV = "{DAV:}"

#: Properties asked for in every PROPFIND: only what a listing needs, so answers stay small.
PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:creationdate/>"
    b"</D:prop></D:propfind>"
)


#: The same and the entity tag: what a touch needs to make its MOVE conditional.
PROPFIND_ETAG_BODY = PROPFIND_BODY.replace(b"<D:creationdate/>", b"<D:creationdate/><D:getetag/>")


def proppatch_lastmodified_body(http_date: str) -> bytes:
    """A PROPPATCH setting ``getlastmodified`` (honoured by servers that allow it, e.g. wsgidav
    with ``mutable_live_props``)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
        f"<D:getlastmodified>{http_date}</D:getlastmodified>"
        "</D:prop></D:set></D:propertyupdate>"
    ).encode()


class XMLError(Exception):
    """The server's XML is malformed, unsafe, too large or not a multistatus."""


@dataclass(frozen=True)
class DavResponse:
    """One ``<D:response>``: the raw href and what its successful propstat said."""

    href: str
    status: Optional[int]
    """The response-level status (``<D:response><D:status>``) if the server gave one."""
    is_collection: bool
    size: Optional[int]
    mtime: Optional[float]
    prop_status: Optional[int]
    """The status of the first propstat (for PROPPATCH answers)."""
    etag: Optional[str] = None
    """``getetag`` where asked for (:data:`PROPFIND_ETAG_BODY`), as an HTTP entity-tag."""


class LimitedReader(ChunkStream):
    """A file-like view of a byte iterator that refuses to deliver more than the limits allow.

    ``max_total`` bounds the body; ``max_element`` bounds the bytes read since :meth:`mark`
    was last called, which the parser calls after each completed element.
    """

    def __init__(self, chunks: Iterable[bytes], max_total: int, max_element: int) -> None:
        super().__init__(chunks)
        self.total = 0
        self._mark = 0
        self.max_total = max_total
        self.max_element = max_element

    def mark(self) -> None:
        self._mark = self.total

    def handed_out(self, data: memoryview) -> None:
        self.total += len(data)
        if self.total > self.max_total:
            raise XMLError(f"answer larger than the {self.max_total} bytes allowed")
        if self.total - self._mark > self.max_element:
            raise XMLError(f"one XML element larger than the {self.max_element} bytes allowed")


def iter_multistatus(reader: LimitedReader) -> Iterator[DavResponse]:
    """Yield each ``<D:response>`` of a multistatus body as it arrives.

    Raises :class:`XMLError` for anything that is not a well-formed, DTD-free multistatus.
    """
    stream = io.BufferedReader(reader, buffer_size=64 * 1024)
    root: Optional[Element] = None
    try:
        for event, elem in SafeET.iterparse(
            stream, events=("start", "end"), forbid_dtd=True, forbid_entities=True,
            forbid_external=True,
        ):
            if event == "start":
                if root is None:
                    root = elem
                    if elem.tag != DAV + "multistatus":
                        raise XMLError(f"expected a DAV:multistatus document, got <{elem.tag}>")
                continue
            if elem.tag == DAV + "response":
                yield _response(elem)
                root.clear()  # type: ignore[union-attr]  # drop what was parsed so far
                reader.mark()
    except (ParseError, defusedxml.DefusedXmlException) as exc:
        raise XMLError(f"invalid or unsafe XML: {exc}") from exc
    if root is None:
        raise XMLError("empty answer where a DAV:multistatus document was expected")


#: Bodies up to this size are parsed whole (faster); larger ones incrementally.
WHOLE_PARSE_MAX = 1024 * 1024


def parse_multistatus(body: bytes, max_element: int) -> Iterator[DavResponse]:
    """The responses of a multistatus body already in memory (a pipelined answer).

    A small body is parsed in one go, which costs half of the incremental parse per
    request; a large one goes through :func:`iter_multistatus`, so that memory stays bounded
    by one element whatever a server sends.
    """
    if len(body) > WHOLE_PARSE_MAX:
        yield from iter_multistatus(LimitedReader([body], len(body), max_element))
        return
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
    except (ParseError, defusedxml.DefusedXmlException) as exc:
        raise XMLError(f"invalid or unsafe XML: {exc}") from exc
    if root.tag != DAV + "multistatus":
        raise XMLError(f"expected a DAV:multistatus document, got <{root.tag}>")
    for elem in root.iterfind(DAV + "response"):
        yield _response(elem)


def _response(elem: Element) -> DavResponse:
    href_el = elem.find(DAV + "href")
    if href_el is None or not (href_el.text or "").strip():
        raise XMLError("a DAV:response without DAV:href")
    href = (href_el.text or "").strip()
    status = _status(elem.findtext(DAV + "status"))
    is_collection = False
    size: Optional[int] = None
    lastmod: Optional[float] = None
    created: Optional[float] = None
    prop_status: Optional[int] = None
    etag: Optional[str] = None
    for propstat in elem.findall(DAV + "propstat"):
        pst = _status(propstat.findtext(DAV + "status"))
        if prop_status is None:
            prop_status = pst
        if pst is not None and not 200 <= pst < 300:
            continue
        prop = propstat.find(DAV + "prop")
        if prop is None:
            continue
        rtype = prop.find(DAV + "resourcetype")
        if rtype is not None and rtype.find(DAV + "collection") is not None:
            is_collection = True
        text = prop.findtext(DAV + "getcontentlength")
        if text and text.strip():
            try:
                size = int(text.strip())
            except ValueError:
                raise XMLError(
                    f"getcontentlength {text.strip()!r} of {href} is not a number"
                ) from None
            if size < 0:
                raise XMLError(f"negative getcontentlength for {href}")
        text = prop.findtext(DAV + "getlastmodified")
        if text and text.strip():
            lastmod = parse_http_date(text.strip())
        text = prop.findtext(DAV + "creationdate")
        if text and text.strip():
            created = parse_iso8601(text.strip())
        text = prop.findtext(DAV + "getetag")
        if text and text.strip():
            etag = text.strip()
            if not etag.endswith('"'):  # some servers (wsgidav) leave out the quotes
                etag = f'"{etag}"'
            if not _ETAG_RE.fullmatch(etag):
                etag = None  # nothing that could not go back into a header as it is
    return DavResponse(
        href=href,
        status=status,
        is_collection=is_collection,
        size=size,
        mtime=lastmod if lastmod is not None else created,
        prop_status=prop_status,
        etag=etag,
    )


_ETAG_RE = re.compile(r'(W/)?"[\x21\x23-\x5a\x5e-\x7e]{0,200}"')
_STATUS_RE = re.compile(r"^\s*HTTP/\d(?:\.\d)?\s+(\d{3})\b")


def _status(text: Optional[str]) -> Optional[int]:
    if not text:
        return None
    m = _STATUS_RE.match(text)
    return int(m.group(1)) if m else None


_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_IMF_FIXDATE = re.compile(
    r"[A-Z][a-z]{2}, (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT")


def parse_http_date(text: str) -> Optional[float]:
    """RFC 1123 (and the older forms HTTP allows) to a POSIX timestamp; None if unreadable.

    A date without a zone is read as GMT, as HTTP says, never as local time.
    """
    m = _IMF_FIXDATE.fullmatch(text)  # the form servers send, read without email.utils
    if m is not None and m.group(2) in _MONTHS:
        day, _mon, year, hour, minute, second = m.groups()
        try:
            return float(calendar.timegm((int(year), _MONTHS[m.group(2)], int(day), int(hour),
                                          int(minute), int(second), 0, 0, 0)))
        except (OverflowError, ValueError):
            return None
    try:
        parsed = email.utils.parsedate_tz(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    offset = parsed[9] or 0
    try:
        return float(calendar.timegm((*parsed[:6], 0, 0, 0)) - offset)
    except (OverflowError, ValueError):
        return None


_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$"
)


def parse_iso8601(text: str) -> Optional[float]:
    """ISO 8601 / RFC 3339 (``creationdate``) to a POSIX timestamp; None if unreadable.

    A time without a zone is taken as UTC (servers that omit it run in UTC in practice, and
    reading it as local time is the classic bug).
    """
    m = _ISO_RE.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    try:
        base = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (OverflowError, ValueError):
        return None
    frac = float(m.group(7)) if m.group(7) else 0.0
    offset = 0
    if m.group(9):
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        if m.group(9) == "-":
            offset = -offset
    return base + frac - offset
