"""Credentials never appear in output, logs, exceptions or --json, whatever the command.

Every command that talks to a mirror runs with credentials given each way the tool accepts
them (URL userinfo, environment, netrc, bearer token, AWS secret key), against a real server,
in success and in failure (wrong password, unreachable server), with ``-vv`` and with
``--json``, and with every logger captured at DEBUG. All of it is searched for the secret
values (and for the Basic authorization header that would carry them).

Earlier tests cover the error translation of each backend in isolation
(``test_backend_s3.py``, ``test_backend_webdav.py``); this one checks the whole tool.
"""

from __future__ import annotations

import base64
import logging
import os
import urllib.parse
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from mirrors import make_mirror
from sstate_mirror.cli import main
from webdav_servers import PASSWORD, TOKEN, USER, DavServer

WRONG = "Wr0ng-pass-7Zq-secret"


def _commands(cache: Path, url: str) -> List[List[str]]:
    """Every command that reads or writes a mirror, pointed at ``url``."""
    return [
        ["upload", str(cache), url],
        ["touch", str(cache), url],
        ["info", url],
        ["verify", "--all", url],
        ["analyze", str(cache), url],
        ["lint", "--pedantic", url],
        ["dumpsig", url.rstrip("/") + "/" + _siginfo(cache)],
        ["clean", "--max-age", "30d", url],
    ]


def _run_all(argvs: List[List[str]], capsys: pytest.CaptureFixture[str],
             caplog: pytest.LogCaptureFixture) -> Tuple[str, Dict[str, int]]:
    """Run each command with -vv and --json: everything printed and logged, and each exit code.

    An exception out of ``main`` is a crash and fails the test (the CLI turns every error
    into a message and an exit code).
    """
    caplog.set_level(logging.DEBUG)
    text: List[str] = []
    codes: Dict[str, int] = {}
    for argv in argvs:
        extra = ["-vv", "--json"]  # -vv text goes to stderr, the JSON to stdout
        codes[argv[0]] = main([*extra, *argv, "--retries", "0", "--timeout", "5"])
        out, err = capsys.readouterr()
        text += [out, err]
    text.append(caplog.text)
    text += [repr(r.args) + repr(r.exc_info) for r in caplog.records]
    return "\n".join(text), codes


#: Exit codes: everything works with the right credentials (``lint`` finds the test cache's
#: deliberate problems), and nothing can be done without them (3: the mirror cannot be used).
ALL_OK = {"upload": 0, "touch": 0, "info": 0, "verify": 0, "analyze": 0, "lint": 1,
          "dumpsig": 0, "clean": 0}
ALL_REFUSED = dict.fromkeys(ALL_OK, 3)


def _siginfo(cache: Path) -> str:
    """A signature file of the cache, by its path relative to the cache (and the mirror)."""
    return next(str(p.relative_to(cache)) for p in sorted(cache.rglob("*.siginfo")))


def _assert_clean(text: str, secrets: List[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"secret {secret[:3]}... appears in the output"
        assert urllib.parse.quote(secret) not in text
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert basic not in text


@pytest.fixture
def dav_auth(wsgidav_server: DavServer, monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path) -> Tuple[DavServer, str]:
    """A wsgidav location that requires USER/PASSWORD; no credentials in the environment."""
    for var in ("SSTATE_MIRROR_USER", "SSTATE_MIRROR_PASSWORD", "SSTATE_MIRROR_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", os.devnull)
    mirror = wsgidav_server.mirror("auth", credentials=False)
    return wsgidav_server, mirror.url


@pytest.mark.parametrize("how", ["url", "env", "netrc"])
def test_webdav_password_never_shown(how: str, dav_auth: Tuple[DavServer, str],
                                     oe_cache_a: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str],
                                     caplog: pytest.LogCaptureFixture) -> None:
    _, url = dav_auth
    parts = urllib.parse.urlsplit(url)

    def with_credentials(password: str) -> str:
        if how == "url":
            netloc = f"{USER}:{urllib.parse.quote(password, safe='')}@{parts.netloc}"
            return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        if how == "env":
            monkeypatch.setenv("SSTATE_MIRROR_USER", USER)
            monkeypatch.setenv("SSTATE_MIRROR_PASSWORD", password)
        else:
            netrc = tmp_path / "netrc"
            netrc.write_text(f"machine {parts.hostname} login {USER} password {password}\n")
            netrc.chmod(0o600)
            monkeypatch.setenv("NETRC", str(netrc))
        return url

    good = with_credentials(PASSWORD)
    text, codes = _run_all(_commands(oe_cache_a, good), capsys, caplog)
    assert codes == ALL_OK, text[-3000:]  # the credentials were used, by every command
    _assert_clean(text, [PASSWORD])
    bad = with_credentials(WRONG)
    text, codes = _run_all(_commands(oe_cache_a, bad), capsys, caplog)
    assert codes == ALL_REFUSED, text[-3000:]
    assert "error:" in text
    _assert_clean(text, [WRONG, PASSWORD])


def test_unreachable_server_with_credentials(oe_cache_a: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str],
                                             caplog: pytest.LogCaptureFixture,
                                             dead_port: int) -> None:
    monkeypatch.setenv("SSTATE_MIRROR_TOKEN", TOKEN)
    url = f"http://{USER}:{urllib.parse.quote(PASSWORD)}@127.0.0.1:{dead_port}/m/"
    text, codes = _run_all(_commands(oe_cache_a, url), capsys, caplog)
    assert codes == ALL_REFUSED, text[-3000:]
    assert "127.0.0.1" in text
    _assert_clean(text, [PASSWORD, TOKEN])


