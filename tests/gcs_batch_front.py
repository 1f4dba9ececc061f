"""The GCS JSON API's batch endpoint, in front of fake-gcs-server, which has none.

Google Cloud Storage takes up to 100 JSON API calls in one ``POST /batch/storage/v1``: a
``multipart/mixed`` body whose parts (``Content-Type: application/http``) are each a whole
HTTP request (request line, headers, body), answered by a ``multipart/mixed`` body whose parts
are each a whole HTTP answer (status line, headers, body), in the same order, with
``Content-ID: <response-ID>`` (https://cloud.google.com/storage/docs/batch). fake-gcs-server
answers the calls one at a time but not the batch, so without this front only the backend's
single-delete fallback would ever run.

:class:`BatchFront` is an HTTP/1.1 server on a free port of 127.0.0.1. A batch request is
taken apart and each call sent to the emulator as its own request, so the deletes really
happen there, and the answers are put together as GCS puts them. Everything else is passed
to the emulator unchanged (the emulator's ``Date`` included). What a test can ask of it:

* ``batches``: how many calls each batch request held, in order;
* ``fail``: object name -> HTTP status: that object's call is answered with the status (and
  a GCS-style JSON error) instead of being sent on: a call refused inside a batch;
* ``batch_endpoint = False``: batch requests are passed to the emulator too, which refuses
  them (a server without the endpoint);
* ``passed``: the method and path of every request passed on outside a batch.

A batch of more calls than GCS allows is refused with 400, as GCS refuses it. Bodies are
held in memory and bounded (test data is small).
"""

from __future__ import annotations

import email.parser
import email.policy
import http.client
import http.server
import json
import threading
import urllib.parse
import uuid
from email.utils import formatdate
from typing import Dict, List, Optional, Tuple

#: GCS's limit of calls in one batch request.
MAX_CALLS = 100
_MAX_BODY = 256 * 1024 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te",
               "trailer", "upgrade", "proxy-connection"}
BATCH_PATH = "/batch/storage/v1"

Headers = List[Tuple[str, str]]


class _Server(http.server.ThreadingHTTPServer):
    #: A client opens a connection per thread, all at once: the standard library's backlog
    #: of 5 would refuse some of them before the accepting thread takes the others.
    request_queue_size = 128


