"""The storage interface every backend implements, and nothing about sstate.

A backend is a handful of primitives on ``/``-separated paths relative to the mirror root:
list, stat, open, put, delete, touch. Commands are built on top of these, never inside them;
backends never parse sstate names (they may ask :mod:`sstate_mirror.naming` for a temporary
upload name, which is not parsing).

Contract, checked for every backend by ``tests/backend_contract.py``:

* ``list()`` yields every regular file below the root (recursively), each exactly once, with
  its size in bytes and its modification time as a POSIX timestamp (UTC). A listing that
  cannot be completed raises :class:`~sstate_mirror.errors.BackendError`; it never ends early
  as if the mirror were smaller.
* ``list_batches()`` yields what ``list()`` yields, in the same order, as :class:`EntryBatch`
  columns of one directory's files; the default groups ``list()``, a store that lists
  faster by columns overrides it (the directory backend: a million files).
* ``split_listing()`` gives what ``list_batches()`` gives, partly as parts that other
  processes list (the directory backend: a walk over the machine's cores); None by default.
* ``put()`` is atomic where ``properties.atomic_put`` is true: a reader sees either nothing (or
  the previous object) or the whole new object at its final path, never a partial one. Parent
  directories/collections are created as needed.
* ``delete()`` and ``touch()`` take a batch (at most ``properties.delete_batch`` paths for
  delete) and return the failures as data: a mapping path -> error. A path that is already
  gone is not a delete failure. Empty directories left behind by a delete are removed.
* ``touch()`` marks existing objects as used *now* (their mtime becomes the current time)
  without transferring their content again.
* ``properties`` settle once: :meth:`Backend.settle` asks the store what it cannot be told
  in advance (a WebDAV server's ``MOVE``, how it refreshes a time), and after it
  ``properties`` never changes. Commands that write call it after ``check()``; a backend's
  first ``put()`` or ``touch()`` calls it when nobody did; read-only commands never pay for it.
* All methods may be called from several threads at once.
* Errors are the project's own (:mod:`sstate_mirror.errors`), raised ``from`` the library's.
"""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, Any, Callable, Dict, List, NamedTuple, Optional, Protocol, Tuple

from ..errors import BackendError, PermanentError
from ..naming import UPLOAD_TEMP_PREFIX, UPLOAD_TEMP_SUFFIX

#: Called for files a listing passes over without failing (dangling symlink, loop): path, why.
SkipCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class Entry:
    """One file as a backend lists it.

    ``atime`` is given only by stores where reading a file records it *and* consumers rely on
    that: bitbake marks its use of a ``file://`` mirror by updating the access time of the
    mirror's ``.siginfo`` through its symlink. Other stores leave it None.
    """

    path: str
    size: int
    mtime: float
    atime: Optional[float] = None


class EntryBatch(NamedTuple):
    """Files of one directory as a backend lists them, by columns: :class:`Entry` in bulk.

    A listing of millions of files is read faster as columns than as one object per file;
    ``directory + names[i]`` is the path of the i-th file (``directory`` ends with ``/``, or
    is '' at the top), and the columns have one value per name.
    """

    directory: str
    names: List[str]
    sizes: List[int]
    mtimes: List[float]
    atimes: Optional[List[float]]
    """The access times, where the store gives them (see :attr:`Entry.atime`)."""


#: Most files :meth:`Backend.list_batches` puts in one batch by default.
BATCH_FILES = 4096


@dataclass(frozen=True)
class Properties:
    """What a backend guarantees and how it likes to be driven; callers act on these."""

    connections: int = 8
    """Parallel transfers that suit this store (default for ``--jobs``)."""
    atomic_put: bool = True
    """Readers never see a partial object at its final path."""
    delete_batch: int = 1
    """Most paths one ``delete()`` call handles efficiently (S3: 1000)."""
    touch: str = "mtime"
    """How use is recorded: ``mtime`` (set in place), ``copy`` (server-side copy), ``none``."""
    touch_cost: str = "flat"
    """What one ``touch()`` of a file costs: ``flat`` (the same for any file) or ``size``
    (grows with the file: a server-side copy). Planners mark the cheapest member of a group."""


