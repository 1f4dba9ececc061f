"""One retry policy: a request whose connection is reset once is retried, whatever it is.

Every WebDAV request goes through one request API, pipelined or not, with one error
classification and one retry rule (``sstate_mirror.retry``). The faults are injected on the
wire (:mod:`faultproxy`) in front of a real nginx; the real command line runs with ``-v``,
which shows each retry as one line on stderr.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import List

import pytest

from faultproxy import Fault, FaultProxy, Request
from test_faults import ZETA, Proxied, _proxied, assert_no_partial_file, run, zeta_files
from webdav_servers import DavServer

DAY = 86400


@pytest.fixture
def dav_proxied(request: pytest.FixtureRequest) -> Iterator[Proxied]:
    """nginx behind the fault proxy; Apache for MKCOL, which an upload to nginx does not send
    (nginx creates a PUT's missing collections itself, and the upload learns that)."""
    method = getattr(getattr(request.node, "callspec", None), "params", {}).get("method")
    yield from _proxied(request, "dav-apache" if method == "MKCOL" else "dav-nginx")


def _retry_lines(err: str) -> List[str]:
    return [line for line in err.splitlines() if re.search(r"\bretry \d+/\d+\b", line)]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "plain"])
@pytest.mark.parametrize(("method", "fault"), [
    ("MOVE", "reset"), ("PUT", "reset"), ("MKCOL", "reset"), ("PROPFIND", "reset"),
    ("DELETE", "reset"),
    ("MOVE", "answer lost"),  # carried out by the server, the answer cut: a second MOVE
])
def test_a_request_whose_connection_is_reset_once_is_retried(
        dav_proxied: Proxied, method: str, fault: str, pipelining: bool,
        oe_cache_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A reset before the request reaches the server, or (``answer lost``) a connection
    closed after the server carried the request out but before its answer: either way the
    request, or the operation that sent it, is tried again, and the command succeeds."""
    p = dav_proxied
    action = Fault("cut", after_bytes=0) if fault == "answer lost" else Fault(
        "reset", after_bytes=-1)
    flags = [] if pipelining else ["--no-pipelining"]
    upload = ["upload", str(oe_cache_a), p.url, *ZETA, "--no-touch", "-j", "2", *flags]

    root = urllib.parse.urlsplit(p.url).path

    def reset_me(r: Request) -> bool:
        # a file's MOVE, not the one at the root that asks whether the server has MOVE
        at_root = "/" not in r.path[len(root):]
        return r.method == method and (method != "PROPFIND" or r.headers.get("depth") == "1") \
            and (method != "MOVE" or not at_root)

    if method == "DELETE":
        code, _, err = run(capsys, *upload)
        assert code == 0, err
        p.mirror.age_all(40 * DAY)
        action.match, action.times = reset_me, 1
        p.proxy.add(action)
        code, _, err = run(capsys, "-v", "clean", "--max-age", "30d", p.url, *flags)
        assert code == 0, err
        assert p.mirror.sizes() == {}
    else:
        action.match, action.times = reset_me, 1
        p.proxy.add(action)
        code, _, err = run(capsys, "-v", *upload)
        assert code == 0, err
        sizes = assert_no_partial_file(p.mirror, oe_cache_a, temp_may_remain=True)
        assert set(sizes) == set(zeta_files(oe_cache_a))
    assert p.proxy.count(lambda r: r.fault is not None) == 1
    lines = _retry_lines(err)
    assert len(lines) == 1, (err, [(r.method, r.path[-20:], r.fault) for r in p.proxy.seen()])
    assert "retry 1/" in lines[0] and "\n" not in lines[0]


class _Silent:
    """A server that accepts connections, reads what it is sent and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: List[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)  # kept open, never answered

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[_Silent]:
    server = _Silent()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["webdav", "s3"])
def test_a_server_that_never_answers_is_named_and_each_retry_shown(
        silent: _Silent, kind: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
                        "AWS_CONFIG_FILE": os.devnull,
                        "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    if kind == "webdav":
        target = [f"http://127.0.0.1:{silent.port}/m/"]
    else:
        target = ["s3://bucket/m", "--endpoint-url", f"http://127.0.0.1:{silent.port}"]
    code, _, err = run(capsys, "info", "--no-netrc", "--timeout", "0.5", "--retries", "1",
                       *target)
    assert code == 3, err
    assert "no answer from the server" in err, err
    assert "--timeout" in err  # the hint says what to change if the server is only slow
    assert len(_retry_lines(err)) == 1, err  # botocore's own retry of S3 is shown too


def test_the_threads_of_an_upload_check_pipelining_once(
        wsgidav_server: DavServer, oe_cache_a: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """wsgidav lists with one Depth: infinity request, so pipelining is first needed by the
    upload's threads, which all start at once: one of them checks it, the others wait."""
    m = wsgidav_server.mirror("open")
    port = urllib.parse.urlsplit(m.url).port
    with FaultProxy(port) as proxy:
        url = m.url.replace(f":{port}/", f":{proxy.port}/")
        code, _, err = run(capsys, "upload", "--no-netrc", str(oe_cache_a), url, "--no-touch",
                           "-j", "8")
        assert code == 0, err
        infinity = proxy.seen(lambda r: r.headers.get("depth") == "infinity")
        # the mirror's listing, and the two of the cleans' leases (before and after sending)
        assert sum(1 for r in infinity if "/.sstate-mirror/" not in r.path) == 1
        assert sum(1 for r in infinity if "/.sstate-mirror/cleans" in r.path) == 2
        assert proxy.count(lambda r: ".sstate-mirror-probe-" in r.path) == 1
