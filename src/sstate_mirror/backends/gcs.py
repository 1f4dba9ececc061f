"""A Google Cloud Storage bucket as a mirror: ``gs://bucket[/prefix]``, bitbake's ``gcp`` URL.

Object names are the mirror paths below the prefix, byte for byte (``:`` and ``+`` kept), so
bitbake's ``gcp`` fetcher (``gs://BUCKET/PATH``) reads what this backend writes.

The client is Google's own ``google-cloud-storage`` (``pip install 'sstate-mirror[gcs]'``):
it is what bitbake's fetcher uses too, it finds credentials the way every Google tool does
(Application Default Credentials: ``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth
application-default login``, the metadata server, workload identity), and it honours
``STORAGE_EMULATOR_HOST``. Its JSON API requests are one per operation, as a hand-written
client's would be (the request counts in docs/benchmarks.md), so nothing is gained by
replacing it. Its own retry policy (by deadline) is switched off: every request goes through
:func:`.cloud.request`, the project's one policy, so ``--retries N`` bounds the attempts.

What GCS gives, and how each primitive uses it:

* **put** is atomic by nature: an object exists only when its upload is finalised. Up to
  8 MiB one multipart request (data and metadata, with a CRC32C the server checks); above,
  a resumable upload in 8 MiB chunks that becomes visible only with its last chunk. The
  source is read through :class:`.exact_reader.ExactReader`: a size mismatch fails before
  anything is committed. Each upload sets ``customTime`` to now.
* **time**: an object's time, for ``clean``, is its ``customTime`` when set, else
  ``updated``. ``customTime`` is set by every upload and every ``touch``; GCS lifecycle
  rules can act on it too (``daysSinceCustomTime``), as a safety net behind ``clean``.
* **touch** is one metadata PATCH setting ``customTime`` to now: no data is copied, the
  generation (and with it the object's ETag and any reader's ``ifGenerationMatch``) stays.
  GCS refuses to move ``customTime`` backwards; a touch that meets a later ``customTime``
  (another machine's clock ahead of ours) has nothing to do and succeeds.
* **list** pages through ``objects.list`` (1,000 names a page, only the fields used); a big
  mirror is listed as parallel prefix ranges like S3 (:mod:`.prefix_listing`).
* **delete** sends JSON API batch requests of 100 deletes (GCS's limit) with per-object
  answers. A server without the batch endpoint (fake-gcs-server, for one) is detected on the
  first batch and then sent single deletes, in parallel threads as the caller runs them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, Dict, List, Optional, Tuple

import google.auth
import google.auth.exceptions
import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.fileio import BlobReader

from ..errors import (
    AuthError,
    BackendError,
    NotFoundError,
    PermanentError,
    SstateMirrorError,
    TransientError,
    UsageError,
)
from .base import (
    Backend,
    BackendOptions,
    Entry,
    Properties,
    SkipCallback,
    check_relative_path,
    redact_url,
)
from .cloud import posix_time, request
from .exact_reader import ExactReader
from .prefix_listing import (
    RangeLister,
    estimate_from_first_page,
    list_in_ranges,
    prefer_probes,
)

__all__ = ["GCSBackend", "parse_gs_url", "translate_error"]

log = logging.getLogger(__name__)

#: objects.list returns at most this many names per page.
PAGE_SIZE = 1000
#: A JSON API batch request holds at most this many calls.
DELETE_BATCH = 100
CONNECTIONS = 16
#: Above this many objects (estimated from the first page) a listing runs as parallel ranges.
PARALLEL_LIST_MIN = 20_000
#: Uploads above this size are resumable, in chunks of this size (a multiple of 256 KiB);
#: the client holds one chunk in memory per upload.
CHUNK_SIZE = 8 * 1024 * 1024
#: Reads of an object go in ranges of this size.
READ_CHUNK = 8 * 1024 * 1024
_LIST_FIELDS = "items(name,size,updated,customTime),prefixes,nextPageToken"
_BUCKET_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")

CREDENTIALS_HINT = (
    "provide Google Cloud credentials: GOOGLE_APPLICATION_CREDENTIALS=key.json, 'gcloud auth"
    " application-default login', or run where a service account is attached (docs/gcs.md)"
)
_PERMISSION_HINT = ("check the IAM roles of these credentials on the bucket"
                    " (docs/gcs.md lists what each command needs)")


def parse_gs_url(url: str) -> Tuple[str, str]:
    """``gs://bucket/a/b/`` -> ``("bucket", "a/b")``; ``gs://bucket`` -> ``("bucket", "")``."""
    if not url.lower().startswith("gs://"):
        raise UsageError(f"not a Google Cloud Storage URL: {url!r}",
                         hint="write gs://BUCKET[/PREFIX]")
    bucket, _, prefix = url[len("gs://"):].partition("/")
    if "@" in bucket:
        raise UsageError("credentials do not belong in a gs:// URL", hint=CREDENTIALS_HINT)
    if not (3 <= len(bucket) <= 222 and set(bucket) <= _BUCKET_CHARS
            and bucket[0].isalnum() and bucket[-1].isalnum()):
        raise UsageError(f"invalid bucket name {bucket!r} in gs://{bucket}",
                         hint="write gs://BUCKET[/PREFIX]; bucket names are lower case")
    prefix = prefix.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise UsageError(f"invalid prefix {prefix!r} in gs://{bucket}/{prefix}")
    return bucket, prefix


