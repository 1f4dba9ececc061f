"""A small fault-injecting TCP proxy for HTTP/1.1, in front of a real server on 127.0.0.1.

Faults happen on the wire, where real networks and servers fail, so the code under test runs
unchanged (real boto3, real httpx) against a real server (moto, rclone, nginx, wsgidav)::

    with FaultProxy(upstream_port) as proxy:
        proxy.add(Fault("status", status=503, times=2, match=lambda r: r.method == "PUT"))
        ... point the client at proxy.url ...
        assert proxy.count(lambda r: r.method == "PUT") == 3

Requests are found by parsing just enough of the request framing (request line, headers,
``Content-Length`` or ``chunked`` body) to count requests on keep-alive connections; the
first :class:`Fault` whose ``match`` accepts a request (and that has ``times`` left) acts on
it:

* ``reset``: forward the head and ``after_bytes`` of the body, then reset both connections
  (RST through ``SO_LINGER`` 0): a server killed mid-upload, a dropped connection; with
  ``after_bytes`` -1 nothing is forwarded (the request never reaches the server: the
  server cannot answer it before the reset, which it may when the head went through);
* ``cut``: forward the request, relay ``after_bytes`` of the answer, then close: a server
  that dies mid-answer (a listing cut half-way);
* ``stall``: hold the request without forwarding or answering, for ``stall`` seconds or until
  the proxy stops: a hung server, which the client's timeout must catch;
* ``status``: answer ``status`` (500/503/429/408, ...) instead of the server, with
  ``Retry-After: retry_after`` (none when None), then close;
* ``hold``: call ``gate()`` (a barrier shared with other proxies, say), then forward the
  request as usual: proves that several clients had a request in flight at one instant.

Every request records when its head arrived (``Request.at``, ``time.monotonic()``), so a test
can check the gap between a request and its retry. ``Host`` and a WebDAV ``Destination``
naming the proxy are rewritten to name the server, as a reverse proxy does (Apache refuses a
``MOVE`` to another port than its own, wsgidav one to another host than the request's).

``throttle`` (seconds per 16 KiB chunk, both directions) slows every connection down, for
tests that must interrupt a transfer mid-way. ``date_shift`` (seconds) moves the ``Date``
header of every answer: a server whose clock is off (the answers are otherwise untouched; an
HTTP date always has the same length, so no framing changes). Every loop is bounded and the proxy stops by
itself after ``lifetime`` seconds, so a broken test cannot hang the suite.
"""

from __future__ import annotations

import contextlib
import email.utils
import re
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

_CHUNK = 16 * 1024
_MAX_HEAD = 64 * 1024

REASONS = {408: "Request Timeout", 409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass
class Request:
    """One request as the proxy saw it."""

    index: int
    """Position among all requests the proxy saw (0-based)."""
    method: str
    target: str
    headers: Dict[str, str]
    fault: Optional[str] = None
    """The action applied to it, or None when it was forwarded untouched."""
    at: float = 0.0
    """``time.monotonic()`` when its head arrived."""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""


@dataclass
class Fault:
    action: str  # "reset" | "cut" | "stall" | "status" | "hold"
    match: Callable[[Request], bool] = lambda _r: True
    times: Optional[int] = None
    """How many requests it acts on; None: every matching request."""
    status: int = 503
    retry_after: Optional[str] = "0"
    gate: Callable[[], None] = lambda: None
    after_bytes: int = 0
    stall: float = 30.0
    fired: int = 0


class _Closed(Exception):
    """The client or the server went away."""


class _Reader:
    """Buffered reads from a socket: a line, an exact count, or what is there."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(_CHUNK)
        if not data:
            raise _Closed()
        self.buf += data

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > _MAX_HEAD:
                raise _Closed()
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def some(self, limit: int) -> bytes:
        if not self.buf:
            self._fill()
        data, self.buf = self.buf[:limit], self.buf[limit:]
        return data


def _rst(sock: socket.socket) -> None:
    """Make ``sock`` end with a reset instead of an orderly FIN, now or when it is closed.

    ``SHUT_RD`` wakes the thread that may be blocked reading the socket, which then closes it
    (with the zero linger set here: a reset). Only the thread serving a connection closes
    its sockets, after its relay thread has ended: a socket closed under another thread's
    ``recv()`` or ``send()`` frees its number for the next connection accepted, which that
    call could then read from or write to (a request lost, its client left to time out).
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)


