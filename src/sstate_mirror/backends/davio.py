"""Bodies in and out of the WebDAV backend: uploads that can be resent, downloads as streams."""

from __future__ import annotations

import io
from typing import IO, Iterator, Optional

import httpx

from ..errors import PermanentError
from .daverrors import translate

#: Chunk size for upload bodies and download reads.
CHUNK = 1 << 20


class Body:
    """An upload body of exactly ``size`` bytes that can be sent again when ``src`` seeks.

    Not a generator (httpx refuses to resend those) and without ``read`` (httpx would read
    it whole-heartedly without our size check).
    """

    def __init__(self, src: IO[bytes], size: int, path: str) -> None:
        self.src = src
        self.size = size
        self.path = path
        self._started = False
        try:
            self._start: Optional[int] = src.tell() if src.seekable() else None
        except (OSError, AttributeError, ValueError):
            self._start = None

    @property
    def replayable(self) -> bool:
        return self._start is not None or not self._started

    def rewind(self) -> None:
        if self._started and self._start is not None:
            self.src.seek(self._start)
            self._started = False

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            self.rewind()
        self._started = True
        sent = 0
        while True:
            chunk = self.src.read(min(CHUNK, self.size + 1 - sent))
            if not chunk:
                break
            sent += len(chunk)
            if sent > self.size:
                raise PermanentError(
                    f"{self.path}: source is longer than the {self.size} bytes announced"
                    " (did the file change during the upload?)", path=self.path)
            yield chunk
        if sent != self.size:
            raise PermanentError(
                f"{self.path}: source gave {sent} bytes, expected {self.size}"
                " (did the file change during the upload?)", path=self.path)


class ResponseReader(io.RawIOBase):
    """A GET body as a readable stream, with transport errors in the project's terms."""

    def __init__(self, response: httpx.Response, url: str, path: str) -> None:
        super().__init__()
        self._iter = response.iter_bytes(CHUNK)  # undoes a Content-Encoding, if any
        self._buffer = b""
        self._url = url
        self._path = path

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._buffer:
            try:
                self._buffer = next(self._iter, b"")
            except httpx.HTTPError as exc:
                raise translate(f"cannot read {self._path}", url=self._url, path=self._path,
                                exc=exc) from exc
            if not self._buffer:
                return 0
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def iter_body(response: httpx.Response, url: str, rel: str) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes()
    except httpx.HTTPError as exc:
        raise translate(f"cannot list {rel or 'the mirror root'}", url=url, path=rel or None,
                        exc=exc) from exc
