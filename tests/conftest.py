"""Shared fixtures: paths to the real sstate data shipped in tests/data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
DATA = TESTS / "data"
sys.path.insert(0, str(TESTS))  # so test modules can import backend_contract and helpers


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
    azure_server,
    gcs_bucket,
    gcs_server,
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
