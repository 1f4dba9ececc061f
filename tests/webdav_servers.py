"""Real WebDAV servers for tests: wsgidav, Apache httpd (mod_dav_fs) and nginx (dav + dav-ext).

Each server is started once per test run on 127.0.0.1 with a free port, with its
configuration generated into a temporary directory, in the foreground as a subprocess, and
stopped at the end. They all serve a local directory, so a test can look at (and back-date)
the files on disk behind a URL.

For other test modules (end-to-end CLI tests)::

    from webdav_servers import *  # noqa: F403

    def test_upload(webdav_mirror):           # runs once per server
        run_cli("upload", ..., webdav_mirror.url, env=webdav_mirror.env)
        assert (webdav_mirror.root / "aa/bb/...").exists()

``webdav_mirror`` is an empty, anonymous, read-write mirror (once per server);
``webdav_auth_mirror`` one that needs credentials (``env`` has them for the CLI);
``DavServer.mirror()`` gives one on any location (bearer token, no MOVE, no WebDAV, HTTPS, ...),
see ``LOCATIONS``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest

from realparts import find_tool, module, require
from sstate_mirror.backends.base import BackendOptions

__all__ = [
    "PASSWORD",
    "TOKEN",
    "USER",
    "DavMirror",
    "DavServer",
    "apache_server",
    "nginx_server",
    "webdav_auth_mirror",
    "webdav_mirror",
    "webdav_server",
    "wsgidav_server",
]

USER = "uploader"
PASSWORD = "pw-Secr3t-4-tests"
TOKEN = "tok-8d1c2f-test"

#: What each location of each server is for. Every server has "open" (anonymous read-write).
LOCATIONS: Dict[str, Dict[str, str]] = {
    "wsgidav": {
        "open": "anonymous read-write; PROPPATCH getlastmodified allowed (mutable_live_props)",
        "auth": f"{USER}:{PASSWORD}, digest challenge (basic also accepted)",
    },
    "apache": {
        "open": "anonymous read-write, DavDepthInfinity Off (the default)",
        "infinity": "anonymous read-write, DavDepthInfinity On",
        "rw": "the docs/webdav.md set-up: anonymous GET/HEAD/OPTIONS, basic auth for the rest,"
              " DavDepthInfinity On",
        "digest": "digest auth for everything",
    },
    "nginx": {
        "open": "anonymous read-write, create_full_put_path on",
        "strict": "anonymous read-write, create_full_put_path off (409 without MKCOL)",
        "nomove": "dav_methods PUT DELETE MKCOL only: no COPY, no MOVE",
        "bearer": f"requires Authorization: Bearer {TOKEN}",
        "plain": "no WebDAV at all (static files)",
        "rw": "the docs/webdav.md set-up: anonymous GET/HEAD, basic auth for the rest",
    },
}

_counter = itertools.count()
#: the start of the path of the requests that show a server's log is up to date
_LOG_MARKER = "/__logsync-"


@dataclass
class DavMirror:
    """An empty mirror on a running server."""

    server: str
    url: str
    """Base URL, ending in '/'."""
    root: Path
    """The directory on disk behind ``url``."""
    options: BackendOptions
    """Options for ``open_backend(url, options)`` (credentials for protected locations)."""
    env: Dict[str, str] = field(default_factory=dict)
    """Environment for running the CLI against ``url`` (SSTATE_MIRROR_USER/PASSWORD/TOKEN)."""

    def backdate(self, path: str, seconds: float) -> None:
        """Make ``path`` (relative to the mirror) look ``seconds`` older, on disk."""
        t = time.time() - seconds
        os.utime(self.root / path, (t, t))


@dataclass
class DavServer:
    name: str
    port: int
    docroot: Path
    process: subprocess.Popen  # type: ignore[type-arg]
    log_file: Path
    tls_port: Optional[int] = None
    """Port of an HTTPS server with the same locations (nginx, where openssl exists)."""
    ca_cert: Optional[Path] = None
    """The self-signed certificate of the HTTPS server, usable as --ca-cert."""

    def location_url(self, location: str, tls: bool = False) -> str:
        if tls:
            return f"https://127.0.0.1:{self.tls_port}/{location}/"
        return f"http://127.0.0.1:{self.port}/{location}/"

    def mirror(self, location: str = "open", *, credentials: bool = True,
               auth_method: Optional[str] = None, tls: bool = False) -> DavMirror:
        """A fresh empty mirror below ``location`` (see LOCATIONS)."""
        name = f"m{next(_counter)}-{os.getpid()}"
        root = self.docroot / location / name
        root.mkdir(mode=0o777)
        os.chmod(root, 0o777)  # the server may run as another user (Apache as root)
        options = BackendOptions(use_netrc=False, retries=1, timeout=20)
        env: Dict[str, str] = {}
        needs_user = (self.name, location) in {("wsgidav", "auth"), ("apache", "rw"),
                                               ("apache", "digest"), ("nginx", "rw")}
        if credentials and needs_user:
            options.user, options.password, options.auth_method = USER, PASSWORD, auth_method
            env = {"SSTATE_MIRROR_USER": USER, "SSTATE_MIRROR_PASSWORD": PASSWORD}
        if credentials and (self.name, location) == ("nginx", "bearer"):
            options.token = TOKEN
            env = {"SSTATE_MIRROR_TOKEN": TOKEN}
        if tls:
            options.ca_cert = str(self.ca_cert)
        return DavMirror(self.name, self.location_url(location, tls) + name + "/", root,
                         options, env)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def requests(self) -> List[str]:
        """Every request the server answered so far, as "METHOD /path" (nginx and Apache keep
        an access log for this; wsgidav none).

        A server logs a request after answering it, so a client that has its answer may
        find the log without it yet: a marker request is sent first and the log read once
        the marker is in it (the markers are left out of what this returns)."""
        log = self.docroot.parent / "access.log"
        if self.name in ("nginx", "apache"):
            self._sync_log(log)
        try:
            text = log.read_text(errors="replace")
        except OSError:
            return []
        fields = [line.split(" ", 2) for line in text.splitlines() if line]
        return [" ".join(f[:2]) for f in fields if not "".join(f[1:2]).startswith(_LOG_MARKER)]

    def _sync_log(self, log: Path) -> None:
        path = f"{_LOG_MARKER}{os.getpid()}-{next(_counter)}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request("GET", path)
            conn.getresponse().read()
        finally:
            conn.close()
        wait_logged(self.name, [log], f"GET {path} ")


def wait_logged(server: str, logs: Iterable[Path], marker: str) -> None:
    """Wait until every one of ``logs`` holds ``marker`` (a server logs a request after it
    has answered it); a log not written yet holds nothing."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if all(marker.encode() in p.read_bytes() for p in logs):
                return
        time.sleep(0.01)
    pytest.fail(f"{server} did not log {marker} within 20 s")


