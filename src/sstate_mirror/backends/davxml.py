"""WebDAV XML: request bodies, and a safe streaming reader for ``207 Multi-Status`` answers.

Everything a server sends is untrusted. Answers are read by expat (the C parser of the
standard library) with handlers of our own, set up as :mod:`defusedxml` sets up its expat
parsers: a document type declaration is refused outright (a multistatus never needs one, and
without one no entity can be declared: no "billion laughs", no external entity), and so is
any entity or external reference expat reports. Hand-written on top of expat rather than
through ``defusedxml.ElementTree`` for speed: that module builds every element with the
pure-Python ``TreeBuilder``, and a listing is tens of thousands of answers (the cost per
``PROPFIND`` answer was most of ``info``'s time on a fast server); here only the handful of
values a listing needs are kept, and nothing is built.

Parsing is incremental: each ``<D:response>`` is handed to the caller as soon as it is
complete, so a Depth: infinity listing of a million files needs no more memory than one
entry. Two byte limits bound what a hostile or broken server can make us hold: the whole
body, and the bytes of any one response.
"""

from __future__ import annotations

import calendar
import email.utils
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Dict, List, Optional
from xml.parsers import expat

from ..chunkstream import ChunkStream
from .base import MAX_OBJECT_SIZE

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


_NS = "DAV: "  # expat's name for an element of the DAV: namespace is "DAV: <local name>"
_MULTISTATUS, _RESPONSE, _PROPSTAT, _PROP = (_NS + n for n in (
    "multistatus", "response", "propstat", "prop"))
_HREF, _STATUS, _RESOURCETYPE, _COLLECTION = (_NS + n for n in (
    "href", "status", "resourcetype", "collection"))
#: Properties whose text a listing reads (children of DAV:prop).
_TEXT_PROPS = frozenset(_NS + n for n in ("getcontentlength", "getlastmodified",
                                          "creationdate", "getetag"))