def test_bearer_token_never_shown(nginx_server: DavServer, oe_cache_a: Path,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str],
                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NETRC", os.devnull)
    mirror = nginx_server.mirror("bearer", credentials=False)
    monkeypatch.setenv("SSTATE_MIRROR_TOKEN", TOKEN)
    text, codes = _run_all(_commands(oe_cache_a, mirror.url), capsys,
                           caplog)
    assert codes == ALL_OK, text[-3000:]
    _assert_clean(text, [TOKEN])
    monkeypatch.setenv("SSTATE_MIRROR_TOKEN", WRONG)
    text, codes = _run_all(_commands(oe_cache_a, mirror.url), capsys,
                           caplog)
    assert codes == ALL_REFUSED, text[-3000:]
    _assert_clean(text, [TOKEN, WRONG])


@pytest.mark.parametrize("kind", ["s3-rclone"])  # rclone, unlike moto, rejects a wrong key
def test_aws_secret_key_never_shown(kind: str, request: pytest.FixtureRequest,
                                    oe_cache_a: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str],
                                    caplog: pytest.LogCaptureFixture, dead_port: int) -> None:
    m = make_mirror(request, kind)
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    endpoint = m.cli_args
    argvs = [[*argv, *endpoint] for argv in _commands(oe_cache_a, m.url)]
    text, codes = _run_all(argvs, capsys, caplog)
    assert codes == ALL_OK, text[-3000:]
    _assert_clean(text, [secret])
    # a wrong key (rclone rejects it; moto takes any), then an unreachable endpoint
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", WRONG)
    text, codes = _run_all(argvs, capsys, caplog)
    assert codes == ALL_REFUSED, text[-3000:]
    _assert_clean(text, [secret, WRONG])
    dead = ["--endpoint-url", f"http://127.0.0.1:{dead_port}"]
    argvs = [[*argv, *dead] for argv in _commands(oe_cache_a, m.url)
             if argv[0] in ("upload", "info", "clean")]
    text, codes = _run_all(argvs, capsys, caplog)
    assert codes == {"upload": 3, "info": 3, "clean": 3}, text[-3000:]
    _assert_clean(text, [secret, WRONG])


#: Passwords holding the characters that end a URL's user info for ``urllib``.
_AWKWARD = ["se/cret-7Zq", "se@cret-7Zq", "se:cret-7Zq", "se?cret-7Zq", "se#cret-7Zq",
            "12/34-7Zq"]


@pytest.mark.parametrize("password", _AWKWARD)
def test_password_with_url_delimiters_is_redacted(password: str) -> None:
    from sstate_mirror.backends import redact_url
    from sstate_mirror.backends.base import redact_text

    url = f"https://user:{password}@mirror.example/sstate/"
    secret = password.split("-")[0][2:]  # what follows the delimiter
    for shown in (redact_url(url), redact_text(f"cannot use {url} now"),
                  redact_text(f"cannot use '{url}'")):
        assert password not in shown and secret not in shown, shown
        assert "***@" in shown


@pytest.mark.parametrize("password", _AWKWARD)
def test_cli_never_prints_a_password_with_url_delimiters(
        password: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"https://user:{password}@127.0.0.1:9/sstate/"
    for argv in (["info", url], ["--json", "info", url]):
        code = main([*argv, "--retries", "0", "--timeout", "2"])
        out, err = capsys.readouterr()
        assert password not in out + err and password.split("-")[0] not in out + err
        assert code in (2, 3)


@pytest.mark.parametrize("url", ["https://u:p@host:99999/x", "https://u:p/q@host:99999/x",
                                 "https://host:http/x"])
def test_invalid_port_is_a_one_line_usage_error(url: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["info", url])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith("error: ") and "Traceback" not in err
    assert all(line.startswith("hint: ") for line in lines[1:])
    assert "p@" not in err and "p/q" not in err
@pytest.mark.server
@pytest.mark.parametrize("how", ["AZ_SAS", "AZURE_STORAGE_KEY", "AZURE_STORAGE_CONNECTION_STRING"])
def test_azure_credentials_never_shown(how: str, request: pytest.FixtureRequest,
                                       oe_cache_a: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str],
                                       caplog: pytest.LogCaptureFixture) -> None:
    """A SAS travels in every request's URL: it must stay out of every line and log."""
    import datetime as dt

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    from cloud_servers import AZURITE_ACCOUNT, AZURITE_KEY

    m = make_mirror(request, "azure")
    container = m.url.split("/")[3]
    secrets = [AZURITE_KEY]
    if how != "AZURE_STORAGE_CONNECTION_STRING":
        monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    if how == "AZ_SAS":
        sas = generate_container_sas(
            AZURITE_ACCOUNT, container, account_key=AZURITE_KEY,
            permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True,
                                               create=True),
            expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
        monkeypatch.setenv("AZ_SAS", sas)
        sig = sas.split("sig=")[1].split("&")[0]
        secrets += [sig, urllib.parse.unquote(sig)]
    elif how == "AZURE_STORAGE_KEY":
        monkeypatch.setenv("AZURE_STORAGE_KEY", AZURITE_KEY)
    argvs = [[*argv, *m.cli_args] for argv in _commands(oe_cache_a, m.url)]
    text, codes = _run_all(argvs, capsys, caplog)
    assert codes == ALL_OK, text[-3000:]
    _assert_clean(text, secrets)
    # a wrong key: rejected, and shown no more than the right one
    wrong = base64.b64encode(WRONG.encode() * 3).decode()
    monkeypatch.delenv("AZ_SAS", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_KEY", wrong)
    text, codes = _run_all(argvs[:3], capsys, caplog)
    assert codes == {"upload": 3, "touch": 3, "info": 3}, text[-3000:]
    _assert_clean(text, [*secrets, wrong])
