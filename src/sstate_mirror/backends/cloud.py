"""What the Google Cloud Storage and Azure Blob backends share: one request under the
project's retry policy, timestamps as UTC POSIX times, the server's clock from the ``Date``
of its answers, and :class:`PagedObjectStore`, the listing, deleting and touching they do
alike.

Both official clients retry on their own, each with its own policy (google-api-core by a
deadline, azure-core by a count); both are switched off, and every request these backends
send goes through :func:`request`, which retries with
:func:`sstate_mirror.retry.call`: the same backoff as every other store, and
``--retries N`` means at most N + 1 attempts of a request on the wire.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from .. import events, retry
from ..errors import (
    AuthError,
    BackendError,
    NotFoundError,
    PermanentError,
    TransientError,
    UsageError,
)
from .base import (
    Backend,
    BackendOptions,
    Entry,
    SkipCallback,
    check_relative_path,
    listed_size,
)
from .davxml import parse_http_date
from .prefix_listing import (
    RangeLister,
    estimate_from_first_page,
    list_in_ranges,
    prefer_probes,
)

__all__ = ["LazyClient", "Page", "PagedObjectStore", "each_path", "posix_time", "request",
           "server_offset", "status_error", "tune_session"]


T = TypeVar("T")


def request(fn: Callable[[], T], translate: Callable[[BaseException], BackendError], *,
            retries: int, what: str) -> T:
    """``fn()`` (one request), its failures translated, transient ones retried.

    Only for requests that are safe to send again (reads, listings, deletes, metadata
    updates, uploads from a source that is read anew each time). An error that comes out has
    used every retry, so it is marked ``retried`` and the transfer layer does not repeat it.
    """
    def attempt() -> T:
        try:
            return fn()
        except (BackendError, UsageError):  # a bad option is the user's, not the store's
            raise
        except Exception as exc:
            raise translate(exc) from exc

    try:
        return retry.call(attempt, retries=retries, what=what)
    except BackendError as error:
        error.retried = error.retryable
        raise


def status_error(status: int, label: str, what: str, *, url: str, path: Optional[str],
                 endpoint: str, rejected: bool, credentials_hint: str,
                 permission_hint: str) -> BackendError:
    """The project's error for an HTTP status of GCS or Azure (``label``: the store's error
    code, or the status); ``rejected``: the store said the credentials themselves are bad."""
    if status == 404:
        return NotFoundError(f"{what}: not found", url=url, path=path)
    if status == 401 or rejected:
        return AuthError(f"{what}: credentials rejected by {endpoint} ({label})",
                         url=url, path=path, hint=credentials_hint)
    if status == 403:
        return AuthError(f"{what}: access denied ({label})", url=url, path=path,
                         hint=permission_hint)
    if status in (408, 429) or status >= 500:
        return TransientError(f"{what}: server busy or failing ({label})", url=url, path=path)
    return PermanentError(f"{what}: {label}", url=url, path=path)


#: The ``Date`` of the last answer each thread received (see :func:`tune_session`).
_ANSWER_DATES = threading.local()


def server_offset(session: Any) -> float:
    """Seconds to add to this machine's clock to get the server's, from the ``Date`` of the
    last answer on ``session`` (0 before the first): for times the client must send (GCS's
    ``customTime``) in the clock the server's own times and ``clean`` use."""
    return float(getattr(session, "sstate_server_offset", 0.0))


