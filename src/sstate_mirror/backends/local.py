"""A directory as a mirror (local disk, NFS, a mounted share) or as the local sstate cache.

Writes follow the classic recipe: temporary file in the target directory, fsync, rename over
the final name, fsync the directory. A reader (bitbake through a ``file://`` mirror, an HTTP
server exporting the directory) sees either nothing or the whole file.

Listing follows symbolic links: bitbake fills a local SSTATE_DIR with links into ``file://``
mirrors, and those must be listed as the files they point to. Dangling links and directory
loops are reported through ``on_skip`` and passed over; a directory that cannot be read fails
the listing.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat as stat_mod
import urllib.parse
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import repeat
from typing import IO, Callable, Dict, List, Optional, Set, Tuple

from ..errors import AuthError, BackendError, NotFoundError, PermanentError, TransientError
from .base import (
    Backend,
    Entry,
    EntryBatch,
    ListingPart,
    Properties,
    SkipCallback,
    SplitListing,
    check_relative_path,
    new_temp_name,
)

_COPY_CHUNK = 1 << 20
_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.EIO, errno.ESTALE}


def path_from_url(url: str) -> str:
    """``file:///srv/x`` and ``file:/srv/x`` -> ``/srv/x``; ``file://rel`` -> ``rel``; a plain
    path unchanged."""
    if url.startswith("file://"):
        rest = url[len("file://") :]
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        return urllib.parse.unquote(rest) or "."
    if url.startswith("file:/"):  # file:/srv/x, the one-slash form of RFC 8089
        return urllib.parse.unquote(url[len("file:"):])
    return url


def _translate(exc: OSError, what: str, path: Optional[str] = None) -> BackendError:
    """One place that turns OS errors into the project's error tree."""
    msg = f"{what}: {exc.strerror or exc}"
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(msg, path=path)
    if isinstance(exc, PermissionError):
        return AuthError(msg, path=path, hint="check the permissions of the mirror directory")
    if exc.errno in _TRANSIENT_ERRNOS:
        return TransientError(msg, path=path)
    return PermanentError(msg, path=path)


