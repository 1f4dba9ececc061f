"""A server that compresses its answers although ``identity`` was asked for.

A few KiB of zstd decode to a gigabyte: a client that decodes ``Content-Encoding`` before
any size limit looks at the body can be made to hold all of it. sstate-mirror asks for
``Accept-Encoding: identity`` on both of its HTTP paths (httpx and the pipelined one) and
refuses any other encoding unread. A compressed GET is refused too: its bytes are not the
file (its size, its checksum).

The server here is the test's own and hostile; the command runs in a child process whose
peak memory is measured.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterator, List, Tuple

import pytest
import zstandard

from sstate_mirror.backends import BackendOptions, open_backend
from sstate_mirror.chunkstream import ChunkStream
from sstate_mirror.errors import BackendError

#: What a bomb may make the command hold at most (it decodes to 1 GiB).
MEMORY_LIMIT = 200 * 1024 * 1024

_ROOT = (b'<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:">'
         b"<D:response><D:href>/m/</D:href><D:propstat><D:prop><D:resourcetype>"
         b"<D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status>"
         b"</D:propstat></D:response></D:multistatus>")


@pytest.fixture(scope="module")
def zstd_bomb() -> bytes:
    """1 GiB of spaces after an XML start, zstd-compressed to a few dozen KiB."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    parts = [compressor.compress(b'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:">')]
    block = b" " * (1 << 20)
    for _ in range(1024):
        parts.append(compressor.compress(block))
    parts.append(compressor.flush())
    data = b"".join(parts)
    assert len(data) < 256 * 1024
    return data


class _Hostile(BaseHTTPRequestHandler):
    """Answers as a WebDAV server would, but compresses what the test says."""

    protocol_version = "HTTP/1.1"
    #: (method, Depth or "", encoding, body) -> set per test on the server
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes, encoding: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 207:
            self.send_header("Content-Type", 'application/xml; charset="utf-8"')
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _common(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append((self.command, self.headers.get("Accept-Encoding", "")))

    def do_PROPFIND(self) -> None:
        self._common()
        depth = self.headers.get("Depth", "")
        plan = self.server.plan
        if self.path != "/m/":
            self._answer(404, b"")
        elif depth in plan:
            encoding, body = plan[depth]
            self._answer(207, body, encoding)
        elif depth == "infinity":
            self._answer(403, b"")
        else:
            self._answer(207, _ROOT)

    def do_GET(self) -> None:
        self._common()
        encoding, body = self.server.plan["GET"]
        self._answer(200, body, encoding)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    plan: Dict[str, Tuple[str, bytes]]
    seen: List[Tuple[str, str]]


@pytest.fixture
def hostile() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Hostile)
    server.plan = {}
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_port}/m/"


def _run_measured(args: List[str]) -> Tuple[int, str, int]:
    """Run ``sstate-mirror ARGS`` in a child; its exit code, stderr and peak memory (bytes).

    A wrapper process runs the command and reports its child's peak, so that no other
    child of the test process counts.
    """
    wrapper = (
        "import json, resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'sstate_mirror', *sys.argv[1:]],"
        " stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "print(json.dumps([r.returncode, r.stderr, peak]))\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True,
                         text=True, check=True, timeout=300)
    code, stderr, peak = json.loads(out.stdout)
    return int(code), str(stderr), int(peak)


def test_a_zstd_bomb_of_a_listing_is_refused_in_bounded_memory(
    hostile: _Server, zstd_bomb: bytes
) -> None:
    hostile.plan = {"0": ("zstd", zstd_bomb)}  # the first request: check() through httpx
    code, stderr, peak = _run_measured(["info", "--no-netrc", "--retries", "0",
                                        _url(hostile)])
    assert peak < MEMORY_LIMIT, f"peak memory {peak >> 20} MiB"
    assert code == 3, stderr
    assert "zstd-encoded answer" in stderr and "identity" in stderr, stderr
    assert "Traceback" not in stderr
    assert hostile.seen and all(enc == "identity" for _, enc in hostile.seen), hostile.seen


def test_a_compressed_listing_on_the_pipelined_path_is_refused(
    hostile: _Server, zstd_bomb: bytes
) -> None:
    # the root and the pipelining probe answer plainly; the walk's Depth: 1 requests,
    # pipelined, get the bomb
    hostile.plan = {"1": ("zstd", zstd_bomb)}
    code, stderr, peak = _run_measured(["info", "--no-netrc", "--retries", "0",
                                        _url(hostile)])
    assert peak < MEMORY_LIMIT, f"peak memory {peak >> 20} MiB"
    assert code == 3, stderr
    assert "zstd-encoded answer" in stderr, stderr
    methods = [m for m, _ in hostile.seen]
    assert methods.count("PROPFIND") >= 5  # check, infinity, the probe's three, the walk
    assert all(enc == "identity" for _, enc in hostile.seen), hostile.seen


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_compressed_download_is_refused_not_decoded(hostile: _Server,
                                                      pipelining: bool) -> None:
    content = b"sstate archive bytes " * 100
    hostile.plan = {"GET": ("gzip", gzip.compress(content))}
    backend = open_backend(_url(hostile), BackendOptions(retries=0, use_netrc=False,
                                                         pipelining=pipelining))
    try:
        with pytest.raises(BackendError, match="gzip-encoded answer"), \
                backend.open("aa/bb/file.tar.zst") as stream:
            stream.read()
    finally:
        backend.close()
    assert hostile.seen == [("GET", "identity")]


def test_the_chunk_stream_hands_out_a_chunk_in_place() -> None:
    """Each byte is copied once, into the reader's buffer: the rest of a chunk is not
    copied again after every read (which made a 64 MiB chunk read in 8 KiB pieces take
    tens of seconds). A change to the chunk after a read shows in the next read."""
    chunk = bytearray(b"a" * 16)
    stream = ChunkStream([chunk])
    assert stream.read(4) == b"aaaa"
    chunk[4:8] = b"bbbb"
    assert stream.read(4) == b"bbbb"
    assert stream.read() == b"a" * 8
    assert stream.read() == b""


def test_the_listing_reader_is_the_chunk_stream() -> None:
    from sstate_mirror.backends.davio import ResponseReader
    from sstate_mirror.backends.davxml import LimitedReader

    assert issubclass(LimitedReader, ChunkStream)
    assert issubclass(ResponseReader, ChunkStream)


