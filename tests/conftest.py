"""Shared fixtures (the real sstate data in tests/data, a writable copy of it, a dead port),
and the suite's rules:

* in CI (the environment variable ``CI`` set, as ``.ci/run`` does) a skipped test is a
  failed test: a green CI has run everything (``realparts`` says what a missing part needs);
* every test that uses a real server carries the ``server`` marker, put there from the
  fixtures it uses (``-m "not server"`` runs the rest);
* Hypothesis runs derandomized and without deadlines in CI (profile ``ci``).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import List

import pytest
from hypothesis import settings

TESTS = Path(__file__).parent
DATA = TESTS / "data"
sys.path.insert(0, str(TESTS))  # so test modules can import backend_contract and helpers

from realparts import IN_CI  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))

#: Fixtures that start (or stand for) a real server; a test using one is a ``server`` test.
SERVER_FIXTURES = {
    "moto_s3", "rclone_s3", "s3_server", "s3_bucket", "s3_bucket_url", "apache_server",
    "nginx_server", "wsgidav_server", "webdav_server", "webdav_mirror", "webdav_auth_mirror",
    "mirror", "proxied", "dav_proxied", "gcs_server", "gcs_emulator", "azure_server",
    "azure_oauth_server", "apache_logging", "nginx_logging",
}
#: Parameter values that name a server kind (``make_mirror(request, kind)``).
SERVER_KINDS = ("s3-", "dav-", "gcs", "azure")


def _uses_a_server(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    for name in set(getattr(item, "fixturenames", ())) & SERVER_FIXTURES:
        defs = info.name2fixturedefs.get(name) if info is not None else None
        # a module's own fixture of the same name (a local "mirror" directory) is no server
        if name != "mirror" or not defs or defs[-1].func.__module__ == "mirrors":
            return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(isinstance(v, str) and v.startswith(SERVER_KINDS) for v in params.values())


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        if _uses_a_server(item):
            item.add_marker(pytest.mark.server)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {reason}"


@pytest.fixture
def writable_cache(tmp_path: Path, oe_cache_a: Path) -> Path:
    """A writable copy of cache-a, for tests that change the local cache."""
    from runcli import writable_copy

    return writable_copy(oe_cache_a, tmp_path / "sstate-cache")


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port of 127.0.0.1 where nothing listens, held for the test (connections refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: the kernel refuses connections
        yield int(s.getsockname()[1])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def oe_cache_a() -> Path:
    return DATA / "oe-wrynose" / "cache-a"


@pytest.fixture(scope="session")
def oe_cache_b() -> Path:
    return DATA / "oe-wrynose" / "cache-b"


@pytest.fixture(scope="session")
def legacy_cache() -> Path:
    return DATA / "legacy-honister" / "cache-a"

# Google Cloud Storage and Azure Blob emulators (tests/cloud_servers.py says how).
from cloud_servers import (  # noqa: E402, F401 - fixtures are found by name
    azure_container,
    azure_oauth_server,
    azure_server,
    gcs_batch_front,
    gcs_bucket,
    gcs_emulator,
    gcs_server,
    token_server,
)

# S3-compatible servers and buckets for any test module (tests/s3_servers.py says how).
# One mirror of every kind, for end-to-end tests (tests/mirrors.py).
# nginx and Apache writing access logs, for touch --access-log (tests/log_servers.py says how).
from log_servers import apache_logging, nginx_logging  # noqa: E402, F401 - found by name
from mirrors import mirror  # noqa: E402, F401 - fixtures are found by name
from s3_servers import (  # noqa: E402, F401 - fixtures are found by name
    moto_s3,
    rclone_s3,
    s3_bucket,
    s3_bucket_url,
    s3_server,
)

# WebDAV servers (wsgidav, Apache, nginx) for any test module (tests/webdav_servers.py says how).
from webdav_servers import (  # noqa: E402, F401 - fixtures are found by name
    apache_server,
    nginx_server,
    wsgidav_server,
)