def settle_probe(url: str) -> re.Pattern[str]:
    """The path a writing command sends a ``MOVE`` of to learn whether the server moves: a
    temporary name at the root of the mirror at ``url`` that nothing wrote (see
    ``WebDAVBackend.settle``); nothing else sends a temporary name there."""
    root = urllib.parse.urlsplit(url).path.rstrip("/")
    return re.compile(re.escape(root) + r"/\.sstate-mirror-[0-9a-f]{16}\.tmp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_dirs(name: str, locations: List[str]) -> Path:
    base = Path(tempfile.mkdtemp(prefix=f"sstate-{name}-"))
    os.chmod(base, 0o755)
    (base / "root").mkdir(mode=0o755)
    for loc in locations:
        (base / "root" / loc).mkdir()
        os.chmod(base / "root" / loc, 0o777)
    return base


_which = find_tool  # the name tests/log_servers.py imports


class _PortTaken(Exception):
    """Another process took the port between choosing it and the server's bind."""


def _start(name: str, configure: Callable[[int], List[str]], base: Path, log_file: Path,
           env: Optional[Dict[str, str]] = None) -> DavServer:
    """Start the server on a free port; choose another if someone else bound it first.

    ``configure(port)`` writes the configuration for ``port`` and returns the command line.
    Choosing a free port and the server's bind are two steps, and other test runs on the
    machine choose ports too: a server that exits with EADDRINUSE is started again.
    """
    for _attempt in range(5):
        port = free_port()
        argv = configure(port)
        try:
            return _start_once(name, argv, base, port, log_file, env)
        except _PortTaken:
            continue
    pytest.fail(f"{name}: every port tried was taken by another process")


def _start_once(name: str, argv: List[str], base: Path, port: int, log_file: Path,
                env: Optional[Dict[str, str]] = None) -> DavServer:
    log_file.write_bytes(b"")
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=base,
                                env=env, start_new_session=True)
    server = DavServer(name, port, base / "root", proc, log_file)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if "in use" in server.log().lower():
                raise _PortTaken()
            pytest.fail(f"{name} exited with {proc.returncode} at start:\n{server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.05)
    _stop(server, remove=False)
    pytest.fail(f"{name} did not listen on port {port} within 20 s:\n{server.log()}")


def _stop(server: DavServer, remove: bool = True) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)
    if remove:
        shutil.rmtree(server.docroot.parent, ignore_errors=True)


