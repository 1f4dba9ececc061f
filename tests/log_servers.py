"""Real nginx and Apache serving a directory mirror read-only, each writing its own access logs.

The servers log in every format ``touch --access-log`` reads (the log format lines are the
ones docs/retention.md shows), and :func:`bitbake_restore` sends what bitbake sends when it
restores objects from an HTTP mirror (FORMATS.md §2): a ``HEAD`` of every wanted archive at
the setscene existence check (a 404 tried twice), then ``HEAD``/``GET`` of each archive and
its ``.siginfo``, every ``:`` sent as ``%3A``. :func:`other_clients` mixes in what other
clients of the same server send.
"""

from __future__ import annotations

import http.client
import itertools
import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import pytest

from webdav_servers import (
    DavServer,
    _apache_module_dir,
    _apache_user,
    _server_dirs,
    _stop,
    _which,
    free_port,
    wait_logged,
)
from webdav_servers import (
    _start_once as _start,
)

#: nginx: the log formats of docs/retention.md (``combined`` is built into nginx).
NGINX_FORMATS = {
    "common": '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent',
    "vhost_combined": '$host:$server_port $remote_addr - $remote_user [$time_local] "$request"'
                      ' $status $body_bytes_sent "$http_referer" "$http_user_agent"',
    "iso": "$time_iso8601 $request_method $request_uri $status",
}
NGINX_LOGS = {"combined": "access.log", "common": "common.log",
              "vhost_combined": "vhost.log", "iso": "iso.log"}

#: Apache: the standard definitions (Debian's apache2.conf carries the same lines).
APACHE_FORMATS = {
    "vhost_combined": r'"%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\""',
    "combined": r'"%h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\""',
    "common": r'"%h %l %u %t \"%r\" %>s %O"',
}
APACHE_LOGS = {"combined": "access.log", "common": "common.log",
               "vhost_combined": "vhost.log"}

_sites = itertools.count()


@dataclass
class LogServer:
    """A running server, its document root and its access logs (format -> file)."""

    server: DavServer
    logs: Dict[str, Path]

    @property
    def name(self) -> str:
        return self.server.name

    def site(self) -> Tuple[Path, str]:
        """A fresh directory below the document root, and its URL; the logs start empty."""
        name = f"site{next(_sites)}"
        root = self.server.docroot / name
        root.mkdir()
        os.chmod(root, 0o777)
        index = self.server.docroot / "index.html"
        index.write_text("<html>another site</html>\n")
        index.chmod(0o644)
        for log in self.logs.values():
            log.write_bytes(b"")  # the servers append (O_APPEND): truncating is safe
        return root, f"http://127.0.0.1:{self.server.port}/{name}/"

    def wait_logged(self, marker: str) -> None:
        """Wait until every log holds ``marker`` (servers log after answering)."""
        wait_logged(self.name, self.logs.values(), marker)


@pytest.fixture(scope="module")
def nginx_logging() -> Iterator[LogServer]:
    binary = _which("nginx")
    if binary is None:
        pytest.skip("nginx is not installed (Debian package nginx; scripts/test installs it)")
    base = _server_dirs("nginx-log", [])
    port = free_port()
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (base / "tmp" / d).mkdir(parents=True)
    user = "user root root;" if os.geteuid() == 0 else ""
    formats = "\n".join(f"    log_format {n} '{f}';" for n, f in NGINX_FORMATS.items())
    logs = "\n".join(f"    access_log {base}/{f} {n};" for n, f in NGINX_LOGS.items())
    conf = f"""
{user}
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/server.log warn;
events {{ worker_connections 64; }}
http {{
{formats}
{logs}
    client_body_temp_path {base}/tmp/body;
    proxy_temp_path {base}/tmp/proxy;
    fastcgi_temp_path {base}/tmp/fastcgi;
    uwsgi_temp_path {base}/tmp/uwsgi;
    scgi_temp_path {base}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {base}/root;
    }}
}}
"""
    (base / "nginx.conf").write_text(conf)
    server = _start("nginx", [binary, "-p", f"{base}/", "-e", str(base / "server.log"),
                              "-c", str(base / "nginx.conf"), "-g", "daemon off;"],
                    base, port, base / "server.log")
    yield LogServer(server, {n: base / f for n, f in NGINX_LOGS.items()})
    _stop(server)