def _resets(sock: socket.socket) -> bool:
    """Whether :func:`_rst` marked ``sock`` (a zero linger: its close sends a reset)."""
    try:
        return struct.unpack("ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
                             ) == (1, 0)
    except OSError:
        return False


class FaultProxy:
    """A threaded proxy on a free port of 127.0.0.1 forwarding to ``upstream_port``."""

    def __init__(self, upstream_port: int, *, lifetime: float = 300.0,
                 throttle: float = 0.0, date_shift: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.throttle = throttle
        self.date_shift = date_shift
        self.faults: List[Fault] = []
        self.requests: List[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + lifetime
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._threads: List[threading.Thread] = []
        self._sockets: List[socket.socket] = []
        self._accept_thread = threading.Thread(target=self._accept, daemon=True,
                                               name=f"faultproxy-{self.port}")
        self._accept_thread.start()

    # -- what tests use --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """No more faults (the server is healthy again); throttling stops too."""
        with self._lock:
            self.faults.clear()
            self.throttle = 0.0

    def seen(self, pred: Callable[[Request], bool] = lambda _r: True) -> List[Request]:
        with self._lock:
            return [r for r in self.requests if pred(r)]

    def count(self, pred: Callable[[Request], bool] = lambda _r: True) -> int:
        return len(self.seen(pred))

    def stop(self) -> None:
        self._stop.set()
        self._accept_thread.join(5)
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv()
        deadline = time.monotonic() + 2  # daemon threads: never wait long for them
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        for s in sockets:  # those their threads did not close (still blocked somewhere)
            with contextlib.suppress(OSError):
                s.close()
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- machinery ---------------------------------------------------------------------------

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _accept(self) -> None:
        while self._running():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._lock:
                self._sockets.append(client)
                self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _fault_for(self, request: Request) -> Optional[Fault]:
        with self._lock:
            self.requests.append(request)
            for fault in self.faults:
                if (fault.times is None or fault.fired < fault.times) and fault.match(request):
                    fault.fired += 1
                    request.fault = fault.action
                    return fault
        return None

    def _pause(self) -> None:
        if self.throttle:
            self._stop.wait(self.throttle)

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(60)
        upstream: Optional[socket.socket] = None
        relay: Optional[threading.Thread] = None
        cut: Dict[str, int] = {}
        reader = _Reader(client)
        try:
            while self._running():
                head, request, body = self._read_head(reader)
                fault = self._fault_for(request)
                if fault is not None and fault.action == "status":
                    if "100-continue" not in request.headers.get("expect", "").lower():
                        for _ in body(None):  # read (and drop) the body the client sends
                            pass
                    reason = REASONS.get(fault.status, "Error")
                    retry_after = ("" if fault.retry_after is None
                                   else f"Retry-After: {fault.retry_after}\r\n")
                    client.sendall(
                        f"HTTP/1.1 {fault.status} {reason}\r\nContent-Length: 0\r\n"
                        f"{retry_after}Connection: close\r\n\r\n".encode())
                    client.shutdown(socket.SHUT_WR)
                    time.sleep(0.05)
                    return
                if fault is not None and fault.action == "stall":
                    self._stop.wait(fault.stall)
                    return
                if fault is not None and fault.action == "hold":
                    fault.gate()
                    fault = None
                if fault is not None and fault.action == "reset" and fault.after_bytes < 0:
                    _rst(client)
                    return
                if upstream is None:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 10)
                    upstream.settimeout(60)
                    with self._lock:
                        self._sockets.append(upstream)
                    relay = threading.Thread(target=self._relay_answers,
                                             args=(upstream, client, cut), daemon=True)
                    relay.start()
                if fault is not None and fault.action == "cut":
                    with self._lock:
                        cut["left"] = fault.after_bytes
                upstream.sendall(head)
                sent = 0
                for chunk in body(fault.after_bytes if fault and fault.action == "reset"
                                  else None):
                    upstream.sendall(chunk)
                    sent += len(chunk)
                    self._pause()
                if fault is not None and fault.action == "reset":
                    _rst(upstream)
                    _rst(client)
                    return
        except (_Closed, OSError):
            pass
        finally:
            sockets = [s for s in (client, upstream) if s is not None]
            for s in sockets:
                with contextlib.suppress(OSError):  # wakes the relay thread's recv()
                    s.shutdown(socket.SHUT_RD if _resets(s) else socket.SHUT_RDWR)
            if relay is not None:
                relay.join(5)
            for s in sockets:  # closed here only, once the relay is done with them
                with contextlib.suppress(OSError):
                    s.close()

    def _read_head(self, reader: _Reader) -> Tuple[bytes, Request,
                                                   Callable[[Optional[int]], Iterator[bytes]]]:
        first = reader.line()
        while first == b"\r\n":  # stray CRLF between requests
            first = reader.line()
        lines = [first]
        headers: Dict[str, str] = {}
        proxy_origin = f"//127.0.0.1:{self.port}/"
        while True:
            line = reader.line()
            if line.lower().startswith(b"destination:"):
                line = line.decode("latin-1").replace(
                    proxy_origin, f"//127.0.0.1:{self.upstream_port}/").encode("latin-1")
            elif line.lower().startswith(b"host:") and f":{self.port}".encode() in line:
                line = f"Host: 127.0.0.1:{self.upstream_port}\r\n".encode("latin-1")
            lines.append(line)
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
            if len(lines) > 200:
                raise _Closed()
        parts = first.decode("latin-1").split()
        if len(parts) < 3:
            raise _Closed()
        with self._lock:
            index = len(self.requests)
        request = Request(index, parts[0], parts[1], headers, at=time.monotonic())

        def body(limit: Optional[int]) -> Iterator[bytes]:
            return _body(reader, headers, limit)

        return b"".join(lines), request, body

    def _relay_answers(self, upstream: socket.socket, client: socket.socket,
                       cut: Dict[str, int]) -> None:
        held = b""  # with date_shift: the start of a line that may be a Date header
        try:
            while self._running():
                if held and not select.select([upstream], [], [], 0.2)[0]:
                    client.sendall(held)  # nothing more came: it was not a header
                    held = b""
                    continue
                data = upstream.recv(_CHUNK)
                if not data:
                    if held:
                        client.sendall(held)
                    break
                if self.date_shift:
                    data, held = _shift_dates(held + data, self.date_shift)
                with self._lock:
                    left = cut.get("left")
                if left is not None:
                    if len(data) > left:
                        client.sendall(data[:left])
                        _rst(client)
                        _rst(upstream)
                        return
                    with self._lock:
                        cut["left"] = left - len(data)
                client.sendall(data)
                self._pause()
        except (OSError, ValueError):  # ValueError: select() on a socket closed after the
            pass                        # 5 s its connection's thread waits for this one
        if not _resets(client):  # (a reset is sent when the connection's thread closes it)
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_WR)


