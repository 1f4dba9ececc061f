"""Bodies in and out of the WebDAV backend: uploads that can be resent, downloads as streams."""

from __future__ import annotations

from typing import IO, Iterator, List, Optional, Tuple

import httpx

from ..chunkstream import ChunkStream
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


class ResponseReader(ChunkStream):
    """A GET body as a readable stream, with transport errors in the project's terms.

    The body is read raw: nothing is decoded (a ``Content-Encoding`` is refused before a
    reader is made, see :func:`~.daverrors.refuse_encoding`).
    """

    def __init__(self, response: httpx.Response, url: str, path: str) -> None:
        super().__init__(iter_body(response, url, path, f"cannot read {path}", CHUNK))


def iter_body(response: httpx.Response, url: str, rel: str, what: Optional[str] = None,
              chunk_size: Optional[int] = None) -> Iterator[bytes]:
    """The raw bytes of a streamed answer (as they arrive, or in ``chunk_size`` pieces),
    transport errors in the project's terms."""
    try:
        yield from response.iter_raw(chunk_size)
    except httpx.HTTPError as exc:
        raise translate(what or f"cannot list {rel or 'the mirror root'}", url=url,
                        path=rel or None, exc=exc) from exc


def read_bounded(response: httpx.Response, limit: int, url: str, what: str,
                 path: Optional[str]) -> Tuple[bytes, bool]:
    """A small answer's body, at most ``limit`` bytes; True when it was longer (and cut).

    A cut answer's connection is closed, not read to its end.
    """
    parts: List[bytes] = []
    size = 0
    for chunk in iter_body(response, url, path or "", what):
        size += len(chunk)
        if size > limit:
            response.close()
            parts.append(chunk[: limit - (size - len(chunk))])
            return b"".join(parts), True
        parts.append(chunk)
    return b"".join(parts), False