def tune_session(session: Any, options: BackendOptions, connections: int) -> None:
    """A ``requests`` session for parallel transfers: a pool of two connections per
    transfer (requests keeps 10), no retries below ours, TLS verified as asked, and the
    ``Date`` of every answer kept for :meth:`PagedObjectStore.server_time` (neither client
    hands its callers the headers of a listing's answer).

    TLS as for every other store: ``--ca-cert`` (or ``--insecure``) when given, else the
    library's default, which honours ``REQUESTS_CA_BUNDLE``. The choice is made in the
    connection adapter, because requests lets ``REQUESTS_CA_BUNDLE`` override a session's
    ``verify``, and azure-core passes its own ``verify`` with every request.
    """
    import requests  # both clients' transport; not needed by the other backends

    if options.ca_cert and not os.path.isfile(options.ca_cert):
        raise UsageError(f"--ca-cert {options.ca_cert}: no such file")
    verify: Any = options.ca_cert or options.verify_tls

    # requests ships its types only in releases that no longer install on Python 3.9
    class Adapter(requests.adapters.HTTPAdapter):  # type: ignore[misc]
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            if verify is not True:
                kwargs["verify"] = verify
            return super().send(request, *args, **kwargs)

    adapter = Adapter(pool_connections=4, pool_maxsize=connections * 2, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = verify

    # a Date changes once a second: each is parsed once (a tuple, swapped whole: threads)
    memo: List[Tuple[str, Optional[float]]] = [("", None)]

    def remember_date(response: Any, *args: Any, **kwargs: Any) -> None:
        date = response.headers.get("Date")
        _ANSWER_DATES.last = date
        if not isinstance(date, str):
            return
        last = memo[0]
        if last[0] != date:
            last = memo[0] = (date, parse_http_date(date))
        when = last[1]
        if when is not None:  # a Date is truncated to the second: +0.5 on average
            session.sstate_server_offset = when + 0.5 - time.time()

    session.hooks["response"].append(remember_date)


def posix_time(value: Optional[dt.datetime]) -> float:
    """A store's datetime as a POSIX timestamp; a naive one is UTC, never local time."""
    if value is None:
        return 0.0
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


_CLIENT_LOCK = threading.Lock()


class LazyClient:
    """A store's client, made on first use, once, whichever thread asks first (the
    clients are thread-safe; making one may read credentials or files)."""

    url: str
    _client_obj: Any = None

    def _make_client(self) -> Any:
        raise NotImplementedError

    def _error(self, exc: BaseException, what: str, path: Optional[str] = None
               ) -> BackendError:
        raise NotImplementedError

    @property
    def client(self) -> Any:
        if self._client_obj is None:
            with _CLIENT_LOCK:
                if self._client_obj is None:
                    try:
                        self._client_obj = self._make_client()
                    except UsageError:
                        raise
                    except Exception as exc:
                        raise self._error(exc, f"cannot set up access to {self.url}") from exc
        return self._client_obj

    def close(self) -> None:
        client, self._client_obj = self._client_obj, None
        if client is not None and hasattr(client, "close"):
            client.close()


def each_path(paths: Sequence[str], fn: Callable[[str], None]) -> Dict[str, BackendError]:
    """``fn`` on every path, the failures returned as data (a batch's contract)."""
    failures: Dict[str, BackendError] = {}
    for path in paths:
        try:
            fn(path)
        except BackendError as exc:
            failures[path] = exc
    return failures


#: One listing page: records, sub-"directories" (with a delimiter), the next page's token.
Page = Tuple[List[Any], List[str], Optional[str]]


class PagedObjectStore(LazyClient, Backend):
    """What the Google Cloud Storage and Azure Blob backends do alike, on top of a few
    store-specific requests (:meth:`_page`, :meth:`_delete_batch`, :meth:`_delete_one`,
    :meth:`_touch_one`) and record readers (:meth:`_name`, :meth:`_mtime`, :meth:`_size`).

    Listing: page by page to the end, or, for a big mirror (estimated from the first page),
    as parallel prefix ranges. Deleting: batches, with single deletes from the first batch
    the store refuses on (``batch_supported``). Touching: one object at a time.
    """

    url: str
    #: the key prefix of the mirror root, with its trailing ``/`` (or empty)
    _root: str
    page_size: int
    parallel_list_min = 20_000
    list_workers = 16
    #: None until the first batch shows whether batches work at this store
    batch_supported: Optional[bool] = None

    # -- store-specific ------------------------------------------------------------------

    @abstractmethod
    def _page(self, prefix: str, delimiter: Optional[str], token: Optional[str], *,
              what: str, size: Optional[int] = None) -> Page:
        """One listing request below ``prefix``."""

    @abstractmethod
    def _name(self, record: Any) -> str:
        """A listing record's full key."""

    @abstractmethod
    def _size(self, record: Any) -> int:
        """A listing record's size."""

    @abstractmethod
    def _mtime(self, record: Any) -> float:
        """A listing record's time (what ``clean`` reads as the last use)."""

    @abstractmethod
    def _delete_batch(self, keys: Dict[str, str], failures: Dict[str, BackendError]) -> bool:
        """Delete ``keys`` (key -> path) in one request, adding failures; False when the
        store refused the batch as such (then nothing was deleted)."""

    @abstractmethod
    def _delete_one(self, key: str, path: str) -> None:
        """Delete one key; a key already gone is no error."""

    @abstractmethod
    def _touch_one(self, path: str) -> None:
        """Mark one existing object as used now."""

    def _key(self, path: str) -> str:
        return self._root + check_relative_path(path)

    # -- listing -------------------------------------------------------------------------

    def _pages(self, prefix: str, delimiter: Optional[str] = None,
               token: Optional[str] = None) -> Iterator[Page]:
        """Every page below ``prefix`` (from ``token``); a listing never ends early."""
        what = f"cannot list {self.url}"
        seen = set()
        while True:
            page = self._page(prefix, delimiter, token, what=what)
            yield page
            token = page[2]
            if not token:
                return
            if token in seen:
                raise PermanentError(f"{what}: the server's listing does not advance",
                                     url=self.url)
            seen.add(token)

    def _entries(self, records: Sequence[Any], on_skip: Optional[SkipCallback]
                 ) -> Iterator[Entry]:
        """Listing records as entries; names outside the root, unsafe or "folders" skipped."""
        for record in records:
            name = self._name(record)
            if not name.startswith(self._root):
                continue  # a server that ignores the prefix must not leak other names in
            rel = name[len(self._root):]
            if not rel or rel.endswith("/"):
                continue  # "folder" placeholders made by consoles and some tools
            try:
                check_relative_path(rel)
            except PermanentError:
                if on_skip is not None:
                    on_skip(rel, "object name not usable as a mirror path")
                continue
            yield Entry(rel, listed_size(self.url, rel, self._size(record)),
                        self._mtime(record))

    def list(self, prefix: str = "", on_skip: Optional[SkipCallback] = None) -> Iterator[Entry]:
        sub = prefix.strip("/")
        base = self._root + (check_relative_path(sub) + "/" if sub else "")
        records, _, token = self._page(base, None, None, what=f"cannot list {self.url}")
        estimate = None
        if token and records:
            estimate = estimate_from_first_page(len(records), True,
                                                self._name(records[-1])[len(base):])
        if token and self.list_workers > 1 and (
                estimate is None or estimate >= self.parallel_list_min):
            events.debug("listing %s in parallel ranges (estimated %s objects)", self.url,
                         estimate)
            lister: RangeLister[Any] = RangeLister(self._split, self._everything, self._name)
            name = self.url.split(":", 1)[0] + "-list"
            for batch in list_in_ranges(base, lister, self.list_workers, name):
                yield from self._entries(batch, on_skip)
            return
        yield from self._entries(records, on_skip)
        if token:
            for page in self._pages(base, token=token):
                yield from self._entries(page[0], on_skip)

    def _split(self, base: str) -> Tuple[List[Any], List[str]]:
        records: List[Any] = []
        prefixes: List[str] = []
        for page in self._pages(base, delimiter="/"):
            records.extend(page[0])
            prefixes.extend(page[1])
        return records, prefixes

    def _everything(self, base: str) -> List[Any]:
        return [r for page in self._pages(base) for r in page[0]]

    def estimate_object_count(self) -> Optional[int]:
        """The mirror's object count, exact up to a page and estimated above (one request)."""
        records, _, token = self._page(self._root, None, None, what=f"cannot list {self.url}")
        if not records:
            return 0
        return estimate_from_first_page(len(records), bool(token),
                                        self._name(records[-1])[len(self._root):])

    def server_time(self) -> Optional[float]:
        """The ``Date`` of a one-object listing's answer: the clock the stores' times
        (``updated``/``customTime``, ``Last-Modified``) come from."""
        _ANSWER_DATES.last = None
        self._page(self._root, None, None, what=f"cannot list {self.url}", size=1)
        date = getattr(_ANSWER_DATES, "last", None)
        return parse_http_date(date) if isinstance(date, str) else None

    def choose_lookup(self, local_count: int) -> str:
        """``"probe"`` (one metadata request per local file) or ``"list"`` (one listing)."""
        if local_count == 0:
            return "probe"
        estimate = self.estimate_object_count()
        return "probe" if prefer_probes(local_count, estimate, self.page_size) else "list"

    # -- delete and touch ----------------------------------------------------------------

    def delete(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        failures: Dict[str, BackendError] = {}
        keys: Dict[str, str] = {}
        for p in paths:
            try:
                keys[self._key(p)] = p
            except BackendError as exc:
                failures[p] = exc
        items = list(keys.items())
        size = self.properties.delete_batch
        for start in range(0, len(items), size):
            batch = dict(items[start:start + size])
            if self.batch_supported is not False and len(batch) > 1 \
                    and self._delete_batch(batch, failures):
                continue
            for key, path in batch.items():
                try:
                    self._delete_one(key, path)
                except BackendError as exc:
                    failures[path] = exc
        return failures

    def batch_refused(self, error: BackendError) -> bool:
        """Whether a failed batch means "no batches here" (then: single deletes from now on)
        rather than a failure to report. Only before any batch has worked, and never for a
        transient failure."""
        if self.batch_supported or error.retryable:
            return False
        events.notice("%s refused a batch request (%s): deleting one object per request",
                 self.url, error)
        self.batch_supported = False
        return True

    def touch(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        return each_path(paths, self._touch_one)
