"""An S3 bucket (AWS or an S3-compatible server) as a mirror: ``s3://bucket[/prefix]``.

Keys are the mirror paths below the prefix, byte for byte (``:`` and ``+`` included), so the
bucket can also be served to bitbake over plain HTTPS. Credentials come from boto3's standard
chain (environment, shared files, profiles, SSO, instance roles); this module never sees them
and never prints them.

What S3 gives and what it does not, and how each primitive copes:

* **put** is atomic by nature: an object appears only when its upload completes. Large
  files go up in parts (s3transfer), an aborted multipart upload leaves nothing behind.
* **list** pages through ListObjectsV2 to the end (a page says whether more follow); a big
  mirror is listed as parallel key ranges, one per first hex digit of the top-level
  directories (``3`` for ``30/`` to ``3f/``) and the same below ``<native-dir>/``.
* **delete** uses DeleteObjects batches of 1,000 keys with per-key errors.
* **touch** copies an object onto itself with replaced (identical) metadata: S3 has no other
  way to move ``LastModified`` without re-uploading.
* Every botocore exception becomes one of the project's errors in :func:`translate_error`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, Dict, List, Optional, Tuple

import boto3
import botocore.session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
)

from .. import events
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
    failure_map,
    listed_size,
    redact_url,
)
from .cloud import LazyClient, each_path
from .davxml import parse_http_date
from .prefix_listing import (
    RangeLister,
    estimate_from_first_page,
    list_in_ranges,
    listing_requests,
    prefer_probes,
    range_prefixes,
)
from .s3_config import (
    CREDENTIALS_HINT,
    is_aws_host,
    make_config,
    parse_s3_url,
    parse_utc_timestamp,
    posix_time,
    resolve_endpoint,
)
from .streams import BodyReader, ExactReader

__all__ = [
    "S3Backend",
    "estimate_from_first_page",
    "listing_requests",
    "parse_s3_url",
    "parse_utc_timestamp",
    "prefer_probes",
    "range_prefixes",
    "translate_error",
]

#: ListObjectsV2 returns at most this many keys per request.
PAGE_SIZE = 1000
#: DeleteObjects accepts at most this many keys per request.
DELETE_BATCH = 1000
#: Parallel connections that suit S3 (default for ``--jobs``).
CONNECTIONS = 16
#: Above this many objects (estimated from the first page) a listing runs as parallel ranges;
#: below it a sequential listing needs fewer requests and is about as fast.
PARALLEL_LIST_MIN = 20_000
#: Multipart upload above this size; parts of at least this size (S3's minimum is 5 MiB).
#: (The aws CLI's defaults: with streams, parts are buffered in memory.)
MULTIPART_THRESHOLD = 8 * 1024 * 1024
MULTIPART_CHUNKSIZE = 8 * 1024 * 1024
#: S3 allows at most 10,000 parts; stay clear of it by growing the part size.
MAX_PARTS = 9_000
#: CopyObject copies at most 5 GiB in one request; larger objects are copied in parts.
COPY_SINGLE_MAX = 5 * 1024 * 1024 * 1024

_PERMISSION_HINT = (
    "check the bucket policy and the IAM permissions of these credentials"
    " (docs/s3.md lists what each command needs)"
)
_AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidSecurity",
    "MissingSecurityHeader",
}
_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "Forbidden", "403"}
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
    "RequestLimitExceeded",
    "TooManyRequests",
}
_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404", "NoSuchUpload"}


# -- streams ---------------------------------------------------------------------------------


# -- errors ----------------------------------------------------------------------------------


def translate_error(
    exc: BaseException,
    what: str,
    *,
    url: str,
    bucket: str,
    endpoint: str,
    path: Optional[str] = None,
    code: Optional[str] = None,
    status: Optional[int] = None,
) -> BackendError | UsageError:
    """The one place where boto3/botocore failures become the project's errors.

    ``what`` says what was being done ("cannot list s3://b/p"); ``endpoint`` is the redacted
    server description. Per-key errors of a DeleteObjects answer come in as ``code`` with the
    ``exc`` describing the batch. Messages are built from codes and our own redacted strings
    only, never from request data, so no credential can end up in them.
    """
    if isinstance(exc, SstateMirrorError) and code is None:
        return exc  # type: ignore[return-value]
    if isinstance(exc, ProfileNotFound):
        return UsageError(f"{exc}", hint="list profiles with 'aws configure list-profiles'")
    if isinstance(exc, NoRegionError):
        return UsageError(f"{what}: no AWS region configured", hint="pass --region REGION")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        kind = "incomplete" if isinstance(exc, PartialCredentialsError) else "no"
        if isinstance(exc, CredentialRetrievalError):
            kind = "could not load"
        return AuthError(f"{what}: {kind} AWS credentials", url=url, path=path,
                         hint=CREDENTIALS_HINT)
    if isinstance(exc, SSLError):
        return PermanentError(
            f"{what}: TLS verification of {endpoint} failed", url=url, path=path,
            hint="pass --ca-cert FILE (or set AWS_CA_BUNDLE) for a private certificate authority",
        )
    error = _translate(exc, what, url=url, bucket=bucket, endpoint=endpoint, path=path,
                       code=code, status=status)
    # botocore's own retry handler (standard mode, --retries) already repeated these;
    # an answer it does not retry (408, 429 without a throttling code) is left to the caller
    error.retried = error.retryable and (
        isinstance(exc, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError))
        or (isinstance(exc, ClientError) and code is None and bool(
            exc.response.get("ResponseMetadata", {}).get("MaxAttemptsReached"))))
    return error


def _translate(
    exc: BaseException,
    what: str,
    *,
    url: str,
    bucket: str,
    endpoint: str,
    path: Optional[str] = None,
    code: Optional[str] = None,
    status: Optional[int] = None,
) -> BackendError:
    """:func:`translate_error` for the failures that reach the server (or try to)."""
    if isinstance(exc, ReadTimeoutError):
        return TransientError(
            f"{what}: cannot reach {endpoint} for an answer: no answer from the server in time"
            f" ({type(exc).__name__}: it took the request and said nothing)", url=url,
            path=path,
            hint="the server or something in front of it hangs; if it is only slow, raise"
            " --timeout")
    if isinstance(exc, (EndpointConnectionError, ConnectionClosedError)):
        return TransientError(
            f"{what}: cannot reach {endpoint} ({type(exc).__name__})", url=url, path=path,
            hint="check --endpoint-url / AWS_ENDPOINT_URL, the network and that the server runs",
        )
    if code is None and isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code is not None:
        status = status or 0
        if code == "NoSuchBucket":
            return NotFoundError(
                f"{what}: bucket {bucket} does not exist at {endpoint}", url=url, path=path,
                hint="check the bucket name, --region and --endpoint-url",
            )
        if code in _NOT_FOUND_CODES:
            return NotFoundError(f"{what}: not found", url=url, path=path)
        if code in _AUTH_CODES:
            return AuthError(f"{what}: credentials rejected by {endpoint} ({code})",
                             url=url, path=path, hint=CREDENTIALS_HINT)
        if code in _DENIED_CODES or status == 403:
            return AuthError(f"{what}: access denied ({code})", url=url, path=path,
                             hint=_PERMISSION_HINT)
        if code in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed",
                    "IllegalLocationConstraintException"):
            return PermanentError(f"{what}: bucket {bucket} is in another region ({code})",
                                  url=url, path=path, hint="pass the bucket's --region")
        if code in _TRANSIENT_CODES or status >= 500 or status in (408, 429):
            return TransientError(f"{what}: server busy or failing ({code or status})",
                                  url=url, path=path)
        return PermanentError(f"{what}: {code or status}", url=url, path=path)
    if isinstance(exc, ParamValidationError):
        return PermanentError(f"{what}: invalid request ({exc})", url=url, path=path)
    if isinstance(exc, BotoCoreError):
        # IncompleteRead, ResponseStreamingError, connection resets, ...
        transient = "Read" in type(exc).__name__ or "Stream" in type(exc).__name__
        cls = TransientError if transient else PermanentError
        return cls(f"{what}: {type(exc).__name__}", url=url, path=path)
    if isinstance(exc, (OSError, ConnectionError)):
        return TransientError(f"{what}: {type(exc).__name__}", url=url, path=path)
    # urllib3 errors raised while streaming a body
    if type(exc).__module__.startswith("urllib3"):
        return TransientError(f"{what}: {type(exc).__name__}", url=url, path=path)
    return PermanentError(f"{what}: {type(exc).__name__}", url=url, path=path)


def _add_content_md5(request: Any, **_: Any) -> None:
    """DeleteObjects needs a body checksum; older S3-compatible servers only know MD5."""
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, bytes) and "Content-MD5" not in request.headers:
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        request.headers["Content-MD5"] = base64.b64encode(digest).decode()


_FAILURE = "sstate-mirror-failure"


def _note_failure(request_dict: Any, response: Any, caught_exception: Any, **_: Any) -> None:
    """Before botocore decides on a retry: what the try ended with, for :func:`_say_retry`.

    botocore retries S3 requests itself (standard mode, ``--retries``); these two handlers
    only make each of its retries visible, one line on the one channel of events, as the
    other backends' retries are. They decide nothing.
    """
    if caught_exception is not None:
        reason = f"{type(caught_exception).__name__}: {caught_exception}"
    elif response is not None:
        meta = response[1].get("ResponseMetadata", {}) if isinstance(response, tuple) else {}
        error = response[1].get("Error", {}) if isinstance(response, tuple) else {}
        reason = f"HTTP {meta.get('HTTPStatusCode', '?')} {error.get('Code', '')}".rstrip()
    else:
        return
    request_dict.get("context", {})[_FAILURE] = (reason, time.monotonic())


def _say_retry(request: Any, operation_name: str = "", **_: Any) -> None:
    """When botocore sends a request again: one retry line, with why and how long it waited."""
    context = getattr(request, "context", None) or {}
    attempt = context.get("retries", {}).get("attempt", 1)
    noted = context.get(_FAILURE)
    if attempt > 1 and noted is not None:
        reason, since = noted
        limit = context.get("retries", {}).get("max", 0) or attempt
        events.retry(f"S3 {operation_name}", reason, attempt - 1, max(limit - 1, attempt - 1),
                     time.monotonic() - since)


_LOADERS: Dict[Tuple[str, ...], Any] = {}
_LOADERS_LOCK = threading.Lock()


def _share_loader(core: Any) -> None:
    """Give ``core`` (a fresh botocore session) the process's loader of botocore's data.

    A session reads and decodes S3's service model and the endpoint tables (about 0.1 s of
    CPU) through its own loader, which caches them. A backend has a session of its own (its
    profile and credentials), so without this every backend opened in a process (the source
    and target of a copy, the logs of ``touch``, a library user's loop) would pay it again.
    The loaders are keyed by their search paths, which are all that configure them.
    """
    own = core.get_component("data_loader")
    with _LOADERS_LOCK:
        shared = _LOADERS.setdefault(tuple(own.search_paths), own)
    if shared is not own:
        core.register_component("data_loader", shared)


# -- the backend -----------------------------------------------------------------------------


class S3Backend(LazyClient, Backend):
    """A mirror in an S3 bucket, below an optional key prefix."""

    properties = Properties(
        connections=CONNECTIONS, atomic_put=True, delete_batch=DELETE_BATCH, touch="copy",
        touch_cost="size"
    )

    def __init__(self, url: str, options: Optional[BackendOptions] = None) -> None:
        self.options = options or BackendOptions()
        self.bucket, self.prefix = parse_s3_url(url)
        self.url = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._root = f"{self.prefix}/" if self.prefix else ""
        self.endpoint_url = resolve_endpoint(self.options)
        if self.options.addressing_style not in (None, "auto", "path", "virtual"):
            raise UsageError(f"unknown S3 addressing style {self.options.addressing_style!r}")
        self._manager: Any = None
        self._lock = threading.Lock()
        # knobs tests turn down to exercise the large-scale paths with small data
        self.multipart_threshold = MULTIPART_THRESHOLD
        self.multipart_chunksize = MULTIPART_CHUNKSIZE
        self.copy_single_max = COPY_SINGLE_MAX
        self.parallel_list_min = PARALLEL_LIST_MIN
        self.list_workers = self.properties.connections

    # -- client ------------------------------------------------------------------------

    @property
    def endpoint_description(self) -> str:
        """Where requests go, for messages (no credentials)."""
        if self.endpoint_url:
            return redact_url(self.endpoint_url)
        return "AWS S3" + (f" ({self.options.region})" if self.options.region else "")

    def _make_client(self) -> Any:
        opts = self.options
        core = botocore.session.get_session()
        core.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=parse_utc_timestamp
        )
        session = boto3.session.Session(
            botocore_session=core, profile_name=opts.profile, region_name=opts.region
        )
        _share_loader(core)
        style = opts.addressing_style
        if style is None and self.endpoint_url:
            style = "path"  # S3-compatible servers rarely have wildcard DNS for buckets
        verify: Any = None
        if opts.ca_cert:
            verify = opts.ca_cert
        elif not opts.verify_tls:
            verify = False

        def build(addressing: Optional[str]) -> Any:
            try:
                return session.client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    config=make_config(opts, addressing, self.properties.connections),
                    verify=verify,
                )
            except ValueError as exc:  # botocore: "Invalid endpoint: ..."
                raise UsageError(
                    f"invalid S3 endpoint for {self.url}: {self.endpoint_description}",
                    hint="expected http(s)://HOST[:PORT]",
                ) from exc

        client = build(style)
        if style is None:
            # an endpoint from the profile's configuration is an S3-compatible server too
            host = urllib.parse.urlsplit(client.meta.endpoint_url).hostname or ""
            if not is_aws_host(host):
                self.endpoint_url = client.meta.endpoint_url
                client.close()
                client = build("path")
        client.meta.events.register("before-sign.s3.DeleteObjects", _add_content_md5)
        client.meta.events.register_first("needs-retry.s3", _note_failure)
        client.meta.events.register("request-created.s3", _say_retry)
        return client

    def _key(self, path: str) -> str:
        return self._root + check_relative_path(path)

    def _error(
        self, exc: BaseException, what: str, path: Optional[str] = None, **kw: Any
    ) -> BackendError:
        err = translate_error(exc, what, url=self.url, bucket=self.bucket,
                              endpoint=self.endpoint_description, path=path, **kw)
        return err  # type: ignore[return-value]

    # -- interface ---------------------------------------------------------------------

    def check(self, create: bool = False) -> None:
        """One ListObjectsV2 request: unlike HeadBucket its errors have codes (missing
        bucket vs. rejected key vs. denied), and it needs the permission every command
        needs (s3:ListBucket)."""
        what = f"cannot access {self.url}"
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._root, MaxKeys=1)
            return
        except Exception as exc:
            err, cause = self._error(exc, what), exc
        if not (create and isinstance(err, NotFoundError)):
            raise err from cause
        kwargs: Dict[str, Any] = {"Bucket": self.bucket}
        region = self.client.meta.region_name
        if region and region != "us-east-1" and not self.endpoint_url:
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code != "BucketAlreadyOwnedByYou":
                raise self._error(exc, f"cannot create bucket {self.bucket}") from exc
        except Exception as exc:
            raise self._error(exc, f"cannot create bucket {self.bucket}") from exc

    def list(self, prefix: str = "", on_skip: Optional[SkipCallback] = None) -> Iterator[Entry]:
        base = self._root + (check_relative_path(prefix.strip("/")) + "/" if prefix.strip("/")
                             else "")
        what = f"cannot list {self.url}" + (f"/{prefix.strip('/')}" if prefix.strip("/") else "")
        try:
            first = self.client.list_objects_v2(Bucket=self.bucket, Prefix=base,
                                                MaxKeys=PAGE_SIZE)
        except Exception as exc:
            raise self._error(exc, what) from exc
        contents = first.get("Contents", [])
        truncated = bool(first.get("IsTruncated"))
        estimate = None
        if truncated and contents:
            estimate = estimate_from_first_page(
                len(contents), truncated, contents[-1]["Key"][len(base):]
            )
        if (truncated and self.list_workers > 1
                and (estimate is None or estimate >= self.parallel_list_min)):
            events.debug("listing %s in parallel ranges (estimated %s objects)", what, estimate)
            yield from self._list_parallel(base, on_skip)
            return
        yield from self._entries(contents, on_skip)
        if truncated:
            yield from self._list_range(base, on_skip, after_page=first)

    def _entries(self, contents: Sequence[Dict[str, Any]],
                 on_skip: Optional[SkipCallback]) -> Iterator[Entry]:
        """Listing records as entries; keys outside the root or unsafe are passed over."""
        for obj in contents:
            key: str = obj["Key"]
            rel = self.mirror_path(key, on_skip)
            if rel is None:
                continue
            yield Entry(rel, self._listed_size(key, obj.get("Size", 0)),
                        posix_time(obj["LastModified"]))

    def mirror_path(self, key: str, on_skip: Optional[SkipCallback] = None) -> Optional[str]:
        """The mirror path of a bucket's key; None for keys outside the root (a server that
        ignores Prefix, a report of the whole bucket), "directory" markers some tools make,
        and names unusable as a mirror path (those are passed to ``on_skip``)."""
        if not key.startswith(self._root):
            return None
        rel = key[len(self._root):]
        if not rel or rel.endswith("/"):
            return None
        try:
            check_relative_path(rel)
        except PermanentError:
            if on_skip is not None:
                on_skip(rel, "key name not usable as a mirror path")
            return None
        return rel

    def _listed_size(self, key: str, size: Any) -> int:
        """A listing's ``Size``, refused when it cannot be a real object's size.

        A negative or absurd size would make plans (what to send, what fits ``--max-size``)
        and reports wrong; like a negative WebDAV ``getcontentlength``, it fails the listing.
        """
        return listed_size(self.url, key, size)

    def _pages(self, base: str, delimiter: Optional[str] = None,
               after_page: Optional[Dict[str, Any]] = None) -> Iterator[Dict[str, Any]]:
        """Every page of ListObjectsV2 below ``base``; a listing never ends early silently."""
        what = f"cannot list {self.url}"
        token = None
        if after_page is not None:
            token = after_page.get("NextContinuationToken")
            if not token:
                raise PermanentError(f"{what}: truncated listing without a continuation token",
                                     url=self.url)
        seen_tokens = set()
        while True:
            kwargs: Dict[str, Any] = {"Bucket": self.bucket, "Prefix": base, "MaxKeys": PAGE_SIZE}
            if delimiter:
                kwargs["Delimiter"] = delimiter
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = self.client.list_objects_v2(**kwargs)
            except Exception as exc:
                raise self._error(exc, what) from exc
            yield page
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            if not token or token in seen_tokens:
                raise PermanentError(
                    f"{what}: the server's listing does not advance (continuation token"
                    " missing or repeated)", url=self.url)
            seen_tokens.add(token)

    def _list_range(self, base: str, on_skip: Optional[SkipCallback] = None,
                    after_page: Optional[Dict[str, Any]] = None) -> Iterator[Entry]:
        """A plain sequential listing of every key below ``base``."""
        for page in self._pages(base, after_page=after_page):
            yield from self._entries(page.get("Contents", []), on_skip)

    def _range_objects(self, base: str) -> List[Dict[str, Any]]:
        """Every listing record below ``base`` (one range of a parallel listing)."""
        return [obj for page in self._pages(base) for obj in page.get("Contents", [])]

    def _split(self, base: str) -> Tuple[List[Dict[str, Any]], List[str]]:
        """Objects directly below ``base`` and its sub-"directories" (one level)."""
        objects: List[Dict[str, Any]] = []
        prefixes: List[str] = []
        for page in self._pages(base, delimiter="/"):
            objects.extend(page.get("Contents", []))
            prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        return objects, prefixes

    def _list_parallel(self, base: str,
                       on_skip: Optional[SkipCallback] = None) -> Iterator[Entry]:
        """List below ``base`` as parallel prefix ranges (:func:`list_in_ranges`)."""
        lister = RangeLister(self._split, self._range_objects, lambda o: str(o["Key"]))
        for batch in list_in_ranges(base, lister, self.list_workers, "s3-list"):
            # entries (and on_skip calls) are made here, in the caller's thread
            yield from self._entries(batch, on_skip)

    def server_time(self) -> Optional[float]:
        """The ``Date`` of a one-key listing's answer: the clock LastModified comes from."""
        try:
            answer = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._root,
                                                 MaxKeys=1)
        except Exception as exc:
            raise self._error(exc, f"cannot list {self.url}") from exc
        date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        return parse_http_date(date) if isinstance(date, str) else None

    def estimate_object_count(self) -> Optional[int]:
        """The mirror's object count, exact up to 1,000 and estimated above (one request).

        For :func:`prefer_probes`; None when the key layout gives no estimate.
        """
        try:
            page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._root,
                                               MaxKeys=PAGE_SIZE)
        except Exception as exc:
            raise self._error(exc, f"cannot list {self.url}") from exc
        contents = page.get("Contents", [])
        if not contents:
            return 0
        return estimate_from_first_page(len(contents), bool(page.get("IsTruncated")),
                                        contents[-1]["Key"][len(self._root):])

    def choose_lookup(self, local_count: int) -> str:
        """``"probe"`` (HEAD each of ``local_count`` local files) or ``"list"`` (one listing).

        Costs one listing request to estimate the mirror's size.
        """
        if local_count == 0:
            return "probe"
        return "probe" if prefer_probes(local_count, self.estimate_object_count()) else "list"

    def stat(self, path: str) -> Optional[Entry]:
        key = self._key(path)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(exc, f"cannot stat {path}", path) from exc
        except Exception as exc:
            raise self._error(exc, f"cannot stat {path}", path) from exc
        return Entry(path, self._listed_size(key, head.get("ContentLength", 0)),
                     posix_time(head["LastModified"]))

    @contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        key = self._key(path)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise self._error(exc, f"cannot read {path}", path) from exc
        body = response["Body"]
        reader = BodyReader(body.read, lambda exc: self._error(exc, f"cannot read {path}", path),
                            body.close)
        with io.BufferedReader(reader, 1 << 16) as stream:
            yield stream

    def _transfer_config(self, size: int = 0) -> Any:
        """Part size grows for huge files so that no upload needs more than MAX_PARTS."""
        from boto3.s3.transfer import TransferConfig

        chunk = max(self.multipart_chunksize, math.ceil(size / MAX_PARTS))
        chunk = math.ceil(chunk / (1 << 20)) * (1 << 20)
        connections = self.properties.connections
        try:
            config = TransferConfig(multipart_threshold=self.multipart_threshold,
                                    multipart_chunksize=chunk, max_concurrency=connections,
                                    preferred_transfer_client="classic")
        except TypeError:  # boto3 < 1.33 has only the classic transfer client
            config = TransferConfig(multipart_threshold=self.multipart_threshold,
                                    multipart_chunksize=chunk, max_concurrency=connections)
        # a non-seekable upload holds a submission thread while it reads its stream:
        # one per caller, so small files never queue behind a big one
        config.max_submission_concurrency = connections
        # parts of streams are buffered in memory: bound that for all parallel puts together
        config.max_in_memory_upload_chunks = connections
        return config

    def _transfer_manager(self, size: int) -> Tuple[Any, bool]:
        """The shared transfer manager (bounded threads and memory across all puts), or a
        private one for a file so large that it needs bigger parts; True if private."""
        from boto3.s3.transfer import create_transfer_manager

        if size > self.multipart_chunksize * MAX_PARTS:
            return create_transfer_manager(self.client, self._transfer_config(size)), True
        if self._manager is None:
            client = self.client
            with self._lock:
                if self._manager is None:
                    self._manager = create_transfer_manager(client, self._transfer_config())
        return self._manager, False

    def put(self, path: str, src: IO[bytes], size: int) -> None:
        key = self._key(path)
        reader = ExactReader(src, size, path)
        manager, private = self._transfer_manager(size)
        try:
            manager.upload(reader, self.bucket, key).result()
        except Exception as exc:
            raise self._error(exc, f"cannot upload {path}", path) from exc
        finally:
            if private:
                manager.shutdown()

    def delete(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        failures: Dict[str, BackendError] = {}
        for start in range(0, len(paths), DELETE_BATCH):
            batch = list(paths[start:start + DELETE_BATCH])
            keys: Dict[str, str] = {}
            for p in batch:
                try:
                    keys[self._key(p)] = p
                except BackendError as exc:
                    failures[p] = exc
            if keys:
                failures.update(self._delete_batch(keys))
        return failures

    def _delete_batch(self, keys: Dict[str, str]) -> Dict[str, BackendError]:
        try:
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
            )
        except Exception as exc:
            return failure_map(list(keys.values()),
                               self._error(exc, f"cannot delete in {self.url}"))
        failures: Dict[str, BackendError] = {}
        for err in response.get("Errors", []):
            code = str(err.get("Code", ""))
            if code == "NoSuchKey":
                continue  # already gone
            path = keys.get(err.get("Key", ""), err.get("Key", ""))
            failures[path] = self._error(
                ClientError({"Error": {"Code": code}}, "DeleteObjects"),
                f"cannot delete {path}", path, code=code, status=0)
        return failures

    def touch(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        return each_path(paths, self._touch_one)

    def _touch_one(self, path: str) -> None:
        """Copy the object onto itself, keeping its metadata, so LastModified becomes now."""
        key = self._key(path)
        what = f"cannot touch {path}"
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise self._error(exc, what, path) from exc
        extra: Dict[str, Any] = {"Metadata": head.get("Metadata", {})}
        for field in ("ContentType", "ContentEncoding", "ContentDisposition",
                      "ContentLanguage", "CacheControl", "StorageClass",
                      "ServerSideEncryption", "SSEKMSKeyId", "BucketKeyEnabled"):
            if head.get(field):
                extra[field] = head[field]
        source = {"Bucket": self.bucket, "Key": key}
        try:
            if int(head.get("ContentLength", 0)) <= self.copy_single_max:
                self.client.copy_object(Bucket=self.bucket, Key=key, CopySource=source,
                                        MetadataDirective="REPLACE", **extra)
            else:
                # above 5 GiB only a multipart copy works; s3transfer does that
                self.client.copy(source, self.bucket, key, ExtraArgs=extra,
                                 Config=self._transfer_config(int(head["ContentLength"])))
        except Exception as exc:
            raise self._error(exc, what, path) from exc

    def close(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.shutdown()
        super().close()
