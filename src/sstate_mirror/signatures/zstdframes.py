"""Decompress zstd data frame by frame with a hard cap on the output size.

bitbake writes ``.siginfo`` through ``pzstd``-compatible code: one or more zstd frames, possibly
with skippable frames in between. The ``zstandard`` stream reader reads across frames but
says nothing when the input ends inside a frame, and a decompression bomb (a few KiB that
expand to GiB) must stop at the cap, not when memory runs out. So the frames are walked
here: skippable frames are skipped by their length field, each data frame is fed to a
decompression object in small slices so that one slice can never expand far past the cap,
and a frame that does not reach its end is reported as truncated.
"""

from __future__ import annotations

from typing import List, Tuple

import zstandard

ZSTD_MAGIC = 0xFD2FB528
SKIPPABLE_MASK = 0xFFFFFFF0
SKIPPABLE_MAGIC = 0x184D2A50

#: Input slice fed to the decoder at a time. A zstd block of 3 + 1 bytes (RLE) can expand to
#: 128 KiB, so one slice yields at most ~8 MiB: the cap is overshot by that much at worst.
_SLICE = 256

#: Largest window a frame may ask for (libzstd's own default limit): bounds decoder memory.
MAX_WINDOW_SIZE = 1 << 27


class ZstdFormatError(ValueError):
    """Malformed, truncated or oversized zstd data (the message says which)."""


class ZstdLimitError(ZstdFormatError):
    """The data decompresses to more than the cap: not judged malformed, only too large."""


def is_zstd(data: bytes) -> bool:
    """True if ``data`` starts like a zstd stream (a data frame or a skippable frame)."""
    if len(data) < 4:
        return False
    magic = int.from_bytes(data[:4], "little")
    return magic == ZSTD_MAGIC or (magic & SKIPPABLE_MASK) == SKIPPABLE_MAGIC


def decompress_frames(data: bytes, max_output: int) -> bytes:
    """Decompress every frame of ``data``; raise :class:`ZstdFormatError` past ``max_output``."""
    dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_SIZE)
    out: List[bytes] = []
    total = 0
    pos = 0
    frames = 0
    view = memoryview(data)
    while pos < len(data):
        if len(data) - pos < 4:
            raise ZstdFormatError(f"trailing garbage after frame {frames} at byte {pos}")
        magic = int.from_bytes(view[pos : pos + 4], "little")
        if (magic & SKIPPABLE_MASK) == SKIPPABLE_MAGIC:
            if len(data) - pos < 8:
                raise ZstdFormatError(f"truncated skippable frame at byte {pos}")
            size = int.from_bytes(view[pos + 4 : pos + 8], "little")
            pos += 8 + size
            if pos > len(data):
                raise ZstdFormatError("truncated skippable frame")
            frames += 1
            continue
        if magic != ZSTD_MAGIC:
            raise ZstdFormatError(f"not a zstd frame at byte {pos} (magic {magic:08x})")
        pos, total = _one_frame(dctx, view, pos, out, total, max_output)
        frames += 1
    return b"".join(out)


def _one_frame(
    dctx: zstandard.ZstdDecompressor,
    view: memoryview,
    pos: int,
    out: List[bytes],
    total: int,
    max_output: int,
) -> Tuple[int, int]:
    """Decode the data frame starting at ``pos``; return the position after it and the total."""
    dobj = dctx.decompressobj()
    end = len(view)
    while pos < end:
        chunk_end = min(pos + _SLICE, end)
        try:
            piece = dobj.decompress(view[pos:chunk_end].tobytes())
        except zstandard.ZstdError as exc:
            raise ZstdFormatError(f"corrupt zstd data: {exc}") from exc
        total += len(piece)
        if total > max_output:
            raise ZstdLimitError(f"decompressed data exceeds the limit of {max_output} bytes")
        if piece:
            out.append(piece)
        if dobj.eof:
            return chunk_end - len(dobj.unused_data), total
        pos = chunk_end
    raise ZstdFormatError("truncated zstd frame (the data ends inside a frame)")