def _status_of(exc: BaseException) -> Optional[int]:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def translate_error(exc: BaseException, what: str, *, url: str, bucket: str, endpoint: str,
                    path: Optional[str] = None, listing: bool = False) -> BackendError:
    """The one place where google-cloud-storage failures become the project's errors.

    Messages are built from status codes and our own redacted strings, never from the
    library's text (which quotes request URLs), so no credential can end up in them.
    """
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, SstateMirrorError):
        return PermanentError(str(exc), url=url, path=path)
    if isinstance(exc, google.auth.exceptions.DefaultCredentialsError):
        return AuthError(f"{what}: no Google Cloud credentials found", url=url, path=path,
                         hint=CREDENTIALS_HINT)
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return AuthError(f"{what}: Google Cloud credentials could not be refreshed",
                         url=url, path=path, hint=CREDENTIALS_HINT)
    if isinstance(exc, requests.exceptions.SSLError):
        return PermanentError(f"{what}: TLS verification of {endpoint} failed",
                              url=url, path=path)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return TransientError(f"{what}: the answer from {endpoint} broke off"
                              f" ({type(exc).__name__})", url=url, path=path)
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                        ConnectionError,
                        TimeoutError)):
        return TransientError(f"{what}: cannot reach {endpoint} ({type(exc).__name__})",
                              url=url, path=path,
                              hint="check the network (and STORAGE_EMULATOR_HOST /"
                                   " --endpoint-url for an emulator)")
    status = _status_of(exc)
    if status is not None:
        if status == 404:
            if listing:
                return NotFoundError(f"{what}: bucket {bucket} does not exist at {endpoint}",
                                     url=url, path=path, hint="check the bucket name")
            return NotFoundError(f"{what}: not found", url=url, path=path)
        if status == 401:
            return AuthError(f"{what}: credentials rejected by {endpoint} (401)",
                             url=url, path=path, hint=CREDENTIALS_HINT)
        if status == 403:
            return AuthError(f"{what}: access denied (403)", url=url, path=path,
                             hint=_PERMISSION_HINT)
        if status in (408, 429) or status >= 500:
            return TransientError(f"{what}: server busy or failing ({status})",
                                  url=url, path=path)
        return PermanentError(f"{what}: HTTP {status}", url=url, path=path)
    name = type(exc).__name__
    if "DataCorruption" in name or "Checksum" in name:
        return TransientError(f"{what}: checksum mismatch ({name})", url=url, path=path)
    return PermanentError(f"{what}: {name}", url=url, path=path)


def _emulator_endpoint(options: BackendOptions) -> Optional[str]:
    """``--endpoint-url``, else ``STORAGE_EMULATOR_HOST`` (``host:port`` means plain http)."""
    value = options.endpoint_url or os.environ.get("STORAGE_EMULATOR_HOST") or None
    if value is None:
        return None
    if "://" not in value:
        value = "http://" + value
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"invalid Google Cloud Storage endpoint {redact_url(value)!r}",
                         hint="expected http(s)://HOST[:PORT] (or HOST:PORT in"
                              " STORAGE_EMULATOR_HOST)")
    return value.rstrip("/")


