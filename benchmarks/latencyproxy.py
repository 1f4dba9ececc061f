"""A TCP proxy that adds network latency: every round trip through it takes ``rtt`` ms more.

Why: the remote benchmarks run their servers on 127.0.0.1, where a request costs a tenth of
a millisecond; a real mirror server is a round trip away (0.2-1 ms on a LAN, a few ms
between sites, tens over a WAN), and a client that waits for one answer before it sends the
next request pays that round trip every time. The benchmark machines have no netem
(``tc qdisc add dev lo root netem delay ...``), so the delay is added here, in user space,
in front of the server.

What it does: listens on 127.0.0.1 (a free port) and forwards each accepted connection to
``127.0.0.1:UPSTREAM``. What is read from either side is written to the other side ``rtt / 2``
later, in order. It delays, it does not throttle: data read at time t goes out at
t + rtt/2 however much else is queued (only the receiving socket's own flow control can hold
it back, as on a real link); the bandwidth is that of the proxy's copying, 500-1,000 MiB/s
here, far above a LAN's. A new connection also
pays for its TCP handshake: what the client sends is held until one round trip after the
accept, as if ``connect()`` had taken that round trip. An EOF (``shutdown(SHUT_WR)``, or the
FIN of a close) is passed on after the data before it; a connection lost on one side
(reset, error) closes the other side after the data still on its way.

How: asyncio on a thread of its own (or a process, from the command line), reads of 256 KiB
(asyncio's size), one timer per direction of a connection; the selector is ``select()``,
because epoll and poll wait in whole milliseconds and would add up to 1 ms per direction.
The proxy itself adds about 0.1 ms per round trip (two more hops through Python) and costs
CPU per chunk, not per byte: 50-100 µs for a small request and its answer, the same for
every tool that goes through it. On a small machine that competes with the tool and the
server for the cores (``stats()["cpu_s"]``: the CPU seconds of its thread).

From Python::

    with LatencyProxy(server_port, rtt_ms=2) as proxy:
        url = proxy.url_for("http://127.0.0.1:8080/sstate/")   # same URL, the proxy's port

From the command line (prints the port, then runs until killed)::

    python benchmarks/latencyproxy.py UPSTREAM_PORT RTT_MS
    python benchmarks/latencyproxy.py --self-test [--rtt 10]    # checks the delay
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import hashlib
import http.client
import http.server
import selectors
import signal
import socket
import socketserver
import statistics
import sys
import threading
import time
import urllib.parse
from typing import Any, Deque, Dict, List, Optional, Set, Tuple

#: Markers in a direction's queue, after the data before them.
_EOF = "eof"
_CLOSE = "close"
#: A write buffer above this pauses reading from the other side (asyncio's flow control).
_HIGH_WATER = 1 << 20
#: Slack when checking what is due (the loop may call a timer a few ns before its time).
_EPSILON = 1e-6


def _fine_timers() -> None:
    """Linux: wake this thread within 1 µs of its timers, not the default 50 µs of slack."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK, in nanoseconds
    except (OSError, AttributeError):
        pass


class _Direction:
    """One direction of one connection: chunks read from one side wait here until they are
    due, then go to ``dst`` (the other side's transport, once it exists)."""

    __slots__ = ("conn", "dead", "delay", "dst", "eof_sent", "not_before", "queue",
                 "timer")

    def __init__(self, conn: _Conn, delay: float, not_before: float) -> None:
        self.conn = conn
        self.delay = delay
        self.not_before = not_before
        self.queue: Deque[Tuple[float, Any]] = collections.deque()
        self.timer: Optional[asyncio.TimerHandle] = None
        self.dst: Optional[asyncio.Transport] = None
        self.dead = False  # the destination is gone: nothing more to deliver
        self.eof_sent = False

    def push(self, item: Any) -> None:
        if self.dead:
            return
        loop = self.conn.proxy.loop
        when = max(loop.time(), self.not_before) + self.delay
        self.queue.append((when, item))
        if isinstance(item, bytes):
            self.conn.proxy._bytes += len(item)
        if self.timer is None and self.dst is not None:
            self.timer = loop.call_at(when, self.flush)

    def connect(self, dst: asyncio.Transport) -> None:
        self.dst = dst
        if self.queue and self.timer is None and not self.dead:
            self.timer = self.conn.proxy.loop.call_at(self.queue[0][0], self.flush)

    def kill(self) -> None:
        self.dead = True
        self.queue.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def flush(self) -> None:
        self.timer = None
        dst, queue = self.dst, self.queue
        assert dst is not None
        now = self.conn.proxy.loop.time() + _EPSILON
        chunks: List[bytes] = []
        while queue and queue[0][0] <= now:
            item = queue.popleft()[1]
            if isinstance(item, bytes):
                chunks.append(item)
                continue
            if chunks:
                dst.writelines(chunks)
                chunks = []
            if item == _EOF:
                if not self.eof_sent and not dst.is_closing():
                    dst.write_eof()  # after what is still in its buffer
                self.eof_sent = True
                self.conn.eof_sent()
            else:  # _CLOSE: the source is gone
                dst.close()
                self.kill()
                return
        if chunks:
            dst.writelines(chunks)
        if queue:
            self.timer = self.conn.proxy.loop.call_at(queue[0][0], self.flush)