# -- wsgidav -----------------------------------------------------------------------------

_WSGIDAV_MAIN = r"""
import json, sys, logging
from cheroot import wsgi
from wsgidav.wsgidav_app import WsgiDAVApp
config = json.load(open(sys.argv[1]))
app = WsgiDAVApp(config)
logging.getLogger("wsgidav").setLevel(logging.ERROR)
server = wsgi.Server((config["host"], config["port"]), app, numthreads=16)
try:
    server.start()
except KeyboardInterrupt:
    server.stop()
"""


@pytest.fixture(scope="session")
def wsgidav_server() -> Iterator[DavServer]:
    for name in ("wsgidav", "cheroot"):
        module(name, "pip install -e '.[test]'; scripts/test installs it")
    base = _server_dirs("wsgidav", ["open", "auth"])
    config = {
        "host": "127.0.0.1",
        "provider_mapping": {"/open": str(base / "root/open"),
                             "/auth": str(base / "root/auth")},
        "simple_dc": {"user_mapping": {
            "/open": True,
            "/auth": {USER: {"password": PASSWORD, "roles": []}},
        }},
        "http_authenticator": {"accept_basic": True, "accept_digest": True,
                               "default_to_digest": True},
        "mutable_live_props": ["{DAV:}getlastmodified"],
        "dir_browser": {"enable": False},
        "verbose": 1,
        "logging": {"enable": False},
    }

    def configure(port: int) -> List[str]:
        (base / "wsgidav.json").write_text(json.dumps({**config, "port": port}))
        return [sys.executable, "-c", _WSGIDAV_MAIN, str(base / "wsgidav.json")]

    server = _start("wsgidav", configure, base, base / "server.log")
    yield server
    _stop(server)


# -- Apache httpd ------------------------------------------------------------------------

_APACHE_MODULES = ["mpm_event", "authz_core", "authn_core", "authn_file", "authz_user",
                   "auth_basic", "auth_digest", "dav", "dav_fs"]


def _apache_module_dir() -> Optional[Path]:
    for d in ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules"):
        if Path(d, "mod_dav_fs.so").is_file():
            return Path(d)
    return None


