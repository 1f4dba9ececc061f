"""bitbake's hash equivalence server addresses: ``HOST:PORT``, ``[IPv6]:PORT``, ``unix://PATH``,
``ws://HOST[:PORT][/PATH]`` and ``wss://…``, the forms ``BB_HASHSERVE`` takes.

Parsed here once, checked before anything is contacted, so a typo is a usage error and not a
connection failure after the mirror was already cleaned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..errors import UsageError

TCP = "tcp"
UNIX = "unix"
WEBSOCKET = "ws"

_UNIX_PREFIX = "unix://"
_IPV6_RE = re.compile(r"^\[(?P<host>[0-9A-Fa-f:.%a-zA-Z]+)\]:(?P<port>[0-9]{1,5})$")
_HOST_RE = re.compile(r"^(?P<host>[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})$")


@dataclass(frozen=True)
class Address:
    """Where a hash equivalence server listens. ``str()`` is safe to print."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""
    url: str = ""

    def __str__(self) -> str:
        if self.kind == UNIX:
            return _UNIX_PREFIX + self.path
        if self.kind == WEBSOCKET:
            return _redact(self.url)
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _redact(url: str) -> str:
    """The URL without user information (a token must never reach a message)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, ""))


def _port(text: str, address: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise UsageError(f"--hashserve {address!r}: port {port} is out of range")
    return port


def parse_address(text: str) -> Address:
    """Parse ``--hashserve``; a clear usage error for anything bitbake would not accept."""
    address = text.strip()
    if not address:
        raise UsageError("--hashserve needs an address: HOST:PORT, [IPv6]:PORT, unix://PATH,"
                         " ws://HOST:PORT or wss://HOST")
    if address.startswith(_UNIX_PREFIX):
        path = address[len(_UNIX_PREFIX):]
        if not path:
            raise UsageError("--hashserve unix:// needs the socket's path (unix:///run/hs.sock)")
        return Address(UNIX, path=path)
    if address.startswith(("ws://", "wss://")):
        parts = urlsplit(address)
        try:
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise UsageError(f"--hashserve {_redact(address)!r}: {exc}") from None
        if not host:
            raise UsageError(f"--hashserve {_redact(address)!r} names no host")
        if parts.username is not None or parts.password is not None:
            raise UsageError(f"--hashserve {_redact(address)!r}: put no credentials in the"
                             " address; use --hashserve-user and the token variable")
        return Address(WEBSOCKET, host=host, port=port or 0, url=address)
    if "://" in address:
        raise UsageError(f"--hashserve {address!r}: unknown scheme (use HOST:PORT, unix://,"
                         " ws:// or wss://)")
    m = _IPV6_RE.match(address) or _HOST_RE.match(address)
    if m is None:
        raise UsageError(f"--hashserve {address!r} is not HOST:PORT, [IPv6]:PORT, unix://PATH,"
                         " ws://… or wss://…")
    return Address(TCP, host=m.group("host"), port=_port(m.group("port"), address))
