"""Decompress an sstate archive as a stream, in bounded memory, noticing every way it can end.

Archives can be gigabytes and come from a shared mirror, so they are untrusted input read
through a stream. Two formats exist (FORMATS.md §1):

* ``.tar.zst``, written by ``pzstd``: several zstd frames with skippable frames between them.
  The ``zstandard`` stream reader reads across frames but says nothing when the input ends
  inside a frame (a truncated upload looks like a short, valid stream). So the frames are
  walked here, block by block: the block headers say how long each block is, a block never
  decodes to more than 128 KiB (which bounds the output of one decoder call, even for a
  decompression bomb), and the position in the frame structure at the end of the input says
  whether the data is complete.
* ``.tgz`` (older OE/Isar): gzip members decoded by ``zlib`` with a bound on each call's output;
  the gzip trailer's CRC and length are checked by zlib.

Both are exposed as a read-only binary stream (:class:`DecodedStream`) that counts what it
delivers, enforces a cap on the decompressed size and remembers the last bytes it delivered
(the tar check looks at them to see how the tar stream ended).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import IO, Optional

import zstandard

from .chunkstream import ChunkStream

ZSTD_MAGIC = 0xFD2FB528
SKIPPABLE_MASK = 0xFFFFFFF0
SKIPPABLE_MAGIC = 0x184D2A50

#: Largest block a zstd frame may hold (compressed or regenerated), RFC 8878 §3.1.1.2.
MAX_BLOCK = 128 * 1024
#: Largest window a frame may ask for: what ``zstd -d``/``pzstd -d`` accept without ``--long``.
MAX_WINDOW_SIZE = 1 << 27

#: Compressed bytes read from the backend at a time.
READ_CHUNK = 1 << 20
#: Most bytes one zlib call may produce.
_GZIP_OUT = 256 * 1024
#: Bytes of delivered output kept for a look back (more than tarfile's read-ahead).
TAIL_KEEP = 64 * 1024


class ArchiveDefect(Exception):
    """The archive is broken. ``truncated`` is true when its data simply ends too early."""

    def __init__(self, message: str, *, truncated: bool = False) -> None:
        super().__init__(message)
        self.truncated = truncated


class LimitExceeded(Exception):
    """The archive goes past a verification limit: it was not read to the end."""


class _Input:
    """Buffered reads of exact lengths from the compressed source, with a byte count."""

    def __init__(self, source: IO[bytes], on_bytes: Optional[Callable[[int], None]]) -> None:
        self.source = source
        self.on_bytes = on_bytes
        self.buf = b""
        self.pos = 0
        self.consumed = 0
        """Bytes handed out so far (the offset in the compressed data)."""
        self.total_read = 0
        self.eof = False

    def _fill(self) -> None:
        data = self.source.read(READ_CHUNK)
        if not data:
            self.eof = True
            return
        self.total_read += len(data)
        if self.on_bytes is not None:
            self.on_bytes(len(data))
        self.buf = self.buf[self.pos:] + data
        self.pos = 0

    def take(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the source."""
        while len(self.buf) - self.pos < n and not self.eof:
            self._fill()
        out = self.buf[self.pos : self.pos + n]
        self.pos += len(out)
        self.consumed += len(out)
        return out

    def skip(self, n: int) -> int:
        """Skip up to ``n`` bytes without keeping them; return how many were skipped."""
        skipped = 0
        while skipped < n:
            if self.pos >= len(self.buf):
                if self.eof:
                    break
                self._fill()
                continue
            step = min(n - skipped, len(self.buf) - self.pos)
            self.pos += step
            skipped += step
        self.consumed += skipped
        return skipped

    def at_end(self) -> bool:
        if self.pos < len(self.buf):
            return False
        if not self.eof:
            self._fill()
        return self.pos >= len(self.buf)