@dataclass
class BackendOptions:
    """Connection settings from the command line and environment, for any backend.

    Each backend reads the fields it understands and ignores the rest, so the CLI does not
    need to know which backend a URL selects.
    """

    # S3
    endpoint_url: Optional[str] = None
    region: Optional[str] = None
    profile: Optional[str] = None
    addressing_style: Optional[str] = None  # "path" | "virtual" | "auto"
    # HTTP / WebDAV
    user: Optional[str] = None
    password: Optional[str] = None
    token: Optional[str] = None
    auth_method: Optional[str] = None  # "basic" | "digest" | None (auto)
    use_netrc: bool = True
    ca_cert: Optional[str] = None
    verify_tls: bool = True
    pipelining: bool = True
    # all
    timeout: float = 60.0
    """Seconds to wait for an answer (or the next bytes of one): the read timeout."""
    connect_timeout: float = 60.0
    """Seconds to wait for a connection (aws-cli's and rclone's default is a minute too)."""
    retries: int = 5


#: Largest size a listing may announce: S3 allows 5 TiB, other stores a little more; anything
#: above 1 PiB is a broken or hostile server, and would make every plan's sums wrong.
MAX_OBJECT_SIZE = 1 << 50


def listed_size(url: str, path: str, size: Any) -> int:
    """A listing's size of ``path``, refused (the listing fails) when no object can have it."""
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_OBJECT_SIZE:
        raise PermanentError(f"cannot list {url}: the server lists {path!r} with size {size!r},"
                             " which no object can have", url=url)
    return int(size)


def new_temp_name(path: str) -> str:
    """A fresh temporary path next to ``path`` for an atomic put (temp, then rename/move).

    Short and recognisable (``naming.classify`` reports it as ``temp``) so that ``clean``
    can remove leftovers of interrupted uploads.
    """
    parent = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
    return f"{parent}{UPLOAD_TEMP_PREFIX}{secrets.token_hex(8)}{UPLOAD_TEMP_SUFFIX}"