class _Side(asyncio.Protocol):
    """One end of a proxied connection: the client's or the upstream server's socket."""

    def __init__(self, conn: _Conn, out: _Direction, into: _Direction) -> None:
        self.conn = conn
        self.out = out  # what this side sends
        self.into = into  # what this side receives
        self.peer: Optional[_Side] = None
        self.transport: Optional[asyncio.Transport] = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        self.into.connect(transport)
        self.conn.made(self)

    def data_received(self, data: bytes) -> None:
        self.out.push(data)

    def eof_received(self) -> bool:
        self.out.push(_EOF)
        return True  # keep the socket open: the other direction may still carry data

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.lost = True
        self.into.kill()
        self.out.push(_CLOSE)  # ignored when the other side is gone too
        self.conn.side_lost()

    # flow control: when this side cannot take more, stop reading from the other one
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Conn:
    """A client connection and its upstream connection."""

    def __init__(self, proxy: LatencyProxy) -> None:
        self.proxy = proxy
        loop, delay = proxy.loop, proxy.rtt / 2
        # the client's first bytes leave "after the handshake", one round trip after accept
        self.c2u = _Direction(self, delay, loop.time() + proxy.rtt)
        self.u2c = _Direction(self, delay, 0.0)
        self.client = _Side(self, self.c2u, self.u2c)
        self.upstream = _Side(self, self.u2c, self.c2u)
        self.client.peer, self.upstream.peer = self.upstream, self.client
        self.task: Optional[asyncio.Task[Any]] = None

    def made(self, side: _Side) -> None:
        if side is self.client:
            self.proxy._conns.add(self)
            self.proxy._accepted += 1
            self.proxy._peak = max(self.proxy._peak, len(self.proxy._conns))
            self.task = self.proxy.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            await self.proxy.loop.create_connection(lambda: self.upstream, "127.0.0.1",
                                                    self.proxy.upstream_port)
        except OSError as e:
            print(f"latencyproxy: upstream 127.0.0.1:{self.proxy.upstream_port}: {e}",
                  file=sys.stderr)
            if self.client.transport is not None:
                self.client.transport.abort()

    def eof_sent(self) -> None:
        if self.c2u.eof_sent and self.u2c.eof_sent:  # both halves closed: done
            for side in (self.client, self.upstream):
                if side.transport is not None:
                    side.transport.close()

    def side_lost(self) -> None:
        if self.client.lost and (self.upstream.lost or self.upstream.transport is None):
            self.proxy._conns.discard(self)

    def abort(self) -> None:
        for side in (self.client, self.upstream):
            if side.transport is not None:
                side.transport.abort()
        if self.task is not None:
            self.task.cancel()