class _Reader(BlobReader):  # type: ignore[misc]
    """Ranged reads of one object generation, their failures the project's own."""

    def __init__(self, backend: GCSBackend, blob: Any, path: str) -> None:
        super().__init__(blob, chunk_size=READ_CHUNK, retry=None,
                         timeout=backend.options.timeout, if_generation_match=blob.generation,
                         raw_download=True)
        self._backend = backend
        self._path = path

    def read(self, size: int = -1) -> bytes:
        what = f"cannot read {self._path}"
        data: bytes = request(lambda: BlobReader.read(self, size), self._backend.translator(
            what, self._path), retries=self._backend.options.retries, what=what)
        return data


class GCSBackend(Backend):
    """A mirror in a Google Cloud Storage bucket, below an optional prefix."""

    properties = Properties(connections=CONNECTIONS, atomic_put=True,
                            delete_batch=DELETE_BATCH, touch="mtime")

    def __init__(self, url: str, options: Optional[BackendOptions] = None) -> None:
        self.options = options or BackendOptions()
        self.bucket_name, self.prefix = parse_gs_url(url)
        self.url = f"gs://{self.bucket_name}" + (f"/{self.prefix}" if self.prefix else "")
        self._root = f"{self.prefix}/" if self.prefix else ""
        self.endpoint = _emulator_endpoint(self.options)
        self._client_obj: Any = None
        self._lock = threading.Lock()
        #: None until the first batch shows whether the server has the batch endpoint
        self.batch_supported: Optional[bool] = None
        # knobs tests turn down to exercise the large-scale paths with small data
        self.chunk_size = CHUNK_SIZE
        self.parallel_list_min = PARALLEL_LIST_MIN
        self.list_workers = CONNECTIONS
        self.page_size = PAGE_SIZE

    # -- client --------------------------------------------------------------------------

    @property
    def endpoint_description(self) -> str:
        return redact_url(self.endpoint) if self.endpoint else "Google Cloud Storage"

    @property
    def client(self) -> Any:
        if self._client_obj is None:
            with self._lock:
                if self._client_obj is None:
                    try:
                        self._client_obj = self._make_client()
                    except Exception as exc:
                        raise self._error(exc, f"cannot set up access to {self.url}") from exc
        return self._client_obj

    def _make_client(self) -> Any:
        project: Optional[str]
        if self.endpoint is not None:
            # an emulator or test server: unauthenticated, as the client itself treats
            # STORAGE_EMULATOR_HOST
            credentials: Any = AnonymousCredentials()  # type: ignore[no-untyped-call]
            project = os.environ.get("GOOGLE_CLOUD_PROJECT") or "sstate-mirror"
            client = storage.Client(project=project, credentials=credentials,
                                    client_options={"api_endpoint": self.endpoint})
        else:
            credentials, project = google.auth.default(
                scopes=["https://www.googleapis.com/auth/devstorage.read_write"])
            project = os.environ.get("GOOGLE_CLOUD_PROJECT") or project or None
            client = storage.Client(project=project, credentials=credentials)
        # one connection per parallel transfer (requests' default pool keeps 10), and no
        # retries below ours
        adapter = requests.adapters.HTTPAdapter(pool_connections=4,
                                                pool_maxsize=CONNECTIONS * 2, max_retries=0)
        session = client._http
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        verify: Any = True
        if self.options.ca_cert:
            verify = self.options.ca_cert
        elif not self.options.verify_tls:
            verify = False
        session.verify = verify
        return client

    @property
    def bucket(self) -> Any:
        return self.client.bucket(self.bucket_name)

    def _key(self, path: str) -> str:
        return self._root + check_relative_path(path)

    def _error(self, exc: BaseException, what: str, path: Optional[str] = None,
               listing: bool = False) -> BackendError:
        return translate_error(exc, what, url=self.url, bucket=self.bucket_name,
                               endpoint=self.endpoint_description, path=path, listing=listing)

    def translator(self, what: str, path: Optional[str] = None, listing: bool = False) -> Any:
        return lambda exc: self._error(exc, what, path, listing)

    def _request(self, fn: Any, what: str, path: Optional[str] = None,
                 listing: bool = False) -> Any:
        return request(fn, self.translator(what, path, listing),
                       retries=self.options.retries, what=what)

    # -- interface -----------------------------------------------------------------------

    def check(self, create: bool = False) -> None:
        """One listing request: it needs the permission every command needs
        (``storage.objects.list``) and tells a missing bucket from denied access."""
        what = f"cannot access {self.url}"
        try:
            self._page(self._root, None, None, max_results=1, what=what)
            return
        except NotFoundError:
            if not create:
                raise
        try:
            self._request(lambda: self.client.create_bucket(
                self.bucket_name, retry=None, timeout=self.options.timeout),
                f"cannot create bucket {self.bucket_name}")
        except BackendError as exc:
            if not isinstance(exc.__cause__, gexc.Conflict):
                raise

    def _page(self, prefix: str, delimiter: Optional[str], token: Optional[str], *,
              what: str, max_results: Optional[int] = None
              ) -> Tuple[List[Dict[str, Any]], List[str], Optional[str]]:
        """One page of ``objects.list``: records, sub-"directories", next token."""
        count = max_results or self.page_size

        def fetch() -> Tuple[List[Dict[str, Any]], List[str], Optional[str]]:
            iterator = self.client.list_blobs(
                self.bucket_name, prefix=prefix, delimiter=delimiter, page_token=token,
                max_results=count, page_size=count, fields=_LIST_FIELDS,
                retry=None, timeout=self.options.timeout)
            page = next(iterator.pages, None)
            blobs = [] if page is None else [b._properties for b in page]
            prefixes = sorted(page.prefixes) if page is not None else []
            return blobs, prefixes, iterator.next_page_token
        result: Tuple[List[Dict[str, Any]], List[str], Optional[str]] = self._request(
            fetch, what, listing=True)
        return result

    def _pages(self, prefix: str, delimiter: Optional[str] = None,
               token: Optional[str] = None
               ) -> Iterator[Tuple[List[Dict[str, Any]], List[str], Optional[str]]]:
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

    def _entries(self, records: Sequence[Dict[str, Any]],
                 on_skip: Optional[SkipCallback]) -> Iterator[Entry]:
        for obj in records:
            name = str(obj.get("name", ""))
            if not name.startswith(self._root):
                continue
            rel = name[len(self._root):]
            if not rel or rel.endswith("/"):
                continue  # "folder" placeholders made by the console and some tools
            try:
                check_relative_path(rel)
            except PermanentError:
                if on_skip is not None:
                    on_skip(rel, "object name not usable as a mirror path")
                continue
            yield Entry(rel, int(obj.get("size", 0)), self._mtime(obj))

    @staticmethod
    def _mtime(obj: Dict[str, Any]) -> float:
        """``customTime`` (set by upload and touch) when present, else ``updated``."""
        stamp = obj.get("customTime") or obj.get("updated") or obj.get("timeCreated")
        if not stamp:
            return 0.0
        return posix_time(dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")))

    def list(self, prefix: str = "", on_skip: Optional[SkipCallback] = None) -> Iterator[Entry]:
        sub = prefix.strip("/")
        base = self._root + (check_relative_path(sub) + "/" if sub else "")
        records, _, token = self._page(base, None, None, what=f"cannot list {self.url}")
        estimate = None
        if token and records:
            estimate = estimate_from_first_page(len(records), True,
                                                str(records[-1]["name"])[len(base):])
        if token and self.list_workers > 1 and (
                estimate is None or estimate >= self.parallel_list_min):
            log.debug("listing %s in parallel ranges (estimated %s objects)", self.url, estimate)
            lister: RangeLister[Dict[str, Any]] = RangeLister(
                self._split, self._everything, lambda o: str(o["name"]))
            for batch in list_in_ranges(base, lister, self.list_workers, "gcs-list"):
                yield from self._entries(batch, on_skip)
            return
        yield from self._entries(records, on_skip)
        if token:
            for page in self._pages(base, token=token):
                yield from self._entries(page[0], on_skip)

    def _split(self, base: str) -> Tuple[List[Dict[str, Any]], List[str]]:
        records: List[Dict[str, Any]] = []
        prefixes: List[str] = []
        for page in self._pages(base, delimiter="/"):
            records.extend(page[0])
            prefixes.extend(page[1])
        return records, prefixes

    def _everything(self, base: str) -> List[Dict[str, Any]]:
        return [r for page in self._pages(base) for r in page[0]]

    def estimate_object_count(self) -> Optional[int]:
        """The mirror's object count, exact up to 1,000 and estimated above (one request)."""
        records, _, token = self._page(self._root, None, None, what=f"cannot list {self.url}")
        if not records:
            return 0
        return estimate_from_first_page(len(records), bool(token),
                                        str(records[-1]["name"])[len(self._root):])

    def choose_lookup(self, local_count: int) -> str:
        if local_count == 0:
            return "probe"
        estimate = self.estimate_object_count()
        return "probe" if prefer_probes(local_count, estimate, PAGE_SIZE) else "list"

    def _get(self, path: str, what: str) -> Any:
        key = self._key(path)
        return self._request(lambda: self.bucket.get_blob(
            key, retry=None, timeout=self.options.timeout), what, path)

    def stat(self, path: str) -> Optional[Entry]:
        blob = self._get(path, f"cannot stat {path}")
        if blob is None:
            return None
        return Entry(path, int(blob.size or 0), self._mtime(blob._properties))

    @contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        blob = self._get(path, f"cannot read {path}")
        if blob is None:
            raise NotFoundError(f"cannot read {path}: not found", url=self.url, path=path)
        with _Reader(self, blob, path) as reader:
            yield reader

    def put(self, path: str, src: IO[bytes], size: int) -> None:
        key = self._key(path)
        blob = self.bucket.blob(key, chunk_size=self.chunk_size)
        blob.custom_time = dt.datetime.now(dt.timezone.utc)
        reader = ExactReader(src, size, path)
        try:
            # not retried here: the source cannot be read twice; the transfer layer starts
            # the whole upload again from a freshly opened source
            blob.upload_from_file(reader, size=size, rewind=False, retry=None,
                                  timeout=self.options.timeout, checksum="auto")
        except Exception as exc:
            raise self._error(exc, f"cannot upload {path}", path) from exc

    def delete(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        failures: Dict[str, BackendError] = {}
        keys: Dict[str, str] = {}
        for p in paths:
            try:
                keys[self._key(p)] = p
            except BackendError as exc:
                failures[p] = exc
        items = list(keys.items())
        for start in range(0, len(items), DELETE_BATCH):
            batch = dict(items[start:start + DELETE_BATCH])
            if self.batch_supported is not False and len(batch) > 1:
                done = self._delete_batch(batch, failures)
                if done:
                    continue
            for key, path in batch.items():
                try:
                    self._delete_one(key, path)
                except BackendError as exc:
                    failures[path] = exc
        return failures

    def _delete_one(self, key: str, path: str) -> None:
        with contextlib.suppress(NotFoundError):  # already gone
            self._request(lambda: self.bucket.delete_blob(
                key, retry=None, timeout=self.options.timeout), f"cannot delete {path}", path)

    def _delete_batch(self, keys: Dict[str, str], failures: Dict[str, BackendError]) -> bool:
        """One batch request; False when the server has no batch endpoint (then nothing of
        the batch was done, and the caller deletes one by one)."""
        what = f"cannot delete in {self.url}"

        def send() -> List[Any]:
            batch = self.client.batch(raise_exception=False)
            with batch:
                for key in keys:
                    self.bucket.delete_blob(key, timeout=self.options.timeout)
            return list(batch._responses)

        try:
            responses = self._request(send, what)
        except (NotFoundError, PermanentError) as exc:
            if self.batch_supported:
                raise
            log.info("%s has no batch endpoint (%s): deleting one object per request",
                     self.endpoint_description, exc)
            self.batch_supported = False
            return False
        except BackendError as exc:
            for path in keys.values():
                failures[path] = exc
            return True
        self.batch_supported = True
        for path, response in zip(keys.values(), responses):
            status = int(getattr(response, "status_code", 0))
            if 200 <= status < 300 or status == 404:
                continue
            error = gexc.from_http_status(status, "batch item")  # type: ignore[no-untyped-call]
            failures[path] = self._error(error, f"cannot delete {path}", path)
        return True

    def touch(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        failures: Dict[str, BackendError] = {}
        for path in paths:
            try:
                self._touch_one(path)
            except BackendError as exc:
                failures[path] = exc
        return failures

    def _touch_one(self, path: str) -> None:
        """PATCH ``customTime`` to now: one metadata request, no data copied."""
        key = self._key(path)
        what = f"cannot touch {path}"
        now = dt.datetime.now(dt.timezone.utc)

        def patch() -> None:
            blob = self.bucket.blob(key)
            blob.custom_time = now
            blob.patch(retry=None, timeout=self.options.timeout)

        try:
            self._request(patch, what, path)
        except PermanentError as exc:
            # GCS refuses to move customTime backwards: a later one means "used now" already
            current = self.stat(path)
            if current is None or current.mtime < time.time() - 3600:
                raise exc from exc.__cause__

    def close(self) -> None:
        client, self._client_obj = self._client_obj, None
        if client is not None:
            client.close()
