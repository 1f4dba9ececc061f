"""The object-store backends' two stream adapters: uploads of exactly ``size`` bytes, and
downloads whose read errors are the project's own.

Object stores commit an object whole when its upload ends; the only way a wrong object can
appear is a source that yields more or fewer bytes than announced (a file that changed
during the upload). Every object-store backend reads its source through
:class:`ExactReader`, and hands out response bodies through :class:`BodyReader`.
"""

from __future__ import annotations

import io
from typing import IO, Any, Callable, List, Optional

from ..errors import BackendError, PermanentError

__all__ = ["BodyReader", "ExactReader"]


class ExactReader(io.RawIOBase):
    """Hands out exactly ``size`` bytes of ``src`` and fails if ``src`` has more or fewer.

    Not seekable on purpose: a client library (s3transfer, google-cloud-storage,
    azure-storage-blob) then reads the stream once, in order, through here, so what is
    uploaded is what was counted, and a source that changed size fails the upload before
    the store commits anything.
    """

    def __init__(self, src: IO[bytes], size: int, path: str) -> None:
        super().__init__()
        self._src = src
        self._left = size
        self._size = size
        self._path = path
        self._probed = False

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        """Bytes handed out so far (google-resumable-media asks, without seeking)."""
        return self._size - self._left

    def _mismatch(self, got: str) -> PermanentError:
        return PermanentError(
            f"{self._path}: source gave {got} bytes, expected {self._size}"
            " (did the file change during the upload?)",
            path=self._path,
        )

    def read(self, n: Optional[int] = -1) -> bytes:
        want = self._left if n is None or n < 0 else min(n, self._left)
        chunks: List[bytes] = []
        got = 0
        while got < want:
            chunk = self._src.read(want - got)
            if not chunk:
                raise self._mismatch(str(self._size - self._left + got))
            chunks.append(chunk)
            got += len(chunk)
        self._left -= got
        if self._left == 0 and not self._probed:
            self._probed = True
            if self._src.read(1):
                raise self._mismatch(f"more than {self._size}")
        return b"".join(chunks)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class BodyReader(io.RawIOBase):
    """A response body as a raw stream whose read errors are the project's own.

    ``read(n)`` is the client's read of at most ``n`` bytes; ``error`` turns what it raises
    into a :class:`BackendError`; ``release`` (optional) returns the connection.
    """

    def __init__(self, read: Callable[[int], bytes],
                 error: Callable[[BaseException], BackendError],
                 release: Optional[Callable[[], None]] = None) -> None:
        super().__init__()
        self._read = read
        self._error = error
        self._release = release

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self._read(len(b))
        except Exception as exc:
            raise self._error(exc) from exc
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            if self._release is not None and not self.closed:
                self._release()
        finally:
            super().close()