@pytest.fixture(scope="module")
def apache_logging() -> Iterator[LogServer]:
    binary = _which("apache2") or _which("httpd")
    modules = _apache_module_dir()
    if binary is None or modules is None:
        pytest.skip("Apache httpd is not installed (Debian package apache2; scripts/test"
                    " installs it)")
    base = _server_dirs("apache-log", [])
    port = free_port()
    load = "\n".join(f"LoadModule {m}_module {modules}/mod_{m}.so"
                     for m in ("mpm_event", "authz_core", "log_config", "logio")
                     if (modules / f"mod_{m}.so").is_file())
    user = _apache_user(base)
    formats = "\n".join(f"LogFormat {f} {n}" for n, f in APACHE_FORMATS.items())
    logs = "\n".join(f'CustomLog "{base}/{f}" {n}' for n, f in APACHE_LOGS.items())
    conf = f"""
ServerRoot "{base}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{base}/httpd.pid"
ErrorLog "{base}/server.log"
LogLevel warn
{load}
{user}
KeepAlive On
{formats}
{logs}
DocumentRoot "{base}/root"
<Directory />
    Options None
    AllowOverride None
    Require all granted
</Directory>
"""
    (base / "httpd.conf").write_text(conf)
    server = _start("apache", [binary, "-f", str(base / "httpd.conf"), "-DFOREGROUND"],
                    base, port, base / "server.log")
    yield LogServer(server, {n: base / f for n, f in APACHE_LOGS.items()})
    _stop(server)


# -- clients --------------------------------------------------------------------------------


class Client:
    """One keep-alive connection, as wget and bitbake's fetcher use."""

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.path = parts.path
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)

    def request(self, method: str, path: str, agent: str) -> int:
        """``path`` relative to the base URL, sent percent-encoded (':' as %3A)."""
        target = self.path + urllib.parse.quote(path, safe="/")
        self.conn.request(method, target, headers={"User-Agent": agent})
        response = self.conn.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self.conn.close()


def bitbake_restore(base_url: str, archives: Iterable[str], missing: Iterable[str] = ()
                    ) -> Dict[str, int]:
    """What bitbake 2.18 sends to restore ``archives`` (and to look for ``missing`` ones)."""
    archives, missing = sorted(archives), sorted(missing)
    client = Client(base_url)
    statuses: Dict[str, int] = {}
    try:
        for path in sorted(archives + missing):  # the setscene existence check
            status = client.request("HEAD", path, "bitbake/2.18.0")
            if status == 404:
                status = client.request("HEAD", path, "bitbake/2.18.0")
            statuses[path] = status
        for path in archives:  # the setscene tasks, through wget
            for name in (path, path + ".siginfo"):
                client.request("HEAD", name, "Wget/1.21.3")
                client.request("GET", name, "Wget/1.21.3")
    finally:
        client.close()
    return statuses


def other_clients(server_url: str, mirror_url: str, mirror_files: List[str]) -> None:
    """Requests of other clients of the same server: none of them is a use of the mirror."""
    client = Client(server_url)
    try:
        client.request("GET", "index.html", "curl/7.88.1")            # 200: another site
        client.request("GET", "favicon.ico", "Mozilla/5.0")           # 404
        client.request("GET", "robots.txt?x=1", "Googlebot/2.1")      # 404
        mirror = Client(mirror_url)
        try:
            victim = mirror_files[0]
            mirror.request("DELETE", victim, "curl/7.88.1")           # 405: read-only server
            mirror.request("PROPFIND", victim, "cadaver/0.24")        # 405
            mirror.request("POST", victim, "curl/7.88.1")             # 405
            mirror.request("GET", "no/such/" + victim.rsplit("/", 1)[-1], "Wget/1.21.3")  # 404
        finally:
            mirror.close()
    finally:
        client.close()


def send_marker(base_url: str, marker: str) -> None:
    client = Client(base_url)
    try:
        client.request("GET", marker, "test-marker")
    finally:
        client.close()


__all__ = [
    "APACHE_FORMATS",
    "NGINX_FORMATS",
    "LogServer",
    "apache_logging",
    "bitbake_restore",
    "nginx_logging",
    "other_clients",
    "send_marker",
]