class LocalBackend(Backend):
    """A mirror that is a directory on this machine."""

    properties = Properties(connections=4, atomic_put=True, delete_batch=256, touch="mtime")

    def __init__(self, url: str) -> None:
        self.root = os.path.abspath(path_from_url(url))
        self.url = "file://" + self.root

    # -- helpers -------------------------------------------------------------------------

    def _full(self, path: str) -> str:
        return os.path.join(self.root, *check_relative_path(path).split("/"))

    # -- interface -----------------------------------------------------------------------

    def check(self, create: bool = False) -> None:
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            if not create:
                raise NotFoundError(
                    f"mirror directory {self.root} does not exist", url=self.url
                ) from None
            try:
                os.makedirs(self.root, exist_ok=True)
            except OSError as exc:
                raise _translate(exc, f"cannot create {self.root}") from exc
            return
        except OSError as exc:
            raise _translate(exc, f"cannot access {self.root}") from exc
        if not stat_mod.S_ISDIR(st.st_mode):
            raise PermanentError(f"{self.root} is not a directory", url=self.url)
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise AuthError(f"cannot read directory {self.root}", url=self.url)

    def list(self, prefix: str = "", on_skip: Optional[SkipCallback] = None) -> Iterator[Entry]:
        for batch in self.list_batches(prefix, on_skip):
            directory = batch.directory
            atimes: Iterable[Optional[float]] = (
                repeat(None) if batch.atimes is None else batch.atimes)  # never shortened
            for name, size, mtime, atime in zip(batch.names, batch.sizes, batch.mtimes,
                                                atimes):
                yield Entry(directory + name, size, mtime, atime)

    def list_batches(self, prefix: str = "", on_skip: Optional[SkipCallback] = None
                     ) -> Iterator[EntryBatch]:
        """Each directory's files in one batch: a ``stat`` per file and no object per file
        besides it, for listings of millions (``list()`` reads these batches too)."""
        walk = self._walk_from(prefix)
        if walk is not None:
            yield from walk.batches(on_skip, start=walk.stack[0][0], url=self.url)

    def split_listing(self, files: int, parts: int, on_skip: Optional[SkipCallback] = None
                      ) -> SplitListing:
        """The walk of :meth:`list_batches`, handing over the directories it has still to
        list once it has listed ``files`` files and finished the subtrees below the first
        level that has at least ``parts`` of them (parts of like size: in a mirror's
        ``hh/hh`` layout, the ``hh`` directories not yet listed)."""
        return _SplitWalk(self, files, parts, on_skip)

    def _walk_from(self, prefix: str) -> Optional[_Walk]:
        """A walk of the tree below ``prefix`` (None: a prefix that does not exist)."""
        start = self._full(prefix) if prefix else self.root
        try:
            st = os.stat(start)
        except FileNotFoundError:
            if prefix:
                return None
            raise NotFoundError(
                f"mirror directory {self.root} does not exist", url=self.url
            ) from None
        except OSError as exc:
            raise _translate(exc, f"cannot list {start}") from exc
        rel0 = prefix.strip("/")
        key = (st.st_dev, st.st_ino)
        return _Walk([(start, rel0 + "/" if rel0 else "", key)], {key})

    def stat(self, path: str) -> Optional[Entry]:
        try:
            st = os.stat(self._full(path))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _translate(exc, f"cannot stat {path}", path) from exc
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return Entry(path, st.st_size, st.st_mtime, st.st_atime)

    @contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        full = self._full(path)
        try:
            fd = _open_noatime(full)
        except OSError as exc:
            raise _translate(exc, f"cannot read {path}", path) from exc
        with os.fdopen(fd, "rb") as stream:
            yield stream

    def put(self, path: str, src: IO[bytes], size: int) -> None:
        final = self._full(path)
        tmp = os.path.join(self.root, *new_temp_name(path).split("/"))
        parent = os.path.dirname(final)
        fd = self._create_temp(parent, tmp, path)
        try:
            with os.fdopen(fd, "wb") as out:
                written = _copy(src, out, size)
                if written != size:
                    raise PermanentError(
                        f"{path}: source gave {written} bytes, expected {size}"
                        " (did the file change during the upload?)",
                        path=path,
                    )
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, final)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise _translate(exc, f"cannot write {path}", path) from exc
            raise
        _fsync_dir(parent)

    def _create_temp(self, parent: str, tmp: str, path: str) -> int:
        # A concurrent clean may prune the (empty) parent between makedirs and open: retry.
        for attempt in range(3):
            try:
                os.makedirs(parent, exist_ok=True)
                return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            except FileNotFoundError:
                if attempt == 2:
                    raise NotFoundError(
                        f"cannot create {path}: parent vanished", path=path
                    ) from None
            except OSError as exc:
                raise _translate(exc, f"cannot create {path}", path) from exc
        raise AssertionError("unreachable")

    def delete(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        failures: Dict[str, BackendError] = {}
        parents: Set[str] = set()
        for path in paths:
            try:
                os.unlink(self._full(path))
            except FileNotFoundError:
                pass
            except OSError as exc:
                failures[path] = _translate(exc, f"cannot delete {path}", path)
                continue
            except BackendError as exc:
                failures[path] = exc
                continue
            if "/" in path:
                parents.add(path.rsplit("/", 1)[0])
        # deepest first, so that hh/hh is removed before hh
        for parent in sorted(parents, key=lambda p: p.count("/"), reverse=True):
            self._prune(parent)
        return failures

    def _prune(self, rel_dir: str) -> None:
        """Remove ``rel_dir`` and its parents while they are empty (never the root)."""
        while rel_dir:
            try:
                os.rmdir(self._full(rel_dir))
            except OSError:
                return  # not empty, already gone, or not ours to remove
            rel_dir = rel_dir.rsplit("/", 1)[0] if "/" in rel_dir else ""

    def touch(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        failures: Dict[str, BackendError] = {}
        for path in paths:
            try:
                full = self._full(path)
                # never create: a touch of a file deleted meanwhile must not leave an empty one
                os.utime(full, None)
            except OSError as exc:
                failures[path] = _translate(exc, f"cannot touch {path}", path)
            except BackendError as exc:
                failures[path] = exc
        return failures



#: A directory still to list: its path here, its path in the mirror ('' or ending with ``/``),
#: and its device and inode.
_Pending = Tuple[str, str, Tuple[int, int]]


class _Walk:
    """A depth-first walk of a directory tree, resumable and splittable.

    ``stack`` holds the directories still to list (the next one last); ``seen`` the device
    and inode of every directory met, so that a directory reached again through a link is
    listed once (the second time it is reported through ``on_skip``). A walk of a part of the
    tree records in ``met`` every directory it meets (see :class:`_SplitWalk`).
    """

    def __init__(self, stack: List[_Pending], seen: Set[Tuple[int, int]],
                 met: Optional[List[int]] = None) -> None:
        self.stack = stack
        self.seen = seen
        self.met = met
        self.files = 0

    def batches(self, on_skip: Optional[SkipCallback], *, start: Optional[str] = None,
                url: str = "", until: Optional[Callable[[], bool]] = None
                ) -> Iterator[EntryBatch]:
        """The files of each directory popped in turn, until the stack is empty or ``until``
        says to stop. ``start`` is the root of the whole listing: its disappearing fails it
        (any other directory that disappears was removed since its parent was listed)."""
        stack, seen, met = self.stack, self.seen, self.met
        is_reg, is_dir = stat_mod.S_ISREG, stat_mod.S_ISDIR
        while stack:
            if until is not None and until():
                return
            directory, rel, _ = stack.pop()
            try:
                with os.scandir(directory) as it:
                    children = list(it)
            except FileNotFoundError:
                if directory == start:
                    raise NotFoundError(f"{start} disappeared while listing it", url=url
                                        ) from None
                continue  # removed since its parent was listed (a clean pruning it): empty
            except OSError as exc:
                raise _translate(exc, f"cannot list {directory}") from exc
            names: List[str] = []
            sizes: List[int] = []
            mtimes: List[float] = []
            atimes: List[float] = []
            for child in children:
                try:
                    st = child.stat()  # follows symlinks
                    # bitbake marks a hit by touching the link itself (no-dereference)
                    link = child.stat(follow_symlinks=False) if child.is_symlink() else None
                except FileNotFoundError:
                    if on_skip is not None and child.is_symlink():
                        on_skip(rel + child.name, "dangling symbolic link")
                    continue  # else deleted since the directory was read
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        if on_skip is not None:
                            on_skip(rel + child.name, "symbolic link loop")
                        continue
                    raise _translate(exc, f"cannot stat {child.path}") from exc
                mode = st.st_mode
                if is_reg(mode):
                    names.append(child.name)
                    sizes.append(st.st_size)
                    mtimes.append(st.st_mtime if link is None
                                  else max(st.st_mtime, link.st_mtime))
                    atimes.append(st.st_atime)
                elif is_dir(mode):
                    key = (st.st_dev, st.st_ino)
                    if met is not None:
                        met += key
                    if key in seen:
                        if on_skip is not None:
                            on_skip(rel + child.name, "directory already listed (link loop)")
                        continue
                    seen.add(key)
                    stack.append((child.path, f"{rel}{child.name}/", key))
                elif on_skip is not None:
                    on_skip(rel + child.name, "not a regular file")
            if names:
                self.files += len(names)
                yield EntryBatch(rel, names, sizes, mtimes, atimes)


class _DirectoryPart(ListingPart):
    """A directory the whole walk had still to list, walked on its own (in another process).

    Its walk starts knowing only this directory: it lists what the whole walk would list
    there unless it meets a directory the whole walk had met before (see
    :meth:`_SplitWalk.admit`), so it records every directory it meets in :attr:`trace`.
    """

    def __init__(self, pending: _Pending) -> None:
        self.pending = pending
        self.trace = b""
        self.where = pending[1]

    def batches(self, on_skip: Optional[SkipCallback] = None) -> Iterator[EntryBatch]:
        met: List[int] = []
        yield from _Walk([self.pending], {self.pending[2]}, met).batches(on_skip)
        self.trace = array("Q", met).tobytes()


class _SplitWalk(SplitListing):
    """The walk of :meth:`LocalBackend.list_batches`, split (see its ``split_listing``).

    The parts' walks know nothing of each other nor of the head; a part's listing is the one
    the whole walk gives there exactly when none of the directories it met (but its own)
    had been met before it in the whole walk's order. Only links and bind mounts reach a
    directory twice, so that is nearly always so; when it is not, the part is walked again
    here with every directory met before it.
    """

    def __init__(self, backend: LocalBackend, files: int, parts: int,
                 on_skip: Optional[SkipCallback]) -> None:
        self._backend, self._files, self._min_parts = backend, files, parts
        self._on_skip = on_skip
        self._seen: Set[Tuple[int, int]] = set()
        self.parts: List[ListingPart] = []

    def head(self) -> Iterator[EntryBatch]:
        walk = self._backend._walk_from("")
        assert walk is not None  # the root is there, or _walk_from raised
        self._seen = walk.seen
        files, min_parts = self._files, self._min_parts
        level: Optional[int] = None
        listed: Dict[int, int] = {}  # directories listed, by depth

        def until() -> bool:
            nonlocal level
            stack = walk.stack
            depth = stack[-1][1].count("/")
            if walk.files >= files and level is None:
                level = _split_level(stack, min_parts, walk.files, listed, files)
            if level is not None and depth <= level:
                return True
            listed[depth] = listed.get(depth, 0) + 1
            return False

        yield from walk.batches(self._on_skip, start=self._backend.root, url=self._backend.url,
                                until=until)
        self.parts = [_DirectoryPart(pending) for pending in reversed(walk.stack)]

    def admit(self, part: ListingPart, trace: bytes) -> bool:
        assert isinstance(part, _DirectoryPart)
        met = array("Q")
        met.frombytes(trace)
        keys = set(zip(met[0::2], met[1::2]))
        keys.discard(part.pending[2])
        if not keys.isdisjoint(self._seen):
            return False
        self._seen |= keys
        return True

    def redo(self, part: ListingPart) -> Iterator[EntryBatch]:
        assert isinstance(part, _DirectoryPart)
        return _Walk([part.pending], self._seen).batches(self._on_skip)


def _split_level(stack: List[_Pending], min_parts: int, files: int, listed: Dict[int, int],
                 wanted: int) -> Optional[int]:
    """The depth at which the walk splits: the first with ``min_parts`` directories still to
    list, when what is left is worth splitting (at least ``wanted`` more files, estimated
    from the ``files`` listed in the ``listed`` directories of that depth); -1: never."""
    pending: Dict[int, int] = {}
    for _, rel, _ in stack:
        depth = rel.count("/")
        pending[depth] = pending.get(depth, 0) + 1
    level = min((d for d, n in pending.items() if n >= min_parts), default=None)
    if level is None:
        return None
    done = listed.get(level, 0)
    if done and files * pending[level] < wanted * done:
        return -1
    return level


def _open_noatime(full: str) -> int:
    """Open for reading without updating the access time where the kernel allows it.

    On a directory mirror the ``.siginfo`` access time is bitbake's record of use; our own
    reads (analyze, verify, upload from a mirror) must not count as use.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC
    noatime = getattr(os, "O_NOATIME", 0)
    if noatime:
        try:
            return os.open(full, flags | noatime)
        except PermissionError:
            pass  # O_NOATIME needs file ownership (or CAP_FOWNER)
    return os.open(full, flags)


def _copy(src: IO[bytes], out: IO[bytes], size: int) -> int:
    """Copy ``src`` to ``out``; in-kernel when ``src`` is a plain file. Returns bytes copied.

    Reads at most ``size + 1`` bytes so that a source that grew is detected, not copied whole.
    """
    try:
        in_fd = src.fileno()
        pos = src.tell()
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        in_fd = -1
        pos = 0
    if in_fd >= 0 and hasattr(os, "sendfile"):
        out.flush()
        out_fd = out.fileno()
        copied = 0
        try:
            while copied <= size:
                n = os.sendfile(out_fd, in_fd, pos + copied, min(size + 1 - copied, 1 << 30))
                if n == 0:
                    break
                copied += n
            return copied
        except OSError as exc:
            if copied or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
    copied = 0
    while copied <= size:
        chunk = src.read(min(_COPY_CHUNK, size + 1 - copied))
        if not chunk:
            break
        out.write(chunk)
        copied += len(chunk)
    return copied


def _fsync_dir(directory: str) -> None:
    """Make a rename durable; some filesystems (NFS, FUSE) refuse directory fsync."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
