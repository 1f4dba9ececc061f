"""How a WebDAV request is sent: one request API over httpx and the pipeline.

Every request of the backend goes through :meth:`DavTransport._request` (small requests, on
this thread's pipeline connection where pipelining is on, else through httpx),
:meth:`DavTransport._send` (httpx, for streamed answers and large uploads) or a
:class:`~.httppipe.Pipeline` driven by a :class:`Sender` (listings, deletes, pruning). All
of them follow the one retry policy of :mod:`sstate_mirror.retry` and classify failures in
one place (:mod:`.daverrors`). Answers are never decoded (``Accept-Encoding: identity``,
anything else refused) and are read under a size cap before they are parsed
(:mod:`.davxml`). Credentials (:mod:`.davauth`) and TLS are set up here.
"""

from __future__ import annotations

import base64
import os
import secrets
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Deque, Dict, List, Optional, Protocol, Tuple, Union, cast

import httpx

from .. import events
from ..errors import AuthError, BackendError, PermanentError, UsageError
from ..retry import backoff
from .base import Backend, BackendOptions, Properties, redact_url
from .davauth import BearerAuth, ChallengeAuth, netrc_lookup
from .daverrors import (
    RETRIED,
    RETRY_STATUSES,
    AnyResponse,
    no_dav_or,
    pipe_error,
    refuse_encoding,
    translate,
)
from .davio import Body, iter_body, read_bounded
from .davpaths import DavPaths
from .davxml import (
    PROPFIND_BODY,
    DavResponse,
    LimitedReader,
    XMLError,
    iter_multistatus,
    parse_multistatus,
)
from .httppipe import Answer, Failure, Outcome, Pipeline, PipeRequest

XML_HEADERS = {"Content-Type": 'application/xml; charset="utf-8"'}


