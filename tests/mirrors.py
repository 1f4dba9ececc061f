"""A mirror of any kind for end-to-end tests: its URL, CLI options, and a way to age files.

The ``mirror`` fixture is parametrised over every kind the suite can start here, so one
end-to-end test runs against a directory, S3 servers, WebDAV servers and the Google Cloud
Storage and Azure Blob emulators alike.
"""

from __future__ import annotations

import itertools
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest

from sstate_mirror.backends import open_backend
from sstate_mirror.backends.base import Backend, BackendOptions
from sstate_mirror.naming import CLEANS_DIR

_dirs = itertools.count()

MIRROR_KINDS = ["dir", "s3-moto", "s3-rclone", "dav-apache", "dav-nginx", "dav-wsgidav", "gcs",
                "azure"]


@dataclass
class Mirror:
    kind: str
    url: str
    cli_args: List[str] = field(default_factory=list)
    options: BackendOptions = field(default_factory=BackendOptions)
    #: make an existing file look ``seconds`` older than it is (the contract's meaning)
    backdate: Callable[[str, float], None] = lambda path, seconds: None
    #: the methods of the requests the server answered for this mirror so far, from the
    #: server's own log; None where the server keeps none
    requests: Optional[Callable[[], List[str]]] = None

    def backend(self) -> Backend:
        return open_backend(self.url, self.options)

    def sizes(self) -> Dict[str, int]:
        """Path -> size of every file, but for the leases a clean leaves (cleanlease)."""
        with self.backend() as b:
            return {e.path: e.size for e in b.list() if not is_lease(e.path)}

    def read(self, path: str) -> bytes:
        with self.backend() as b:
            return b.read(path, 1 << 30)

    def age_all(self, seconds: float, pred: Callable[[str], bool] = lambda p: True) -> None:
        """Set the last-modified time of the matching files to ``seconds`` ago."""
        with self.backend() as b:
            entries = [e for e in b.list() if pred(e.path)]
        target = time.time() - seconds
        for e in entries:
            self.backdate(e.path, e.mtime - target)


def is_lease(path: str) -> bool:
    """Whether ``path`` (relative to a mirror) is the lease of a clean: the mirror's own
    data, left out where tests compare a mirror's sstate files."""
    return path.startswith(CLEANS_DIR + "/")


def _dir_mirror(tmp_path: Path) -> Mirror:
    root = tmp_path / "mirror"
    root.mkdir()

    def backdate(path: str, seconds: float) -> None:
        st = (root / path).stat()
        os.utime(root / path, (st.st_atime - seconds, st.st_mtime - seconds))

    return Mirror("dir", str(root), backdate=backdate)


def _s3_mirror(request: pytest.FixtureRequest, server_fixture: str, kind: str) -> Mirror:
    from s3_servers import S3Bucket, s3_test_env

    server = request.getfixturevalue(server_fixture)
    monkeypatch = request.getfixturevalue("monkeypatch")
    tmp_path = request.getfixturevalue("tmp_path")
    env = s3_test_env(monkeypatch, server, tmp_path)
    bucket = S3Bucket(server=server, name=server.new_bucket(), prefix="sstate", env=env)
    log = server.request_log

    def requests() -> List[str]:
        assert log is not None
        return [line.split(" ", 1)[0] for line in list(log)
                if line.split(" ", 1)[1].startswith(f"/{bucket.name}")]

    return Mirror(kind, bucket.url, cli_args=bucket.cli_args,
                  options=BackendOptions(endpoint_url=server.endpoint_url, timeout=20, retries=2),
                  backdate=bucket.backdate, requests=None if log is None else requests)


def _dav_mirror(request: pytest.FixtureRequest, server_fixture: str, location: str,
                kind: str) -> Mirror:
    server = request.getfixturevalue(server_fixture)
    monkeypatch = request.getfixturevalue("monkeypatch")
    dav = server.mirror(location)
    for var, value in dav.env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("NETRC", os.devnull)

    def backdate(path: str, seconds: float) -> None:
        st = (dav.root / path).stat()
        os.utime(dav.root / path, (st.st_atime - seconds, st.st_mtime - seconds))

    prefix = urllib.parse.urlsplit(dav.url).path

    def requests() -> List[str]:
        return [line.split(" ", 1)[0] for line in server.requests()
                if line.split(" ", 1)[1].startswith(prefix)]

    return Mirror(kind, dav.url, options=dav.options, backdate=backdate,
                  requests=requests if server.name in ("nginx", "apache") else None)


def _cloud_mirror(request: pytest.FixtureRequest, kind: str) -> Mirror:
    """A fresh bucket (gcs) or container (azure) on its emulator, the environment set."""
    from cloud_servers import AzureContainer, GCSBucket, azure_env, gcs_env

    monkeypatch = request.getfixturevalue("monkeypatch")
    options = BackendOptions(timeout=20, retries=2)
    if kind == "gcs":
        server = request.getfixturevalue("gcs_server")
        gcs_env(monkeypatch, server)
        bucket = GCSBucket(server, server.new_bucket(), prefix="sstate")
        return Mirror(kind, bucket.url, cli_args=["--endpoint-url", server.endpoint],
                      options=options, backdate=bucket.backdate)
    azure = request.getfixturevalue("azure_server")
    azure_env(monkeypatch, azure)
    container = AzureContainer(azure, azure.new_container(), prefix="sstate")
    return Mirror(kind, container.url, cli_args=["--endpoint-url", azure.endpoint],
                  options=options, backdate=container.backdate)


#: WebDAV mirrors as documented in docs/webdav.md: anonymous reads, authenticated writes
_DAV = {"dav-apache": ("apache_server", "rw"), "dav-nginx": ("nginx_server", "rw"),
        "dav-wsgidav": ("wsgidav_server", "auth")}


@pytest.fixture(params=MIRROR_KINDS)
def mirror(request: pytest.FixtureRequest, tmp_path: Path) -> Mirror:
    return make_mirror(request, request.param)


def make_mirror(request: pytest.FixtureRequest, kind: str) -> Mirror:
    """A fresh empty mirror of ``kind`` (starting its server if needed).

    A test that gets a server this way carries the ``server`` marker: conftest puts it on
    tests parametrised with a server kind; any other one says ``@pytest.mark.server``.
    """
    if kind != "dir" and request.node.get_closest_marker("server") is None:
        pytest.fail(f"{request.node.nodeid} starts a server ({kind}) but is not marked"
                    " @pytest.mark.server", pytrace=False)
    if kind == "dir":
        tmp_path = request.getfixturevalue("tmp_path")
        base = tmp_path / f"dir-{next(_dirs)}"
        base.mkdir()
        return _dir_mirror(base)
    if kind == "s3-moto":
        return _s3_mirror(request, "moto_s3", kind)
    if kind == "s3-rclone":
        return _s3_mirror(request, "rclone_s3", kind)
    if kind in _DAV:
        return _dav_mirror(request, *_DAV[kind], kind)
    if kind in ("gcs", "azure"):
        return _cloud_mirror(request, kind)
    raise AssertionError(kind)
