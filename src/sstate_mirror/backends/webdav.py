"""An HTTP/WebDAV server as a mirror (Apache mod_dav_fs, nginx dav + dav-ext, wsgidav, ...).

bitbake reads the mirror with plain ``GET``/``HEAD``; this backend writes and lists it with
WebDAV. Servers differ, and each difference is handled where it bites:

* listing: ``PROPFIND Depth: infinity`` where allowed (one streamed request), else a parallel
  ``Depth: 1`` walk (Apache refuses infinity by default with 403);
* parents: ``MKCOL`` bottom-up, remembering known collections, since most servers answer 409
  to a PUT whose parent is missing;
* atomicity: ``PUT`` to a temporary name, then ``MOVE`` onto the final name, so bitbake never
  fetches half an archive; a server without ``MOVE`` gets a direct PUT and a warning;
* touch: ``PROPPATCH getlastmodified`` where the server allows it, else ``COPY`` to a temporary
  name and ``MOVE`` back; the first touch checks the method really advanced the time;
* collections are always addressed with a trailing slash (nginx insists on it for MKCOL and
  DELETE).

Everything the server sends is untrusted: hrefs are resolved against the mirror URL and
rejected when they leave it; XML goes through :mod:`.davxml` (defusedxml, size limits).
Credentials come from options, the URL or netrc and never appear in a message.
"""

from __future__ import annotations

import base64
import email.utils
import io
import logging
import os
import random
import re
import secrets
import ssl
import threading
import time
import urllib.parse
import urllib.request
from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import replace
from typing import IO, Deque, Dict, List, Optional, Protocol, Set, Tuple, Union, cast

import httpx

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
    Properties,
    SkipCallback,
    ambiguous_userinfo,
    check_relative_path,
    new_temp_name,
    redact_url,
)
from .davauth import BearerAuth, ChallengeAuth, netrc_lookup
from .daverrors import (
    NO_DAV_STATUSES,
    RETRY_STATUSES,
    AnyResponse,
    no_dav_or,
    pipe_error,
    retries_used,
    translate,
)
from .davio import CHUNK, Body, ResponseReader, iter_body
from .davxml import (
    PROPFIND_BODY,
    DavResponse,
    LimitedReader,
    XMLError,
    iter_multistatus,
    parse_http_date,
    parse_multistatus,
    proppatch_lastmodified_body,
)
from .httppipe import Answer, Failure, Outcome, Pipeline, PipeRequest, backoff

log = logging.getLogger(__name__)


_XML_HEADERS = {"Content-Type": 'application/xml; charset="utf-8"'}


#: Attempts of one put while a concurrent clean keeps pruning its collection.
PUT_ATTEMPTS = 5
#: Characters after which an href needs the full resolution of ``_rel_from_href``.
_UNPLAIN = re.compile(r"[%?#\\\x00-\x20\x7f]")
#: A path segment that percent-encoding leaves as it is.
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]+")
#: DELETE answers meaning "gone" (404/410: already gone, which is what was asked).
_DELETED = (200, 202, 204, 404, 410)