class DecodedStream(ChunkStream):
    """Decompressed bytes, produced on demand; subclasses implement :meth:`_produce`."""

    def __init__(self, source: IO[bytes], *, max_output: int,
                 on_bytes: Optional[Callable[[int], None]] = None) -> None:
        super().__init__(())
        self.input = _Input(source, on_bytes)
        self.max_output = max_output
        self.delivered = 0
        self._produced = 0
        self._tail = bytearray()
        self._tail_start = 0

    # -- what subclasses provide --------------------------------------------------------

    def _produce(self) -> Optional[bytes]:
        """The next piece of output (may be empty), or None at the end of the data."""
        raise NotImplementedError

    # -- the chunk stream's hooks -------------------------------------------------------

    def next_chunk(self) -> Optional[bytes]:
        while True:
            piece = self._produce()
            if piece is None:
                return None
            if piece:
                self._produced += len(piece)
                if self._produced > self.max_output:
                    raise LimitExceeded(
                        f"decompressed data exceeds the limit of {self.max_output} bytes")
                return piece

    def handed_out(self, data: memoryview) -> None:
        self._remember(data)
        self.delivered += len(data)

    def _remember(self, data: memoryview) -> None:
        self._tail += data
        excess = len(self._tail) - TAIL_KEEP
        if excess > 0:
            del self._tail[:excess]
            self._tail_start += excess

    def delivered_since(self, offset: int) -> Optional[bytes]:
        """The delivered bytes from ``offset`` on, or None when they are no longer kept."""
        if offset < self._tail_start:
            return None
        return bytes(self._tail[offset - self._tail_start :])

    @property
    def compressed_bytes(self) -> int:
        return self.input.total_read


class ZstdStream(DecodedStream):
    """zstd frames (and skippable frames), decoded block by block."""

    def __init__(self, source: IO[bytes], *, max_output: int,
                 on_bytes: Optional[Callable[[int], None]] = None) -> None:
        super().__init__(source, max_output=max_output, on_bytes=on_bytes)
        self._dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_SIZE)
        self._dobj: Optional[zstandard.ZstdDecompressionObj] = None
        self._last_block = False
        self._checksum = False
        self.frames = 0
        self.data_frames = 0

    def _need(self, n: int, what: str) -> bytes:
        start = self.input.consumed
        data = self.input.take(n)
        if len(data) < n:
            raise ArchiveDefect(
                f"the data ends inside {what} of zstd frame {self.frames + 1}"
                f" (at byte {start + len(data)})", truncated=True)
        return data

    def _feed(self, data: bytes) -> bytes:
        assert self._dobj is not None
        try:
            return bytes(self._dobj.decompress(data))
        except zstandard.ZstdError as exc:
            raise ArchiveDefect(
                f"corrupt zstd data in frame {self.frames + 1}"
                f" (before byte {self.input.consumed}): {exc}") from exc

    def _produce(self) -> Optional[bytes]:
        if self._dobj is None:
            return self._start_frame()
        if self._last_block:
            out = b""
            if self._checksum:
                out = self._feed(self._need(4, "the checksum"))
            if not self._dobj.eof:
                raise ArchiveDefect(f"zstd frame {self.frames + 1} does not end where its"
                                    " blocks say it does")
            self._dobj = None
            self.frames += 1
            self.data_frames += 1
            return out
        header = self._need(3, "a block header")
        value = int.from_bytes(header, "little")
        self._last_block = bool(value & 1)
        block_type = (value >> 1) & 3
        size = value >> 3
        if block_type == 3:
            raise ArchiveDefect(f"reserved block type in zstd frame {self.frames + 1}"
                                f" (at byte {self.input.consumed - 3})")
        if size > MAX_BLOCK:
            raise ArchiveDefect(f"zstd block of {size} bytes (more than 128 KiB) in frame"
                                f" {self.frames + 1}")
        body = self._need(1 if block_type == 1 else size, "a block")
        return self._feed(header + body)

    def _start_frame(self) -> Optional[bytes]:
        while True:
            if self.input.at_end():
                if self.data_frames == 0:
                    raise ArchiveDefect("the zstd stream ends before its first data frame",
                                        truncated=True)
                return None
            start = self.input.consumed
            magic_bytes = self.input.take(4)
            if len(magic_bytes) < 4:
                if _starts_a_magic(magic_bytes):
                    raise ArchiveDefect(f"the data ends inside the magic number of zstd frame"
                                        f" {self.frames + 1}", truncated=True)
                raise ArchiveDefect(f"trailing garbage after the last zstd frame:"
                                    f" {len(magic_bytes)} stray bytes (at byte {start})")
            magic = int.from_bytes(magic_bytes, "little")
            if (magic & SKIPPABLE_MASK) == SKIPPABLE_MAGIC:
                size = int.from_bytes(self._need(4, "a skippable frame's size"), "little")
                if self.input.skip(size) < size:
                    raise ArchiveDefect(f"the data ends inside skippable frame"
                                        f" {self.frames + 1}", truncated=True)
                self.frames += 1
                continue
            if magic != ZSTD_MAGIC:
                where = ("not a zstd stream" if start == 0
                         else f"trailing garbage after zstd frame {self.frames}")
                raise ArchiveDefect(f"{where} (magic {magic:08x} at byte {start})")
            return self._frame_header(magic_bytes)

    def _frame_header(self, magic_bytes: bytes) -> bytes:
        descriptor = self._need(1, "the frame header")
        fhd = descriptor[0]
        if fhd & 0x08:
            raise ArchiveDefect(f"reserved bit set in the header of zstd frame {self.frames + 1}")
        fcs_flag = fhd >> 6
        single_segment = bool(fhd & 0x20)
        self._checksum = bool(fhd & 0x04)
        did_size = (0, 1, 2, 4)[fhd & 3]
        fcs_size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
        rest = self._need((0 if single_segment else 1) + did_size + fcs_size, "the frame header")
        self._dobj = self._dctx.decompressobj()
        self._last_block = False
        return self._feed(magic_bytes + descriptor + rest)


