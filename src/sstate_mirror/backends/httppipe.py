"""Pipelined HTTP/1.1: many small requests in flight per connection, answers in order.

A WebDAV mirror is kept with tens of thousands of tiny requests (a ``PROPFIND Depth: 1`` per
directory of the ``hh/hh/`` tree, a ``DELETE`` per file). One request at a time per
connection makes each one wait a round trip and costs a full trip through a general-purpose
client; the client's CPU, not the server, then limits the job (about 1 ms of Python per
request with httpx and a thread per connection, against 0.1 ms for a Go client).

HTTP/1.1 lets a client send further requests before the answers to earlier ones arrive
(RFC 9112, 9.3.2): the server answers them in order. No maintained Python client does this
(httpx, urllib3, requests and aiohttp each wait for an answer before the next request on a
connection), hence this small loop of our own: one thread, a few non-blocking connections,
``selectors``. Answers are parsed by ``h11``, the HTTP/1.1 state machine under httpx, so
framing (``Content-Length``, chunked, ``Connection: close``) is not re-implemented here.

The WebDAV backend sends its small requests this way (``PROPFIND``, ``DELETE``, ``PUT`` of
small files, ``MOVE``, ``MKCOL``, ``COPY``, ``PROPPATCH``), through one request API in
:mod:`.davtransport` that falls back to httpx where pipelining is off. Retries follow the
one policy of :mod:`sstate_mirror.retry`: when a connection breaks, whatever was not
answered is sent again on a new one, except a request that is not ``idempotent`` (``MOVE``)
and may have been carried out: that one fails, unretried, and the operation that sent it is
retried as a whole. A server that closes a connection after N requests (Apache's
``MaxKeepAliveRequests``, nginx's ``keepalive_requests``) is noticed and sent no more than N
per connection from then on; a server or proxy that stalls on pipelined requests (nothing
answered in time with several in flight) makes the pipeline fall back to one request at a
time for the rest of the run. Each retry is reported through :mod:`sstate_mirror.events`.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Deque, Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

import h11

from .. import events
from ..retry import backoff

_RECV = 256 * 1024
_END = h11.EndOfMessage()


@dataclass
class PipeRequest:
    """One idempotent request; ``tag`` is the caller's, handed back with the answer."""

    method: str
    target: str
    """The origin-form target: an absolute, percent-encoded path."""
    headers: Sequence[Tuple[str, str]] = ()
    body: bytes = b""
    tag: object = None
    attempts: int = 0
    """Failed tries so far (broken connection, timeout, a status worth retrying)."""
    not_before: float = 0.0
    idempotent: bool = True
    """False (``MOVE``): after a broken connection it may have been carried out, so it
    fails instead of being sent again, and so do the requests behind it."""
    retry_also: FrozenSet[int] = frozenset()
    """Statuses worth retrying for this request besides the pipeline's own."""


@dataclass
class Answer:
    """A complete answer. ``overflow`` means the body was longer than allowed and cut."""

    status_code: int
    reason_phrase: str
    raw_headers: List[Tuple[bytes, bytes]]
    body: bytes
    overflow: bool = False
    retried: bool = False
    """The answer came after the last allowed retry (a retry status nevertheless)."""

    @property
    def headers(self) -> _HeaderView:
        return _HeaderView(self.raw_headers)

    def close(self) -> None:
        """Nothing to release (the body is read); here so callers treat answers alike."""


