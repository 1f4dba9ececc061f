"""The one adapter from an iterator of byte chunks to a readable binary stream.

HTTP clients and storage libraries hand bodies out as chunks; parsers, ``tarfile`` and the
decompressors want a file. The standard library has no such adapter, and the obvious
``buffer = buffer[n:]`` after each read copies the rest of the chunk every time: reading a
64 MiB chunk a few KiB at a time becomes quadratic (38 s for one chunk). Here a
``memoryview`` moves along the chunk instead, so each byte is copied once.

A ``read(n)`` fills: it returns ``n`` bytes unless the stream ends first (``RawIOBase``
would return one chunk's worth), because some libraries take a short read for the end of
the data (s3transfer sizes an upload's parts by it).

Every raw stream of the project is one of these: the object stores' bodies and uploads
(:mod:`sstate_mirror.backends.streams`), WebDAV answers (:mod:`.backends.davio`,
:mod:`.backends.davxml`) and decompressed archives (:mod:`sstate_mirror.archive_streams`).
Subclasses change only what they must: :meth:`ChunkStream.next_chunk` to turn a library's
errors into the project's (or to produce chunks on demand), :meth:`ChunkStream.handed_out`
to count, bound or keep what was read.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Optional


class ChunkStream(io.RawIOBase):
    """A read-only raw stream over ``chunks``; empty chunks are skipped, the end is EOF."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._view = memoryview(b"")
        self._ended = False

    def readable(self) -> bool:
        return True

    def next_chunk(self) -> Optional[bytes]:
        """The next chunk, or None at the end (override to translate errors)."""
        return next(self._chunks, None)

    def handed_out(self, data: memoryview) -> None:
        """``data`` was just handed to the reader (override to count, bound or keep it)."""

    def read(self, size: Optional[int] = -1) -> bytes:
        """``size`` bytes, fewer only at the end (all that is left when ``size`` < 0)."""
        if size is None or size < 0:
            return self.readall()
        buf = bytearray(size)
        with memoryview(buf) as view:
            got = 0
            while got < size:
                n = self.readinto(view[got:])
                if not n:
                    break
                got += n
        del buf[got:]
        return bytes(buf)

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._view:
            if self._ended:
                return 0
            chunk = self.next_chunk()
            if chunk is None:
                self._ended = True
                self._view = memoryview(b"")
                return 0
            self._view = memoryview(chunk)
        n = min(len(b), len(self._view))
        piece = self._view[:n]
        b[:n] = piece
        self._view = self._view[n:]
        self.handed_out(piece)
        return n