class LatencyProxy:
    """A TCP proxy on 127.0.0.1 in front of ``127.0.0.1:upstream_port`` that makes every
    round trip ``rtt_ms`` milliseconds longer (half of it each way). ``start()`` returns
    the port; ``stop()`` closes every connection. Also a context manager."""

    def __init__(self, upstream_port: int, rtt_ms: float, port: int = 0) -> None:
        if rtt_ms < 0:
            raise ValueError("rtt_ms must not be negative")
        self.upstream_port = upstream_port
        self.rtt = rtt_ms / 1000.0
        self.port = port
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._conns: Set[_Conn] = set()
        self._accepted = 0
        self._peak = 0
        self._bytes = 0
        self._cpu_at_stop: Optional[float] = None

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> int:
        if self._thread is not None:
            return self.port
        self._thread = threading.Thread(target=self._run, name="latencyproxy", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self.port

    def stop(self) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        thread.join(30)

    def __enter__(self) -> LatencyProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        # select(): timeouts in microseconds (epoll and poll: whole milliseconds, rounded up)
        _fine_timers()
        loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
        asyncio.set_event_loop(loop)  # this thread's
        self.loop = loop
        try:
            server = loop.run_until_complete(loop.create_server(
                lambda: _Conn(self).client, "127.0.0.1", self.port, backlog=1024))
            self.port = int(server.sockets[0].getsockname()[1])
        except BaseException as e:  # handed to start()
            self._error = e
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._cpu_at_stop = time.thread_time()
            server.close()
            for conn in list(self._conns):
                conn.abort()
            pending = asyncio.all_tasks(loop)
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(asyncio.sleep(0))  # the connection_lost callbacks
            loop.close()

    # -- use -------------------------------------------------------------------------------

    def url_for(self, url: str) -> str:
        """``url`` (the upstream server's) with the proxy's host and port instead."""
        parts = urllib.parse.urlsplit(url)
        return urllib.parse.urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))

    def stats(self) -> Dict[str, float]:
        """Connections accepted, most open at once, open now, bytes forwarded (both ways)
        and the CPU seconds of the proxy's thread so far (``time.thread_time``)."""
        if self._thread is None or not self._thread.is_alive():
            return {"connections": self._accepted, "peak": self._peak, "open": 0,
                    "bytes": self._bytes, "cpu_s": self._cpu_at_stop or 0.0}
        fut: concurrent.futures.Future[Dict[str, float]] = concurrent.futures.Future()

        def collect() -> None:
            fut.set_result({"connections": self._accepted, "peak": self._peak,
                            "open": len(self._conns), "bytes": self._bytes,
                            "cpu_s": time.thread_time()})

        self.loop.call_soon_threadsafe(collect)
        return fut.result(10)


# -- self-test ----------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    disable_nagle_algorithm = True  # no 40 ms wait for a delayed ACK between two writes
    wbufsize = 1 << 16  # status, headers and a small body in one write

    def do_GET(self) -> None:
        size = int(self.path.strip("/") or "2")
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        block = b"x" * min(size, 1 << 20)
        while size > 0:
            self.wfile.write(block[:size])
            size -= len(block[:size])

    def log_message(self, *args: Any) -> None:
        pass


class _Digest(socketserver.BaseRequestHandler):
    """Reads to EOF (the client's half-close), answers the byte count and sha256, closes."""

    def handle(self) -> None:
        h, n = hashlib.sha256(), 0
        while True:
            data = self.request.recv(1 << 18)
            if not data:
                break
            h.update(data)
            n += len(data)
        self.request.sendall(f"{n} {h.hexdigest()}".encode())


