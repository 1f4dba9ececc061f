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
  source is read through :class:`.streams.ExactReader`: a size mismatch fails before
  anything is committed. Each upload sets ``customTime`` to now.
* **time**: an object's time, for ``clean``, is its ``customTime`` when set, else
  ``updated``. ``customTime`` is set by every upload and every ``touch``, to now on the
  server's clock (this machine's corrected by the ``Date`` of the server's answers), as
  ``clean`` measures ages on the server's clock (:meth:`server_time`); GCS lifecycle
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
import os
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Dict, List, Optional, Tuple

import google.auth
import google.auth.exceptions
import requests
from dateutil.parser import isoparse
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
    BackendOptions,
    Entry,
    Properties,
    redact_url,
)
from .cloud import (
    Page,
    PagedObjectStore,
    posix_time,
    request,
    server_offset,
    status_error,
    tune_session,
)
from .streams import ExactReader

__all__ = ["GCSBackend", "parse_gs_url", "quiet_client", "translate_error"]

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
        if status == 404 and listing:
            return NotFoundError(f"{what}: bucket {bucket} does not exist at {endpoint}",
                                 url=url, path=path, hint="check the bucket name")
        return status_error(status, f"HTTP {status}", what, url=url, path=path,
                            endpoint=endpoint, rejected=False,
                            credentials_hint=CREDENTIALS_HINT, permission_hint=_PERMISSION_HINT)
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


def quiet_client(client: Any) -> Any:
    """Turn off the client's background fetch of bucket metadata (google-cloud-storage
    3.17 and later): on the first call for a bucket it starts a thread that sends one more
    ``GET`` of the bucket, retried with jittered backoff for up to two minutes, only to
    label tracing spans the tool does not emit. That is a request nobody asked for (it
    would be in every request count), a call on ``buckets.get`` that a mirror's credentials
    need not allow, and a thread still talking to the server after the command is done.
    The library reads the cache through ``hasattr(...) and client._bucket_metadata_cache``,
    so ``None`` turns it off; older versions have no such attribute and ignore it."""
    client._bucket_metadata_cache = None
    return client


class GCSBackend(PagedObjectStore):
    """A mirror in a Google Cloud Storage bucket, below an optional prefix."""

    properties = Properties(connections=CONNECTIONS, atomic_put=True,
                            delete_batch=DELETE_BATCH, touch="mtime")

    def __init__(self, url: str, options: Optional[BackendOptions] = None) -> None:
        self.options = options or BackendOptions()
        self.bucket_name, self.prefix = parse_gs_url(url)
        self.url = f"gs://{self.bucket_name}" + (f"/{self.prefix}" if self.prefix else "")
        self._root = f"{self.prefix}/" if self.prefix else ""
        self.endpoint = _emulator_endpoint(self.options)
        # knobs tests turn down to exercise the large-scale paths with small data
        self.chunk_size = CHUNK_SIZE
        self.parallel_list_min = PARALLEL_LIST_MIN
        self.list_workers = CONNECTIONS
        self.page_size = PAGE_SIZE

    # -- client --------------------------------------------------------------------------

    @property
    def endpoint_description(self) -> str:
        return redact_url(self.endpoint) if self.endpoint else "Google Cloud Storage"

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
        tune_session(client._http, self.options, CONNECTIONS)
        quiet_client(client)
        return client

    @property
    def bucket(self) -> Any:
        return self.client.bucket(self.bucket_name)

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
            self._page(self._root, None, None, size=1, what=what)
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
              what: str, size: Optional[int] = None) -> Page:
        """One page of ``objects.list``: records, sub-"directories", next token."""
        count = size or self.page_size

        def fetch() -> Tuple[List[Dict[str, Any]], List[str], Optional[str]]:
            iterator = self.client.list_blobs(
                self.bucket_name, prefix=prefix, delimiter=delimiter, page_token=token,
                max_results=count, page_size=count, fields=_LIST_FIELDS,
                retry=None, timeout=self.options.timeout)
            page = next(iterator.pages, None)
            blobs = [] if page is None else [b._properties for b in page]
            prefixes = sorted(page.prefixes) if page is not None else []
            return blobs, prefixes, iterator.next_page_token
        result: Page = self._request(fetch, what, listing=True)
        return result

    def _name(self, record: Any) -> str:
        return str(record.get("name", ""))

    def _size(self, record: Any) -> int:
        return int(record.get("size", 0))

    def _mtime(self, record: Any) -> float:
        """``customTime`` (set by upload and touch) when present, else ``updated``."""
        obj: Dict[str, Any] = record
        stamp = obj.get("customTime") or obj.get("updated") or obj.get("timeCreated")
        if not stamp:
            return 0.0
        # RFC 3339 with any number of fraction digits (fromisoformat takes 3 or 6 before 3.11)
        return posix_time(isoparse(str(stamp)))

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
        blob.custom_time = self._now()
        reader = ExactReader(src, size, path)
        try:
            # not retried here: the source cannot be read twice; the transfer layer starts
            # the whole upload again from a freshly opened source
            blob.upload_from_file(reader, size=size, rewind=False, retry=None,
                                  timeout=self.options.timeout, checksum="auto")
        except Exception as exc:
            raise self._error(exc, f"cannot upload {path}", path) from exc

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
        except BackendError as exc:
            if self.batch_refused(exc):
                return False
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

    def _now(self) -> dt.datetime:
        """Now on the server's clock (from its answers' ``Date``), for ``customTime``: the
        one time GCS takes from the client, read by ``clean`` against the server's clock."""
        offset = server_offset(self.client._http)
        return dt.datetime.fromtimestamp(time.time() + offset, dt.timezone.utc)

    def _touch_one(self, path: str) -> None:
        """PATCH ``customTime`` to now: one metadata request, no data copied."""
        key = self._key(path)
        what = f"cannot touch {path}"
        now = self._now()

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