@pytest.fixture(scope="session")
def apache_server() -> Iterator[DavServer]:
    install = "Debian package apache2; scripts/test installs it"
    binary = require(find_tool("apache2") or find_tool("httpd"), "Apache httpd", install)
    modules = require(_apache_module_dir(), "Apache's mod_dav_fs", install)
    base = _server_dirs("apache", ["open", "infinity", "rw", "digest"])
    root = base / "root"
    _write_htpasswd(base / "htpasswd")
    ha1 = hashlib.md5(f"{USER}:sstate:{PASSWORD}".encode()).hexdigest()
    (base / "htdigest").write_text(f"{USER}:sstate:{ha1}\n")
    load = "\n".join(f"LoadModule {m}_module {modules}/mod_{m}.so" for m in _APACHE_MODULES)
    user = _apache_user(base)
    conf = f"""
ServerRoot "{base}"
ServerName 127.0.0.1
Listen 127.0.0.1:@PORT@
PidFile "{base}/httpd.pid"
ErrorLog "{base}/server.log"
LogLevel warn
LogFormat "%m %U %>s" requests
CustomLog "{base}/access.log" requests
{load}
{user}
Timeout 30
KeepAlive On
MaxKeepAliveRequests 0
DavLockDB "{base}/DavLock"
DocumentRoot "{root}"
<Directory />
    Options None
    AllowOverride None
    Require all denied
</Directory>
<Directory "{root}/open">
    Dav On
    Require all granted
</Directory>
<Directory "{root}/infinity">
    Dav On
    DavDepthInfinity On
    Require all granted
</Directory>
# the read-write mirror of docs/webdav.md, as documented
<Directory "{root}/rw">
    Options None
    AllowOverride None
    Dav On
    DavDepthInfinity On
    LimitRequestBody 0
    AuthType Basic
    AuthName "sstate mirror uploads"
    AuthBasicProvider file
    AuthUserFile "{base}/htpasswd"
    <Limit GET HEAD OPTIONS>
        Require all granted
    </Limit>
    <LimitExcept GET HEAD OPTIONS>
        Require valid-user
    </LimitExcept>
</Directory>
<Directory "{root}/digest">
    Dav On
    AuthType Digest
    AuthName "sstate"
    AuthDigestDomain /digest/
    AuthDigestProvider file
    AuthUserFile "{base}/htdigest"
    Require valid-user
</Directory>
"""

    def configure(port: int) -> List[str]:
        (base / "httpd.conf").write_text(conf.replace("@PORT@", str(port)))
        return [binary, "-f", str(base / "httpd.conf"), "-DFOREGROUND"]

    server = _start("apache", configure, base, base / "server.log")
    yield server
    _stop(server)


def _apache_user(base: Path) -> str:
    """The ``User`` lines of an httpd run by root, which refuses to serve as root: the worker
    runs as nobody (and may enter ``base``). Empty for anyone else."""
    if os.geteuid() != 0:
        return ""
    os.chmod(base, 0o777)
    return "User nobody\nGroup nogroup\n" if _group_exists("nogroup") else "User nobody\n"


def _write_htpasswd(path: Path) -> None:
    """A password file both Apache and nginx read ({SHA} scheme, no htpasswd tool needed)."""
    sha = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
    path.write_text(f"{USER}:{{SHA}}{sha}\n")
    path.chmod(0o644)


def _group_exists(name: str) -> bool:
    try:
        import grp

        grp.getgrnam(name)
        return True
    except (ImportError, KeyError):
        return False


# -- nginx -------------------------------------------------------------------------------


def _nginx_dav_ext() -> Optional[Path]:
    for d in ("/usr/lib/nginx/modules", "/usr/lib64/nginx/modules", "/usr/share/nginx/modules"):
        p = Path(d, "ngx_http_dav_ext_module.so")
        if p.is_file():
            return p
    return None