def check_relative_path(path: str) -> str:
    """Reject paths that could leave the mirror root; return the path unchanged.

    Every path a backend receives comes from a listing or from a plan; this guard makes a
    hostile listing (``..``, absolute paths, NUL) harmless instead of trusting it.
    """
    if (
        not path
        or path.startswith("/")
        or "\x00" in path
        or "\\" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise PermanentError(f"refusing unsafe path {path!r}", path=path)
    return path


#: ``scheme://`` and what follows it up to whitespace or a quote (a URL inside a message).
_URL_TOKEN = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s'\"<>]*)")
_DELIMS = re.compile(r"[/?#]")


def _split_userinfo(rest: str) -> Tuple[bool, str]:
    """Split what follows ``scheme://`` into (had credentials, the rest after them).

    ``urllib`` ends the user info at the first ``/``, ``?`` or ``#``, so a password holding
    one of those (``https://user:se/cret@host``) would be read as a host and a path and
    printed. Redaction errs the other way: the credentials end at the *last* ``@``, when
    the text before it has no ``/``, ``?`` or ``#`` at all, or has a ``:`` before the first
    of them (``user:pass...``; a ``host:port/path@x`` is redacted too, which hides a host
    but never a password).
    """
    at = rest.rfind("@")
    if at < 0:
        return False, rest
    head = rest[:at]
    first = _DELIMS.split(head, 1)[0]
    if first == head or ":" in first:
        return True, rest[at + 1 :]
    return False, rest


def ambiguous_userinfo(url: str) -> bool:
    """True when ``url`` looks like it holds credentials that ``urllib`` does not see.

    ``https://user:se/cret@host`` parses as host ``user``, port ``se`` and a path: the
    password would end up in the path of every request. Such a URL is refused (with a hint
    to percent-encode) instead of being guessed at.
    """
    m = _URL_TOKEN.match(url)
    if m is None:
        return False
    had_userinfo, _ = _split_userinfo(m.group(2))
    authority = _DELIMS.split(m.group(2), 1)[0]
    return had_userinfo and "@" not in authority


def redact_url(url: str) -> str:
    """The URL without credentials (and without its query), for every message and log line.

    Never raises: it is called while reporting that a URL is invalid.
    """
    m = _URL_TOKEN.match(url)
    if m is None or m.end() != len(url):
        return redact_text(url)
    scheme, rest = m.group(1), m.group(2)
    had_userinfo, rest = _split_userinfo(rest)
    rest = rest.split("#", 1)[0]
    if "?" in rest:
        rest = rest.split("?", 1)[0] + "?***"
    return f"{scheme}{'***@' if had_userinfo else ''}{rest}"


def redact_text(text: str) -> str:
    """``text`` with the credentials of any URL in it replaced by ``***``.

    A last line of defence for messages that quote what the user typed (a URL given where a
    file was expected, say): every line the CLI prints goes through here.
    """

    def one(m: re.Match[str]) -> str:
        had_userinfo, rest = _split_userinfo(m.group(2))
        return f"{m.group(1)}***@{rest}" if had_userinfo else m.group(0)

    return _URL_TOKEN.sub(one, text)


def entry_batches(entries: Iterator[Entry]) -> Iterator[EntryBatch]:
    """``entries`` as batches of files of one directory, in the same order."""
    batch: Optional[EntryBatch] = None
    for entry in entries:
        cut = entry.path.rfind("/") + 1
        directory = entry.path[:cut]
        if (batch is None or directory != batch.directory or len(batch.names) >= BATCH_FILES
                or (entry.atime is None) != (batch.atimes is None)):
            if batch is not None:
                yield batch
            batch = EntryBatch(directory, [], [], [], None if entry.atime is None else [])
        batch.names.append(entry.path[cut:])
        batch.sizes.append(entry.size)
        batch.mtimes.append(entry.mtime)
        if batch.atimes is not None and entry.atime is not None:
            batch.atimes.append(entry.atime)
    if batch is not None:
        yield batch


class ListingPart(ABC):
    """A part of a listing that another process lists on its own (it pickles).

    Its :meth:`batches` are what the whole listing yields at this part's place, in the same
    order, unless :meth:`SplitListing.admit` refuses them, given :attr:`trace`: what the
    part's own listing met that the whole listing's other parts may have met too (a
    directory tree's links). ``trace`` is set once every batch is read.
    """

    trace: bytes
    where: str = ""
    """The path below which the part's files are (ending with ``/``; '' if none): what the
    caller may know of the part's size before listing it."""

    @abstractmethod
    def batches(self, on_skip: Optional[SkipCallback] = None) -> Iterator[EntryBatch]:
        """The part's files, as :meth:`Backend.list_batches` gives them."""


class SplitListing(ABC):
    """One listing read partly here and partly, in :class:`ListingPart`s, elsewhere.

    Read :meth:`head` first: the listing's first batches, after which :attr:`parts` holds
    what is left of it, in the listing's order (empty when the head was all). Then, for each
    part in that order, either :meth:`admit` what another process listed of it, or list it
    here with :meth:`redo` (when refused, or when that process failed: the error, if the
    store still gives it, is then raised here as the listing would raise it). The batches
    of the head, then of each part in turn, are exactly :meth:`Backend.list_batches`'s.
    """

    parts: List[ListingPart]

    @abstractmethod
    def head(self) -> Iterator[EntryBatch]:
        """The batches the listing yields before its parts."""

    @abstractmethod
    def admit(self, part: ListingPart, trace: bytes) -> bool:
        """Whether ``part``'s batches, listed apart with ``trace``, are the listing's there."""

    @abstractmethod
    def redo(self, part: ListingPart) -> Iterator[EntryBatch]:
        """``part``'s batches, listed here after the parts before it."""


class Listing(Protocol):
    """What a listing comes from: a backend, or a report of its files (an S3 Inventory)."""

    url: str

    def list(self, prefix: str = "", on_skip: Optional[SkipCallback] = None
             ) -> Iterator[Entry]: ...

    def list_batches(self, prefix: str = "", on_skip: Optional[SkipCallback] = None
                     ) -> Iterator[EntryBatch]: ...


class Inventory(Listing, Protocol):
    """A stored report of a mirror's files, made at ``created`` (POSIX time): files written
    or re-dated after it may be missing from it or listed as they were."""

    created: float

    def close(self) -> None: ...


class Backend(ABC):
    """A mirror (or a local cache) addressed by relative paths."""

    #: The mirror's URL without credentials, for messages.
    url: str
    properties: Properties = Properties()

    @abstractmethod
    def check(self, create: bool = False) -> None:
        """Make sure the mirror root is reachable (creating it if ``create``).

        Raises :class:`NotFoundError` when it does not exist, :class:`AuthError` when access is
        refused, and other :class:`BackendError` subclasses when the server cannot be reached.
        """

    @abstractmethod
    def list(self, prefix: str = "", on_skip: Optional[SkipCallback] = None) -> Iterator[Entry]:
        """Every file below ``prefix`` (a directory path relative to the root, '' = all)."""

    def list_batches(self, prefix: str = "", on_skip: Optional[SkipCallback] = None
                     ) -> Iterator[EntryBatch]:
        """What :meth:`list` yields, in the same order, as batches of files of one directory.

        For callers that read every file of a mirror of millions. This default groups the
        entries of :meth:`list`; a store that can list faster by columns overrides it.
        """
        return entry_batches(self.list(prefix, on_skip))

    def split_listing(self, files: int, parts: int, on_skip: Optional[SkipCallback] = None
                      ) -> Optional[SplitListing]:
        """:meth:`list_batches` of the whole store, to be read partly by other processes
        once ``files`` files are listed, in about ``parts`` parts or more; None when the
        store cannot be listed in parts (the default)."""
        return None

    def settle(self) -> None:  # noqa: B027 - most stores know their properties from the start
        """Find out what ``properties`` cannot say before the store is asked; once.

        Called after :meth:`check` by the commands that write, before they plan, and by a
        backend's own first ``put()``/``touch()`` when nobody did; idempotent and
        thread-safe. ``properties`` never changes after it returns.
        """

    def choose_lookup(self, local_count: int) -> str:
        """How a planner should learn which of ``local_count`` local files the mirror has.

        ``"list"``: one listing of the mirror; ``"probe"``: ``stat()`` each file. A store whose
        listing is paged (S3: 1,000 keys a request) prefers probes when the local set is small
        next to the mirror; a directory or a WebDAV ``Depth: infinity`` listing is one pass.
        """
        return "list"

    def server_time(self) -> Optional[float]:
        """The mirror's clock now (POSIX time), when the mirror has one of its own.

        Ages compare "now" with the mtimes the mirror reports, which come from the mirror's
        clock; a server sends its clock in every HTTP answer (``Date``). None means the times
        come from this machine's clock (a directory) or the server does not say.
        """
        return None

    @abstractmethod
    def stat(self, path: str) -> Optional[Entry]:
        """The entry for ``path``, or None when it does not exist."""

    @abstractmethod
    def open(self, path: str) -> AbstractContextManager[IO[bytes]]:
        """A readable binary stream of the object; :class:`NotFoundError` when missing."""

    def read(self, path: str, max_bytes: int) -> bytes:
        """The whole object, refusing more than ``max_bytes`` (hostile or broken servers)."""
        with self.open(path) as stream:
            data = stream.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise PermanentError(
                f"{path} is larger than the {max_bytes} bytes allowed", url=self.url, path=path
            )
        return data

    @abstractmethod
    def put(self, path: str, src: IO[bytes], size: int) -> None:
        """Store exactly ``size`` bytes read from ``src`` at ``path`` (atomically if possible).

        Fails (and leaves nothing at ``path``) if ``src`` yields a different number of bytes.
        """

    @abstractmethod
    def delete(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        """Delete a batch of files; return the ones that failed, with why."""

    @abstractmethod
    def touch(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        """Mark existing files as used now; return the ones that failed, with why."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections and temporary state."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def failure_map(paths: Sequence[str], error: BackendError) -> Dict[str, BackendError]:
    """The same error for every path of a batch that failed as a whole."""
    return {p: error for p in paths}
