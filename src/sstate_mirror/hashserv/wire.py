"""The hash equivalence server's transport: text lines over a stream, or websocket messages.

Hand-written over :mod:`socket` because bitbake's own client (``bb.asyncrpc``) is not on PyPI
apart from a whole bitbake, and because its reader grows without bound: ``readline()`` on a
server that never sends a newline. Here every read is bounded before it is decoded: a line is
at most :data:`MAX_LINE` bytes, whatever the server sends, and the receive buffer never holds
more than that plus one socket read. Websockets use the ``websockets`` package (an optional
dependency, like in bitbake) with the same bound as its message size limit.
"""

from __future__ import annotations

import socket
import ssl
from contextlib import ExitStack
from typing import Any, Dict, List, Optional, Sequence

from ..errors import BackendUnavailable
from .address import TCP, UNIX, Address
from .errors import HashServerError

#: The longest line or websocket message accepted. The server's own messages are far smaller
#: (it splits anything above 32 KiB into a chunk stream of lines of that size).
MAX_LINE = 64 * 1024

_RECV_SIZE = 64 * 1024


class Transport:
    """Sends and receives lines (without their newline). One connection, not thread-safe."""

    def send_lines(self, lines: Sequence[str]) -> None:
        raise NotImplementedError

    def recv_line(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class StreamTransport(Transport):
    """Newline-terminated UTF-8 lines over a TCP or unix-domain socket."""

    def __init__(self, sock: socket.socket, address: Address) -> None:
        self._sock = sock
        self._address = address
        self._buffer = bytearray()

    def send_lines(self, lines: Sequence[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise HashServerError(f"hash server {self._address}: sending failed: {exc}") from exc

    def recv_line(self) -> str:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                raw = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return _decode(raw, self._address)
            if len(self._buffer) > MAX_LINE:
                raise HashServerError(
                    f"hash server {self._address} sent a line longer than {MAX_LINE} bytes")
            try:
                chunk = self._sock.recv(_RECV_SIZE)
            except socket.timeout as exc:
                raise HashServerError(f"hash server {self._address} did not answer in time"
                                      ) from exc
            except OSError as exc:
                raise HashServerError(f"hash server {self._address}: {exc}") from exc
            if not chunk:
                raise ConnectionClosed(f"hash server {self._address} closed the connection")
            self._buffer += chunk

    def close(self) -> None:
        self._sock.close()


class ConnectionClosed(HashServerError):
    """The server hung up: after a refused command (read-only) or a protocol violation."""


def _decode(raw: bytes, address: Address) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise HashServerError(f"hash server {address} sent a line that is not UTF-8") from None


class WebsocketTransport(Transport):
    """One text message per line (bitbake's ``WebsocketConnection``)."""

    def __init__(self, stack: ExitStack, connection: Any, address: Address,
                 timeout: float) -> None:
        self._stack = stack
        self._conn = connection
        self._address = address
        self._timeout = timeout

    def send_lines(self, lines: Sequence[str]) -> None:
        from websockets.exceptions import ConnectionClosed as WsClosed

        try:
            for line in lines:
                self._conn.send(line)
        except WsClosed as exc:
            raise ConnectionClosed(f"hash server {self._address} closed the connection"
                                   ) from exc

    def recv_line(self) -> str:
        from websockets.exceptions import ConnectionClosed as WsClosed
        from websockets.exceptions import PayloadTooBig

        try:
            message = self._conn.recv(timeout=self._timeout)
        except TimeoutError as exc:
            raise HashServerError(f"hash server {self._address} did not answer in time"
                                  ) from exc
        except PayloadTooBig as exc:
            raise HashServerError(f"hash server {self._address} sent a message longer than"
                                  f" {MAX_LINE} bytes") from exc
        except WsClosed as exc:
            if isinstance(exc.__cause__, PayloadTooBig) or (
                    exc.rcvd is None and exc.sent is not None and exc.sent.code == 1009):
                raise HashServerError(f"hash server {self._address} sent a message longer"
                                      f" than {MAX_LINE} bytes") from exc
            raise ConnectionClosed(f"hash server {self._address} closed the connection"
                                   ) from exc
        if isinstance(message, bytes):
            return _decode(message, self._address)
        return str(message)

    def close(self) -> None:
        self._stack.close()


def open_transport(address: Address, *, timeout: float,
                   ssl_context: Optional[ssl.SSLContext] = None) -> Transport:
    """Connect to ``address``; any failure is one clear :class:`HashServerError`."""
    if address.kind in (TCP, UNIX):
        try:
            if address.kind == TCP:
                sock = socket.create_connection((address.host, address.port), timeout=timeout)
            else:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                try:
                    sock.connect(address.path)
                except BaseException:
                    sock.close()
                    raise
        except OSError as exc:
            raise HashServerError(f"cannot connect to hash server {address}: {exc}",
                                  hint="check --hashserve (or SSTATE_MIRROR_HASHSERVE)"
                                  ) from exc
        return StreamTransport(sock, address)
    return _open_websocket(address, timeout=timeout, ssl_context=ssl_context)


def _open_websocket(address: Address, *, timeout: float,
                    ssl_context: Optional[ssl.SSLContext]) -> Transport:
    try:
        from websockets.exceptions import InvalidHandshake, InvalidURI
        from websockets.sync.client import connect
    except ImportError:
        raise BackendUnavailable(
            f"hash server {address}: ws:// and wss:// need the websockets package",
            hint="pip install 'sstate-mirror[websockets]'") from None
    kwargs: Dict[str, Any] = {}
    if address.url.startswith("wss://"):
        kwargs["ssl"] = ssl_context or ssl.create_default_context()
    stack = ExitStack()
    try:
        # entered as a context manager, the only way websockets 17 accepts without warning
        conn = stack.enter_context(connect(
            address.url, open_timeout=timeout, close_timeout=timeout, max_size=MAX_LINE,
            max_queue=16, compression=None, ping_interval=None, **kwargs))
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise HashServerError(f"cannot connect to hash server {address}: {exc}",
                              hint="check --hashserve (or SSTATE_MIRROR_HASHSERVE)") from exc
    return WebsocketTransport(stack, conn, address, timeout)


__all__: List[str] = ["MAX_LINE", "ConnectionClosed", "Transport", "open_transport"]
