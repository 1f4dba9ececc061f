"""Decompress a whole zstd signature file with a hard cap on the output size.

bitbake writes ``.siginfo`` through ``pzstd``-compatible code: one or more zstd frames,
possibly with skippable frames in between. The frames are walked by the project's one zstd
frame walker, :class:`sstate_mirror.archive_streams.ZstdStream` (block by block, so a
decompression bomb stops at the cap and a file that ends inside a frame is reported as
truncated); this module only adapts it to bytes in, bytes out, and to the signature
reader's error.
"""

from __future__ import annotations

import io

from ..archive_streams import (
    MAX_WINDOW_SIZE,
    SKIPPABLE_MAGIC,
    SKIPPABLE_MASK,
    ZSTD_MAGIC,
    ArchiveDefect,
    LimitExceeded,
    ZstdStream,
)

__all__ = ["MAX_WINDOW_SIZE", "ZstdFormatError", "ZstdLimitError", "decompress_frames",
           "is_zstd"]


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
    stream = ZstdStream(io.BytesIO(data), max_output=max_output)
    try:
        return stream.read()
    except LimitExceeded as exc:
        raise ZstdLimitError(str(exc)) from None
    except ArchiveDefect as exc:
        raise ZstdFormatError(("truncated zstd data: " if exc.truncated else "") + str(exc)
                              ) from None
