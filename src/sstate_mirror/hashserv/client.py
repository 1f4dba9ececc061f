"""A client of bitbake's hash equivalence server (``bitbake-hashserv``, protocol OEHASHEQUIV 1.1).

The protocol, from bitbake's ``lib/hashserv`` and ``lib/bb/asyncrpc``: after a greeting
(``OEHASHEQUIV 1.1``, ``needs-headers: false``, an empty line) each request is one JSON object
on a line, answered by one JSON value on a line; an answer longer than 32 KiB arrives as
``{"chunk-stream": null}``, its text in lines, and an empty line. A refused request is answered
``{"invoke-error": {"message": …}}`` and the server hangs up; a command the server does not
offer (a read-only server has no ``gc-*``) makes it hang up without a word. *Stream modes*
(``exists-stream``, ``get-stream``, ``gc-mark-stream``) switch to one plain line per query and
one per answer until ``END``, which is answered ``ok``.

Queries in stream mode are pipelined in windows of :data:`WINDOW` lines: each window is sent
whole, then its answers are read, which hides the round trip without either side's socket
buffer filling up. Everything read is bounded (:mod:`.wire`); every answer is checked for the
shape the protocol gives it, so a confused or hostile server is an error, not a wrong count.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, List, Optional, Sequence

from .address import Address, parse_address
from .errors import HashServerError, HashServerPermissionError
from .wire import MAX_LINE, ConnectionClosed, Transport, open_transport

PROTOCOL = "OEHASHEQUIV 1.1"

#: Stream-mode queries in flight at once.
WINDOW = 256

#: The largest answer assembled from a chunk stream. Every answer this client asks for is a
#: few hundred bytes; the bound only has to stop a server that never ends its stream.
MAX_MESSAGE = 1024 * 1024

#: The equivalence method OE-core reports (``SSTATE_HASHEQUIV_METHOD``).
DEFAULT_METHOD = "oe.sstatesig.OEOuthashBasic"

_UNIHASH_RE = re.compile(r"[0-9a-f]{64}")
_PERMISSION_DENIED = "is not allowed to access"


@dataclass(frozen=True)
class GcStatus:
    """``gc-status``: rows kept and to be removed under the current mark ('' = none)."""

    keep: int
    remove: int
    mark: str


def _printable(text: object, limit: int = 200) -> str:
    """A server-supplied string made safe for a terminal: no control characters, bounded."""
    s = str(text)
    s = "".join(c if c.isprintable() else "?" for c in s[:limit])
    return s + ("…" if len(str(text)) > limit else "")


class HashServerClient:
    """One connection to a hash equivalence server, authenticated when a user is given.

    Use as a context manager. Methods raise :class:`HashServerError` (or
    :class:`HashServerPermissionError`) with a message fit to print.
    """

    def __init__(self, address: Address, transport: Transport) -> None:
        self.address = address
        self._t = transport
        self._t.send_lines([PROTOCOL, "needs-headers: false", ""])

    def __enter__(self) -> HashServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._t.close()

    # --- plain requests -----------------------------------------------------------------

    def invoke(self, command: str, body: Any) -> Any:
        """Send ``{command: body}``; the server's answer, or an error it gave."""
        line = json.dumps({command: body})
        if len(line) >= 32 * 1024 - 1:  # the server reads lines of at most 32 KiB
            raise ValueError(f"request {command!r} too long to send in one line")
        self._t.send_lines([line])
        try:
            answer = self._recv_message()
        except ConnectionClosed:
            raise HashServerPermissionError(
                f"hash server {self.address} refused {command!r} by hanging up: it is"
                " read-only, or too old for it") from None
        if isinstance(answer, dict) and "invoke-error" in answer:
            error = answer["invoke-error"]
            message = error.get("message", "") if isinstance(error, dict) else error
            if _PERMISSION_DENIED in str(message):
                raise HashServerPermissionError(
                    f"hash server {self.address} refused {command!r}: {_printable(message)}")
            raise HashServerError(f"hash server {self.address} refused {command!r}:"
                                  f" {_printable(message)}")
        return answer

    def _recv_message(self) -> Any:
        message = self._parse(self._t.recv_line())
        if isinstance(message, dict) and "chunk-stream" in message:
            parts: List[str] = []
            size = 0
            while True:
                line = self._t.recv_line()
                if not line:
                    break
                size += len(line)
                if size > MAX_MESSAGE:
                    raise HashServerError(f"hash server {self.address} sent an answer longer"
                                          f" than {MAX_MESSAGE} bytes")
                parts.append(line)
            message = self._parse("".join(parts))
        return message

    def _parse(self, text: str) -> Any:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            raise HashServerError(f"hash server {self.address} sent something that is not"
                                  f" JSON: {_printable(text, 80)!r}") from None

    def _int_field(self, answer: Any, key: str, command: str) -> int:
        value = answer.get(key) if isinstance(answer, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise HashServerError(f"hash server {self.address} answered {command!r} without"
                                  f" a count: {_printable(answer, 80)!r}")
        return value

    # --- stream mode --------------------------------------------------------------------

    def _stream(self, mode: str, queries: Iterable[str]) -> Iterator[str]:
        """Answers to ``queries`` in ``mode``, in order; back in normal mode when exhausted."""
        if self.invoke(mode, None) != "ok":
            raise HashServerError(f"hash server {self.address} did not enter {mode!r}")
        window: List[str] = []
        for query in queries:
            window.append(query)
            if len(window) == WINDOW:
                yield from self._round(window)
                window = []
        if window:
            yield from self._round(window)
        self._t.send_lines(["END"])
        if self._recv_stream_line() != "ok":
            raise HashServerError(f"hash server {self.address} did not leave {mode!r}")

    def _round(self, window: Sequence[str]) -> Iterator[str]:
        self._t.send_lines(window)
        for _ in window:
            yield self._recv_stream_line()

    def _recv_stream_line(self) -> str:
        line = self._t.recv_line()
        if line.startswith("{") and "invoke-error" in line:
            answer = self._parse(line)
            error = answer.get("invoke-error") if isinstance(answer, dict) else None
            message = error.get("message", "") if isinstance(error, dict) else error
            raise HashServerError(f"hash server {self.address} refused a query:"
                                  f" {_printable(message)}")
        return line

    # --- the operations sstate-mirror needs -----------------------------------------------

    def authenticate(self, user: str, token: str) -> None:
        try:
            self.invoke("auth", {"username": user, "token": token})
        except HashServerError as exc:
            raise HashServerPermissionError(
                f"hash server {self.address}: cannot log in as {_printable(user, 64)!r}",
                hint="check --hashserve-user and the token variable") from exc

    def gc_status(self) -> GcStatus:
        """The garbage collection state; needs the ``@db-admin`` permission."""
        answer = self.invoke("gc-status", {})
        mark = answer.get("mark") if isinstance(answer, dict) else None
        return GcStatus(keep=self._int_field(answer, "keep", "gc-status"),
                        remove=self._int_field(answer, "remove", "gc-status"),
                        mark=mark if isinstance(mark, str) else "")

    def unihashes_exist(self, unihashes: Sequence[str]) -> List[bool]:
        """Whether the server knows each unihash (``exists-stream``, batched)."""
        answers: List[bool] = []
        for answer in self._stream("exists-stream", unihashes):
            if answer not in ("true", "false"):
                raise HashServerError(f"hash server {self.address} answered a unihash query"
                                      f" with {_printable(answer, 80)!r}")
            answers.append(answer == "true")
        return answers

    def get_unihashes(self, method: str, taskhashes: Sequence[str]) -> List[Optional[str]]:
        """The unihash the server hands out for each taskhash (``get-stream``), or None."""
        answers: List[Optional[str]] = []
        for answer in self._stream("get-stream", (f"{method} {t}" for t in taskhashes)):
            if answer and not _UNIHASH_RE.fullmatch(answer):
                raise HashServerError(f"hash server {self.address} answered a taskhash query"
                                      f" with {_printable(answer, 80)!r}")
            answers.append(answer or None)
        return answers

    def gc_mark(self, mark: str, unihashes: Sequence[str]) -> int:
        """Mark every row of each unihash with ``mark`` (``gc-mark-stream``); rows marked."""
        count = 0
        queries = (json.dumps({"mark": mark, "where": {"unihash": u}}) for u in unihashes)
        for answer in self._stream("gc-mark-stream", queries):
            count += self._int_field(self._parse(answer), "count", "gc-mark-stream")
        return count

    def gc_sweep(self, mark: str) -> int:
        """Delete every row not marked with ``mark``; rows deleted."""
        return self._int_field(self.invoke("gc-sweep", {"mark": mark}), "count", "gc-sweep")

    def clean_unused(self) -> int:
        """Delete output hashes no unihash row refers to any more; rows deleted."""
        return self._int_field(self.invoke("clean-unused", {"max_age_seconds": 0}), "count",
                               "clean-unused")


def connect(address: str, *, user: Optional[str] = None, token: Optional[str] = None,
            timeout: float = 60.0) -> HashServerClient:
    """Connect (and log in when ``user`` is given) to the server at ``address``."""
    parsed = parse_address(address)
    transport = open_transport(parsed, timeout=timeout)
    client = HashServerClient(parsed, transport)
    try:
        if user:
            client.authenticate(user, token or "")
    except BaseException:
        client.close()
        raise
    return client


__all__ = ["DEFAULT_METHOD", "MAX_LINE", "GcStatus", "HashServerClient", "connect"]
