"""The pipelined HTTP/1.1 loop against a scriptable server on 127.0.0.1.

Real WebDAV servers run it in the backend suites; here a small server of our own does what
real servers and proxies do at the edges: close after N answers (announced or not), cut a
connection half-way, stall on pipelined requests, answer 503, send garbage or huge bodies.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from sstate_mirror.backends import open_backend
from sstate_mirror.backends.base import BackendOptions
from sstate_mirror.backends.httppipe import Answer, Failure, Pipeline, PipeRequest

#: (connection number, answers given on it, method, target) -> raw answer, or None to hang up
Script = Callable[[int, int, str, str], Optional[bytes]]


def ok(body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


class ScriptedServer:
    """Reads pipelined requests and answers each as ``script`` says, in order."""

    def __init__(self, script: Script, *, stall: bool = False, desync: bool = False,
                 echo_first: bool = False) -> None:
        self.script = script
        # ``echo_first``: every request of a burst gets the answer to the first one
        self.echo_first = echo_first
        # broken proxies: ``stall`` answers the first request of a burst, then nothing more
        # on that connection; ``desync`` drops the rest of the burst and answers later ones
        self.stall = stall
        self.desync = desync
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: List[Tuple[int, str, str]] = []
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                number = self.connections
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buf = b""
        answered = 0
        stalled = False
        first: Optional[bytes] = None
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if stalled:
                    continue
                buf += data
                first = None
                while b"\r\n\r\n" in buf:
                    head, rest = buf.split(b"\r\n\r\n", 1)
                    lines = head.decode("latin-1").split("\r\n")
                    method, target, _ = lines[0].split(" ")
                    headers = dict(line.split(": ", 1) for line in lines[1:])
                    length = int(headers.get("Content-Length", "0"))
                    if len(rest) < length:
                        break
                    buf = rest[length:]
                    with self._lock:
                        self.requests.append((number, method, target))
                    answer = self.script(number, answered, method, target)
                    if self.echo_first:
                        first = answer = first or answer
                    if answer is None:
                        _lingering_close(conn)  # hang up without a word
                        return
                    answered += 1
                    try:
                        conn.sendall(answer)
                    except OSError:
                        return
                    if b"Connection: close" in answer.split(b"\r\n\r\n")[0]:
                        _lingering_close(conn)
                        return
                    if (self.stall or self.desync) and buf:
                        stalled = self.stall
                        buf = b""
                        break

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def _lingering_close(conn: socket.socket) -> None:
    """Close as real servers do: stop writing, then read what the client still sends, so
    that the kernel does not answer unread requests with a reset that destroys the answers
    in flight (Apache's lingering close, nginx's ``lingering_close``)."""
    conn.shutdown(socket.SHUT_WR)
    conn.settimeout(2)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    servers: List[ScriptedServer] = []

    def start(script: Script, **kwargs: bool) -> ScriptedServer:
        server = ScriptedServer(script, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def pipeline(port: int, **kwargs: object) -> Pipeline:
    options: Dict[str, object] = dict(host="127.0.0.1", port=port,
                                      host_header=f"127.0.0.1:{port}", ssl_context=None,
                                      timeout=5.0, retries=3, connections=2, depth=8,
                                      retry_statuses=(429, 503))
    options.update(kwargs)
    return Pipeline(**options)  # type: ignore[arg-type]


def run(pipe: Pipeline, targets: List[str], method: str = "DELETE"
        ) -> Dict[str, object]:
    for target in targets:
        pipe.submit(PipeRequest(method, target, tag=target))
    return {str(request.tag): outcome for request, outcome in pipe.results()}


def echo(_conn: int, _n: int, _method: str, target: str) -> bytes:
    return ok(target.encode())


def targets(n: int) -> List[str]:
    return [f"/m/{i:03d}" for i in range(n)]


def bodies(outcomes: Dict[str, object]) -> Dict[str, bytes]:
    out = {}
    for tag, outcome in outcomes.items():
        assert isinstance(outcome, Answer), (tag, outcome)
        out[tag] = outcome.body
    return out


def test_answers_come_back_to_their_requests(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(echo)
    pipe = pipeline(server.port)
    wanted = targets(200)
    assert bodies(run(pipe, wanted)) == {t: t.encode() for t in wanted}
    assert server.connections == 2  # every request on the two connections, none re-sent
    assert len(server.requests) == 200
    # the pipeline is reused: a second run goes over the same connections
    assert bodies(run(pipe, wanted[:10])) == {t: t.encode() for t in wanted[:10]}
    assert server.connections == 2
    pipe.close()


def test_requests_submitted_while_iterating(serve: Callable[..., ScriptedServer]) -> None:
    """A walk submits the children of each answer: they are sent on the same connections."""
    server = serve(echo)
    pipe = pipeline(server.port)
    pipe.submit(PipeRequest("PROPFIND", "/m/", body=b"<x/>", tag=0))
    seen = []
    for request, outcome in pipe.results():
        level = int(str(request.tag))
        assert isinstance(outcome, Answer)
        seen.append(outcome.body.decode())
        if level < 3:
            for i in range(3):
                pipe.submit(PipeRequest("PROPFIND", f"{request.target}{i}/", body=b"<x/>",
                                        tag=level + 1))
    assert len(seen) == 1 + 3 + 9 + 27
    assert "/m/2/1/0/" in seen
    pipe.close()


def test_chunked_answers_and_headers(serve: Callable[..., ScriptedServer]) -> None:
    def chunked(_c: int, _n: int, _m: str, target: str) -> bytes:
        return (b"HTTP/1.1 207 Multi-Status\r\nTransfer-Encoding: chunked\r\n"
                b"X-Thing: yes\r\n\r\n3\r\nabc\r\n" + f"{len(target):x}\r\n".encode()
                + target.encode() + b"\r\n0\r\n\r\n")

    server = serve(chunked)
    outcomes = run(pipeline(server.port), targets(20), method="PROPFIND")
    for target, outcome in outcomes.items():
        assert isinstance(outcome, Answer)
        assert outcome.status_code == 207 and outcome.reason_phrase == "Multi-Status"
        assert outcome.body == b"abc" + target.encode()
        assert outcome.headers.get("x-thing") == "yes"
        assert outcome.headers.get("X-Missing") is None


def test_server_closing_after_n_answers_is_learnt(serve: Callable[..., ScriptedServer]
                                                  ) -> None:
    """Like Apache's MaxKeepAliveRequests: the unanswered rest is re-sent, nothing fails,
    and after the first close no more than N requests go on a connection."""
    def limited(_c: int, n: int, _m: str, target: str) -> bytes:
        return ok(target.encode(), "Connection: close\r\n" if n == 9 else "")

    server = serve(limited)
    pipe = pipeline(server.port, connections=1, depth=32)
    wanted = targets(100)
    assert bodies(run(pipe, wanted)) == {t: t.encode() for t in wanted}
    assert server.connections == 10
    # at most one window was sent in vain, on the first connection only
    assert len(server.requests) <= 100 + 32


def test_connection_cut_without_notice_is_retried(serve: Callable[..., ScriptedServer]
                                                  ) -> None:
    def flaky(conn: int, n: int, _m: str, target: str) -> Optional[bytes]:
        if conn < 3 and n == 5:
            return None  # hang up half-way through the pipeline
        return ok(target.encode())

    server = serve(flaky)
    pipe = pipeline(server.port, connections=1, depth=16)
    wanted = targets(60)
    assert bodies(run(pipe, wanted)) == {t: t.encode() for t in wanted}
    assert server.connections >= 4


def test_a_request_that_always_kills_the_connection_fails(
        serve: Callable[..., ScriptedServer]) -> None:
    def poison(_c: int, _n: int, _m: str, target: str) -> Optional[bytes]:
        return None if target == "/m/007" else ok(target.encode())

    server = serve(poison)
    pipe = pipeline(server.port, retries=2, depth=4)
    outcomes = run(pipe, targets(20))
    failure = outcomes.pop("/m/007")
    assert isinstance(failure, Failure) and failure.kind == "network"
    assert bodies(outcomes) == {t: t.encode() for t in targets(20) if t != "/m/007"}
    assert [r for r in server.requests if r[2] == "/m/007"].__len__() == 3  # 1 + 2 retries


def test_stalling_on_pipelined_requests_falls_back_to_one_at_a_time(
        serve: Callable[..., ScriptedServer], caplog: pytest.LogCaptureFixture) -> None:
    """A proxy that answers the first request of a burst and drops the rest."""
    server = serve(echo, stall=True)
    pipe = pipeline(server.port, timeout=0.5, connections=1, depth=8)
    with caplog.at_level(logging.WARNING):
        outcomes = run(pipe, targets(12))
    assert bodies(outcomes) == {t: t.encode() for t in targets(12)}
    assert "one request at a time" in caplog.text


def test_retry_statuses_are_retried_then_returned(serve: Callable[..., ScriptedServer]
                                                  ) -> None:
    tries: Dict[str, int] = {}

    def busy(_c: int, _n: int, _m: str, target: str) -> bytes:
        tries[target] = tries.get(target, 0) + 1
        if target == "/m/always" or tries[target] <= 2:
            return b"HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n"
        return ok(b"fine")

    server = serve(busy)
    outcomes = run(pipeline(server.port, retries=3), ["/m/a", "/m/b", "/m/always"])
    for target in ("/m/a", "/m/b"):
        answer = outcomes[target]
        assert isinstance(answer, Answer) and answer.status_code == 200
        assert tries[target] == 3
    last = outcomes["/m/always"]
    assert isinstance(last, Answer) and last.status_code == 503 and last.retried
    assert tries["/m/always"] == 4


def test_refused_connection_fails_every_request(dead_port: int) -> None:
    pipe = pipeline(dead_port, retries=1)
    outcomes = run(pipe, targets(5))
    assert set(outcomes) == set(targets(5))
    for outcome in outcomes.values():
        assert isinstance(outcome, Failure) and "cannot connect" in outcome.reason


def test_garbage_is_a_failure_not_a_crash(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(lambda _c, _n, _m, _t: b"SPDY/9 what\r\n\r\n")
    outcomes = run(pipeline(server.port, retries=1), targets(3))
    for outcome in outcomes.values():
        assert isinstance(outcome, Failure) and "invalid HTTP answer" in outcome.reason


def test_a_body_over_the_limit_is_cut_and_flagged(serve: Callable[..., ScriptedServer]
                                                  ) -> None:
    def big(_c: int, _n: int, _m: str, target: str) -> bytes:
        return ok(b"x" * 5000 if target.endswith("1") else target.encode())

    server = serve(big)
    outcomes = run(pipeline(server.port, max_body=1000, connections=1), targets(3))
    cut = outcomes["/m/001"]
    assert isinstance(cut, Answer) and cut.overflow and len(cut.body) <= 1000
    for target in ("/m/000", "/m/002"):  # the answers around it are intact
        answer = outcomes[target]
        assert isinstance(answer, Answer) and not answer.overflow
        assert answer.body == target.encode()


def test_headers_cannot_be_smuggled() -> None:
    pipe = pipeline(1)
    with pytest.raises(ValueError):
        pipe.set_base_headers([("X-A", "b\r\nX-Evil: 1")])


ROOT_ANSWER = (b'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response>'
               b"<D:href>/m/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/>"
               b"</D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
               b"</D:response></D:multistatus>")


def dav(_c: int, _n: int, method: str, target: str) -> bytes:
    """A WebDAV server holding an empty mirror /m/: it exists, nothing else does."""
    if method == "PROPFIND" and target == "/m/":
        return (b"HTTP/1.1 207 Multi-Status\r\nContent-Length: %d\r\n\r\n"
                % len(ROOT_ANSWER) + ROOT_ANSWER)
    return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def test_a_mirror_behind_something_that_stalls_is_no_longer_pipelined(
        serve: Callable[..., ScriptedServer], caplog: pytest.LogCaptureFixture) -> None:
    """The first stall costs one --timeout; later jobs, on any thread, go one by one."""
    server = serve(dav, stall=True)
    backend = open_backend(f"http://127.0.0.1:{server.port}/m/",
                           BackendOptions(retries=1, timeout=1))
    with caplog.at_level(logging.WARNING):
        assert backend.delete(["00/ab/x.siginfo"]) == {}
    assert "one request at a time" in caplog.text
    assert backend.options.pipelining is False  # type: ignore[attr-defined]
    before = len(server.requests)
    assert backend.delete([f"00/ab/{i}.siginfo" for i in range(10)]) == {}
    # one by one, nothing stalls: each request sent once (a stalled one would time out
    # and be sent again)
    later = [target for _, method, target in server.requests[before:] if method == "DELETE"]
    assert sorted(later) == sorted(set(later)) and len(later) == 10
    backend.close()


def test_a_mirror_behind_something_that_mixes_answers_up_is_not_pipelined(
        serve: Callable[..., ScriptedServer], caplog: pytest.LogCaptureFixture) -> None:
    """Before the first pipelined job, a burst of three requests with known answers (207,
    404, 207) must come back as such; here a "proxy" repeats the first answer."""
    server = serve(dav, echo_first=True)
    backend = open_backend(f"http://127.0.0.1:{server.port}/m/", BackendOptions(retries=0))
    with caplog.at_level(logging.WARNING):
        assert list(backend.list()) == []
        assert backend.delete(["00/ab/x.siginfo"]) == {}  # 404: already gone
    assert "did not match" in caplog.text
    assert backend.options.pipelining is False  # type: ignore[attr-defined]
    backend.close()
    # a server that answers properly is pipelined
    good = serve(dav)
    backend = open_backend(f"http://127.0.0.1:{good.port}/m/", BackendOptions(retries=0))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert backend.delete([f"00/ab/{i}.siginfo" for i in range(20)]) == {}
    assert "did not match" not in caplog.text
    assert backend.options.pipelining is True  # type: ignore[attr-defined]
    assert good.connections <= 2
    backend.close()


def test_a_request_that_must_not_be_repeated_fails_instead(
        serve: Callable[..., ScriptedServer]) -> None:
    """A MOVE may have been carried out when the connection broke before its answer: it is
    reported failed (the caller starts over), never sent twice."""
    def cut(conn: int, _n: int, _m: str, target: str) -> Optional[bytes]:
        return None if conn == 0 and target == "/m/move" else ok(target.encode())

    server = serve(cut)
    pipe = pipeline(server.port, connections=1)
    pipe.submit(PipeRequest("PUT", "/m/tmp", body=b"data", tag="put"))
    pipe.submit(PipeRequest("MOVE", "/m/move", tag="move", idempotent=False))
    pipe.submit(PipeRequest("DELETE", "/m/after", tag="after"))
    outcomes = {request.tag: outcome for request, outcome in pipe.results()}
    assert isinstance(outcomes["put"], Answer)
    assert isinstance(outcomes["move"], Failure)
    assert isinstance(outcomes["after"], Answer)  # idempotent: sent again
    assert [r[2] for r in server.requests].count("/m/move") == 1


def test_a_limit_learnt_on_one_connection_does_not_block_the_next_run(
        serve: Callable[..., ScriptedServer]) -> None:
    """After the limit is learnt, a kept connection that reached it is replaced, not
    waited on (the server does not close a connection that is merely idle)."""
    def limited(conn: int, n: int, _m: str, target: str) -> bytes:
        # the first connection closes after 2 answers; the others never close
        return ok(target.encode(), "Connection: close\r\n" if conn == 0 and n == 1 else "")

    server = serve(limited)
    # waiting on the kept connection would cost the whole timeout: a bound far below it
    # and far above any real answer time, so that load cannot fail the test
    pipe = pipeline(server.port, connections=1, depth=1, timeout=30)
    for round_ in range(4):
        started = time.monotonic()
        assert bodies(run(pipe, [f"/m/{round_}"])) == {f"/m/{round_}": f"/m/{round_}".encode()}
        assert time.monotonic() - started < 15


def test_an_error_that_closes_the_connection_is_not_a_limit(
        serve: Callable[..., ScriptedServer]) -> None:
    def failing_once(conn: int, _n: int, _m: str, target: str) -> bytes:
        if conn == 0:
            return b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        return ok(target.encode())

    server = serve(failing_once)
    pipe = pipeline(server.port, connections=1, depth=8)
    outcomes = run(pipe, targets(1))
    assert isinstance(outcomes["/m/000"], Answer) and outcomes["/m/000"].status_code == 500
    assert bodies(run(pipe, targets(16))) == {t: t.encode() for t in targets(16)}
    assert server.connections == 2  # all 16 pipelined on one new connection


@pytest.mark.parametrize("statuses, verdict", [
    ((207, 404, 207), "pipelined"),
    ((404, 404, 404), "not yet"),  # no mirror yet
    ((404, 404, 207), "not yet"),  # the mirror was created between the requests
    ((401, 401, 401), "not yet"),  # credentials not asked for yet
    ((207, 503, 207), "not yet"),
    ((207, 207, 207), "mixed up"),  # the answer to the first request, three times
    ((404, 207, 404), "mixed up"),
])
def test_the_burst_check_tells_mixed_answers_from_a_changing_mirror(
        serve: Callable[..., ScriptedServer], statuses: Tuple[int, int, int],
        verdict: str) -> None:
    seen = iter(statuses)

    def scripted(_c: int, _n: int, method: str, target: str) -> bytes:
        status = next(seen, 207 if target == "/m/" else 404)
        if status == 207:
            return dav(0, 0, "PROPFIND", "/m/")
        return b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status

    server = serve(scripted)
    backend = open_backend(f"http://127.0.0.1:{server.port}/m/", BackendOptions(retries=0))
    with backend._pipeline(1) as pipe:  # type: ignore[attr-defined]
        used = pipe is not None
    expected = {"pipelined": (True, True, True), "not yet": (False, False, True),
                "mixed up": (False, False, False)}[verdict]
    assert (used, backend._pipelining_checked,  # type: ignore[attr-defined]
            backend.options.pipelining) == expected  # type: ignore[attr-defined]
    backend.close()


def test_a_request_may_retry_more_statuses_than_the_pipeline(
        serve: Callable[..., ScriptedServer]) -> None:
    """nginx answers 500 to a PROPFIND whose directory changes while it answers: a walk's
    PROPFIND asks again, a DELETE takes the 500 as it is."""
    tries: Dict[str, int] = {}

    def flaky(_c: int, _n: int, _m: str, target: str) -> bytes:
        tries[target] = tries.get(target, 0) + 1
        if tries[target] == 1:
            return b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"
        return ok(target.encode())

    server = serve(flaky)
    pipe = pipeline(server.port)
    pipe.submit(PipeRequest("PROPFIND", "/m/a/", body=b"<x/>", tag="walk",
                            retry_also=frozenset({500})))
    pipe.submit(PipeRequest("DELETE", "/m/b", tag="delete"))
    outcomes = {request.tag: outcome for request, outcome in pipe.results()}
    walk, delete = outcomes["walk"], outcomes["delete"]
    assert isinstance(walk, Answer) and walk.status_code == 200 and tries["/m/a/"] == 2
    assert isinstance(delete, Answer) and delete.status_code == 500 and tries["/m/b"] == 1


def test_submit_first_goes_ahead_of_what_waits(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(echo)
    pipe = pipeline(server.port, connections=1, depth=1)
    for target in targets(3):
        pipe.submit(PipeRequest("DELETE", target, tag=target))
    order = []
    for request, _outcome in pipe.results():
        order.append(request.tag)
        if request.tag == "/m/000":
            pipe.submit(PipeRequest("DELETE", "/m/now", tag="/m/now"), first=True)
    assert order == ["/m/000", "/m/now", "/m/001", "/m/002"]
    assert [r[2] for r in server.requests] == order