class _HeaderView:
    """Case-insensitive ``get`` over h11's header list (lower-cased names)."""

    def __init__(self, raw: List[Tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        key = name.lower().encode("ascii")
        for k, v in self._raw:
            if k == key:
                return v.decode("latin-1")
        return default

    def get_list(self, name: str) -> List[str]:
        key = name.lower().encode("ascii")
        return [v.decode("latin-1") for k, v in self._raw if k == key]


@dataclass
class Failure:
    """A request that could not be answered within the allowed tries."""

    reason: str
    kind: str = "network"
    """``network`` (reset, cut, refused), ``timeout``, ``tls`` (handshake or certificate)."""
    cause: Optional[BaseException] = field(default=None, repr=False)
    sent: bool = True
    """False when the request never left (no connection): nothing can have been done."""


Outcome = Union[Answer, Failure]


class _Conn:
    """One connection: what is buffered to send, what awaits an answer, the parser."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = h11.Connection(h11.CLIENT)
        self.out = bytearray()
        self.inflight: Deque[PipeRequest] = deque()
        self.sent = 0  # requests put on this connection
        self.answered = 0
        self.status = 0
        self.reason = ""
        self.headers: List[Tuple[bytes, bytes]] = []
        self.body: List[bytes] = []
        self.body_size = 0
        self.overflow = False
        self.last_progress = time.monotonic()
        self.want_write = False


class Pipeline:
    """Requests in, ``(request, outcome)`` out, over up to ``connections`` connections.

    Use :meth:`submit` (also while iterating :meth:`results`, e.g. for the children of a
    listed directory), then iterate :meth:`results` until it ends. A pipeline can be run
    again afterwards; its idle connections are kept. Not thread-safe: one per thread.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        host_header: str,
        ssl_context: Optional[ssl.SSLContext],
        timeout: float,
        connect_timeout: Optional[float] = None,
        retries: int,
        connections: int = 4,
        depth: int = 32,
        retry_statuses: Iterable[int] = (),
        max_body: int = 16 * 1024 * 1024,
        base_headers: Sequence[Tuple[str, str]] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.retries = retries
        self.connections = max(1, connections)
        self.depth = max(1, depth)
        self.retry_statuses = frozenset(retry_statuses)
        self.max_body = max_body
        self._host_header = host_header
        self._prefix_headers = ""
        self._base_headers: Optional[Tuple[Tuple[str, str], ...]] = None
        self.set_base_headers(base_headers)
        self._conns: List[_Conn] = []
        self._queue: Deque[PipeRequest] = deque()
        self._delayed: List[PipeRequest] = []
        self._ready: Deque[Tuple[PipeRequest, Outcome]] = deque()
        self._selector = selectors.DefaultSelector()
        self._max_per_conn: Optional[int] = None
        self._connect_failures = 0
        self._connect_after = 0.0
        self._degraded = False
        self._prime_events: Dict[str, h11.Request] = {}

    # -- the caller's side -------------------------------------------------------------

    def set_base_headers(self, base_headers: Sequence[Tuple[str, str]]) -> None:
        """Headers of every request from now on (e.g. credentials once they are known)."""
        if tuple(base_headers) == self._base_headers:
            return  # the usual case: the same as when this pipeline was last taken
        self._base_headers = tuple(base_headers)
        self._prefix_headers = f"Host: {self._host_header}\r\n" + "".join(
            f"{_check(k)}: {_check(v)}\r\n" for k, v in base_headers)

    def submit(self, request: PipeRequest, first: bool = False) -> None:
        """Queue a request; ``first`` puts it ahead of everything not yet sent."""
        if first:
            self._queue.appendleft(request)
        else:
            self._queue.append(request)

    def results(self) -> Iterator[Tuple[PipeRequest, Outcome]]:
        """Drive the connections until everything submitted has an outcome."""
        self._drop_stale_idle()
        while True:
            while self._ready:
                yield self._ready.popleft()
            if not (self._queue or self._delayed or any(c.inflight for c in self._conns)):
                return
            self._step()

    @property
    def degraded(self) -> bool:
        """Pipelined requests stalled here: one at a time is all this server can take."""
        return self._degraded

    def close(self) -> None:
        for conn in list(self._conns):
            self._close(conn)
        self._selector.close()

    # -- the loop ----------------------------------------------------------------------

    def _step(self) -> None:
        now = time.monotonic()
        if self._delayed:
            due = [r for r in self._delayed if r.not_before <= now]
            if due:
                self._delayed = [r for r in self._delayed if r.not_before > now]
                self._queue.extendleft(reversed(due))
        self._admit(now)
        wait = self.timeout
        if self._delayed:
            wait = min(wait, max(0.0, min(r.not_before for r in self._delayed) - now))
        if self._queue and not self._conns:
            wait = min(wait, max(0.0, self._connect_after - now))
        if not self._conns:
            time.sleep(min(wait, 0.05) if wait > 0 else 0)
            return
        for key, mask in self._selector.select(wait):
            conn: _Conn = key.data
            if conn.sock.fileno() < 0:
                continue  # closed while handling an earlier event of this round
            if mask & selectors.EVENT_WRITE:
                self._write(conn)
            if mask & selectors.EVENT_READ and conn in self._conns:
                self._read(conn)
        now = time.monotonic()
        for conn in list(self._conns):
            if conn.inflight and now - conn.last_progress > self.timeout:
                self._broken(conn, Failure(
                    f"no answer from the server within {self.timeout:g} s", kind="timeout"),
                    stalled=True)

    def _admit(self, now: float) -> None:
        """Put queued requests on connections (opening them as needed), ``depth`` each."""
        depth = 1 if self._degraded else self.depth
        while self._queue:
            conn = self._pick(depth)
            if conn is None:
                if len(self._conns) >= self.connections or now < self._connect_after:
                    return
                conn = self._open()
                if conn is None:
                    return
                continue
            request = self._queue.popleft()
            conn.out += self._serialize(request)
            conn.inflight.append(request)
            conn.sent += 1
            if len(conn.inflight) == 1:
                conn.last_progress = now
                self._prime(conn)
            self._want_write(conn, True)

    def _pick(self, depth: int) -> Optional[_Conn]:
        best: Optional[_Conn] = None
        for conn in list(self._conns):
            spent = self._max_per_conn is not None and conn.sent >= self._max_per_conn
            if spent and not conn.inflight:
                self._close(conn)  # the server would close it next: make room for a new one
                continue
            if spent or len(conn.inflight) >= depth:
                continue
            if best is None or len(conn.inflight) < len(best.inflight):
                best = conn
        return best

    def _serialize(self, request: PipeRequest) -> bytes:
        head = f"{request.method} {request.target} HTTP/1.1\r\n{self._prefix_headers}"
        for k, v in request.headers:
            head += f"{_check(k)}: {_check(v)}\r\n"
        if request.body or request.method not in ("GET", "HEAD", "DELETE"):
            head += f"Content-Length: {len(request.body)}\r\n"
        return head.encode("latin-1") + b"\r\n" + request.body

    def _prime(self, conn: _Conn) -> None:
        """Tell h11 which request the next answer belongs to (its bytes are already sent)."""
        parser = conn.parser
        if parser.our_state is h11.IDLE and conn.inflight:
            method = conn.inflight[0].method
            # only the method matters to reading the answer (HEAD has no body): one
            # prepared event per method spares building and validating one per request
            event = self._prime_events.get(method)
            if event is None:
                event = h11.Request(method=method, target="/",
                                    headers=[("Host", self._host_header)])
                self._prime_events[method] = event
            parser.send(event)
            parser.send(_END)

    def _want_write(self, conn: _Conn, want: bool) -> None:
        if conn.want_write != want:
            conn.want_write = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self._selector.modify(conn.sock, events, conn)

    # -- connections ---------------------------------------------------------------------

    def _open(self) -> Optional[_Conn]:
        try:
            sock = socket.create_connection((self.host, self.port),
                                            timeout=self.connect_timeout)
        except OSError as exc:
            self._connect_failed(Failure(f"cannot connect: {exc}", cause=exc, sent=False))
            return None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            sock.setblocking(False)
        except ssl.SSLError as exc:
            sock.close()
            self._connect_failed(Failure(f"TLS handshake failed: {exc}", kind="tls", cause=exc,
                                         sent=False), permanent=True)
            return None
        except OSError as exc:
            sock.close()
            self._connect_failed(Failure(f"cannot connect: {exc}", cause=exc, sent=False))
            return None
        self._connect_failures = 0
        conn = _Conn(sock)
        self._conns.append(conn)
        self._selector.register(sock, selectors.EVENT_READ, conn)
        return conn

    def _connect_failed(self, failure: Failure, permanent: bool = False) -> None:
        """No connection: retry later, or give every waiting request the failure."""
        self._connect_failures += 1
        if permanent or self._connect_failures > self.retries:
            while self._queue:
                self._ready.append((self._queue.popleft(), failure))
            for request in self._delayed:
                self._ready.append((request, failure))
            self._delayed = []
            self._connect_failures = 0
            return
        delay = backoff(self._connect_failures - 1)
        events.retry(f"connecting to {self.host}:{self.port}", failure.reason,
                     self._connect_failures, self.retries, delay)
        self._connect_after = time.monotonic() + delay

    def _drop_stale_idle(self) -> None:
        """Close idle connections the server has closed meanwhile (keep-alive timeout)."""
        for conn in list(self._conns):
            if conn.inflight:
                continue
            try:
                conn.sock.recv(1)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue  # open and quiet: reusable
            except OSError:
                pass
            # closed by the server, broken, or an unrequested byte: not in a state to reuse
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if conn in self._conns:
            self._conns.remove(conn)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()

    def _broken(self, conn: _Conn, failure: Failure, stalled: bool = False) -> None:
        """The connection failed: its first unanswered request counts a failed try, the ones
        behind it never had a chance and are sent again as they were."""
        self._close(conn)
        if stalled and len(conn.inflight) > 1 and not self._degraded:
            self._degraded = True
            events.warning("%s:%d did not answer pipelined requests in time; sending one"
                        " request at a time from now on", self.host, self.port)
        if not conn.inflight:
            return
        first = conn.inflight.popleft()
        again = []
        for request in conn.inflight:
            if request.idempotent:
                again.append(request)
            else:
                self._ready.append((request, failure))
        self._queue.extendleft(reversed(again))
        if first.idempotent:
            self._retry_or_fail(first, failure)
        else:
            self._ready.append((first, failure))

    def _retire(self, conn: _Conn, status: int) -> None:
        """The server closes this connection after its last answer: resend the rest.

        A close announced with a successful answer is a limit of requests per connection
        (Apache's MaxKeepAliveRequests): remembered. One after an error is not.
        """
        if status < 400 and conn.answered and (self._max_per_conn is None
                                               or conn.answered < self._max_per_conn):
            self._max_per_conn = conn.answered
        self._close(conn)
        self._queue.extendleft(reversed(conn.inflight))

    def _retry_or_fail(self, request: PipeRequest, failure: Failure) -> None:
        if not self._retry_later(request, failure.reason):
            self._ready.append((request, failure))

    def _retry_later(self, request: PipeRequest, reason: str,
                     retry_after: Optional[str] = None) -> bool:
        """Send the request again after a backoff; False once its retries are used up."""
        if request.attempts >= self.retries:
            return False
        request.attempts += 1
        delay = backoff(request.attempts - 1, retry_after)
        events.retry(f"{request.method} {request.target}", reason, request.attempts,
                     self.retries, delay)
        request.not_before = time.monotonic() + delay
        self._delayed.append(request)
        return True

    # -- I/O ---------------------------------------------------------------------------

    def _write(self, conn: _Conn) -> None:
        try:
            while conn.out:
                sent = conn.sock.send(conn.out)
                if not sent:
                    break
                del conn.out[:sent]
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            pass
        except OSError as exc:
            self._broken(conn, Failure(f"connection failed: {exc}", cause=exc))
            return
        if not conn.out:
            self._want_write(conn, False)

    def _read(self, conn: _Conn) -> None:
        while True:
            try:
                data = conn.sock.recv(_RECV)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError as exc:
                self._broken(conn, Failure(f"connection failed: {exc}", cause=exc))
                return
            conn.last_progress = time.monotonic()
            with contextlib.suppress(RuntimeError):  # data after EOF
                conn.parser.receive_data(data)
            if not self._parse(conn) or not data:
                return

    def _parse(self, conn: _Conn) -> bool:
        """Take the complete answers out of the parser; False once the connection is gone."""
        parser = conn.parser
        while True:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._broken(conn, Failure(f"invalid HTTP answer: {exc}", cause=exc))
                return False
            kind = type(event)
            if kind is h11.Data:
                conn.body_size += len(event.data)  # type: ignore[union-attr]
                if conn.body_size <= self.max_body:
                    conn.body.append(event.data)  # type: ignore[union-attr]
                else:
                    conn.overflow = True
            elif kind is h11.Response:
                conn.status = event.status_code  # type: ignore[union-attr]
                conn.reason = event.reason.decode("latin-1")  # type: ignore[union-attr]
                conn.headers = list(event.headers)  # type: ignore[union-attr]
                conn.body, conn.body_size, conn.overflow = [], 0, False
            elif kind is h11.EndOfMessage:
                self._answered(conn)
                if parser.their_state is h11.MUST_CLOSE or parser.our_state is h11.MUST_CLOSE:
                    self._retire(conn, conn.status)
                    return False
            elif event is h11.PAUSED:
                parser.start_next_cycle()
                self._prime(conn)
            elif event is h11.NEED_DATA:
                return True
            elif kind is h11.ConnectionClosed:
                if conn.inflight:
                    self._broken(conn, Failure("the server closed the connection"))
                else:
                    self._close(conn)
                return False
            # InformationalResponse (1xx): nothing to do

    def _answered(self, conn: _Conn) -> None:
        request = conn.inflight.popleft()
        conn.answered += 1
        answer = Answer(conn.status, conn.reason, conn.headers, b"".join(conn.body),
                        overflow=conn.overflow)
        conn.body = []
        if answer.status_code in self.retry_statuses or answer.status_code in request.retry_also:
            if self._retry_later(request, f"status {answer.status_code}",
                                 answer.headers.get("Retry-After")):
                return
            answer.retried = True
        self._ready.append((request, answer))


def _check(text: str) -> str:
    """A header name or value as given, refused if it could split the request."""
    if "\r" in text or "\n" in text:
        raise ValueError(f"line break in an HTTP header: {text!r}")
    return text
