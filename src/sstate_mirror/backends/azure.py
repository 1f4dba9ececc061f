"""An Azure Blob Storage container as a mirror, in bitbake's ``az`` URL form:
``az://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]``.

Blob names are the mirror paths below the prefix, byte for byte (``:`` and ``+`` kept), so
bitbake's ``az`` fetcher (HTTPS with an ``AZ_SAS`` token) reads what this backend writes.

The client is Microsoft's own ``azure-storage-blob`` (``pip install 'sstate-mirror[azure]'``):
it signs requests with an account key or a SAS, speaks Azurite, has the blob batch API, and
takes any ``azure-identity`` credential; a hand-written client would send the same requests
(the counts are in docs/benchmarks.md). azure-core's own retry policy is switched off: every
request goes through :func:`.cloud.request`, the project's one policy, so ``--retries N``
bounds the attempts on the wire.

Credentials, the first that is set (:func:`credential_source`); none of them is ever
printed:

1. ``AZURE_STORAGE_CONNECTION_STRING`` (what ``az`` and Azurite use; its ``BlobEndpoint``
   is the endpoint, e.g. Azurite's ``http://127.0.0.1:10000/devstoreaccount1``);
2. ``AZURE_STORAGE_KEY``: the account key;
3. ``AZURE_STORAGE_SAS_TOKEN``, else ``AZ_SAS`` (bitbake's variable): a SAS token;
4. ``DefaultAzureCredential`` when ``azure-identity`` is installed (environment, workload
   identity, managed identity, ``az login``);
5. otherwise anonymous: enough to read a container with public read access.

What Azure Blob gives, and how each primitive uses it:

* **put** is atomic: a blob up to 8 MiB is one Put Blob; a larger one is staged as blocks
  and appears only with Put Block List (uncommitted blocks are discarded by Azure after a
  week). The source is read through :class:`.streams.ExactReader`.
* **time** is the blob's ``Last-Modified`` (one-second resolution), which every write of
  data, properties or metadata moves (setting tags does not); it is the server's clock, and
  ``clean`` measures ages on the same clock (:meth:`server_time`: the ``Date`` of a
  one-blob listing's answer).
* **touch**: Get Blob Properties, then Set Blob Metadata with the same metadata, on the
  condition of the same ETag: two small requests, no data copied, metadata kept. A 412
  (the blob changed in between) means someone else just wrote it, which is use enough.
* **list** pages through List Blobs (5,000 names a page); a big mirror is listed as
  parallel prefix ranges like S3 (:mod:`.prefix_listing`).
* **delete**: blob batch requests of 256 deletes with per-blob answers; a server or a
  credential that cannot batch (a SAS without the rights, an old emulator) gets single
  deletes from then on.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Dict, List, Optional, Tuple

import requests
from azure.core import MatchConditions
from azure.core import exceptions as aexc
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient

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
from .cloud import Page, PagedObjectStore, posix_time, request, status_error, tune_session
from .streams import BodyReader, ExactReader

__all__ = ["AzureBackend", "credential_source", "parse_az_url", "translate_error"]

_SAS_SIGNATURE = re.compile(r"(?i)(\bsig=)[^&\s\"']+")


class _RedactSas(logging.Filter):
    """Hides a SAS signature in urllib3's debug lines, which quote each request's URL (and a
    SAS token travels in the URL's query). azure-core's own logging already redacts it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "sig=" in message.lower():
            record.msg, record.args = _SAS_SIGNATURE.sub(r"\1REDACTED", message), ()
        return True


if not any(isinstance(f, _RedactSas) for f in logging.getLogger("urllib3.connectionpool").filters):
    logging.getLogger("urllib3.connectionpool").addFilter(_RedactSas())

#: List Blobs returns at most this many names per page.
PAGE_SIZE = 5000
#: A blob batch request holds at most this many sub-requests.
DELETE_BATCH = 256
CONNECTIONS = 16
PARALLEL_LIST_MIN = 20_000
#: Up to this size one Put Blob; above, blocks of BLOCK_SIZE (held in memory per upload).
SINGLE_PUT_MAX = 8 * 1024 * 1024
BLOCK_SIZE = 8 * 1024 * 1024

_CONTAINER_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")

CREDENTIALS_HINT = (
    "provide Azure credentials: AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY (the"
    " account key), AZURE_STORAGE_SAS_TOKEN or AZ_SAS (a SAS token), or install"
    " azure-identity for DefaultAzureCredential (docs/azure.md)"
)
_PERMISSION_HINT = ("check the role assignments or the SAS permissions of these credentials"
                    " (docs/azure.md lists what each command needs)")


def parse_az_url(url: str) -> Tuple[str, str, str]:
    """``az://acct.blob.core.windows.net/cont/a/b`` -> ``("acct.blob.core.windows.net",
    "cont", "a/b")``."""
    if not url.lower().startswith("az://"):
        raise UsageError(f"not an Azure Blob URL: {url!r}",
                         hint="write az://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]")
    host, _, rest = url[len("az://"):].partition("/")
    if "@" in host or "?" in url:
        raise UsageError("credentials do not belong in an az:// URL", hint=CREDENTIALS_HINT)
    account = host.split(".", 1)[0]
    if not account or not account.isalnum() or "." not in host:
        raise UsageError(f"invalid Azure storage host {host!r} in {url!r}",
                         hint="write az://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]")
    container, _, prefix = rest.partition("/")
    if not (container == "$root" or (3 <= len(container) <= 63
                                     and set(container) <= _CONTAINER_CHARS
                                     and container[0] != "-" and container[-1] != "-")):
        raise UsageError(f"invalid container name {container!r} in az://{host}/{container}",
                         hint="write az://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]")
    prefix = prefix.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise UsageError(f"invalid prefix {prefix!r} in az://{host}/{container}/{prefix}")
    return host.lower(), container, prefix


def _connection_string_fields(value: str) -> Dict[str, str]:
    fields: Dict[str, str] = {}
    for part in value.split(";"):
        name, sep, val = part.partition("=")
        if sep:
            fields[name.strip().lower()] = val.strip()
    return fields


def credential_source() -> str:
    """Which credential the environment provides (a name, never the secret)."""
    if os.environ.get("AZURE_STORAGE_CONNECTION_STRING"):
        return "AZURE_STORAGE_CONNECTION_STRING"
    if os.environ.get("AZURE_STORAGE_KEY"):
        return "AZURE_STORAGE_KEY"
    for var in ("AZURE_STORAGE_SAS_TOKEN", "AZ_SAS"):
        if os.environ.get(var):
            return var
    try:
        import azure.identity  # noqa: F401
    except ImportError:
        return "anonymous"
    return "DefaultAzureCredential"


def translate_error(exc: BaseException, what: str, *, url: str, container: str,
                    endpoint: str, path: Optional[str] = None) -> BackendError:
    """The one place where azure-storage-blob failures become the project's errors.

    Messages are built from status and error codes and our own redacted strings, never from
    the library's text, so no key or SAS can end up in them.
    """
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, SstateMirrorError):
        return PermanentError(str(exc), url=url, path=path)
    if isinstance(exc, (aexc.ServiceRequestError, aexc.ServiceResponseError,
                        aexc.IncompleteReadError, requests.exceptions.RequestException,
                        ConnectionError, TimeoutError)):
        return TransientError(f"{what}: cannot reach {endpoint} ({type(exc).__name__})",
                              url=url, path=path, hint="check the network and the endpoint")
    status = getattr(exc, "status_code", None)
    code = str(getattr(exc, "error_code", None) or "")
    if isinstance(exc, aexc.ClientAuthenticationError) and status is None:
        return AuthError(f"{what}: no usable Azure credentials ({type(exc).__name__})",
                         url=url, path=path, hint=CREDENTIALS_HINT)
    if isinstance(status, int) and 200 <= status < 300:
        return TransientError(f"{what}: the answer from {endpoint} broke off"
                              f" ({type(exc).__name__})", url=url, path=path)
    if isinstance(status, int):
        label = code or str(status)
        if code == "ContainerNotFound":
            return NotFoundError(f"{what}: container {container} does not exist at {endpoint}",
                                 url=url, path=path, hint="check the account and container")
        return status_error(status, label, what, url=url, path=path, endpoint=endpoint,
                            rejected=code in ("AuthenticationFailed",
                                              "InvalidAuthenticationInfo"),
                            credentials_hint=CREDENTIALS_HINT, permission_hint=_PERMISSION_HINT)
    return PermanentError(f"{what}: {type(exc).__name__}", url=url, path=path)