def _starts_a_magic(data: bytes) -> bool:
    """True if ``data`` (1 to 3 bytes) could be the start of a frame's magic number."""
    if ZSTD_MAGIC.to_bytes(4, "little").startswith(data):
        return True
    skippable = SKIPPABLE_MAGIC.to_bytes(4, "little")
    return (data[0] & 0xF0) == skippable[0] and skippable[1:].startswith(data[1:])


class GzipStream(DecodedStream):
    """One or more gzip members, decoded with a bound on each call's output."""

    def __init__(self, source: IO[bytes], *, max_output: int,
                 on_bytes: Optional[Callable[[int], None]] = None) -> None:
        super().__init__(source, max_output=max_output, on_bytes=on_bytes)
        self._dobj: Optional[zlib._Decompress] = None
        self._left = b""
        self.members = 0

    def _produce(self) -> Optional[bytes]:
        if self._dobj is None:
            if not self._left and self.input.at_end():
                if self.members == 0:
                    raise ArchiveDefect("empty gzip stream", truncated=True)
                return None
            head = self._left or self.input.take(READ_CHUNK)
            if len(head) < 2 and b"\x1f\x8b".startswith(head):
                raise ArchiveDefect(f"the data ends inside the header of gzip member"
                                    f" {self.members + 1}", truncated=True)
            if not head.startswith(b"\x1f\x8b"):
                where = ("not a gzip stream" if self.members == 0
                         else f"garbage after gzip member {self.members}")
                raise ArchiveDefect(f"{where} (at byte {self.input.consumed - len(head)})")
            self._dobj = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._left = head
        dobj = self._dobj
        data = self._left or dobj.unconsumed_tail
        if not data:
            data = self.input.take(READ_CHUNK)
            if not data:
                raise ArchiveDefect(f"the data ends inside gzip member {self.members + 1}",
                                    truncated=True)
        try:
            out = dobj.decompress(data, _GZIP_OUT)
        except zlib.error as exc:
            raise ArchiveDefect(f"corrupt gzip data in member {self.members + 1}: {exc}"
                                ) from exc
        self._left = b""
        if dobj.eof:
            self.members += 1
            self._left = dobj.unused_data
            self._dobj = None
        return out


def open_decoded(source: IO[bytes], ext: str, *, max_output: int,
                 on_bytes: Optional[Callable[[int], None]] = None) -> DecodedStream:
    """The decoder for an archive extension (``tar.zst`` or ``tgz``)."""
    cls = GzipStream if ext == "tgz" else ZstdStream
    return cls(source, max_output=max_output, on_bytes=on_bytes)
