"""``Properties`` settle once: asked of the server after ``check()`` by the commands that
write, never by the ones that only read, and unchanged afterwards.

The requests are counted from the real servers' access logs (nginx, Apache); the settling
requests are a ``MOVE`` of a temporary name nobody uses at the mirror root and
the ``PROPPATCH`` of the root, which no read of a mirror sends.
"""

from __future__ import annotations

import io
import os
import shutil
import urllib.parse
from pathlib import Path
from typing import List

import pytest

from mirrors import Mirror, make_mirror
from runcli import run_json
from sstate_mirror.backends.webdav import WebDAVBackend
from webdav_servers import DavServer, settle_probe

pytestmark = pytest.mark.server
DAY = 86400


def _methods_since(server: DavServer, url: str, before: int) -> List[str]:
    """``METHOD URI`` of each request about the mirror at ``url`` since the ``before``-th."""
    prefix = urllib.parse.urlsplit(url).path
    return [" ".join(line.split(" ")[:2]) for line in server.requests()[before:]
            if line.split(" ", 2)[1].startswith(prefix)]


def _settling(requests: List[str], url: str) -> List[str]:
    """The requests that settle properties: a ``MOVE`` of a temporary name at the root
    (``.sstate-mirror-HEX.tmp``, which nothing else sends there), a ``PROPPATCH``."""
    probe = settle_probe(url)
    return [r for r in requests if r.startswith("PROPPATCH ")
            or (r.startswith("MOVE ") and probe.fullmatch(r.split(" ", 1)[1]))]


@pytest.mark.parametrize(("server", "location", "touch", "atomic_put"), [
    ("apache", "open", "copy", True), ("wsgidav", "open", "mtime", True),
    ("nginx", "open", "none", True), ("nginx", "nomove", "none", False)])
def test_properties_settle_once_and_never_change(
        request: pytest.FixtureRequest, server: str, location: str, touch: str,
        atomic_put: bool) -> None:
    srv: DavServer = request.getfixturevalue(f"{server}_server")
    m = srv.mirror(location)
    with WebDAVBackend(m.url, m.options) as b:
        b.check()
        b.settle()
        settled = b.properties
        assert (settled.touch, settled.atomic_put) == (touch, atomic_put)
        assert settled.touch_cost == ("flat" if touch == "mtime" else "size")
        assert os.listdir(m.root) == []  # asking wrote nothing
        before = len(srv.requests()) if server != "wsgidav" else 0
        b.settle()  # once: asking again sends nothing
        if server != "wsgidav":
            assert _methods_since(srv, m.url, before) == []
        # whatever the writes meet afterwards, the properties stay what was settled
        for name in ("aa/bb/f", "aa/bb/g"):
            b.put(name, io.BytesIO(b"payload"), 7)
            m.backdate(name, 3 * DAY)
        failures = b.touch(["aa/bb/f", "aa/bb/g", "aa/bb/missing"])
        assert "aa/bb/missing" in failures
        assert bool(set(failures) - {"aa/bb/missing"}) is (touch == "none")
        assert b.delete(["aa/bb/f"]) == {}
        assert b.properties == settled


@pytest.mark.parametrize("kind", ["dav-apache", "dav-nginx"])
def test_read_only_commands_send_no_settling_requests(
        request: pytest.FixtureRequest, kind: str, oe_cache_a: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    m: Mirror = make_mirror(request, kind)
    srv: DavServer = request.getfixturevalue(kind.replace("dav-", "") + "_server")
    cache = tmp_path / "cache"
    shutil.copytree(oe_cache_a, cache)
    for d, _, _ in os.walk(cache):
        os.chmod(d, 0o755)

    def requests_of(*argv: str) -> List[str]:
        before = len(srv.requests())
        code, _, err = run_json(capsys, *argv, *m.cli_args)
        assert code in (0, 1), err
        return _methods_since(srv, m.url, before)

    # a writing command asks once, before it plans
    upload = requests_of("upload", str(cache), m.url)
    assert len([r for r in _settling(upload, m.url) if r.startswith("MOVE ")]) == 1, upload
    m.age_all(40 * DAY)
    for argv in (["info", m.url], ["verify", "--all", m.url],
                 ["upload", "--dry-run", str(cache), m.url],
                 ["touch", "--dry-run", str(cache), m.url],
                 ["clean", "--dry-run", "--max-age", "30d", m.url]):
        sent = requests_of(*argv)
        assert sent, argv
        assert _settling(sent, m.url) == [], (argv, sent)
    touch = requests_of("touch", str(cache), m.url)
    assert len([r for r in _settling(touch, m.url) if r.startswith("MOVE ")]) == 1, touch