class _ThreadingTCP(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # listen() backlog: socketserver's 5 drops SYNs (1 s retries)


class _ThreadingHTTP(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def _serve(server: socketserver.BaseServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


def _requests(port: int, n: int, fresh: bool = False) -> List[float]:
    """Seconds per GET of a 2-byte body: ``n`` in a row on one keep-alive connection, or
    each on a new connection (``fresh``)."""
    times = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/2")  # connect, warm up
    conn.getresponse().read()
    for _ in range(n):
        if fresh:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        t0 = time.perf_counter()
        conn.request("GET", "/2")
        conn.getresponse().read()
        times.append(time.perf_counter() - t0)
    conn.close()
    return times


def self_test(rtt_ms: float = 10.0, n: int = 20, bulk_mib: int = 64, parallel: int = 40) -> bool:
    """Measure what the proxy adds and check it: per request on a keep-alive connection
    (one round trip), on a new connection (two: handshake and request), a bulk transfer
    each way (not throttled, intact, EOF passed on), and many connections at once."""
    ok = True
    web = _ThreadingHTTP(("127.0.0.1", 0), _Handler)
    digest = _ThreadingTCP(("127.0.0.1", 0), _Digest)
    _serve(web)
    _serve(digest)
    web_port, digest_port = web.server_address[1], digest.server_address[1]
    rtt = rtt_ms / 1000
    try:
        with LatencyProxy(web_port, rtt_ms) as proxy:
            for fresh, trips in ((False, 1), (True, 2)):
                direct = _requests(web_port, n, fresh)
                via = _requests(proxy.port, n, fresh)
                d, v = statistics.median(direct), statistics.median(via)
                # never early; the median within 1 ms (the proxy's own hops: ~0.1 ms)
                good = min(via) >= trips * rtt and v - d <= trips * rtt + 0.001
                ok &= good
                what = "new connection per request" if fresh else "keep-alive, sequential"
                print(f"{n} GETs, {what}: direct median {d * 1e3:.2f} ms, via proxy"
                      f" {v * 1e3:.2f} ms (min {min(via) * 1e3:.2f}, max {max(via) * 1e3:.2f});"
                      f" added {(v - d) * 1e3:.2f} ms, expected {trips * rtt_ms:g}"
                      f" ({'ok' if good else 'OFF'})")

            # download: the server writes as fast as it can; upload with half-close
            size = bulk_mib << 20
            for port, label in ((web_port, "direct"), (proxy.port, "via proxy")):
                cpu0 = proxy.stats()["cpu_s"]
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                t0 = time.perf_counter()
                conn.request("GET", f"/{size}")
                got = len(conn.getresponse().read())
                dt = time.perf_counter() - t0
                conn.close()
                cpu = proxy.stats()["cpu_s"] - cpu0
                ok &= got == size
                print(f"download {bulk_mib} MiB {label}: {dt * 1e3:.0f} ms,"
                      f" {size / dt / 2**20:.0f} MiB/s"
                      + (f", proxy CPU {cpu * 1e3:.0f} ms" if port == proxy.port else ""))

        with LatencyProxy(digest_port, rtt_ms) as proxy:
            data = hashlib.sha256(b"seed").digest() * (size // 32)
            want = f"{len(data)} {hashlib.sha256(data).hexdigest()}"
            cpu0 = proxy.stats()["cpu_s"]
            t0 = time.perf_counter()
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)  # EOF must reach the server after the data
                answer = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:  # and the server's close must come back
                        break
                    answer += chunk
            dt = time.perf_counter() - t0
            cpu = proxy.stats()["cpu_s"] - cpu0
            good = answer.decode() == want
            ok &= good
            print(f"upload {bulk_mib} MiB then half-close via proxy: {dt * 1e3:.0f} ms,"
                  f" {size / dt / 2**20:.0f} MiB/s, proxy CPU {cpu * 1e3:.0f} ms, digest and"
                  f" EOF {'ok' if good else 'WRONG: ' + answer.decode()[:80]}")

        with LatencyProxy(web_port, rtt_ms) as proxy:
            errors: List[str] = []

            def client(i: int) -> None:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
                    for j in range(10):
                        conn.request("GET", f"/{1000 + i * 10 + j}")
                        if len(conn.getresponse().read()) != 1000 + i * 10 + j:
                            errors.append(f"client {i}: short body")
                    conn.close()
                except OSError as e:
                    errors.append(f"client {i}: {e}")

            t0 = time.perf_counter()
            threads = [threading.Thread(target=client, args=(i,)) for i in range(parallel)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            dt = time.perf_counter() - t0
            st = proxy.stats()
            ok &= not errors
            print(f"{parallel} connections x 10 GETs at once: {dt * 1e3:.0f} ms"
                  f" (at least {11 * rtt_ms:g} ms), {st['peak']:.0f} open at most,"
                  f" proxy CPU {st['cpu_s'] * 1e3:.0f} ms,"
                  f" {'ok' if not errors else 'ERRORS: ' + '; '.join(errors[:3])}")
    finally:
        web.shutdown()
        digest.shutdown()
        web.server_close()
        digest.server_close()
    print("self-test", "passed" if ok else "FAILED")
    return ok


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("upstream_port", type=int, nargs="?", help="the server's port on 127.0.0.1")
    ap.add_argument("rtt_ms", type=float, nargs="?", help="round trip to add, milliseconds")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (default: free)")
    ap.add_argument("--self-test", action="store_true", help="measure the delay and check")
    ap.add_argument("--rtt", type=float, default=10.0, help="the self-test's rtt (ms)")
    args = ap.parse_args(argv)
    if args.self_test:
        return 0 if self_test(args.rtt) else 1
    if args.upstream_port is None or args.rtt_ms is None:
        ap.error("UPSTREAM_PORT and RTT_MS are needed (or --self-test)")
    proxy = LatencyProxy(args.upstream_port, args.rtt_ms, args.port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(proxy.start(), flush=True)
    try:
        while not stop.wait(3600):
            pass
    finally:
        proxy.stop()
        st = proxy.stats()
        print(f"latencyproxy: {st['connections']:.0f} connections, {st['cpu_s']:.2f} s CPU",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
