"""Where an ``s3://`` mirror is and how to talk to it: URL, endpoint, botocore settings, times.

Pure functions, kept apart from :mod:`.s3` so that the backend module is about the storage
primitives. Nothing here contacts a server.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import urllib.parse
from typing import Any, Dict, Optional, Tuple

from botocore.config import Config
from dateutil import parser as date_parser
from dateutil import tz as date_tz

from ..errors import UsageError
from .base import BackendOptions, redact_url
from .cloud import posix_time as posix_time  # one conversion for every object store

_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_AWS_HOST = re.compile(r"(^|\.)amazonaws\.com(\.cn)?$")
_UTC = dt.timezone.utc
_UTC_NAMES = {"UTC": date_tz.UTC, "GMT": date_tz.UTC, "Z": date_tz.UTC, "z": date_tz.UTC}

CREDENTIALS_HINT = (
    "provide AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment,"
    " a profile in ~/.aws/credentials (--profile NAME or AWS_PROFILE), 'aws sso login',"
    " or an instance/container role"
)


def parse_s3_url(url: str) -> Tuple[str, str]:
    """``s3://bucket/a/b/`` -> ``("bucket", "a/b")``; ``s3://bucket`` -> ``("bucket", "")``."""
    if not url.lower().startswith("s3://"):
        raise UsageError(f"not an S3 URL: {url!r}", hint="write s3://BUCKET[/PREFIX]")
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if "@" in bucket:
        raise UsageError(
            "credentials do not belong in an s3:// URL",
            hint=CREDENTIALS_HINT,
        )
    if not bucket or not _BUCKET_RE.match(bucket):
        raise UsageError(
            f"invalid S3 bucket name {bucket!r} in s3://{bucket}",
            hint="write s3://BUCKET[/PREFIX] with a valid bucket name",
        )
    prefix = prefix.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise UsageError(f"invalid prefix {prefix!r} in s3://{bucket}/{prefix}")
    return bucket, prefix


def resolve_endpoint(options: BackendOptions) -> Optional[str]:
    """The endpoint from ``--endpoint-url``, else ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``.

    Recent botocore reads these variables itself; resolving them here works with older
    versions too and tells us that an S3-compatible server (path-style addressing) is meant.
    """
    if options.endpoint_url:
        return check_endpoint_url(options.endpoint_url)
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = os.environ.get(var)
        if value:
            return check_endpoint_url(value, source=var)
    return None


def check_endpoint_url(url: str, source: str = "--endpoint-url") -> str:
    """Refuse endpoint URLs botocore would reject with a cryptic message (or misuse)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
        parts = None  # type: ignore[assignment]
    if parts is None or not port_ok or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"invalid S3 endpoint URL {redact_url(url)!r} (from {source})",
            hint="expected http(s)://HOST[:PORT], e.g. https://minio.example.com:9000",
        )
    return url


def make_config(
    options: BackendOptions, addressing_style: Optional[str], connections: int
) -> Config:
    """botocore settings: retries, timeouts, pool size, addressing, checksum behaviour.

    Checksums are computed and validated only where the API requires them: botocore >= 1.36
    otherwise adds CRC32 trailers that many S3-compatible servers reject. Older botocore does
    not know these options and never sends such checksums, so they are left out there.
    """
    kwargs: Dict[str, Any] = {
        "retries": {"max_attempts": options.retries, "mode": "standard"},
        "connect_timeout": options.connect_timeout,
        "read_timeout": options.timeout,
        # parallel puts and list ranges, plus the transfer manager's part uploads
        "max_pool_connections": max(connections * 3, 10),
        "user_agent_extra": "sstate-mirror",
    }
    if addressing_style:
        kwargs["s3"] = {"addressing_style": addressing_style}
    try:
        return Config(
            **kwargs,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
    except TypeError:  # botocore < 1.36
        return Config(**kwargs)


def parse_utc_timestamp(value: Any) -> dt.datetime:
    """Timestamps from S3 responses as aware UTC datetimes, whatever the local timezone.

    botocore's default parser returns a naive datetime for a timestamp without a zone (some
    S3-compatible servers send those), which Python then takes for local time, and it lets
    dateutil turn ``Z`` into ``tzlocal()`` where the local zone is called UTC. S3 times are
    UTC by definition, so both are read as UTC here.
    """
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, _UTC)
    try:
        return dt.datetime.fromtimestamp(float(value), _UTC)
    except (TypeError, ValueError):
        pass
    parsed: dt.datetime = date_parser.parse(value, tzinfos=_UTC_NAMES)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_UTC)
    return parsed.astimezone(_UTC)


def is_aws_host(host: str) -> bool:
    """Whether an endpoint's host name is AWS's own S3 (else an S3-compatible server)."""
    return bool(_AWS_HOST.search(host))
