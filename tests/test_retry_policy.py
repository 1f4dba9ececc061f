"""One retry policy: a request whose connection is reset once is retried, whatever it is.

Every WebDAV request goes through one request API, pipelined or not, with one error
classification and one retry rule (``sstate_mirror.retry``). The faults are injected on the
wire (:mod:`faultproxy`) in front of a real nginx; the real command line runs with ``-v``,
which shows each retry as one line on stderr.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import List

import pytest

from faultproxy import Fault, Request
from test_faults import ZETA, Proxied, _proxied, assert_no_partial_file, run, zeta_files

DAY = 86400


@pytest.fixture
def nginx_proxied(request: pytest.FixtureRequest) -> Iterator[Proxied]:
    yield from _proxied(request, "dav-nginx")


def _retry_lines(err: str) -> List[str]:
    return [line for line in err.splitlines() if re.search(r"\bretry \d+/\d+\b", line)]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "plain"])
@pytest.mark.parametrize(("method", "fault"), [
    ("MOVE", "reset"), ("PUT", "reset"), ("MKCOL", "reset"), ("PROPFIND", "reset"),
    ("DELETE", "reset"),
    ("MOVE", "answer lost"),  # carried out by the server, the answer cut: a second MOVE
])
def test_a_request_whose_connection_is_reset_once_is_retried(
        nginx_proxied: Proxied, method: str, fault: str, pipelining: bool,
        oe_cache_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A reset before the request reaches the server, or (``answer lost``) a connection
    closed after the server carried the request out but before its answer: either way the
    request, or the operation that sent it, is tried again, and the command succeeds."""
    p = nginx_proxied
    action = Fault("cut", after_bytes=0) if fault == "answer lost" else Fault(
        "reset", after_bytes=-1)
    flags = [] if pipelining else ["--no-pipelining"]
    upload = ["upload", str(oe_cache_a), p.url, *ZETA, "--no-touch", "-j", "2", *flags]

    def reset_me(r: Request) -> bool:
        return r.method == method and (method != "PROPFIND" or r.headers.get("depth") == "1")

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
