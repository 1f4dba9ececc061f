"""Read an sstate archive to its end, the way ``tar -x`` in a setscene task would, but
without writing anything: is it a complete, valid compressed tar stream?

bitbake restores an archive with ``tar -I pzstd -xf`` (``tar -xzf`` for ``.tgz``). That
fails — and the real task runs instead — when the compressed data is truncated or corrupt,
when the tar stream is cut or has a broken header, or when the decompressed data is not a
tar archive at all. Each of these is found here by streaming: the compressed layer is
decoded by :mod:`.archive_streams` (frame/member structure, checksums), and the tar layer is
walked with :mod:`tarfile` in stream mode, reading every member's data to its end. Nothing is
ever extracted (no file is created, so a hostile member name cannot escape anywhere).

Memory and time stay bounded for hostile input: data flows through in chunks, the
decompressed size and the number of members are capped (:class:`ArchiveLimits`), and tar
metadata blocks that tarfile would read into memory at once (pax headers, GNU long names) are
refused past a size cap.

``tarfile`` ends a stream quietly at an unreadable header after the first one; so when the
member walk ends, the bytes where it stopped are looked at: they must be the zero blocks of
the end-of-archive marker, and everything after it zeros (tar's padding).
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Optional, Tuple

from .archive_streams import ArchiveDefect, DecodedStream, LimitExceeded, open_decoded

GiB = 1024 * 1024 * 1024
MiB = 1024 * 1024

_BLOCK = tarfile.BLOCKSIZE
_READ = MiB

#: Largest pax header or GNU long name accepted: tarfile reads these into memory at once.
MAX_TAR_METADATA = 16 * MiB

__all__ = [
    "ArchiveCheck",
    "ArchiveDefect",
    "ArchiveLimits",
    "LimitExceeded",
    "check_archive",
]


@dataclass(frozen=True)
class ArchiveLimits:
    """How far one archive is read. The defaults read every real archive to its end."""

    max_decompressed: int = 64 * GiB
    max_members: int = 1_000_000


DEFAULT_ARCHIVE_LIMITS = ArchiveLimits()


@dataclass(frozen=True)
class ArchiveCheck:
    """What reading a valid archive found."""

    compressed_bytes: int
    decompressed_bytes: int
    members: int


class _MetadataTooLarge(Exception):
    pass


class _CappedTarInfo(tarfile.TarInfo):
    """Refuses pax headers and GNU long names larger than :data:`MAX_TAR_METADATA`."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> Any:
        if self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                         tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE) \
                and self.size > MAX_TAR_METADATA:
            raise _MetadataTooLarge(f"a tar metadata header of {self.size} bytes")
        return super()._proc_member(tarfile_)  # type: ignore[misc]


#: What tarfile and the layers below raise for malformed data.
_MALFORMED = (tarfile.TarError, EOFError, ValueError, OverflowError, UnicodeError,
              IndexError, KeyError)


def check_archive(
    stream: IO[bytes],
    ext: str,
    limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
    on_bytes: Optional[Callable[[int], None]] = None,
) -> ArchiveCheck:
    """Read the whole archive from ``stream``.

    Raises :class:`ArchiveDefect` when it is broken, :class:`LimitExceeded` when a limit
    stops the read first. Errors of the stream itself (I/O, backend) propagate unchanged.
    """
    decoded = open_decoded(stream, ext, max_output=limits.max_decompressed, on_bytes=on_bytes)
    try:
        members, end = _walk_tar(decoded, limits)
        _check_end(decoded, members, end)
    except _MetadataTooLarge as exc:
        raise LimitExceeded(str(exc)) from None
    except _MALFORMED as exc:
        message = str(exc) or type(exc).__name__
        truncated = "unexpected end of data" in message
        raise ArchiveDefect(f"not a valid tar stream: {message}", truncated=truncated) from None
    return ArchiveCheck(decoded.compressed_bytes, decoded.delivered, members)


def _walk_tar(decoded: DecodedStream, limits: ArchiveLimits) -> Tuple[int, int]:
    """Read every member's data; return the member count and where the walk stopped."""
    with tarfile.open(fileobj=decoded, mode="r|",  # type: ignore[call-overload]
                      tarinfo=_CappedTarInfo) as tar:
        if tar.firstmember is None:  # type: ignore[attr-defined]
            # No member at all (OE's empty archive). Asking for the next one would make
            # Python 3.9's tarfile seek backwards in the stream.
            return 0, tar.offset
        count = 0
        while True:
            member = tar.next()
            if member is None:
                break
            tar.members.clear()  # type: ignore[attr-defined]  # stream mode keeps all
            count += 1
            if count > limits.max_members:
                raise LimitExceeded(f"more than {limits.max_members} members")
            if member.isreg():
                _read_member(tar, member)
    return count, tar.offset


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    data = tar.extractfile(member)
    assert data is not None  # a regular file always has data
    left = member.size
    while left > 0:
        chunk = data.read(min(_READ, left))
        if not chunk:
            raise ArchiveDefect(f"the tar stream ends inside {member.name!r}", truncated=True)
        left -= len(chunk)


def _check_end(decoded: DecodedStream, members: int, offset: int) -> None:
    """The walk stopped at ``offset``: that must be the end-of-archive marker, followed by
    zeros only."""
    seen = decoded.delivered_since(offset)
    if seen is None:  # pragma: no cover - tarfile reads ahead far less than TAIL_KEEP
        seen = b""
    rest = bytearray(seen)
    # enough to judge the first block after the members
    while len(rest) < _BLOCK:
        chunk = decoded.read(_READ)
        if not chunk:
            break
        rest += chunk
    head = bytes(rest[:_BLOCK])
    if not head:
        raise ArchiveDefect(f"the tar stream ends after {members} members without its"
                            " end-of-archive marker", truncated=True)
    if head.count(0) != len(head):
        if len(head) < _BLOCK:
            raise ArchiveDefect(f"the tar stream ends inside a header (at byte {offset})",
                                truncated=True)
        raise ArchiveDefect(f"invalid tar header at byte {offset} (after {members} members)")
    if len(head) < _BLOCK:
        raise ArchiveDefect("the tar stream ends inside its end-of-archive marker",
                            truncated=True)
    position = offset
    tail = bytes(rest)
    while tail:
        nonzero = len(tail) - len(tail.lstrip(b"\0"))
        if nonzero < len(tail):
            raise ArchiveDefect(
                f"data after the end of the tar archive (at byte {position + nonzero})")
        position += len(tail)
        tail = decoded.read(_READ) or b""
