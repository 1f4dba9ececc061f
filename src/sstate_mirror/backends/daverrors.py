"""How the WebDAV backend words failures: HTTP statuses and transport errors as the error tree.

One place for every message, so that a status means the same wherever it is met, and the
hint says what to change (credentials, server configuration, options).
"""

from __future__ import annotations

import ssl
from typing import Optional, Union

import httpx

from ..errors import AuthError, BackendError, NotFoundError, PermanentError, TransientError
from .base import redact_url
from .httppipe import Answer, Failure

#: Statuses worth retrying (for requests that can safely be repeated).
RETRY_STATUSES = {408, 429, 502, 503, 504}
#: Statuses that mean "the server has no WebDAV here".
NO_DAV_STATUSES = {405, 501}

#: An answer through httpx (streamed) or through a pipeline (read).
AnyResponse = Union[httpx.Response, Answer]

#: Set in a streamed answer's ``extensions`` when it came after the last allowed retry,
#: so that its error is not retried again (a read :class:`Answer` says it in ``retried``).
RETRIED = "sstate_mirror.retried"


def translate(
    what: str,
    *,
    url: str,
    path: Optional[str] = None,
    response: Optional[AnyResponse] = None,
    exc: Optional[BaseException] = None,
) -> BackendError:
    """The one place that turns an httpx failure or an HTTP status into the error tree."""
    if response is not None:
        status = response.status_code
        reason = f"{status} {response.reason_phrase}".strip()
        msg = f"{what}: the server answered {reason} ({url})"
        if status == 401:
            return AuthError(msg, url=url, path=path,
                             hint="credentials are missing or wrong: use --user with"
                             " SSTATE_MIRROR_PASSWORD, a token in SSTATE_MIRROR_TOKEN, or"
                             " ~/.netrc")
        if status == 403:
            return AuthError(msg, url=url, path=path,
                             hint="the server refuses this operation for these credentials")
        if status in (404, 410):
            return NotFoundError(msg, url=url, path=path)
        if status in NO_DAV_STATUSES:
            return PermanentError(msg, url=url, path=path,
                                  hint="the server does not allow this WebDAV method here")
        if status == 413:
            return PermanentError(msg, url=url, path=path,
                                  hint="the server limits upload sizes (nginx:"
                                  " client_max_body_size 0; Apache: LimitRequestBody 0)")
        if status == 507:
            return PermanentError(msg, url=url, path=path, hint="the server's disk is full")
        if 300 <= status < 400:
            location = redact_url(response.headers.get("Location") or "?")
            return PermanentError(f"{what}: the server redirects to {location} ({url})",
                                  url=url, path=path,
                                  hint="use the URL the server redirects to")
        if status in RETRY_STATUSES or status == 500 or status == 423:
            return TransientError(msg, url=url, path=path)
        return PermanentError(msg, url=url, path=path)
    if isinstance(exc, httpx.ConnectError):
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc.__context__,
                                                              ssl.SSLCertVerificationError):
            return PermanentError(
                f"{what}: the server's TLS certificate cannot be verified ({url})",
                url=url, path=path,
                hint="give its CA with --ca-cert FILE (or --insecure, not recommended)",
            )
        if isinstance(exc.__context__, ssl.SSLError) or "SSL" in text:
            return PermanentError(f"{what}: TLS handshake with {url} failed: {text}",
                                  url=url, path=path)
        return TransientError(f"{what}: cannot connect to {url}: {text or 'refused'}",
                              url=url, path=path,
                              hint="check the URL and that the server is running")
    if isinstance(exc, httpx.ConnectTimeout):
        return TransientError(f"{what}: no connection to {url} in time (connect timeout)",
                              url=url, path=path,
                              hint="check the URL and the network; --connect-timeout sets the"
                              " wait")
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{what}: no answer from the server in time ({url}: it took"
                              " the request and said nothing)", url=url, path=path,
                              hint="the server or something in front of it hangs; if it is"
                              " only slow, raise --timeout")
    if isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError)):
        return TransientError(f"{what}: connection to {url} failed: {exc}", url=url,
                              path=path)
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return PermanentError(f"{what}: {exc}", url=url, path=path)
    return PermanentError(f"{what}: {exc}", url=url, path=path)


def refuse_encoding(response: AnyResponse, what: str, url: str,
                    path: Optional[str]) -> Optional[BackendError]:
    """The error for an answer in a ``Content-Encoding`` other than ``identity``, else None.

    Every request asks for ``Accept-Encoding: identity``. A compressed answer all the same
    is refused unread: a few KiB of zstd can decode to gigabytes before any size limit sees
    them, and a compressed GET would not be the file (its size, its checksum).
    """
    encodings = [e.strip().lower() for v in response.headers.get_list("Content-Encoding")
                 for e in v.split(",") if e.strip()]
    if all(e == "identity" for e in encodings):
        return None
    return PermanentError(
        f"{what}: the server sent a {', '.join(encodings)}-encoded answer although"
        f" 'identity' was asked for; refusing it ({url})",
        url=url, path=path,
        hint="something in front of the WebDAV server compresses answers: turn that off"
        " for this location",
    )


def pipe_error(failure: Failure, what: str, url: str, path: Optional[str]) -> BackendError:
    """A pipelined request's failure in the error tree, worded as :func:`translate` does."""
    if failure.kind == "tls":
        if isinstance(failure.cause, ssl.SSLCertVerificationError):
            return PermanentError(
                f"{what}: the server's TLS certificate cannot be verified ({url})",
                url=url, path=path,
                hint="give its CA with --ca-cert FILE (or --insecure, not recommended)",
            )
        return PermanentError(f"{what}: TLS handshake with {url} failed: {failure.reason}",
                              url=url, path=path)
    if failure.kind == "timeout":
        return TransientError(f"{what}: {failure.reason} ({url}: it took the request and"
                              " said nothing)", url=url, path=path,
                              hint="the server or something in front of it hangs; if it is"
                              " only slow, raise --timeout")
    if failure.reason.startswith("cannot connect"):
        return TransientError(f"{what}: {failure.reason} ({url})", url=url, path=path,
                              hint="check the URL and that the server is running")
    return TransientError(f"{what}: connection to {url} failed: {failure.reason}", url=url,
                          path=path)


def no_dav_or(error: BackendError, response: AnyResponse, url: str) -> BackendError:
    """A PROPFIND refusal explained as what it is: no WebDAV on this URL."""
    status = response.status_code
    if status in NO_DAV_STATUSES or 200 <= status < 300:
        return PermanentError(
            f"{url} does not speak WebDAV: PROPFIND answered {status}"
            f" {response.reason_phrase}".rstrip(),
            url=url,
            hint="enable WebDAV for this location (Apache: Dav On; nginx: dav_methods and"
            " dav_ext_methods PROPFIND OPTIONS), see docs/webdav.md",
        )
    return error