class _Multistatus:
    """expat handlers that turn a multistatus into :class:`DavResponse` values.

    Element names are tracked as a stack; text is kept only for the elements a listing
    reads (``href`` and ``status`` of a response, ``status`` of a propstat, three
    properties), everything else is skipped without building anything.
    """

    def __init__(self) -> None:
        self.parser = expat.ParserCreate(namespace_separator=" ")
        self.parser.buffer_text = True
        self.parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._text
        self.parser.StartDoctypeDeclHandler = self._forbidden_dtd
        self.parser.EntityDeclHandler = self._forbidden_entity
        self.parser.UnparsedEntityDeclHandler = self._forbidden_entity
        self.parser.ExternalEntityRefHandler = self._forbidden_external
        self.parser.SkippedEntityHandler = self._forbidden_entity
        self.stack: List[str] = []
        self.done: List[DavResponse] = []
        self.text: Optional[List[str]] = None  # collecting the current element's text
        self._new_response()

    def feed(self, data: bytes, final: bool = False) -> List[DavResponse]:
        """Parse ``data``; the responses completed by it."""
        try:
            self.parser.Parse(data, final)
        except expat.ExpatError as exc:
            raise XMLError(f"invalid XML: {exc}") from exc
        if final and not self.seen_root:
            raise XMLError("empty answer where a DAV:multistatus document was expected")
        done, self.done = self.done, []
        return done

    seen_root = False

    def _forbidden_dtd(self, name: str, *_: Any) -> None:
        raise XMLError(f"unsafe XML: a document type declaration ({name})")

    def _forbidden_entity(self, name: Any = None, *_: Any) -> None:
        raise XMLError(f"unsafe XML: an entity ({name})")

    def _forbidden_external(self, context: Any, base: Any, system_id: Any, *_: Any) -> int:
        raise XMLError(f"unsafe XML: an external reference ({system_id})")

    def _new_response(self) -> None:
        self.href: Optional[str] = None
        self.status: Optional[int] = None
        self.is_collection = False
        self.values: Dict[str, str] = {}
        self.prop_status: Optional[int] = None
        self.first_propstat = True
        self._new_propstat()

    def _new_propstat(self) -> None:
        self.ps_status: Optional[int] = None
        self.ps_collection = False
        self.ps_values: Dict[str, str] = {}

    def _start(self, name: str, _attrs: Any) -> None:
        stack = self.stack
        depth = len(stack)
        if depth == 0:
            if name != _MULTISTATUS:
                raise XMLError(f"expected a DAV:multistatus document, got <{_shown(name)}>")
            self.seen_root = True
        elif depth == 1:
            if name == _RESPONSE:
                self._new_response()
        elif depth == 2 and stack[1] == _RESPONSE:
            if name in (_HREF, _STATUS):
                self.text = []
            elif name == _PROPSTAT:
                self._new_propstat()
        elif depth == 3 and stack[2] == _PROPSTAT and name == _STATUS:
            self.text = []
        elif depth == 4 and stack[3] == _PROP and stack[2] == _PROPSTAT:
            if name in _TEXT_PROPS:
                self.text = []
        elif (depth == 5 and name == _COLLECTION and stack[4] == _RESOURCETYPE
              and stack[2] == _PROPSTAT):
            self.ps_collection = True
        stack.append(name)

    def _text(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)

    def _end(self, name: str) -> None:
        stack = self.stack
        stack.pop()
        depth = len(stack)
        text = None
        if self.text is not None:
            text = "".join(self.text).strip()
            self.text = None
        if depth == 2 and stack[1] == _RESPONSE:
            if name == _HREF:
                if self.href is None:
                    self.href = text
            elif name == _STATUS:
                self.status = _status(text)
            elif name == _PROPSTAT:
                self._end_propstat()
        elif depth == 3 and name == _STATUS and stack[2] == _PROPSTAT:
            self.ps_status = _status(text)
        elif depth == 4 and text is not None and name in _TEXT_PROPS:
            self.ps_values[name] = text
        elif depth == 1 and name == _RESPONSE:
            self.done.append(self._response())

    def _end_propstat(self) -> None:
        pst = self.ps_status
        if self.first_propstat:
            self.prop_status, self.first_propstat = pst, False
        if pst is not None and not 200 <= pst < 300:
            return
        self.is_collection = self.is_collection or self.ps_collection
        self.values.update((k, v) for k, v in self.ps_values.items() if v)

    def _response(self) -> DavResponse:
        href = self.href
        if not href:
            raise XMLError("a DAV:response without DAV:href")
        size: Optional[int] = None
        text = self.values.get(_NS + "getcontentlength")
        if text:
            try:
                size = int(text)
            except ValueError:
                raise XMLError(f"getcontentlength {text!r} of {href} is not a number") from None
            if not 0 <= size <= MAX_OBJECT_SIZE:
                raise XMLError(f"getcontentlength {size} of {href} is no object's size")
        mtime: Optional[float] = None
        text = self.values.get(_NS + "getlastmodified")
        if text:
            mtime = parse_http_date(text)
        if mtime is None:
            text = self.values.get(_NS + "creationdate")
            if text:
                mtime = parse_iso8601(text)
        etag: Optional[str] = self.values.get(_NS + "getetag")
        if etag:
            if not etag.endswith('"'):  # some servers (wsgidav) leave out the quotes
                etag = f'"{etag}"'
            if not _ETAG_RE.fullmatch(etag):
                etag = None  # nothing that could not go back into a header as it is
        return DavResponse(href=href, status=self.status, is_collection=self.is_collection,
                           size=size, mtime=mtime, prop_status=self.prop_status,
                           etag=etag or None)


def _shown(name: str) -> str:
    """An expat name (``URI local``) as ElementTree writes it (``{URI}local``)."""
    uri, _, local = name.rpartition(" ")
    return f"{{{uri}}}{local}" if uri else local


def iter_multistatus(reader: LimitedReader) -> Iterator[DavResponse]:
    """Yield each ``<D:response>`` of a multistatus body as it arrives.

    Raises :class:`XMLError` for anything that is not a well-formed, DTD-free multistatus.
    """
    parser = _Multistatus()
    while True:
        chunk = reader.read(64 * 1024)
        for item in parser.feed(chunk or b"", final=not chunk):
            yield item
            reader.mark()
        if not chunk:
            return


def parse_multistatus(body: bytes, max_element: int) -> Iterator[DavResponse]:
    """The responses of a multistatus body already in memory (a pipelined answer).

    ``max_element`` bounds one response, as for a streamed answer.
    """
    yield from iter_multistatus(LimitedReader([body], len(body), max_element))


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


@functools.lru_cache(maxsize=4096)  # a collection's files often share a time
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