class DavTransport(Backend):
    """The request layer of :class:`~.webdav.WebDAVBackend` (see the module docstring)."""

    #: Largest PROPFIND answer held for one collection (Depth 0/1) — a hostile server cannot
    #: make us buffer more.
    max_xml_bytes = 512 * 1024 * 1024
    #: Largest streamed Depth: infinity answer (entries are handed on one by one).
    max_stream_bytes = 16 * 1024 * 1024 * 1024
    #: Largest single ``<D:response>`` element.
    max_element_bytes = 1024 * 1024
    #: Requests in flight per pipelined connection.
    pipeline_depth = 32
    #: Largest answer held in memory (pipelined or not); a larger listing is fetched streamed.
    max_pipelined_body = 16 * 1024 * 1024

    def __init__(self, url: str, options: BackendOptions) -> None:
        self.options = options
        # 16 transfers: an upload waits a round trip for each PUT and MOVE, so across a
        # network more connections are faster (2,000 files 10 ms away: 10.3 s with 8, 5.7 s
        # with 16); next to the server it makes no difference
        self.properties = Properties(connections=16, atomic_put=True, delete_batch=64,
                                     touch="copy", touch_cost="size")
        self.paths = DavPaths(url)
        self.url = self.paths.url
        self._lock = threading.Lock()
        self._auth_source = "none"
        #: ``Authorization`` for pipelined requests once basic auth is known to apply
        self._basic_header: Optional[str] = None
        #: idle pipelines, one taken per thread at a time (see :meth:`_pipeline`)
        self._pipes: List[Pipeline] = []
        self._pipelining_checked = False
        #: one thread checks pipelining at a time: the threads of an upload all start at
        #: once, and each would otherwise send the same three probes
        self._check_lock = threading.Lock()
        self._proxy_in_use: Optional[bool] = None
        self._verify = self._make_verify()
        self._client = httpx.Client(
            auth=self._make_auth(self.paths.parts),
            verify=self._verify,
            timeout=httpx.Timeout(options.timeout, connect=options.connect_timeout, pool=None),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=32),
            follow_redirects=False,
            # nothing compressed: a few KiB of zstd can decode to gigabytes before any
            # limit sees them, and a compressed GET is not the file
            headers={"User-Agent": "sstate-mirror", "Accept-Encoding": "identity"},
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
            found = netrc_lookup(self.paths.host)
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
        if self.paths.scheme != "https":
            return True
        if not opts.verify_tls:
            events.warning("TLS certificate verification is OFF for %s: anyone on the path can"
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
    ) -> AnyResponse:
        """One request, retried with backoff on transient failures; any status is returned.

        The caller decides what a status means for its method (404 on DELETE is success,
        405 on MKCOL is "exists"); :func:`translate` turns the rest into errors. A
        ``stream`` answer is the open httpx response (the caller closes it); otherwise the
        body is read, at most ``max_pipelined_body`` bytes, into an :class:`Answer` as a
        pipeline gives it. Nothing is decoded: a compressed answer is refused unread.
        """
        attempt = 0
        while True:
            if isinstance(content, Body):
                content.rewind()
            try:
                request = self._client.build_request(method, url, headers=headers,
                                                     content=content)
                response = self._client.send(request, stream=True)
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
                refused = refuse_encoding(response, what, self.url, path)
                if refused is not None:
                    response.close()
                    raise refused
                exhausted = attempt >= self.options.retries
                if response.status_code not in RETRY_STATUSES or not idempotent or (
                    isinstance(content, Body) and not content.replayable) or exhausted:
                    retried = exhausted and response.status_code in RETRY_STATUSES and (
                        idempotent)
                    if stream:
                        response.extensions[RETRIED] = retried
                        return response
                    return self._read_answer(response, what, path, retried)
                delay = backoff(attempt, response.headers.get("Retry-After"))
                reason = f"status {response.status_code}"
                response.close()
            attempt += 1
            events.retry(f"{method} {redact_url(url)}", reason, attempt, self.options.retries,
                         delay)
            time.sleep(delay)

    def _read_answer(self, response: httpx.Response, what: str, path: Optional[str],
                     retried: bool) -> Answer:
        """A small answer read whole (at most ``max_pipelined_body``), as a pipeline's."""
        try:
            body, overflow = read_bounded(response, self.max_pipelined_body, self.url, what,
                                          path)
        finally:
            response.close()
        return Answer(response.status_code, response.reason_phrase,
                      [(k.lower().encode("latin-1"), v.encode("latin-1"))
                       for k, v in response.headers.multi_items()],
                      body, overflow=overflow, retried=retried)

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
        return self._send(method, self.paths.origin + target, what=what, path=path,
                          headers=headers, content=content, idempotent=idempotent)

    def _fail(self, response: AnyResponse, what: str, path: Optional[str] = None
              ) -> BackendError:
        response.close()
        error = translate(what, url=self.url, path=path, response=response)
        error.retried = (response.retried if isinstance(response, Answer)
                         else bool(response.extensions.get(RETRIED)))
        if response.status_code == 401 and self._client.auth is not None:
            error.hint = ("the server rejected the credentials given (" + self._auth_source
                          + "); check them, or --auth basic|digest")
        return error

    def _propfind(self, rel: str, depth: str, collection: bool,
                  body: bytes = PROPFIND_BODY) -> httpx.Response:
        """A streamed PROPFIND; the caller checks the status and closes the response."""
        return self._stream(
            "PROPFIND",
            self.paths.url_of(rel, collection),
            what=f"cannot list {rel or 'the mirror root'}",
            path=rel or None,
            headers={"Depth": depth, **XML_HEADERS},
            content=body,
        )

    def _stream(self, method: str, url: str, *, what: str, path: Optional[str],
                headers: Dict[str, str], content: Optional[bytes] = None) -> httpx.Response:
        """:meth:`_send` of a request whose answer is read as a stream."""
        response = self._send(method, url, what=what, path=path, headers=headers,
                              content=content, stream=True)
        assert isinstance(response, httpx.Response)
        return response

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

    def _delete_quietly(self, rel: str) -> None:
        try:
            self._request("DELETE", self.paths.target(rel), what=f"cannot delete {rel}",
                          path=rel).close()
        except BackendError as exc:
            events.debug("cannot remove temporary %s: %s", rel, exc)

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
        headers = [("User-Agent", "sstate-mirror"), ("Accept-Encoding", "identity")]
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
        if not (proxies.get(self.paths.scheme) or proxies.get("all")):
            return False
        return not urllib.request.proxy_bypass(self.paths.host)

    def _pipe_ssl_context(self) -> Optional[ssl.SSLContext]:
        if self.paths.scheme != "https":
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
                host=self.paths.host, port=self.paths.port, host_header=self.paths.netloc,
                ssl_context=self._pipe_ssl_context(), timeout=self.options.timeout,
                connect_timeout=self.options.connect_timeout,
                retries=self.options.retries, connections=connections,
                depth=self.pipeline_depth, retry_statuses=RETRY_STATUSES,
                max_body=self.max_pipelined_body, base_headers=headers,
            )
        else:
            pipe.connections = connections
            pipe.set_base_headers(headers)
        finished = False
        try:
            if not self._pipelining_checked and not self._checked_pipelining(pipe):
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

    def _checked_pipelining(self, pipe: Pipeline) -> bool:
        with self._check_lock:
            return self._pipelining_checked or self._check_pipelining(pipe)

    def _check_pipelining(self, pipe: Pipeline) -> bool:
        """Whether answers to pipelined requests match them, checked once per mirror.

        Three requests in one burst on one connection: the mirror root, a name that does not
        exist, the root again. Anything but 207, 404, 207 describing the root means something
        in between (an old proxy) mixes answers up: requests then go one at a time. A proxy
        that stalls instead is caught by the pipeline's timeout.
        """
        probe = self.paths.base_path + ".sstate-mirror-probe-" + secrets.token_hex(6)
        saved, pipe.connections = pipe.connections, 1
        answers: Dict[int, Answer] = {}
        try:
            for tag, target in enumerate((self.paths.base_path, probe, self.paths.base_path)):
                pipe.submit(PipeRequest("PROPFIND", target, (("Depth", "0"),
                                                              *XML_HEADERS.items()),
                                        PROPFIND_BODY, tag))
            for request, outcome in pipe.results():
                if isinstance(outcome, Failure):
                    raise pipe_error(outcome, "cannot list the mirror root", self.url, None)
                refused = refuse_encoding(outcome, "cannot list the mirror root", self.url,
                                          None)
                if refused is not None:
                    raise refused
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
                events.warning("%s: answers to pipelined requests did not match them (%s);"
                            " sending one request at a time per connection (as"
                            " --no-pipelining does)", self.url,
                            ", ".join(str(s) for s in statuses))
        return False

    def _names_root(self, answer: Answer) -> bool:
        try:
            items = list(self._multistatus(answer, "", self.max_xml_bytes))
            return len(items) == 1 and self.paths.rel_from_href(items[0].href, "") == "" and (
                items[0].is_collection)
        except BackendError:
            return False

    def _propfind_request(self, rel: str, tag: object,
                          body: bytes = PROPFIND_BODY) -> PipeRequest:
        # nginx answers 500 to a PROPFIND when an entry goes away while it answers (a clean
        # running meanwhile): asking again is safe, and then gets a consistent answer
        return PipeRequest("PROPFIND", self.paths.target(rel, True),
                           (("Depth", "1"), *XML_HEADERS.items()), body, tag,
                           retry_also=frozenset({500}))

    def _settle(self, pipe: Sender, request: PipeRequest, outcome: Optional[Outcome],
                what: str, path: Optional[str]) -> Answer:
        """The answer to a request; a failure becomes the error it means.

        No outcome yet (:class:`OneByOne`): the request is sent now, through httpx. A
        pipelined 401 while the server has not yet said which scheme it wants is sent again
        through httpx, which answers the challenge; the pipeline then sends the credentials
        too.
        """
        if outcome is None:
            return self._send_now(request, what, path)
        if isinstance(outcome, Failure):
            error = pipe_error(outcome, what, self.url, path)
            # a MOVE that may have been carried out was not sent again: the operation that
            # sent it is retried as a whole (see sstate_mirror.retry)
            error.retried = request.idempotent or not outcome.sent
            raise error
        refused = refuse_encoding(outcome, what, self.url, path)
        if refused is not None:
            raise refused
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
        answer = self._send(request.method, self.paths.origin + request.target, what=what,
                            path=path, headers=dict(request.headers),
                            content=request.body or None, idempotent=request.idempotent)
        assert isinstance(answer, Answer)
        return answer

    def close(self) -> None:
        with self._lock:
            pipes, self._pipes = self._pipes, []
        for pipe in pipes:
            pipe.close()
        self._client.close()


class Sender(Protocol):
    """What deleting and pruning need of a :class:`Pipeline`."""

    def submit(self, request: PipeRequest, first: bool = False) -> None: ...

    def results(self) -> Iterator[Tuple[PipeRequest, Optional[Outcome]]]: ...



class OneByOne:
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

