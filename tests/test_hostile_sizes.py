"""A server whose listing announces sizes that its answers do not have.

Sizes that are not numbers or are negative are refused by the PROPFIND parser (see
test_backend_webdav.py). What is left is a plausible but false size: the listing says one
thing, the body another. Commands trust a listing for planning (documented in
docs/reliability.md); ``verify`` reads and must name the difference instead of crashing.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from sstate_mirror.cli import main


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _multistatus(files: Dict[str, Tuple[int, bytes]]) -> bytes:
    rows = ['<D:response><D:href>/m/</D:href><D:propstat><D:prop><D:resourcetype>'
            '<D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status>'
            '</D:propstat></D:response>']
    for path, (announced, _) in files.items():
        href = "/m/" + urllib.parse.quote(path)
        rows.append(
            f"<D:response><D:href>{href}</D:href><D:propstat><D:prop><D:resourcetype/>"
            f"<D:getcontentlength>{announced}</D:getcontentlength>"
            "<D:getlastmodified>Tue, 24 Nov 2026 10:00:00 GMT</D:getlastmodified>"
            "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>")
    return ('<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:">'
            + "".join(rows) + "</D:multistatus>").encode()


@pytest.fixture
def lying_server(oe_cache_a: Path) -> Iterator[Tuple[str, Dict[str, Tuple[int, bytes]]]]:
    """A read-only WebDAV server: every listed size is larger than what GET sends."""
    archive = next(p for p in oe_cache_a.rglob("*.tar.zst") if ":zeta::" in p.name)
    siginfo = Path(str(archive) + ".siginfo")
    files: Dict[str, Tuple[int, bytes]] = {}
    # the archive is whole and valid, only its announced size is wrong; the siginfo is cut
    data = archive.read_bytes()
    files[str(archive.relative_to(oe_cache_a))] = (len(data) + 4096, data)
    data = siginfo.read_bytes()
    files[str(siginfo.relative_to(oe_cache_a))] = (len(data) + 4096, data[: len(data) // 2])

    def app(environ: Dict[str, Any], start: Callable[..., Any]) -> List[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ["PATH_INFO"]
        if method == "PROPFIND":
            body = _multistatus(files) if path.rstrip("/") == "/m" else b""
            status = "207 Multi-Status" if body else "404 Not Found"
            start(status, [("Content-Type", "application/xml"),
                           ("Content-Length", str(len(body)))])
            return [body]
        rel = path[len("/m/"):]
        if method in ("GET", "HEAD") and rel in files:
            body = files[rel][1]
            start("200 OK", [("Content-Length", str(len(body))),
                             ("Last-Modified", "Tue, 24 Nov 2026 10:00:00 GMT")])
            return [] if method == "HEAD" else [body]
        start("405 Method Not Allowed", [("Content-Length", "0")])
        return []

    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/m/", files
    finally:
        server.shutdown()
        server.server_close()


def test_verify_names_what_the_listing_got_wrong(
        lying_server: Tuple[str, Dict[str, Tuple[int, bytes]]],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    url, files = lying_server
    monkeypatch.setenv("NETRC", "/dev/null")
    code = main(["--json", "verify", "--all", url])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert code == 1, err
    problems = {p["path"]: p for p in report["problems"]}
    archive = next(p for p in files if p.endswith(".tar.zst"))
    siginfo = archive + ".siginfo"
    assert problems[archive]["kind"] == "truncated-archive"
    assert str(files[archive][0]) in problems[archive]["detail"]  # the announced size
    assert problems[siginfo]["kind"] == "siginfo-unreadable"
    assert "Traceback" not in err


def test_info_reports_the_listing_as_it_is(
        lying_server: Tuple[str, Dict[str, Tuple[int, bytes]]],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # a listing is all info reads: it reports the announced sizes, and says nothing false
    url, files = lying_server
    monkeypatch.setenv("NETRC", "/dev/null")
    assert main(["--json", "info", url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bytes"] == sum(announced for announced, _ in files.values())