class WebDAVBackend(Backend):
    """A mirror on an HTTP/WebDAV server (``http://`` or ``https://``)."""

    #: Largest PROPFIND answer held for one collection (Depth 0/1) — a hostile server cannot
    #: make us buffer more.
    max_xml_bytes = 512 * 1024 * 1024
    #: Largest streamed Depth: infinity answer (entries are handed on one by one).
    max_stream_bytes = 16 * 1024 * 1024 * 1024
    #: Largest single ``<D:response>`` element.
    max_element_bytes = 1024 * 1024
    #: Parallel PROPFIND requests of a Depth: 1 walk without pipelining.
    walk_concurrency = 8
    #: Pipelined connections of a walk, and of each delete() call (clean runs several).
    walk_connections = 4
    delete_connections = 1
    #: Requests in flight per pipelined connection.
    pipeline_depth = 32
    #: Largest pipelined answer held in memory; a larger listing is fetched streamed.
    max_pipelined_body = 16 * 1024 * 1024
    #: Largest upload read into memory and sent on a pipeline connection (larger ones are
    #: streamed through httpx, where the per-request cost does not matter).
    max_pipelined_put = 4 * 1024 * 1024

    def __init__(self, url: str, options: BackendOptions) -> None:
        self.options = options
        # 16 transfers: an upload waits a round trip for each PUT and MOVE, so across a
        # network more connections are faster (2,000 files 10 ms away: 10.3 s with 8, 5.7 s
        # with 16); next to the server it makes no difference
        self.properties = Properties(connections=16, atomic_put=True, delete_batch=64,
                                     touch="copy")
        if ambiguous_userinfo(url):
            raise UsageError(
                f"cannot tell the password from the host in {redact_url(url)}",
                hint="percent-encode '/', '?', '#' and '@' in the user name and password"
                     " (%2F, %3F, %23, %40), or give the password in SSTATE_MIRROR_PASSWORD")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise UsageError(f"not an HTTP(S) URL: {redact_url(url)}")
        if parts.query or parts.fragment:
            raise UsageError(f"a mirror URL takes no query or fragment: {redact_url(url)}")
        self._scheme = parts.scheme.lower()
        self._host = parts.hostname.lower()
        try:
            port = parts.port
        except ValueError:
            raise UsageError(f"invalid port in {redact_url(url)}") from None
        self._port = port if port is not None else (443 if self._scheme == "https" else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        netloc = host if port is None else f"{host}:{port}"
        self._base_segments: List[str] = [
            urllib.parse.unquote(s) for s in parts.path.split("/") if s
        ]
        self._origin = f"{self._scheme}://{netloc}"
        self._netloc = netloc
        self._base_path = "/" + "".join(_quote(s) + "/" for s in self._base_segments)
        self.url = self._origin + self._base_path

        self._known_collections: Set[Tuple[str, ...]] = set()
        #: the known collections by parent, so that forgetting one and what is below it
        #: costs what is below it, not a scan of every collection the listing saw
        self._known_children: Dict[Tuple[str, ...], Set[Tuple[str, ...]]] = {}
        self._lock = threading.Lock()
        #: files per collection as the last complete listing saw them (minus what this
        #: backend deleted since): a collection known to hold files is not probed for pruning
        self._file_counts: Dict[str, int] = {}
        self._infinity: Optional[bool] = None  # unknown until the first listing
        self._move_supported: Optional[bool] = None
        self._touch_method: Optional[str] = None  # "proppatch" | "copy" | "none"
        self._auth_source = "none"
        #: ``Authorization`` for pipelined requests once basic auth is known to apply
        self._basic_header: Optional[str] = None
        #: idle pipelines, one taken per thread at a time (see :meth:`_pipeline`)
        self._pipes: List[Pipeline] = []
        self._pipelining_checked = False
        #: one lock per top-level collection, held while pruning below it
        self._prune_locks: Dict[str, threading.Lock] = {}
        self._proxy_in_use: Optional[bool] = None
        self._verify = self._make_verify()
        self._client = httpx.Client(
            auth=self._make_auth(parts),
            verify=self._verify,
            timeout=httpx.Timeout(options.timeout, pool=None),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=32),
            follow_redirects=False,
            headers={"User-Agent": "sstate-mirror"},
        )

    # -- set-up ------------------------------------------------------------------------

    def _make_auth(self, parts: urllib.parse.SplitResult) -> Optional[httpx.Auth]:
        """Pick credentials: token, then options, then the URL, then netrc."""
        opts = self.options
        if opts.token:
            self._auth_source = "bearer token"
            return BearerAuth(opts.token)
        user = opts.user or (urllib.parse.unquote(parts.username) if parts.username else None)
        password = opts.password
        if password is None and parts.password is not None and (
            opts.user is None or opts.user == urllib.parse.unquote(parts.username or "")
        ):
            password = urllib.parse.unquote(parts.password)
        source = "password"
        if password is None and opts.use_netrc:
            found = netrc_lookup(self._host)
            if found is not None and (user is None or user == found[0]):
                user, password = found
                source = "netrc password"
        self._auth_source = f"{source} of user {user}"
        if user is None:
            return None
        if password is None:
            raise AuthError(
                f"a user name is set for {self.url} but no password",
                url=self.url,
                hint="put the password in SSTATE_MIRROR_PASSWORD (or the variable named by"
                " --password-env) or in ~/.netrc",
            )
        method = (opts.auth_method or "auto").lower()
        self._basic_header = "Basic " + base64.b64encode(
            f"{user}:{password}".encode()).decode("ascii")
        if method == "basic":
            return httpx.BasicAuth(user, password)
        if method == "digest":
            return httpx.DigestAuth(user, password)
        if method != "auto":
            raise UsageError(f"unknown HTTP authentication scheme {opts.auth_method!r}")
        return ChallengeAuth(user, password)

    def _make_verify(self) -> Union[bool, ssl.SSLContext]:
        opts = self.options
        if self._scheme != "https":
            return True
        if not opts.verify_tls:
            log.warning("TLS certificate verification is OFF for %s: anyone on the path can"
                        " read and change what is transferred", self.url)
            return False
        if opts.ca_cert:
            if not os.path.isfile(opts.ca_cert):
                raise UsageError(f"--ca-cert {opts.ca_cert}: no such file")
            try:
                return ssl.create_default_context(cafile=opts.ca_cert)
            except (ssl.SSLError, OSError) as exc:
                raise UsageError(f"--ca-cert {opts.ca_cert}: not a usable CA bundle: {exc}"
                                 ) from exc
        ctx = ssl.create_default_context()  # the system's CAs, SSL_CERT_FILE/DIR honoured
        if not ctx.cert_store_stats().get("x509_ca"):
            try:
                import certifi

                ctx.load_verify_locations(certifi.where())
            except ImportError:
                pass
        return ctx

    # -- URLs and hrefs ------------------------------------------------------------------

    def _abs_path(self, segments: Sequence[str], collection: bool) -> str:
        path = "/" + "/".join(_quote(s) for s in segments)
        if collection and segments:
            path += "/"
        return path

    def _url(self, rel: str, collection: bool = False) -> str:
        return self._origin + self._target(rel, collection)

    def _target(self, rel: str, collection: bool = False) -> str:
        """The percent-encoded absolute path of a mirror-relative path."""
        if not rel:
            return self._base_path
        path = self._base_path + "/".join(_quote(s) for s in rel.split("/"))
        return path + "/" if collection else path

    def _rel_from_href(self, href: str, request_rel: str) -> str:
        """The mirror-relative path an href names; PermanentError if it leaves the mirror.

        ``request_rel`` is the collection that was asked about: an answer about anything
        outside it is as suspicious as one about another host.
        """
        # the common case, decided without parsing: the href is the requested collection's
        # own path followed by plain names (nothing to decode, nothing to resolve)
        prefix = self._target(request_rel, True)
        if href.startswith(prefix) and not _UNPLAIN.search(href, len(prefix)):
            rest = href[len(prefix):-1] if href.endswith("/") else href[len(prefix):]
            names = rest.split("/") if rest else []
            if "" not in names and "." not in names and ".." not in names:
                if not names:
                    return request_rel
                return f"{request_rel}/{rest}" if request_rel else rest
        shown = href if len(href) <= 200 else href[:200] + "..."

        def reject(why: str) -> PermanentError:
            return PermanentError(
                f"the server listed {shown!r}, {why}; refusing the listing of {self.url}",
                url=self.url,
                hint="the server or something in front of it is misconfigured or hostile",
            )

        try:
            parts = urllib.parse.urlsplit(href)
        except ValueError:
            raise reject("which is not a valid URL") from None
        if parts.scheme or parts.netloc:
            try:
                port = parts.port
            except ValueError:
                raise reject("which has an invalid port") from None
            scheme = parts.scheme.lower()
            if port is None:
                port = 443 if scheme == "https" else 80
            if scheme != self._scheme or (parts.hostname or "").lower() != self._host or (
                port != self._port
            ):
                raise reject("which is on another server")
        path = parts.path
        if not path.startswith("/"):
            path = self._abs_path(
                self._base_segments + (request_rel.split("/") if request_rel else []), True
            ) + path
        raw = path.split("/")[1:]
        if raw and raw[-1] == "":
            raw = raw[:-1]
        segments = []
        for seg in raw:
            try:
                dec = urllib.parse.unquote(seg, errors="strict")
            except UnicodeDecodeError:
                raise reject("whose name is not UTF-8") from None
            if dec in ("", ".", "..") or "/" in dec or "\x00" in dec or "\\" in dec:
                raise reject("which is outside the mirror")
            segments.append(dec)
        base = self._base_segments
        if segments[: len(base)] != base:
            raise reject("which is outside the mirror")
        rel = "/".join(segments[len(base):])
        if request_rel and not (rel == request_rel or rel.startswith(request_rel + "/")):
            raise reject(f"which is outside the collection {request_rel}/ that was asked for")
        return rel

    # -- requests ------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        path: Optional[str] = None,
        headers: Optional[Dict[str, str]] = None,
        content: Union[bytes, Body, None] = None,
        stream: bool = False,
        idempotent: bool = True,
    ) -> httpx.Response:
        """One request, retried with backoff on transient failures; any status is returned.

        The caller decides what a status means for its method (404 on DELETE is success,
        405 on MKCOL is "exists"); :func:`translate` turns the rest into errors.
        """
        attempt = 0
        while True:
            if isinstance(content, Body):
                content.rewind()
            try:
                request = self._client.build_request(method, url, headers=headers,
                                                     content=content)
                response = self._client.send(request, stream=stream)
            except httpx.HTTPError as exc:
                error = translate(what, url=self.url, path=path, exc=exc)
                safe = isinstance(exc, httpx.ConnectError) or idempotent
                if isinstance(content, Body) and not content.replayable:
                    raise error from exc  # the caller may restart from a fresh source
                if not (error.retryable and safe) or attempt >= self.options.retries:
                    error.retried = error.retryable and safe
                    raise error from exc
                delay = backoff(attempt)
                reason = error.message
            else:
                if response.status_code not in RETRY_STATUSES or not idempotent or (
                    isinstance(content, Body) and not content.replayable):
                    return response
                if attempt >= self.options.retries:
                    retries_used.add(response)
                    return response
                delay = backoff(attempt, response.headers.get("Retry-After"))
                reason = f"status {response.status_code}"
                response.close()
            attempt += 1
            log.info("%s %s failed (%s), retry %d/%d in %.1fs", method, redact_url(url),
                     reason, attempt, self.options.retries, delay)
            time.sleep(delay)

    def _request(self, method: str, target: str, *, what: str, path: Optional[str] = None,
                 headers: Optional[Dict[str, str]] = None, content: Optional[bytes] = None,
                 idempotent: bool = True) -> AnyResponse:
        """One small request, on this thread's pipeline connection where there is one.

        Half the Python of an httpx request, which counts when an upload is thousands of
        small files (PUT, MOVE, MKCOL each). ``target`` is the absolute path; a request
        that is not ``idempotent`` is never sent twice after a broken connection.
        """
        with self._pipeline(1) as pipe:
            if pipe is not None:
                pipe.submit(PipeRequest(method, target, tuple((headers or {}).items()),
                                        content or b"", idempotent=idempotent))
                outcomes = list(pipe.results())
                request, outcome = outcomes[0]
                return self._settle(pipe, request, outcome, what, path)
        return self._send(method, self._origin + target, what=what, path=path,
                          headers=headers, content=content, idempotent=idempotent)

    def _fail(self, response: AnyResponse, what: str, path: Optional[str] = None
              ) -> BackendError:
        response.close()
        error = translate(what, url=self.url, path=path, response=response)
        error.retried = (response.retried if isinstance(response, Answer)
                         else response in retries_used)
        if response.status_code == 401 and self._client.auth is not None:
            error.hint = ("the server rejected the credentials given (" + self._auth_source
                          + "); check them, or --auth basic|digest")
        return error

    def _propfind(self, rel: str, depth: str, collection: bool) -> httpx.Response:
        """A streamed PROPFIND; the caller checks the status and closes the response."""
        return self._send(
            "PROPFIND",
            self._url(rel, collection),
            what=f"cannot list {rel or 'the mirror root'}",
            path=rel or None,
            headers={"Depth": depth, **_XML_HEADERS},
            content=PROPFIND_BODY,
            stream=True,
        )

    def _multistatus(self, response: AnyResponse, rel: str, limit: int
                     ) -> Iterator[DavResponse]:
        """The parsed responses of a 207, with XML problems turned into clear errors."""
        if response.status_code != 207:
            raise no_dav_or(self._fail(response, f"cannot list {rel or 'the mirror root'}",
                                        rel or None), response, self.url)
        try:
            if isinstance(response, Answer):
                yield from parse_multistatus(response.body, self.max_element_bytes)
            else:
                yield from iter_multistatus(LimitedReader(
                    iter_body(response, self.url, rel), limit, self.max_element_bytes))
        except XMLError as exc:
            raise PermanentError(
                f"{self.url}: bad PROPFIND answer for {rel or 'the mirror root'}: {exc}",
                url=self.url, path=rel or None,
                hint="the server is not a working WebDAV server, or something in front of it"
                " rewrites its answers",
            ) from None
        finally:
            response.close()

    # -- pipelining ----------------------------------------------------------------------

    def _pipe_headers(self) -> Optional[List[Tuple[str, str]]]:
        """Headers for pipelined requests, or None where each request goes through httpx.

        None when pipelining is off, a proxy is configured (it may not pass pipelined
        requests through), or the server wants digest auth (a fresh nonce count per
        request). With credentials whose scheme the server has not asked for yet, requests
        go without, as httpx sends them; a 401 is then answered through httpx.
        """
        if not self.options.pipelining or self._proxied():
            return None
        headers = [("User-Agent", "sstate-mirror")]
        auth = self._client.auth
        header: Optional[str]
        if auth is None:
            return headers
        if isinstance(auth, BearerAuth):
            header = auth.header
        elif isinstance(auth, httpx.BasicAuth):
            header = self._basic_header
        elif isinstance(auth, ChallengeAuth) and auth.scheme != "digest":
            header = self._basic_header if auth.scheme == "basic" else None
        else:
            return None
        if header is not None:
            headers.append(("Authorization", header))
        return headers

    def _proxied(self) -> bool:
        if self._proxy_in_use is None:
            self._proxy_in_use = self._find_proxy()
        return self._proxy_in_use

    def _find_proxy(self) -> bool:
        proxies = urllib.request.getproxies_environment()
        if not (proxies.get(self._scheme) or proxies.get("all")):
            return False
        return not urllib.request.proxy_bypass(self._host)

    def _pipe_ssl_context(self) -> Optional[ssl.SSLContext]:
        if self._scheme != "https":
            return None
        if isinstance(self._verify, ssl.SSLContext):
            return self._verify
        ctx = ssl.create_default_context()
        if self._verify is False:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    @contextmanager
    def _pipeline(self, connections: int) -> Iterator[Optional[Pipeline]]:
        """A pipeline for this thread (kept for reuse), or None where pipelining is off."""
        headers = self._pipe_headers()
        if headers is None:
            yield None
            return
        with self._lock:
            pipe = self._pipes.pop() if self._pipes else None
        if pipe is None:
            pipe = Pipeline(
                host=self._host, port=self._port, host_header=self._netloc,
                ssl_context=self._pipe_ssl_context(), timeout=self.options.timeout,
                retries=self.options.retries, connections=connections,
                depth=self.pipeline_depth, retry_statuses=RETRY_STATUSES,
                max_body=self.max_pipelined_body, base_headers=headers,
            )
        else:
            pipe.connections = connections
            pipe.set_base_headers(headers)
        finished = False
        try:
            if not self._pipelining_checked and not self._check_pipelining(pipe):
                finished = True  # back to the pool, unused
                yield None
                return
            yield pipe
            finished = True
        finally:
            if pipe.degraded and self.options.pipelining:
                with self._lock:  # other threads need not wait for the same stall
                    self.options = replace(self.options, pipelining=False)
            if finished:
                with self._lock:
                    self._pipes.append(pipe)
            else:  # stopped half-way: requests may be in flight
                pipe.close()

    def _check_pipelining(self, pipe: Pipeline) -> bool:
        """Whether answers to pipelined requests match them, checked once per mirror.

        Three requests in one burst on one connection: the mirror root, a name that does not
        exist, the root again. Anything but 207, 404, 207 describing the root means something
        in between (an old proxy) mixes answers up: requests then go one at a time. A proxy
        that stalls instead is caught by the pipeline's timeout.
        """
        probe = self._base_path + ".sstate-mirror-probe-" + secrets.token_hex(6)
        saved, pipe.connections = pipe.connections, 1
        answers: Dict[int, Answer] = {}
        try:
            for tag, target in enumerate((self._base_path, probe, self._base_path)):
                pipe.submit(PipeRequest("PROPFIND", target, (("Depth", "0"),
                                                              *_XML_HEADERS.items()),
                                        PROPFIND_BODY, tag))
            for request, outcome in pipe.results():
                if isinstance(outcome, Failure):
                    raise pipe_error(outcome, "cannot list the mirror root", self.url, None)
                answers[cast(int, request.tag)] = outcome
        finally:
            pipe.connections = saved
        statuses = [answers[i].status_code for i in range(3)]
        mixed = statuses[1] == 207 or any(
            statuses[i] == 207 and not self._names_root(answers[i]) for i in (0, 2))
        if not mixed:
            if statuses == [207, 404, 207]:
                self._pipelining_checked = True
                return True
            # cannot tell yet (no mirror, or one being created right now, no credentials,
            # a busy server): one request at a time for now, and ask again next time
            return False
        with self._lock:
            if self.options.pipelining:
                self.options = replace(self.options, pipelining=False)
                log.warning("%s: answers to pipelined requests did not match them (%s);"
                            " sending one request at a time per connection (as"
                            " --no-pipelining does)", self.url,
                            ", ".join(str(s) for s in statuses))
        return False

    def _names_root(self, answer: Answer) -> bool:
        try:
            items = list(self._multistatus(answer, "", self.max_xml_bytes))
            return len(items) == 1 and self._rel_from_href(items[0].href, "") == "" and (
                items[0].is_collection)
        except BackendError:
            return False

    def _propfind_request(self, rel: str, tag: object) -> PipeRequest:
        # nginx answers 500 to a PROPFIND when an entry goes away while it answers (a clean
        # running meanwhile): asking again is safe, and then gets a consistent answer
        return PipeRequest("PROPFIND", self._target(rel, True),
                           (("Depth", "1"), *_XML_HEADERS.items()), PROPFIND_BODY, tag,
                           retry_also=frozenset({500}))

    def _settle(self, pipe: _Sender, request: PipeRequest, outcome: Optional[Outcome],
                what: str, path: Optional[str]) -> Answer:
        """The answer to a request; a failure becomes the error it means.

        No outcome yet (:class:`_OneByOne`): the request is sent now, through httpx. A
        pipelined 401 while the server has not yet said which scheme it wants is sent again
        through httpx, which answers the challenge; the pipeline then sends the credentials
        too.
        """
        if outcome is None:
            return self._send_now(request, what, path)
        if isinstance(outcome, Failure):
            error = pipe_error(outcome, what, self.url, path)
            error.retried = True
            raise error
        auth = self._client.auth
        if outcome.status_code == 401 and isinstance(auth, ChallengeAuth):
            answer = self._send_now(request, what, path)
            headers = self._pipe_headers()
            if headers is not None and isinstance(pipe, Pipeline):
                pipe.set_base_headers(headers)
            return answer
        return outcome

    def _send_now(self, request: PipeRequest, what: str, path: Optional[str]) -> Answer:
        """A pipeline's request sent through httpx instead, its answer read whole."""
        response = self._send(request.method, self._origin + request.target, what=what,
                              path=path, headers=dict(request.headers),
                              content=request.body or None, idempotent=request.idempotent)
        return Answer(response.status_code, response.reason_phrase,
                      [(k.lower().encode("latin-1"), v.encode("latin-1"))
                       for k, v in response.headers.multi_items()],
                      response.content, retried=response in retries_used)

    # -- interface -----------------------------------------------------------------------

    def check(self, create: bool = False) -> None:
        response = self._propfind("", "0", True)
        if response.status_code == 404 and create:
            response.close()
            self._mkcol_chain(tuple(self._base_segments))
            response = self._propfind("", "0", True)
        if response.status_code == 404:
            response.close()
            raise NotFoundError(
                f"the mirror {self.url} does not exist on the server (404)",
                url=self.url,
                hint="check the URL; an upload creates it",
            )
        found = False
        for item in self._multistatus(response, "", self.max_xml_bytes):
            rel = self._rel_from_href(item.href, "")
            if rel == "":
                found = True
                if not item.is_collection:
                    raise PermanentError(f"{self.url} is a file, not a collection",
                                         url=self.url)
        if not found:
            raise PermanentError(f"{self.url}: the PROPFIND answer does not describe the URL",
                                 url=self.url)
        self._remember_collection(tuple(self._base_segments))

    def server_time(self) -> Optional[float]:
        """The ``Date`` of the answer to a ``PROPFIND`` of the root (any status has one)."""
        response = self._propfind("", "0", True)
        date = response.headers.get("Date")
        response.close()
        return parse_http_date(date) if date else None

    def list(self, prefix: str = "", on_skip: Optional[SkipCallback] = None) -> Iterator[Entry]:
        counts: Dict[str, int] = {}
        for entry in self._list(prefix):
            parent = entry.path.rsplit("/", 1)[0] if "/" in entry.path else ""
            counts[parent] = counts.get(parent, 0) + 1
            yield entry
        # only a listing that ran to its end says how many files each collection holds
        with self._lock:
            rel = prefix.strip("/")
            for key in [k for k in self._file_counts if not rel or k == rel
                        or k.startswith(rel + "/")]:
                del self._file_counts[key]
            self._file_counts.update(counts)

    def _list(self, prefix: str) -> Iterator[Entry]:
        rel = prefix.strip("/")
        if rel:
            check_relative_path(rel)
        if self._infinity is not False:
            response = self._propfind(rel, "infinity", True)
            status = response.status_code
            if status == 207:
                self._infinity = True
                seen = array("q")  # what the answer listed, 8 bytes a file (a hash)
                try:
                    for entry in self._list_infinity(response, rel):
                        seen.append(hash(entry.path))
                        yield entry
                    return
                except TransientError as exc:
                    # Apache cuts the answer short when a collection vanishes during its
                    # walk (a clean running meanwhile): the Depth: 1 walk, whose requests
                    # are each retried, lists the rest
                    log.info("%s: the Depth: infinity listing broke off (%s); walking with"
                             " Depth: 1", self.url, exc)
                listed = set(seen)
                del seen
                for entry in self._walk(rel):
                    if hash(entry.path) not in listed:
                        yield entry
                return
            if status in (400, 403, 409, 412, 501):
                # 403 propfind-finite-depth (Apache, nginx), 400/501 (servers without
                # infinity); if the status meant something else, Depth: 1 says so below.
                response.close()
                log.debug("%s refuses PROPFIND Depth: infinity (%d), walking with Depth: 1",
                          self.url, status)
                self._infinity = False
            elif status == 404:
                response.close()
                if rel:
                    return  # nothing below this prefix
                raise NotFoundError(f"the mirror {self.url} does not exist on the server (404)",
                                    url=self.url, hint="check the URL; an upload creates it")
            else:
                raise no_dav_or(self._fail(response, f"cannot list {rel or self.url}",
                                            rel or None), response, self.url)
        yield from self._walk(rel)

    def _list_infinity(self, response: httpx.Response, rel: str) -> Iterator[Entry]:
        for item in self._multistatus(response, rel, self.max_stream_bytes):
            entry = self._entry(item, rel)
            if entry is not None:
                yield entry

    def _entry(self, item: DavResponse, request_rel: str, path: Optional[str] = None
               ) -> Optional[Entry]:
        """A file entry, or None for collections (remembered as existing)."""
        if path is None:
            path = self._rel_from_href(item.href, request_rel)
        if item.status is not None and not 200 <= item.status < 300:
            raise PermanentError(
                f"{self.url}: the server could not list {path or 'the root'} (status"
                f" {item.status}); the listing would be incomplete",
                url=self.url, path=path or None,
            )
        if item.is_collection:
            self._remember_collection(tuple(self._base_segments + _split(path)))
            return None
        if not path:
            raise PermanentError(f"{self.url} is a file, not a collection", url=self.url)
        if item.size is None or item.mtime is None:
            raise PermanentError(
                f"{self.url}: the server gave no size or no time for {path}",
                url=self.url, path=path,
                hint="the server must return getcontentlength and getlastmodified"
                " (or creationdate) in PROPFIND",
            )
        return Entry(path, item.size, item.mtime)

    def _walk(self, rel: str) -> Iterator[Entry]:
        """Depth: 1 PROPFINDs, several at a time, over the whole tree below ``rel``."""
        with self._pipeline(self.walk_connections) as pipe:
            if pipe is not None:
                yield from self._walk_pipelined(rel, pipe)
                return
        workers = max(1, self.walk_concurrency)
        todo: Deque[str] = deque([rel])
        inflight: Set[Future[Tuple[List[Entry], List[str]]]] = set()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="propfind")
        try:
            while todo or inflight:
                while todo and len(inflight) < 2 * workers:
                    collection = todo.pop()
                    inflight.add(pool.submit(self._list_collection, collection,
                                             collection == rel))
                done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    files, children = future.result()
                    todo.extend(children)
                    yield from files
        finally:
            for future in inflight:
                future.cancel()
            pool.shutdown(wait=True)

    def _walk_pipelined(self, rel: str, pipe: Pipeline) -> Iterator[Entry]:
        pipe.submit(self._propfind_request(rel, rel))
        for request, outcome in pipe.results():
            collection = cast(str, request.tag)
            answer = self._settle(pipe, request, outcome,
                                  f"cannot list {collection or 'the mirror root'}",
                                  collection or None)
            if answer.overflow:  # too big to hold: list this one streamed, on its own
                files, children = self._list_collection(collection, collection == rel)
            else:
                files, children = self._collection(answer, collection, collection == rel)
            for child in children:
                pipe.submit(self._propfind_request(child, child))
            yield from files

    def _list_collection(self, rel: str, is_start: bool) -> Tuple[List[Entry], List[str]]:
        return self._collection(self._propfind(rel, "1", True), rel, is_start)

    def _collection(self, response: AnyResponse, rel: str, is_start: bool
                    ) -> Tuple[List[Entry], List[str]]:
        """The files and child collections a Depth: 1 answer about ``rel`` names."""
        if response.status_code == 404:
            response.close()
            if is_start and not rel:
                raise NotFoundError(f"the mirror {self.url} does not exist on the server (404)",
                                    url=self.url)
            return [], []  # a prefix that is not there, or a collection pruned meanwhile
        files: List[Entry] = []
        children: List[str] = []
        depth = len(_split(rel))
        for item in self._multistatus(response, rel, self.max_xml_bytes):
            path = self._rel_from_href(item.href, rel)
            if len(_split(path)) != depth + 1:
                continue  # the collection itself, or deeper (a server ignoring Depth: 1)
            if item.is_collection:
                self._remember_collection(tuple(self._base_segments + _split(path)))
                children.append(path)
                continue
            entry = self._entry(item, rel, path)
            if entry is not None:
                files.append(entry)
        return files, children

    def stat(self, path: str) -> Optional[Entry]:
        check_relative_path(path)
        response = self._send("HEAD", self._url(path), what=f"cannot stat {path}", path=path,
                              headers={"Accept-Encoding": "identity"})
        response.close()
        status = response.status_code
        if status in (404, 410) or 300 <= status < 400:
            return None  # 3xx: a collection (the server wants a trailing slash)
        if status in (403, 405):
            return self._propfind_entry(path)  # a collection without listing, or no HEAD
        if status != 200:
            raise self._fail(response, f"cannot stat {path}", path)
        length = response.headers.get("Content-Length")
        mtime = parse_http_date(response.headers.get("Last-Modified", ""))
        if length is not None and length.isdigit() and mtime is not None:
            return Entry(path, int(length), mtime)
        return self._propfind_entry(path)

    def _propfind_entry(self, path: str) -> Optional[Entry]:
        response = self._propfind(path, "0", False)
        if response.status_code == 404:
            response.close()
            return None
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        result: Optional[Entry] = None
        for item in self._multistatus(response, parent, self.max_xml_bytes):
            if self._rel_from_href(item.href, parent) == path and not item.is_collection:
                result = self._entry(item, parent)
        return result

    @contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        check_relative_path(path)
        response = self._send("GET", self._url(path), what=f"cannot read {path}", path=path,
                              headers={"Accept-Encoding": "identity"}, stream=True)
        try:
            if response.status_code in (404, 410):
                raise NotFoundError(f"{path} does not exist on {self.url}", url=self.url,
                                    path=path)
            if response.status_code != 200:
                raise self._fail(response, f"cannot read {path}", path)
            yield io.BufferedReader(ResponseReader(response, self.url, path), CHUNK)
        finally:
            response.close()

    # -- writing -------------------------------------------------------------------------

    def put(self, path: str, src: IO[bytes], size: int) -> None:
        check_relative_path(path)
        body = Body(src, size, path)
        parent = tuple(self._base_segments + _split(path)[:-1])
        for attempt in range(PUT_ATTEMPTS):
            self._mkcol_chain(parent)
            try:
                if self._move_supported is False:
                    self._put_direct(path, body)
                else:
                    self._put_atomic(path, body)
                return
            except _ParentVanished:
                # a concurrent clean pruned the collection (and maybe its parents): create
                # them again, after a short pause that lets its pruning pass move on. The
                # 409 (or the MOVE's 404) is about this very collection: forget it, whatever
                # else is remembered, so that the next attempt starts with its MKCOL
                self._forget_collection(parent)
                time.sleep(0.05 * (attempt + 1) * (0.5 + random.random()))  # noqa: S311
                if attempt == PUT_ATTEMPTS - 1 or not body.replayable:
                    # transient: the caller's retry, seconds later, finds the clean's
                    # pruning of this part of the tree over (and re-opens the source)
                    raise TransientError(
                        f"cannot write {path}: its collection keeps disappearing"
                        " (is a clean running at the same time?)", url=self.url, path=path
                    ) from None

    def _put_request(self, target: str, body: Body, what_path: str) -> AnyResponse:
        what = f"cannot upload {what_path}"
        if body.size <= self.max_pipelined_put and self.options.pipelining:
            body.rewind()
            data = b"".join(body)  # in memory: cheaper to send, and any retry can replay it
            return self._request("PUT", self._target(target), what=what, path=what_path,
                                 headers={"Content-Type": "application/octet-stream"},
                                 content=data)
        return self._send(
            "PUT", self._url(target), what=what, path=what_path,
            headers={"Content-Length": str(body.size),
                     "Content-Type": "application/octet-stream"},
            content=body,
        )

    def _put_atomic(self, path: str, body: Body) -> None:
        tmp = new_temp_name(path)
        moved = False
        try:
            response = self._put_request(tmp, body, path)
            response.close()
            if response.status_code == 409:
                raise _ParentVanished()
            if not 200 <= response.status_code < 300:
                raise self._fail(response, f"cannot upload {path}", path)
            response = self._request(
                "MOVE", self._target(tmp), what=f"cannot move {path} into place", path=path,
                headers={"Destination": self._url(path), "Overwrite": "T"}, idempotent=False,
            )
            response.close()
            status = response.status_code
            if status in (200, 201, 204):
                moved = True
                self._move_supported = True
                return
            if status in NO_DAV_STATUSES:
                self._no_move()
                if not body.replayable:
                    raise PermanentError(
                        f"cannot upload {path}: the server does not support MOVE and the"
                        " source cannot be read twice", url=self.url, path=path)
                self._put_direct(path, body)
                return
            if status in (404, 409):
                raise _ParentVanished()
            if status == 502:
                raise PermanentError(
                    f"cannot move {path} into place: the server says 502 Bad Gateway",
                    url=self.url, path=path,
                    hint="a proxy in front of the WebDAV server changes the scheme or host;"
                    " the server must accept Destination headers for the URL used here",
                )
            raise self._fail(response, f"cannot move {path} into place", path)
        finally:
            if not moved:
                self._delete_quietly(tmp)

    def _no_move(self) -> None:
        with self._lock:
            if self._move_supported is not False:
                self._move_supported = False
                self.properties = replace(self.properties, atomic_put=False)
                log.warning(
                    "%s does not support WebDAV MOVE: uploading directly to the final names;"
                    " a reader may see a partly written file while it uploads", self.url)

    def _put_direct(self, path: str, body: Body) -> None:
        response = self._put_request(path, body, path)
        response.close()
        if response.status_code == 409:
            raise _ParentVanished()
        if not 200 <= response.status_code < 300:
            raise self._fail(response, f"cannot upload {path}", path)

    def _delete_quietly(self, rel: str) -> None:
        try:
            self._request("DELETE", self._target(rel), what=f"cannot delete {rel}",
                          path=rel).close()
        except BackendError as exc:
            log.debug("cannot remove temporary %s: %s", rel, exc)

    def _mkcol_chain(self, segments: Tuple[str, ...]) -> None:
        """Make sure the collection exists, creating missing parents (bottom-up on 409).

        A parent this backend created or listed may have been pruned since by a concurrent
        clean: a 409 walks up past what is remembered, and one while creating the chain
        again (a parent pruned a moment after its MKCOL) forgets what is known of that
        subtree and starts over (a few times; a collection that keeps vanishing is an error).
        """
        top = segments[: len(self._base_segments) + 1]
        for _attempt in range(3):
            try:
                self._mkcol_chain_once(segments)
                return
            except _ParentVanished:
                self._forget_collection(top)
        raise PermanentError(
            f"cannot create collection {self._abs_path(segments, True)} on {self._origin}"
            " (409 Conflict: a parent is missing, or keeps disappearing while a clean runs)",
            url=self.url)

    def _mkcol_chain_once(self, segments: Tuple[str, ...]) -> None:
        missing: List[Tuple[str, ...]] = []
        current = segments
        # once a MKCOL answered 409 its parent is missing, whatever this backend remembers
        # of it (a concurrent clean may have pruned it since): walk up asking the server
        while current and (missing or current not in self._known_collections):
            status = self._mkcol(current)
            if status == 409:  # parent missing
                missing.append(current)
                current = current[:-1]
                continue
            self._remember_collection(current)
            break
        for seg in reversed(missing):
            status = self._mkcol(seg)
            if status == 409:
                raise _ParentVanished()
            self._remember_collection(seg)

    def _mkcol(self, segments: Tuple[str, ...]) -> int:
        """MKCOL one collection; 201 created, 405 exists, 409 parent missing."""
        target = self._abs_path(segments, True)
        rel = "/".join(segments)
        response = self._request("MKCOL", target, what=f"cannot create collection {rel}/")
        response.close()
        status = response.status_code
        if status in (200, 201, 204, 405, 409):
            return status
        if 300 <= status < 400:
            return 405  # the collection exists (some servers redirect)
        # Apache answers 403 when another request created it a moment ago: look before failing
        check = self._request("PROPFIND", target, what=f"cannot create collection {rel}/",
                              headers={"Depth": "0", **_XML_HEADERS}, content=PROPFIND_BODY)
        check.close()
        if check.status_code == 207:
            return 405
        raise self._fail(response, f"cannot create collection {rel}/")

    def _remember_collection(self, segments: Tuple[str, ...]) -> None:
        """Note that a collection exists (no MKCOL needed); safe from several threads.

        It is linked below each of its parents, remembered or not, so that forgetting any
        of them forgets it too: another thread may have forgotten a parent (after a 409)
        between this one learning that the collection exists and noting it here.
        """
        with self._lock:
            self._known_collections.add(segments)
            child = segments
            while child:
                siblings = self._known_children.setdefault(child[:-1], set())
                if child in siblings:
                    break
                siblings.add(child)
                child = child[:-1]

    def _forget_collection(self, segments: Tuple[str, ...]) -> None:
        """Forget a deleted collection and every known collection below it."""
        with self._lock:
            if segments:
                self._known_children.get(segments[:-1], set()).discard(segments)
            todo = [segments]
            while todo:
                current = todo.pop()
                self._known_collections.discard(current)
                todo.extend(self._known_children.pop(current, ()))

    # -- deleting ------------------------------------------------------------------------

    def delete(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        failures: Dict[str, BackendError] = {}
        parents: Set[str] = set()
        wanted: List[str] = []
        for path in paths:
            try:
                wanted.append(check_relative_path(path))
            except BackendError as exc:
                failures[path] = exc
        with self._pipeline(self.delete_connections) as pipe:
            sender: _Sender = pipe if pipe is not None else _OneByOne()
            for path in wanted:
                sender.submit(PipeRequest("DELETE", self._target(path), tag=path))
            for request, outcome in sender.results():
                path = cast(str, request.tag)
                try:
                    answer = self._settle(sender, request, outcome, f"cannot delete {path}",
                                          path)
                    if answer.status_code not in _DELETED:
                        raise self._fail(answer, f"cannot delete {path}", path)
                except BackendError as exc:
                    failures[path] = exc
                    continue
                self._deleted_file(path, parents)
            self._prune(parents, sender)
        return failures

    def _deleted_file(self, path: str, parents: Set[str]) -> None:
        if "/" in path:
            parent = path.rsplit("/", 1)[0]
            with self._lock:
                if parent in self._file_counts:
                    self._file_counts[parent] -= 1
            parents.add(parent)

    def _may_be_empty(self, rel_dir: str) -> bool:
        """False when the last listing (or this run) saw files or collections still in it."""
        with self._lock:
            if self._file_counts.get(rel_dir, 0) > 0:
                return False
            return not self._known_children.get(tuple(self._base_segments + _split(rel_dir)))

    def _prune(self, parents: Set[str], pipe: _Sender) -> None:
        """Delete these collections and their parents while empty (never the mirror root),
        one tree level per round.

        WebDAV has no "delete if empty", and DELETE of a collection is recursive: a file
        moved into it between a check and the DELETE would go with it. So a collection is
        first renamed (``MOVE`` to a private name next to it, atomic on the server), then
        the renamed one is checked and deleted: nobody else can write there. Should it hold
        something after all (an upload that landed just before), it is moved back. Uploads
        that come after the rename find the collection gone and create it again.
        Its parent is looked at in the next round, once everything below has had its turn.
        """
        level = {p for p in parents if self._may_be_empty(p)}
        while level:
            with self._pruning(level):
                emptied = self._prune_round(level, pipe)
            level = {p.rsplit("/", 1)[0] for p in emptied if "/" in p}
            level = {p for p in level if self._may_be_empty(p)}

    @contextmanager
    def _pruning(self, collections: Set[str]) -> Iterator[None]:
        """Hold the pruning lock of each top-level collection these are under.

        Renaming a collection while another thread of this process renames (or puts back)
        one inside it would leave that one's files under a private name: within a top-level
        collection, one prune round at a time. Locks are taken in order (no deadlock).
        """
        with self._lock:
            locks = [self._prune_locks.setdefault(top, threading.Lock())
                     for top in sorted({c.split("/", 1)[0] for c in collections})]
        for lock in locks:
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(locks):
                lock.release()

    def _prune_round(self, level: Set[str], pipe: _Sender) -> Set[str]:
        """Prune the collections of one tree level; the ones now gone."""
        for rel_dir in level:
            pipe.submit(self._prune_move(rel_dir))
        emptied: Set[str] = set()
        for request, outcome in pipe.results():
            step, rel_dir, hidden = cast(Tuple[str, str, str], request.tag)
            try:
                answer = self._settle(pipe, request, outcome,
                                      f"cannot remove collection {rel_dir}/", rel_dir)
            except BackendError as exc:  # pruning is tidying up, never a delete failure
                log.debug("not pruning %s: %s", rel_dir, exc)
                if step != "delete" and hidden != rel_dir:
                    self._unhide_quietly(hidden, rel_dir)  # the rename may have happened
                continue
            status = answer.status_code
            if step == "move":
                if status in (404, 410):  # gone already: its parent may be empty
                    self._forget_collection(tuple(self._base_segments + _split(rel_dir)))
                    emptied.add(rel_dir)
                elif status in (201, 204):
                    pipe.submit(self._propfind_request(hidden, ("check", rel_dir, hidden)))
                elif status in NO_DAV_STATUSES:  # no MOVE: check, then delete in place
                    pipe.submit(self._propfind_request(rel_dir, ("check", rel_dir, rel_dir)))
                # else (412, 403...): not pruned
            elif step == "check" and hidden == rel_dir:
                if status == 207 and self._holds_nothing(answer, rel_dir):
                    pipe.submit(PipeRequest("DELETE", self._target(rel_dir, True),
                                            tag=("delete", rel_dir, rel_dir)), first=True)
            elif step == "check":
                if status == 207 and self._holds_nothing(answer, hidden):
                    pipe.submit(PipeRequest("DELETE", self._target(hidden, True),
                                            tag=("delete", rel_dir, hidden)))
                else:
                    self._unhide(hidden, rel_dir)
            elif status in _DELETED:
                self._forget_collection(tuple(self._base_segments + _split(rel_dir)))
                emptied.add(rel_dir)
        return emptied

    def _prune_move(self, rel_dir: str) -> PipeRequest:
        """The MOVE of a collection to a private name next to it, the first step of pruning."""
        parent = rel_dir.rsplit("/", 1)[0] + "/" if "/" in rel_dir else ""
        hidden = f"{parent}.sstate-mirror-prune-{secrets.token_hex(8)}"
        return PipeRequest("MOVE", self._target(rel_dir, True),
                           (("Destination", self._url(hidden, True)), ("Overwrite", "F")),
                           tag=("move", rel_dir, hidden), idempotent=False)

    def _unhide(self, hidden: str, rel_dir: str) -> None:
        """Put back what a pruned collection turned out to hold (one by one: rare).

        Back whole if the name is free; if an upload has created the collection again
        meanwhile, entry by entry, where an entry of the same name already there wins (an
        sstate name says what the file holds). The private collection is deleted only once
        everything in it went back; else it stays, and a warning names it.
        """
        what = f"cannot put back {rel_dir}/"
        response = self._request("MOVE", self._target(hidden, True), what=what,
                                 headers={"Destination": self._url(rel_dir, True),
                                          "Overwrite": "F"}, idempotent=False)
        if response.status_code in (201, 204):
            log.info("%s: %s/ was not empty any more, kept", self.url, rel_dir)
            return
        if response.status_code in (404, 410):
            return  # nothing was hidden (the rename did not happen)
        if response.status_code == 412 and self._merge_back(hidden, rel_dir):
            return
        log.warning("%s: could not put %s/ back in place: its files are in %s/",
                    self.url, rel_dir, hidden)

    def _unhide_quietly(self, hidden: str, rel_dir: str) -> None:
        try:
            self._unhide(hidden, rel_dir)
        except BackendError as exc:
            log.warning("%s: could not put %s/ back in place (%s): its files may be in %s/",
                        self.url, rel_dir, exc, hidden)

    def _merge_back(self, source: str, target: str) -> bool:
        """Move each entry of ``source`` into the existing ``target``; True when all went."""
        listing = self._request("PROPFIND", self._target(source, True),
                                what=f"cannot list {source}/",
                                headers={"Depth": "1", **_XML_HEADERS}, content=PROPFIND_BODY)
        if listing.status_code != 207:
            return False
        entries = [(self._rel_from_href(item.href, source), item.is_collection)
                   for item in self._multistatus(listing, source, self.max_xml_bytes)]
        done = True
        for path, is_collection in entries:
            if path == source:
                continue
            name = path.rsplit("/", 1)[-1]
            answer = self._request(
                "MOVE", self._target(path, is_collection), what=f"cannot put back {name}",
                headers={"Destination": self._url(f"{target}/{name}", is_collection),
                         "Overwrite": "F"}, idempotent=False)
            if answer.status_code in (201, 204):
                continue
            if answer.status_code == 412 and is_collection:
                done = self._merge_back(path, f"{target}/{name}") and done
            elif answer.status_code == 412:  # the same sstate name is there again
                self._delete_quietly(path)
            else:
                done = False
        if done:
            self._request("DELETE", self._target(source, True), what=f"cannot delete {source}/"
                          ).close()
        return done

    def _holds_nothing(self, response: AnyResponse, rel_dir: str) -> bool:
        """Whether a Depth: 1 answer about ``rel_dir`` lists nothing but the collection."""
        try:
            for item in self._multistatus(response, rel_dir, self.max_xml_bytes):
                if self._rel_from_href(item.href, rel_dir) != rel_dir:
                    return False
        except BackendError as exc:
            log.debug("not pruning %s: %s", rel_dir, exc)
            return False
        return True

    # -- touching ------------------------------------------------------------------------

    def touch(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        failures: Dict[str, BackendError] = {}
        for path in paths:
            try:
                check_relative_path(path)
                self._touch_one(path)
            except BackendError as exc:
                failures[path] = exc
        return failures

    def _touch_one(self, path: str) -> None:
        """Refresh one file's time by the method this server honours (found on first use).

        The first touch of a file that is old enough checks that the time really moved:
        some servers accept COPY but keep the source's time (nginx, wsgidav).
        """
        method = self._touch_method
        if method == "none":
            raise PermanentError(
                f"cannot mark {path} as used: {self.url} offers no way to refresh a file's"
                " time without uploading it again", url=self.url, path=path,
                hint="see docs/webdav.md: Apache (COPY) and wsgidav (PROPPATCH with"
                " mutable_live_props) can",
            )
        if method is not None:
            if not self._touch_with(method, path):
                raise PermanentError(f"cannot mark {path} as used: the server refused",
                                     url=self.url, path=path)
            return
        before, server_now = self._stat_with_date(path)
        if before is None:
            raise NotFoundError(f"cannot mark {path} as used: it does not exist",
                                url=self.url, path=path)
        for candidate in ("proppatch", "copy"):
            if not self._touch_with(candidate, path):
                continue
            if before.mtime >= server_now - 5:
                return  # too recent to tell whether the method works; it is fresh anyway
            after, _ = self._stat_with_date(path)
            if after is not None and after.mtime >= server_now - 5:
                self._set_touch_method(candidate)
                return
            log.debug("%s: touch by %s did not change the time", self.url, candidate)
        self._set_touch_method("none")
        self._touch_one(path)

    def _set_touch_method(self, method: str) -> None:
        with self._lock:
            self._touch_method = method
            kind = {"proppatch": "mtime", "copy": "copy", "none": "none"}[method]
            self.properties = replace(self.properties, touch=kind)
        if method == "none":
            log.warning("%s cannot refresh file times without a new upload: objects on this"
                        " mirror cannot be marked as used", self.url)

    def _stat_with_date(self, path: str) -> Tuple[Optional[Entry], float]:
        """The entry (from PROPFIND, the same source a listing uses) and the server's time."""
        response = self._propfind(path, "0", False)
        now = parse_http_date(response.headers.get("Date", "")) or time.time()
        if response.status_code == 404:
            response.close()
            return None, now
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        entry: Optional[Entry] = None
        for item in self._multistatus(response, parent, self.max_xml_bytes):
            if not item.is_collection and self._rel_from_href(item.href, parent) == path:
                entry = self._entry(item, parent)
        return entry, now

    def _touch_with(self, method: str, path: str) -> bool:
        """Apply one touch method; False if the server does not offer it."""
        if method == "proppatch":
            body = proppatch_lastmodified_body(email.utils.formatdate(usegmt=True))
            response = self._request("PROPPATCH", self._target(path),
                                     what=f"cannot touch {path}", path=path,
                                     headers=_XML_HEADERS, content=body)
            if response.status_code == 404:
                response.close()
                raise NotFoundError(f"cannot mark {path} as used: it does not exist",
                                    url=self.url, path=path)
            if response.status_code in NO_DAV_STATUSES or response.status_code in (400, 403,
                                                                                    409):
                response.close()
                return False
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            ok = False
            for item in self._multistatus(response, parent, self.max_xml_bytes):
                ok = item.prop_status is not None and 200 <= item.prop_status < 300
            return ok
        # COPY to a temporary name (a fresh file, so a fresh time), then MOVE it back
        tmp = new_temp_name(path)
        response = self._request(
            "COPY", self._target(path), what=f"cannot touch {path}", path=path,
            headers={"Destination": self._url(tmp), "Overwrite": "T", "Depth": "0"},
        )
        response.close()
        if response.status_code in (404, 410):
            raise NotFoundError(f"cannot mark {path} as used: it does not exist",
                                url=self.url, path=path)
        if response.status_code in NO_DAV_STATUSES:
            return False
        if not 200 <= response.status_code < 300:
            raise self._fail(response, f"cannot touch {path}", path)
        moved = False
        try:
            response = self._request(
                "MOVE", self._target(tmp), what=f"cannot touch {path}", path=path,
                headers={"Destination": self._url(path), "Overwrite": "T"}, idempotent=False,
            )
            response.close()
            if response.status_code in NO_DAV_STATUSES:
                return False
            if not 200 <= response.status_code < 300:
                raise self._fail(response, f"cannot touch {path}", path)
            moved = True
            return True
        finally:
            if not moved:
                self._delete_quietly(tmp)

    def close(self) -> None:
        with self._lock:
            pipes, self._pipes = self._pipes, []
        for pipe in pipes:
            pipe.close()
        self._client.close()


# -- building blocks ---------------------------------------------------------------------


class _Sender(Protocol):
    """What deleting and pruning need of a :class:`Pipeline`."""

    def submit(self, request: PipeRequest, first: bool = False) -> None: ...

    def results(self) -> Iterator[Tuple[PipeRequest, Optional[Outcome]]]: ...


class _OneByOne:
    """A :class:`Pipeline`'s interface for where pipelining is off: deleting and pruning
    run the same code either way. It hands the requests back in order without an outcome;
    :meth:`WebDAVBackend._settle` then sends each through httpx, one at a time."""

    def __init__(self) -> None:
        self._queue: Deque[PipeRequest] = deque()

    def submit(self, request: PipeRequest, first: bool = False) -> None:
        if first:
            self._queue.appendleft(request)
        else:
            self._queue.append(request)

    def results(self) -> Iterator[Tuple[PipeRequest, Optional[Outcome]]]:
        while self._queue:
            yield self._queue.popleft(), None


class _ParentVanished(Exception):
    """A PUT or MOVE found no parent collection (409): create it and try again."""


def _quote(segment: str) -> str:
    """Percent-encode one path segment as bitbake does (``:`` -> ``%3A``, ``+``, spaces...)."""
    if _PLAIN_SEGMENT.fullmatch(segment):
        return segment  # nothing to encode (the hh/ directories), decided cheaply
    return urllib.parse.quote(segment, safe="")


def _split(rel: str) -> List[str]:
    return rel.split("/") if rel else []