@pytest.fixture(scope="session")
def nginx_server() -> Iterator[DavServer]:
    install = "Debian packages nginx, libnginx-mod-http-dav-ext; scripts/test installs them"
    binary = require(find_tool("nginx"), "nginx", install)
    dav_ext = require(_nginx_dav_ext(), "nginx's dav-ext module", install)
    base = _server_dirs("nginx", ["open", "strict", "nomove", "bearer", "plain", "rw"])
    root = base / "root"
    _write_htpasswd(base / "htpasswd")
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (base / "tmp" / d).mkdir(parents=True)
    user = "user root root;" if os.geteuid() == 0 else ""
    ca_cert = base / "cert.pem"
    tls = _self_signed(base, ca_cert)
    dav = ("dav_methods PUT DELETE MKCOL COPY MOVE; dav_ext_methods PROPFIND OPTIONS;"
           " dav_access user:rw group:rw all:r;")
    locations = f"""# the read-write mirror of docs/webdav.md, as documented
        location /rw/ {{
            client_max_body_size 0;
            dav_methods PUT DELETE MKCOL COPY MOVE;
            dav_ext_methods PROPFIND OPTIONS;
            create_full_put_path on;
            dav_access user:rw group:rw all:r;
            limit_except GET {{
                auth_basic "sstate mirror uploads";
                auth_basic_user_file {base}/htpasswd;
            }}
        }}"""
    tls_server = ""
    if tls:
        tls_server = f"""server {{
        listen 127.0.0.1:@TLS_PORT@ ssl;
        ssl_certificate {ca_cert};
        ssl_certificate_key {base}/key.pem;
        root {root};
        location /open/ {{ {dav} create_full_put_path on; }}
    }}"""
    conf = f"""
{user}
worker_processes 2;
pid {base}/nginx.pid;
error_log {base}/server.log warn;
load_module {dav_ext};
events {{ worker_connections 512; }}
http {{
    log_format requests '$request_method $uri $status';
    access_log {base}/access.log requests;
    client_body_temp_path {base}/tmp/body;
    proxy_temp_path {base}/tmp/proxy;
    fastcgi_temp_path {base}/tmp/fastcgi;
    uwsgi_temp_path {base}/tmp/uwsgi;
    scgi_temp_path {base}/tmp/scgi;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:@PORT@;
        root {root};
        location /open/ {{ {dav} create_full_put_path on; }}
        location /strict/ {{ {dav} }}
        location /nomove/ {{
            dav_methods PUT DELETE MKCOL; dav_ext_methods PROPFIND OPTIONS;
        }}
        location /bearer/ {{
            if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }}
            {dav}
        }}
        location /plain/ {{ }}
        {locations}
    }}
    {tls_server}
}}
"""
    tls_port = 0

    def configure(port: int) -> List[str]:
        nonlocal tls_port
        tls_port = free_port()
        (base / "nginx.conf").write_text(conf.replace("@PORT@", str(port))
                                         .replace("@TLS_PORT@", str(tls_port)))
        return [binary, "-p", f"{base}/", "-e", str(base / "server.log"),
                "-c", str(base / "nginx.conf"), "-g", "daemon off;"]

    server = _start("nginx", configure, base, base / "server.log")
    if tls:
        server.tls_port, server.ca_cert = tls_port, ca_cert
    yield server
    _stop(server)


def _self_signed(base: Path, cert: Path) -> bool:
    """A certificate for 127.0.0.1 made with the openssl tool."""
    openssl = require(find_tool("openssl"), "openssl",
                      "Debian package openssl; scripts/test installs it")
    result = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(base / "key.pem"), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True, check=False,
    )
    return result.returncode == 0


# -- one mirror per test, on each server -------------------------------------------------

SERVERS = ["wsgidav", "apache", "nginx"]


@pytest.fixture(params=SERVERS)
def webdav_server(request: pytest.FixtureRequest) -> DavServer:
    """Each of the three servers in turn (see realparts: skipped or failed where missing)."""
    server: DavServer = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture
def webdav_mirror(webdav_server: DavServer) -> DavMirror:
    """An empty anonymous read-write mirror, once on each server."""
    return webdav_server.mirror("open")


@pytest.fixture(params=[("apache", "rw"), ("nginx", "rw"), ("wsgidav", "auth")],
                ids=["apache-rw", "nginx-rw", "wsgidav-auth"])
def webdav_auth_mirror(request: pytest.FixtureRequest) -> DavMirror:
    """An empty mirror that needs a user and password for everything but GET/HEAD (wsgidav:
    for everything); ``env`` holds SSTATE_MIRROR_USER and SSTATE_MIRROR_PASSWORD."""
    name, location = request.param
    server: DavServer = request.getfixturevalue(f"{name}_server")
    return server.mirror(location)
