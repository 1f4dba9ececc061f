"""The object-store backends' two stream adapters: uploads of exactly ``size`` bytes, and
downloads whose read errors are the project's own.

Object stores commit an object whole when its upload ends; the only way a wrong object can
appear is a source that yields more or fewer bytes than announced (a file that changed
during the upload). Every object-store backend reads its source through
:class:`ExactReader`, and hands out response bodies through :class:`BodyReader`. Both are
:class:`~sstate_mirror.chunkstream.ChunkStream` subclasses, the one raw-stream adapter:
each only says where its chunks come from (at most :data:`PIECE` bytes held at a time).
"""

from __future__ import annotations

from typing import IO, Callable, Optional

from ..chunkstream import ChunkStream
from ..errors import BackendError, PermanentError

__all__ = ["PIECE", "BodyReader", "ExactReader"]

#: Bytes asked of a source or a response body at a time.
PIECE = 1 << 16


class ExactReader(ChunkStream):
    """Hands out exactly ``size`` bytes of ``src`` and fails if ``src`` has more or fewer.

    Not seekable on purpose: a client library (s3transfer, google-cloud-storage,
    azure-storage-blob) then reads the stream once, in order, through here, so what is
    uploaded is what was counted, and a source that changed size fails the upload before
    the store commits anything. A longer source fails on the read that hands out the last
    announced byte: a library that read exactly ``size`` bytes may not read again.
    """

    def __init__(self, src: IO[bytes], size: int, path: str) -> None:
        super().__init__(())
        self._src = src
        self._left = size
        self._size = size
        self._path = path
        self._given = 0
        self._probed = False

    def tell(self) -> int:
        """Bytes handed out so far (google-resumable-media asks, without seeking)."""
        return self._given

    def _mismatch(self, got: str) -> PermanentError:
        return PermanentError(
            f"{self._path}: source gave {got} bytes, expected {self._size}"
            " (did the file change during the upload?)",
            path=self._path,
        )

    def next_chunk(self) -> Optional[bytes]:
        chunk = None
        if self._left > 0:
            chunk = self._src.read(min(self._left, PIECE))
            if not chunk:
                raise self._mismatch(str(self._size - self._left))
            self._left -= len(chunk)
        if self._left == 0 and not self._probed:
            self._probed = True
            if self._src.read(1):
                raise self._mismatch(f"more than {self._size}")
        return chunk

    def handed_out(self, data: memoryview) -> None:
        self._given += len(data)


class BodyReader(ChunkStream):
    """A response body as a raw stream whose read errors are the project's own.

    ``read(n)`` is the client's read of at most ``n`` bytes (an empty answer is the end);
    ``error`` turns what it raises into a :class:`BackendError`; ``release`` (optional)
    returns the connection.
    """

    def __init__(self, read: Callable[[int], bytes],
                 error: Callable[[BaseException], BackendError],
                 release: Optional[Callable[[], None]] = None) -> None:
        super().__init__(())
        self._read = read
        self._error = error
        self._release = release

    def next_chunk(self) -> Optional[bytes]:
        try:
            data = self._read(PIECE)
        except Exception as exc:
            raise self._error(exc) from exc
        return data or None

    def close(self) -> None:
        try:
            if self._release is not None and not self.closed:
                self._release()
        finally:
            super().close()