_DATE = re.compile(rb"\r\n([Dd]ate: )([^\r\n]*)\r\n")


def _shift_dates(data: bytes, shift: float) -> Tuple[bytes, bytes]:
    """``data`` with every complete ``Date`` header moved by ``shift`` seconds, and the tail
    to hold back because it may be the start of one (sent once more data shows it is not)."""

    def moved(m: re.Match[bytes]) -> bytes:
        when = email.utils.parsedate_to_datetime(m.group(2).decode("latin-1"))
        text = email.utils.formatdate(when.timestamp() + shift, usegmt=True)
        return b"\r\n" + m.group(1) + text.encode("latin-1") + b"\r\n"

    data = _DATE.sub(moved, data)
    cut = data.rfind(b"\r\n")
    if cut >= 0 and len(data) - cut < 64 and b"\r\ndate: ".startswith(data[cut:].lower()[:8]):
        return data[:cut], data[cut:]
    return data, b""


def _body(reader: _Reader, headers: Dict[str, str], limit: Optional[int]) -> Iterator[bytes]:
    """The raw bytes of a request body, framed by Content-Length or chunked encoding.

    With ``limit``, stops after that many bytes (a reset mid-upload).
    """
    sent = 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = reader.line()
            yield size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    trailer = reader.line()
                    yield trailer
                    if trailer == b"\r\n":
                        return
            left = size + 2
            while left:
                chunk = reader.some(min(left, _CHUNK))
                left -= len(chunk)
                yield chunk
    left = int(headers.get("content-length", "0") or 0)
    while left > 0:
        want = min(left, _CHUNK)
        if limit is not None:
            if sent >= limit:
                return
            want = min(want, limit - sent)
        chunk = reader.some(want)
        left -= len(chunk)
        sent += len(chunk)
        yield chunk
