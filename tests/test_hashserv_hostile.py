"""A scripted hostile or broken hash equivalence server: nothing it sends makes sstate-mirror
grow, hang, print a traceback, or sweep what it did not mark.

Peak memory is measured in a subprocess (its own ``ru_maxrss``) against the same command
failing at once on an unreachable server.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from sstate_mirror.cli import main
from sstate_mirror.errors import UsageError
from sstate_mirror.hashserv import parse_address
from sstate_mirror.hashserv.wire import MAX_LINE

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024

Script = Callable[[socket.socket, "ScriptedServer"], None]


class ScriptedServer:
    """Accepts connections on 127.0.0.1; reads the greeting, then runs ``script``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: List[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.reader = conn.makefile("rb")
            try:
                while self.readline() != "":  # greeting up to the empty line
                    pass
                self.script(conn, self)
            except OSError:
                pass
            finally:  # the reader holds the socket open too
                self.reader.close()
                conn.close()

    def readline(self) -> str:
        line = self.reader.readline(MAX_LINE)
        if not line:
            raise ConnectionResetError
        text = line.decode().rstrip("\n")
        self.requests.append(text)
        return text

    def close(self) -> None:
        self.sock.close()


def endless_line(conn: socket.socket, srv: ScriptedServer) -> None:
    srv.readline()
    block = b"x" * MiB
    for _ in range(512):
        conn.sendall(block)


def endless_chunk_stream(conn: socket.socket, srv: ScriptedServer) -> None:
    srv.readline()
    conn.sendall(b'{"chunk-stream": null}\n')
    line = b"a" * 30000 + b"\n"
    for _ in range(20000):  # 600 MB of lines, never the empty line that ends the stream
        conn.sendall(line)


def deep_json(conn: socket.socket, srv: ScriptedServer) -> None:
    srv.readline()
    conn.sendall(b"[" * 60000 + b"\n")
    srv.readline()


def bad_exists_answer(conn: socket.socket, srv: ScriptedServer) -> None:
    srv.readline()
    conn.sendall(b'"ok"\n')
    srv.readline()
    conn.sendall(b"maybe\n")
    srv.readline()


def hangs_up_while_marking(conn: socket.socket, srv: ScriptedServer) -> None:
    """An admin server (gc-status answers) that drops the connection in the middle of a mark."""
    request = json.loads(srv.readline())
    if "gc-status" in request:
        conn.sendall(b'{"keep": 3, "remove": 0, "mark": ""}\n')
        request = json.loads(srv.readline())
    if "gc-mark-stream" in request:
        conn.sendall(b'"ok"\n')
        srv.readline()
        conn.sendall(b'{"count": 1}\n')
        srv.readline()
        return  # hang up with marks outstanding


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: List[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def small_mirror(tmp_path: Path, oe_cache_a: Path) -> Path:
    root = tmp_path / "mirror"
    for p in sorted(oe_cache_a.rglob("sstate:zeta:*")):
        dst = root / p.relative_to(oe_cache_a)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dst)
    return root


_PEAK = (
    "import resource, sys\n"
    "from sstate_mirror.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _peak_kib(*argv: str) -> tuple[int, int, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    env.pop("SSTATE_MIRROR_HASHSERVE", None)
    proc = subprocess.run([sys.executable, "-c", _PEAK, *argv], capture_output=True, text=True,
                          env=env, timeout=120)
    peak = [line for line in proc.stderr.splitlines() if line.startswith("PEAK ")]
    assert peak, proc.stderr
    return proc.returncode, int(peak[0].split()[1]), proc.stderr


@pytest.mark.parametrize("script", [endless_line, endless_chunk_stream],
                         ids=["endless-line", "endless-chunk-stream"])
def test_hostile_server_cannot_make_the_process_grow(
        scripted: Callable[[Script], ScriptedServer], script: Script, small_mirror: Path,
        tmp_path: Path) -> None:
    _, baseline, _ = _peak_kib("info", "--hashserve", f"unix://{tmp_path / 'none.sock'}",
                               str(small_mirror))
    server = scripted(script)
    code, peak, err = _peak_kib("info", "--hashserve", server.address, str(small_mirror))
    assert code == 3, err
    assert "Traceback" not in err
    assert "longer than" in err
    assert peak - baseline < 32 * 1024, (baseline, peak)


def test_websocket_server_cannot_make_the_process_grow(small_mirror: Path,
                                                       tmp_path: Path) -> None:
    from websockets.sync.server import serve

    def handler(ws: object) -> None:
        for _ in range(3):
            ws.recv()  # type: ignore[attr-defined]
        ws.recv()  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):  # one endless fragmented message
            ws.send("x" * 30000 for _ in range(40000))  # type: ignore[attr-defined]

    with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.socket.getsockname()[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _, baseline, _ = _peak_kib("info", "--hashserve", f"unix://{tmp_path / 'none.sock'}",
                                   str(small_mirror))
        code, peak, err = _peak_kib("info", "--hashserve", f"ws://127.0.0.1:{port}",
                                    str(small_mirror))
        server.shutdown()
    assert code == 3, err
    assert "longer than" in err and "Traceback" not in err
    assert peak - baseline < 32 * 1024, (baseline, peak)


@pytest.mark.parametrize("script,message", [
    (deep_json, "not JSON"),
    (bad_exists_answer, "answered a unihash query with 'maybe'"),
])
def test_malformed_answers_are_clear_errors(
        scripted: Callable[[Script], ScriptedServer], script: Script, message: str,
        small_mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = scripted(script)
    code = main(["info", "--hashserve", server.address, str(small_mirror)])
    err = capsys.readouterr().err
    assert code == 3
    assert message in err and "Traceback" not in err


def test_incomplete_mark_is_never_swept(scripted: Callable[[Script], ScriptedServer],
                                        small_mirror: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    server = scripted(hangs_up_while_marking)
    code = main(["clean", "--json", "--max-age", "30d", "--hashserve", server.address,
                 str(small_mirror)])
    out, err = capsys.readouterr()
    assert code == 3, err
    assert "closed the connection" in err and "hash server not swept" in err
    report = json.loads(out)  # the mirror's own result is still reported
    assert "closed the connection" in report["hashserve"]["error"]
    assert report["result"]["deleted"] == 0
    assert any("gc-mark-stream" in r for r in server.requests)
    assert not any("gc-sweep" in r for r in server.requests)


@pytest.mark.parametrize("text,expected", [
    ("hs.example.com:8686", "hs.example.com:8686"),
    ("127.0.0.1:8686", "127.0.0.1:8686"),
    ("[::1]:8686", "[::1]:8686"),
    ("unix:///run/hashserv.sock", "unix:///run/hashserv.sock"),
    ("ws://hs.example.com:8686", "ws://hs.example.com:8686"),
    ("wss://hs.example.com/ws", "wss://hs.example.com/ws"),
])
def test_bitbake_address_forms(text: str, expected: str) -> None:
    assert str(parse_address(text)) == expected


@pytest.mark.parametrize("text", ["", "hs.example.com", "hs:port", "hs:70000", "unix://",
                                  "http://hs:80", "ws://", "wss://user:secret@hs/",
                                  "::1:8686"])
def test_bad_addresses_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_address(text)
    assert "secret" not in str(info.value)


def test_websocket_address_without_websockets_says_how_to_install(
        monkeypatch: pytest.MonkeyPatch, small_mirror: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in [m for m in sys.modules if m == "websockets" or m.startswith("websockets.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "websockets", None)
    code = main(["info", "--hashserve", "ws://127.0.0.1:9", str(small_mirror)])
    err = capsys.readouterr().err
    assert code == 3
    assert "pip install 'sstate-mirror[websockets]'" in err




def test_wss_certificates_are_verified(tmp_path: Path, small_mirror: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import ssl

    from websockets.sync.server import serve

    from webdav_servers import _self_signed

    cert = tmp_path / "cert.pem"
    if not _self_signed(tmp_path, cert):
        pytest.skip("openssl is not installed")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, tmp_path / "key.pem")

    def handler(ws: object) -> None:  # greeting, then "exists-stream": answer, end
        for _ in range(4):
            ws.recv()  # type: ignore[attr-defined]
        ws.send('"ok"')  # type: ignore[attr-defined]
        while (line := ws.recv()) != "END":  # type: ignore[attr-defined]
            ws.send("true" if line else "false")  # type: ignore[attr-defined]
        ws.send("ok")  # type: ignore[attr-defined]

    with serve(handler, "127.0.0.1", 0, ssl=context) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        address = f"wss://127.0.0.1:{server.socket.getsockname()[1]}"
        code = main(["info", "--hashserve", address, str(small_mirror)])
        err = capsys.readouterr().err
        assert code == 3 and "CERTIFICATE_VERIFY_FAILED" in err
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted: the same server answers
        code = main(["info", "--json", "--hashserve", address, str(small_mirror)])
        out, err = capsys.readouterr()
        server.shutdown()
    assert code == 0, err
    assert json.loads(out)["hashserve"]["known"] == 3  # the zeta archives of the mirror