class AzureBackend(PagedObjectStore):
    """A mirror in an Azure Blob Storage container, below an optional prefix."""

    properties = Properties(connections=CONNECTIONS, atomic_put=True,
                            delete_batch=DELETE_BATCH, touch="mtime")

    def __init__(self, url: str, options: Optional[BackendOptions] = None) -> None:
        self.options = options or BackendOptions()
        self.host, self.container_name, self.prefix = parse_az_url(url)
        self.account = self.host.split(".", 1)[0]
        self.url = f"az://{self.host}/{self.container_name}" + (
            f"/{self.prefix}" if self.prefix else "")
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._connection = _connection_string_fields(
            os.environ.get("AZURE_STORAGE_CONNECTION_STRING", ""))
        self.endpoint = self._endpoint()
        self.single_put_max = SINGLE_PUT_MAX
        self.block_size = BLOCK_SIZE
        self.parallel_list_min = PARALLEL_LIST_MIN
        self.list_workers = CONNECTIONS
        self.page_size = PAGE_SIZE

    def _endpoint(self) -> str:
        """``--endpoint-url``, else the connection string's ``BlobEndpoint``, else
        ``https://HOST`` from the URL."""
        value = self.options.endpoint_url or self._connection.get("blobendpoint")
        if not value:
            return f"https://{self.host}"
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"invalid Azure Blob endpoint {redact_url(value)!r}",
                             hint="expected http(s)://HOST[:PORT][/ACCOUNT]")
        name = self._connection.get("accountname")
        if name and name.lower() != self.account:
            raise UsageError(
                f"AZURE_STORAGE_CONNECTION_STRING is for account {name!r}, the URL names"
                f" {self.account!r}", hint="use the connection string of the URL's account")
        return value.rstrip("/")

    # -- client --------------------------------------------------------------------------

    @property
    def endpoint_description(self) -> str:
        return redact_url(self.endpoint)

    def _credential(self) -> Any:
        source = credential_source()
        if source == "AZURE_STORAGE_CONNECTION_STRING":
            key = self._connection.get("accountkey")
            if key:
                return {"account_name": self.account, "account_key": key}
            sas = self._connection.get("sharedaccesssignature")
            return sas.lstrip("?") if sas else None
        if source == "AZURE_STORAGE_KEY":
            return {"account_name": self.account,
                    "account_key": os.environ["AZURE_STORAGE_KEY"]}
        if source in ("AZURE_STORAGE_SAS_TOKEN", "AZ_SAS"):
            return os.environ[source].strip().lstrip("?")
        if source == "DefaultAzureCredential":
            from azure.identity import DefaultAzureCredential

            return DefaultAzureCredential()
        return None

    def _make_client(self) -> Any:
        session = requests.Session()
        tune_session(session, self.options, CONNECTIONS)
        transport = RequestsTransport(session=session, session_owner=True,
                                      connection_timeout=self.options.timeout,
                                      read_timeout=self.options.timeout)
        service = BlobServiceClient(
            self.endpoint, credential=self._credential(), transport=transport,
            retry_total=0, max_single_put_size=self.single_put_max,
            max_block_size=self.block_size, max_single_get_size=self.block_size,
            max_chunk_get_size=self.block_size, user_agent="sstate-mirror")
        return service.get_container_client(self.container_name)

    def _error(self, exc: BaseException, what: str, path: Optional[str] = None) -> BackendError:
        return translate_error(exc, what, url=self.url, container=self.container_name,
                               endpoint=self.endpoint_description, path=path)

    def _request(self, fn: Any, what: str, path: Optional[str] = None) -> Any:
        return request(fn, lambda exc: self._error(exc, what, path),
                       retries=self.options.retries, what=what)

    # -- interface -----------------------------------------------------------------------

    def check(self, create: bool = False) -> None:
        """One List Blobs request: the permission every command needs, and it tells a
        missing container from rejected credentials."""
        what = f"cannot access {self.url}"
        try:
            self._page(self._root, None, None, what=what, size=1)
            return
        except NotFoundError:
            if not create:
                raise
        try:
            self._request(lambda: self.client.create_container(
                timeout=int(self.options.timeout)), f"cannot create container"
                f" {self.container_name}")
        except PermanentError as exc:
            if not isinstance(exc.__cause__, aexc.ResourceExistsError):
                raise

    def _page(self, prefix: str, delimiter: Optional[str], token: Optional[str], *,
              what: str, size: Optional[int] = None) -> Page:
        """One page of List Blobs: blobs, sub-"directories", next continuation token."""
        count = size or self.page_size

        def fetch() -> Tuple[List[Any], List[str], Optional[str]]:
            if delimiter:
                pager = self.client.walk_blobs(name_starts_with=prefix or None,
                                               delimiter=delimiter,
                                               results_per_page=count).by_page(token)
            else:
                pager = self.client.list_blobs(name_starts_with=prefix or None,
                                               results_per_page=count).by_page(token)
            blobs: List[Any] = []
            prefixes: List[str] = []
            for item in next(pager, []):
                if item.__class__.__name__ == "BlobPrefix":
                    prefixes.append(str(item.name))
                else:
                    blobs.append(item)
            return blobs, prefixes, pager.continuation_token or None
        result: Page = self._request(fetch, what)
        return result

    def _name(self, record: Any) -> str:
        return str(record.name)

    def _size(self, record: Any) -> int:
        return int(record.size or 0)

    def _mtime(self, record: Any) -> float:
        return posix_time(record.last_modified)

    def _properties(self, path: str, what: str) -> Any:
        blob = self.client.get_blob_client(self._key(path))
        return self._request(lambda: blob.get_blob_properties(
            timeout=int(self.options.timeout)), what, path)

    def stat(self, path: str) -> Optional[Entry]:
        try:
            props = self._properties(path, f"cannot stat {path}")
        except NotFoundError:
            return None
        return Entry(path, int(props.size or 0), posix_time(props.last_modified))

    @contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        blob = self.client.get_blob_client(self._key(path))
        downloader = self._request(lambda: blob.download_blob(
            max_concurrency=1, timeout=int(self.options.timeout)), f"cannot read {path}", path)
        # the downloader fetches ranges of one ETag: a blob replaced in between fails (412)
        reader = BodyReader(downloader.read,
                            lambda exc: self._error(exc, f"cannot read {path}", path))
        with io.BufferedReader(reader, 1 << 16) as stream:
            yield stream

    def put(self, path: str, src: IO[bytes], size: int) -> None:
        blob = self.client.get_blob_client(self._key(path))
        reader = ExactReader(src, size, path)
        try:
            # not retried here: the source cannot be read twice; the transfer layer starts
            # the whole upload again from a freshly opened source
            blob.upload_blob(reader, length=size, overwrite=True, max_concurrency=1,
                             timeout=int(self.options.timeout))
        except Exception as exc:
            raise self._error(exc, f"cannot upload {path}", path) from exc

    def _delete_one(self, key: str, path: str) -> None:
        blob = self.client.get_blob_client(key)
        with contextlib.suppress(NotFoundError):  # already gone
            self._request(lambda: blob.delete_blob(timeout=int(self.options.timeout)),
                          f"cannot delete {path}", path)

    def _delete_batch(self, keys: Dict[str, str], failures: Dict[str, BackendError]) -> bool:
        """One blob batch; False when batches do not work here (nothing was deleted then,
        and the caller deletes one by one)."""
        what = f"cannot delete in {self.url}"
        try:
            responses = self._request(lambda: list(self.client.delete_blobs(
                *keys, raise_on_any_failure=False, timeout=int(self.options.timeout))), what)
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
            error = aexc.HttpResponseError(message="batch item")
            error.status_code = status
            failures[path] = self._error(error, f"cannot delete {path}", path)
        return True

    def _touch_one(self, path: str) -> None:
        """Set the blob's metadata to itself (if unchanged since read): Last-Modified moves."""
        what = f"cannot touch {path}"
        props = self._properties(path, what)
        blob = self.client.get_blob_client(self._key(path))
        try:
            self._request(lambda: blob.set_blob_metadata(
                dict(props.metadata or {}), etag=props.etag,
                match_condition=MatchConditions.IfNotModified, timeout=int(self.options.timeout)),
                what, path)
        except PermanentError as exc:
            if getattr(exc.__cause__, "status_code", None) != 412:
                raise
            # the blob was written in between: its Last-Modified is already now