class BatchFront:
    """The front, running from construction until :meth:`stop` (or the ``with`` block)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.batches: List[int] = []
        self.fail: Dict[str, int] = {}
        self.batch_endpoint = True
        self.passed: List[str] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        front = self

        class Handler(_Handler):
            pass

        Handler.front = front
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"gcs-batch-front-{self.port}")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget what earlier tests asked and saw."""
        with self._lock:
            self.batches.clear()
            self.fail.clear()
            self.passed.clear()
            self.batch_endpoint = True

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> BatchFront:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- to the emulator ---------------------------------------------------------------------

    def forward(self, method: str, target: str, headers: Headers, body: bytes
                ) -> Tuple[int, str, Headers, bytes]:
        """One request to the emulator on this thread's connection (made anew once if the
        emulator closed it): status, reason, headers, body."""
        for attempt in (0, 1):
            conn: Optional[http.client.HTTPConnection] = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
                self._local.conn = conn
            try:
                # a batch's calls carry no Host: every request gets the emulator's
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", f"127.0.0.1:{self.upstream_port}")
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP | {"host"}:
                        conn.putheader(name, value)
                if body or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                answer = conn.getresponse()
                data = answer.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
                continue
            if answer.will_close:
                conn.close()
                self._local.conn = None
            return answer.status, answer.reason, list(answer.getheaders()), data
        raise AssertionError("unreachable")

    # -- the batch endpoint ------------------------------------------------------------------

    def batch(self, content_type: str, body: bytes) -> Tuple[int, Headers, bytes]:
        """Answer a batch request: each call sent on (or failed as asked), the answers in
        one ``multipart/mixed`` body."""
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n"
            + body)
        parts = message.get_payload()
        if not message.is_multipart() or not isinstance(parts, list) or not parts:
            return _error(400, "batch request is not multipart/mixed")
        if len(parts) > MAX_CALLS:
            return _error(400, f"a batch holds at most {MAX_CALLS} calls, not {len(parts)}")
        with self._lock:
            self.batches.append(len(parts))
        boundary = f"batch_{uuid.uuid4().hex}"
        out: List[bytes] = []
        for number, part in enumerate(parts, 1):
            if part.get_content_type() != "application/http":
                return _error(400, "a batch part is not application/http")
            method, target, headers, call_body = _parse_call(part.get_payload(decode=True))
            status, reason, answer_headers, answer = self._call(method, target, headers,
                                                                call_body)
            content_id = str(part.get("Content-ID", f"<{number}>")).strip("<>")
            head = [f"--{boundary}", "Content-Type: application/http",
                    f"Content-ID: <response-{content_id}>", "",
                    f"HTTP/1.1 {status} {reason}"]
            head += [f"{n}: {v}" for n, v in answer_headers if n.lower() not in _HOP_BY_HOP]
            head += [f"Content-Length: {len(answer)}", "", ""]
            out.append("\r\n".join(head).encode("latin-1") + answer + b"\r\n")
        out.append(f"--{boundary}--\r\n".encode("latin-1"))
        return 200, [("Content-Type", f"multipart/mixed; boundary={boundary}")], b"".join(out)

    def _call(self, method: str, target: str, headers: Headers, body: bytes
              ) -> Tuple[int, str, Headers, bytes]:
        parts = urllib.parse.urlsplit(target)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        _, sep, name = parts.path.partition("/o/")
        with self._lock:
            status = self.fail.get(urllib.parse.unquote(name)) if sep else None
        if status is not None:
            reason = http.HTTPStatus(status).phrase
            error = json.dumps({"error": {"code": status, "message": reason,
                                          "errors": [{"message": reason}]}}).encode()
            return status, reason, [("Content-Type", "application/json; charset=UTF-8")], error
        return self.forward(method, path, headers, body)


def _parse_call(raw: bytes) -> Tuple[str, str, Headers, bytes]:
    """A batch part's HTTP request: method, target, headers, body (lines end in CRLF, or in
    LF where a MIME library rewrote them)."""
    text = raw.replace(b"\r\n", b"\n")
    head, _, body = text.partition(b"\n\n")
    lines = head.decode("latin-1").split("\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])
               if n.strip()]
    return method, target, headers, body


def _error(status: int, message: str) -> Tuple[int, Headers, bytes]:
    body = json.dumps({"error": {"code": status, "message": message}}).encode()
    return status, [("Content-Type", "application/json; charset=UTF-8")], body


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: an answer's headers and body are two writes: with Nagle's algorithm the body waits
    #: for the client's delayed ACK of the headers (40 ms on Linux), on every request
    disable_nagle_algorithm = True
    front: BatchFront

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: List[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(100).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > _MAX_BODY:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(10)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length)

    def _answer(self, status: int, reason: str, headers: Headers, body: bytes) -> None:
        self.send_response_only(status, reason)
        if not any(n.lower() == "date" for n, _ in headers):
            self.send_header("Date", formatdate(usegmt=True))
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        body = self._body()
        front = self.front
        if (self.command == "POST" and self.path.split("?", 1)[0] == BATCH_PATH
                and front.batch_endpoint):
            status, headers, answer = front.batch(self.headers.get("Content-Type", ""), body)
            self._answer(status, http.HTTPStatus(status).phrase, headers, answer)
            return
        with front._lock:
            front.passed.append(f"{self.command} {self.path.split('?', 1)[0]}")
        status, reason, headers, answer = front.forward(
            self.command, self.path, list(self.headers.items()), body)
        self._answer(status, reason, headers, answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle
