"""The Azure Blob backend against Azurite on 127.0.0.1.

The shared contract, then what only Azure shows: which field ``touch`` moves
(``Last-Modified`` by Set Blob Metadata, metadata kept), block uploads, blob batch deletes
and their single-delete fallback, parallel prefix listing, every way to give credentials
(connection string, account key, SAS token as ``AZ_SAS``), and the errors a user meets.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from backend_contract import *  # noqa: F403 - the shared contract tests
from backend_contract import ContractEnv
from cloud_servers import (
    AZURE_HOST,
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    CLOUD_VARS_TO_CLEAR,
    AzureContainer,
    AzureServer,
    OAuthAzure,
    TokenServer,
)
from s3_servers import free_port
from sstate_mirror.backends import BackendOptions, open_backend
from sstate_mirror.backends.azure import AzureBackend, credential_source, parse_az_url
from sstate_mirror.cli import main
from sstate_mirror.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    TransientError,
    UsageError,
)

pytestmark = pytest.mark.server

MiB = 1024 * 1024


def backend_for(container: AzureContainer, **options: Any) -> AzureBackend:
    opts = container.options
    for name, value in options.items():
        setattr(opts, name, value)
    b = open_backend(container.url, opts)
    assert isinstance(b, AzureBackend)
    return b


@pytest.fixture(params=["root", "prefix"])
def contract_env(request: pytest.FixtureRequest,
                 azure_container: AzureContainer) -> Iterator[ContractEnv]:
    if request.param == "prefix":
        azure_container.prefix = "team/sstate"
    with backend_for(azure_container) as backend:
        yield ContractEnv(backend=backend, backdate=azure_container.backdate)


def put(b: AzureBackend, path: str, data: bytes) -> None:
    b.put(path, io.BytesIO(data), len(data))


def test_url_forms() -> None:
    assert parse_az_url("az://acct.blob.core.windows.net/sstate") == (
        "acct.blob.core.windows.net", "sstate", "")
    assert parse_az_url("az://Acct.blob.core.windows.net/sstate/a/b/") == (
        "acct.blob.core.windows.net", "sstate", "a/b")
    for bad in ["az://", "az://acct/sstate", "az://acct.blob.core.windows.net/",
                "az://acct.blob.core.windows.net/UP", "az://u@acct.blob.core.windows.net/c",
                "az://acct.blob.core.windows.net/cont?sv=x",
                "az://acct.blob.core.windows.net/cont/a/../b"]:
        with pytest.raises(UsageError):
            parse_az_url(bad)


def test_touch_moves_last_modified_and_keeps_metadata(azure_container: AzureContainer) -> None:
    c = azure_container.client()
    c.upload_blob("aa/bb/x", b"payload", metadata={"origin": "ci"},
                  content_settings=__import__("azure.storage.blob", fromlist=["x"])
                  .ContentSettings(content_type="application/zstd"))
    azure_container.backdate("aa/bb/x", 5 * 86400)
    with backend_for(azure_container) as b:
        old = b.stat("aa/bb/x")
        assert old is not None
        assert b.touch(["aa/bb/x"]) == {}
        new = b.stat("aa/bb/x")
    assert new is not None and new.mtime > old.mtime + 4 * 86400
    props = c.get_blob_client("aa/bb/x").get_blob_properties()
    assert props.metadata == {"origin": "ci"}
    assert props.content_settings.content_type == "application/zstd"
    assert c.download_blob("aa/bb/x").readall() == b"payload"


def test_block_upload_and_size_mismatch(azure_container: AzureContainer) -> None:
    data = os.urandom(3 * MiB + 77)
    with backend_for(azure_container) as b:
        b.single_put_max = b.block_size = 1 * MiB
        b._client_obj = None  # the client takes the sizes when made
        b.put("aa/bb/big", io.BytesIO(data), len(data))
        blocks = azure_container.client().get_blob_client("aa/bb/big").get_block_list()[0]
        assert len(blocks) == 4  # staged blocks, committed at once
        with b.open("aa/bb/big") as f:
            assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
        with pytest.raises(PermanentError, match="expected"):
            b.put("aa/bb/short", io.BytesIO(data), len(data) + 1)
        with pytest.raises(PermanentError, match="more than"):
            b.put("aa/bb/long", io.BytesIO(data), len(data) - 1)
        assert [e.path for e in b.list()] == ["aa/bb/big"]


def test_delete_in_batches(azure_container: AzureContainer) -> None:
    paths = [f"{i % 256:02x}/00/f{i}" for i in range(300)]
    c = azure_container.client()
    for p in paths:
        c.upload_blob(p, b"1")
    with backend_for(azure_container) as b:
        assert b.delete([*paths, "ff/ff/never-was"]) == {}
        assert b.batch_supported is True
        assert list(b.list()) == []


def test_delete_falls_back_to_single_deletes(azure_container: AzureContainer) -> None:
    paths = [f"{i:02x}/00/f" for i in range(5)]
    with backend_for(azure_container) as b:
        for p in paths:
            put(b, p, b"1")
        b.batch_supported = False
        assert b.delete([*paths, "ff/ff/never-was"]) == {}
        assert list(b.list()) == []


def test_parallel_listing_matches_sequential(azure_container: AzureContainer) -> None:
    paths = [f"{i % 256:02x}/{i % 7:02x}/f{i}" for i in range(600)]
    paths += [f"universal/{i:02x}/00/u{i}" for i in range(40)] + ["top-level-file"]
    c = azure_container.client()
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda p: c.upload_blob(p, b"x"), paths))
    with backend_for(azure_container) as b:
        sequential = sorted(e.path for e in b.list())
        b.parallel_list_min = 0
        b.list_workers = 4
        b.page_size = 100
        parallel = [e.path for e in b.list()]
    assert sorted(parallel) == sequential == sorted(paths)
    assert len(parallel) == len(set(parallel))


def _sas(server: AzureServer, container: str, **perms: bool) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        AZURITE_ACCOUNT, container, account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(**perms),
        expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))


@pytest.mark.parametrize("variable", ["AZ_SAS", "AZURE_STORAGE_SAS_TOKEN"])
def test_sas_token(azure_container: AzureContainer, monkeypatch: pytest.MonkeyPatch,
                   variable: str, caplog: pytest.LogCaptureFixture) -> None:
    """bitbake's AZ_SAS (with its leading '?') works for every command; never printed."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    sas = _sas(azure_container.server, azure_container.name, read=True, write=True,
               delete=True, list=True)
    monkeypatch.setenv(variable, "?" + sas)
    opts = BackendOptions(endpoint_url=azure_container.server.endpoint, timeout=10, retries=0)
    with open_backend(azure_container.url, opts) as b:
        b.check()
        b.put("aa/bb/x", io.BytesIO(b"1"), 1)  # type: ignore[arg-type]
        assert [e.path for e in b.list()] == ["aa/bb/x"]
        assert b.touch(["aa/bb/x"]) == {}
        assert b.delete(["aa/bb/x", "aa/bb/y"]) == {}
        assert list(b.list()) == []
    # a read-only SAS: reads work, writes are denied with a clear error, nothing printed
    ro = _sas(azure_container.server, azure_container.name, read=True, list=True)
    monkeypatch.setenv(variable, ro)
    with open_backend(azure_container.url, opts) as b:
        b.check()
        with pytest.raises(AuthError, match="access denied") as e:
            b.put("aa/bb/z", io.BytesIO(b"1"), 1)  # type: ignore[arg-type]
        assert e.value.hint is not None and "docs/azure.md" in e.value.hint
        for secret in (sas, ro):
            sig = secret.split("sig=")[1].split("&")[0]
            assert sig not in f"{e.value} {e.value.hint}" and sig not in caplog.text


def test_account_key(azure_container: AzureContainer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_KEY", AZURITE_KEY)
    opts = BackendOptions(endpoint_url=azure_container.server.endpoint, timeout=10, retries=0)
    with open_backend(azure_container.url, opts) as b:
        b.put("aa/bb/x", io.BytesIO(b"1"), 1)  # type: ignore[arg-type]
        assert [e.path for e in b.list()] == ["aa/bb/x"]


def test_wrong_key_is_rejected_and_never_shown(
        azure_container: AzureContainer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    import base64

    wrong = base64.b64encode(b"wrong-key-SHOULD-NEVER-BE-PRINTED-" * 2).decode()
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_KEY", wrong)
    opts = BackendOptions(endpoint_url=azure_container.server.endpoint, timeout=10, retries=0)
    with open_backend(azure_container.url, opts) as b:
        errors = []
        with pytest.raises(AuthError, match=r"credentials rejected|access denied") as e:
            b.check()
        errors.append(e.value)
        errors.extend(b.delete(["aa/bb/x", "aa/bb/y"]).values())
        errors.extend(b.touch(["aa/bb/x"]).values())
    assert len(errors) == 4 and all(isinstance(x, AuthError) for x in errors)
    for err in errors:
        assert wrong not in f"{err} {err.hint}"
    assert wrong not in caplog.text


def test_connection_string_of_another_account_is_refused(
        azure_container: AzureContainer) -> None:
    with pytest.raises(UsageError, match="account"):
        open_backend(f"az://other.blob.core.windows.net/{azure_container.name}")


def test_missing_container(azure_container: AzureContainer) -> None:
    azure_container.name += "-missing"
    with backend_for(azure_container) as b:
        with pytest.raises(NotFoundError, match=f"container {azure_container.name} does not"):
            b.check()
        with pytest.raises(NotFoundError):
            list(b.list())
        with pytest.raises(NotFoundError), b.open("aa/bb/x"):
            pass
        b.check(create=True)
        b.check()


def test_unreachable_server(azure_server: AzureServer, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_server.connection_string)
    b = open_backend(f"az://{AZURE_HOST}/c-x-y", BackendOptions(
        endpoint_url=f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}", timeout=2, retries=0))
    with pytest.raises(TransientError, match=f"cannot reach http://127.0.0.1:{port}"):
        b.check()


def test_unsafe_blob_names_are_reported_not_listed(azure_container: AzureContainer) -> None:
    c = azure_container.client()
    for key in ["aa//bb", "aa/bb/ok", "aa/dir/"]:
        c.upload_blob(key, b"1")
    with backend_for(azure_container) as b:
        skipped: List[str] = []
        assert [e.path for e in b.list(on_skip=lambda p, _w: skipped.append(p))] == ["aa/bb/ok"]
        assert skipped == ["aa//bb"]


def test_default_azure_credential_from_a_managed_identity(
        azure_oauth_server: OAuthAzure, token_server: TokenServer,
        monkeypatch: pytest.MonkeyPatch, oe_cache_a: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """No connection string, key or SAS, and azure-identity installed: DefaultAzureCredential
    finds the managed identity (App Service style: IDENTITY_ENDPOINT and IDENTITY_HEADER),
    and every command works with its bearer token, which Azurite accepts only over HTTPS.
    TLS is verified against --ca-cert, even where REQUESTS_CA_BUNDLE names a bundle
    without that CA; without --ca-cert the same command refuses the server."""
    import certifi

    for var in CLOUD_VARS_TO_CLEAR:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", token_server.url)
    monkeypatch.setenv("IDENTITY_HEADER", token_server.secret)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    endpoint = azure_oauth_server.server.endpoint
    assert endpoint.startswith("https://")
    url = f"az://{AZURE_HOST}/oauth-{os.getpid()}/sstate"
    tls = ["--endpoint-url", endpoint, "--ca-cert", str(azure_oauth_server.ca_cert),
           "--retries", "0", "--json"]
    assert credential_source() == "DefaultAzureCredential"

    def run(*argv: str) -> Tuple[int, Any, str]:
        code = main([*argv, *tls])
        out, err = capsys.readouterr()
        return code, json.loads(out) if out.strip() else None, err

    code, report, err = run("upload", str(oe_cache_a), url)
    assert code == 0, err
    assert report["result"]["uploaded"] == 93
    code, report, err = run("info", url)
    assert code == 0 and report["files"] == 93, err
    code, report, err = run("verify", url, "--all")
    assert code == 0, err
    opts = BackendOptions(endpoint_url=endpoint, ca_cert=str(azure_oauth_server.ca_cert),
                          timeout=10, retries=0)
    with open_backend(url, opts) as b:
        paths = sorted(e.path for e in b.list())
        assert len(paths) == 93
        assert b.read(paths[0], 1 << 20) == (oe_cache_a / paths[0]).read_bytes()
        assert b.touch(paths[:2]) == {}
        assert b.delete(paths[:3]) == {}
        assert len(list(b.list())) == 90
    # the token came from the managed-identity endpoint, for Azure Storage
    assert token_server.requests and set(token_server.requests) == {"https://storage.azure.com"}
    # verification is on: the test's CA is not in REQUESTS_CA_BUNDLE
    code = main(["info", url, "--endpoint-url", endpoint, "--retries", "0"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err

