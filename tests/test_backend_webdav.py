"""The HTTP/WebDAV backend against real servers: wsgidav, Apache mod_dav_fs, nginx dav-ext.

The shared contract runs on each server; the rest covers what differs between servers
(Depth: infinity, parents, MOVE, touch, trailing slashes), authentication, and what a broken
or hostile server can throw at us (tiny servers written here).
"""

from __future__ import annotations

import base64
import io
import logging
import os
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import httpx
import pytest

from backend_contract import *  # noqa: F403 - the shared contract tests
from backend_contract import ContractEnv
from faultproxy import Fault, FaultProxy
from sstate_mirror.backends import daverrors, davtransport, open_backend
from sstate_mirror.backends.base import BackendOptions
from sstate_mirror.backends.davxml import parse_http_date, parse_iso8601
from sstate_mirror.backends.httppipe import Failure, Pipeline, PipeRequest
from sstate_mirror.backends.webdav import WebDAVBackend
from sstate_mirror.errors import (
    AuthError,
    BackendError,
    NotFoundError,
    PermanentError,
    TransientError,
    UsageError,
)
from sstate_mirror.naming import Kind, classify
from webdav_servers import *  # noqa: F403 - server fixtures
from webdav_servers import PASSWORD, TOKEN, USER, DavMirror, DavServer

pytestmark = pytest.mark.server


def _backend(m: DavMirror, **changes: object) -> WebDAVBackend:
    opts = BackendOptions(**{**m.options.__dict__, **changes})  # type: ignore[arg-type]
    backend = open_backend(m.url, opts)
    assert isinstance(backend, WebDAVBackend)
    return backend


def _put(b: WebDAVBackend, path: str, data: bytes) -> None:
    b.put(path, io.BytesIO(data), len(data))


@pytest.fixture
def contract_env(webdav_mirror: DavMirror) -> Iterator[ContractEnv]:
    backend = _backend(webdav_mirror)
    # nginx cannot refresh a file's time without a new upload (see test_touch_per_server)
    yield ContractEnv(backend=backend, backdate=webdav_mirror.backdate,
                      can_touch=webdav_mirror.server != "nginx")
    backend.close()


# -- what differs between servers ------------------------------------------------------


def _tree(root: Path, n_dirs: int) -> Dict[str, int]:
    """Files written straight to the server's disk, as another uploader would leave them."""
    files = {}
    for i in range(n_dirs):
        rel = f"{i:02x}/{(i * 7) % 256:02x}/sstate:p{i}:x86_64-linux:1.0:r0:x86_64:14:" \
              f"{i:064x}_populate_sysroot.tar.zst"
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * i)
        files[rel] = i
    (root / "universal" / "ab" / "cd").mkdir(parents=True)
    (root / "universal" / "ab" / "cd" / "plain").write_bytes(b"123")
    files["universal/ab/cd/plain"] = 3
    return files


@pytest.mark.parametrize(
    ("server", "location", "infinity"),
    [("wsgidav", "open", True), ("apache", "infinity", True), ("apache", "open", False),
     ("nginx", "open", False)],
)
def test_listing_depth_infinity_or_walk(request: pytest.FixtureRequest, server: str,
                                        location: str, infinity: bool) -> None:
    srv: DavServer = request.getfixturevalue(f"{server}_server")
    m = srv.mirror(location)
    files = _tree(m.root, 40)
    with _backend(m) as b:
        entries = list(b.list())
        assert {e.path: e.size for e in entries} == files
        assert len(entries) == len(files)  # each exactly once
        assert b._infinity is infinity  # type: ignore[attr-defined]
        # times are the files' times on disk, in UTC, whatever the server's format
        for e in entries:
            assert abs(e.mtime - (m.root / e.path).stat().st_mtime) < 1.5
        assert {e.path for e in b.list("universal")} == {"universal/ab/cd/plain"}
        assert list(b.list("ff/ff")) == []


def test_names_are_percent_encoded_like_bitbake(webdav_mirror: DavMirror) -> None:
    name = "ab/cd/sstate:g++-native:x86_64-linux:1.0+git:r0:x86_64:14:" + "ab" * 32 + \
        "_populate_sysroot.tar.zst"
    with _backend(webdav_mirror) as b:
        _put(b, name, b"payload")
        _put(b, "ab/cd/100% sure ü", b"odd")
    # stored under the literal name on disk ...
    assert (webdav_mirror.root / name).read_bytes() == b"payload"
    assert (webdav_mirror.root / "ab/cd/100% sure ü").read_bytes() == b"odd"
    # ... and served to bitbake's request, which encodes ':' as %3A
    raw = webdav_mirror.url + name.replace(":", "%3A").replace("+", "%2B")
    assert httpx.get(raw).content == b"payload"


@pytest.mark.parametrize(("server", "location"), [("nginx", "strict"), ("apache", "open"),
                                                  ("wsgidav", "open"), ("nginx", "open")])
def test_parents_are_created(request: pytest.FixtureRequest, server: str,
                             location: str) -> None:
    srv: DavServer = request.getfixturevalue(f"{server}_server")
    m = srv.mirror(location)
    with _backend(m) as b:
        _put(b, "a/b/c/d/file", b"deep")
        _put(b, "a/b/x/file", b"sibling")
        assert b.read("a/b/c/d/file", 10) == b"deep"
    assert (m.root / "a/b/x/file").read_bytes() == b"sibling"


@pytest.mark.parametrize(("server", "location", "needs_mkcol"),
                         [("nginx", "open", False), ("nginx", "strict", True),
                          ("apache", "open", True)])
def test_mkcol_only_where_the_server_does_not_create_parents(
        request: pytest.FixtureRequest, server: str, location: str, needs_mkcol: bool) -> None:
    """nginx with create_full_put_path makes a PUT's parents itself: no MKCOL is spent."""
    srv: DavServer = request.getfixturevalue(f"{server}_server")
    m = srv.mirror(location)
    prefix = urllib.parse.urlsplit(m.url).path
    before = len(srv.requests())
    with _backend(m) as b:
        for i in range(4):
            _put(b, f"a{i}/b/file", b"x")
    methods = [r.split(" ", 1)[0] for r in srv.requests()[before:]
               if r.split(" ", 1)[1].startswith(prefix)]
    # the first PUT into a new collection tells; only a server that needs them gets MKCOLs
    assert ("MKCOL" in methods) is needs_mkcol, methods
    # ... and only the first one tells: one PUT refused at most
    assert methods.count("PUT") <= 5, methods
    assert all((m.root / f"a{i}/b/file").read_bytes() == b"x" for i in range(4))


def test_parent_pruned_by_someone_else_is_recreated(webdav_mirror: DavMirror) -> None:
    with _backend(webdav_mirror) as b:
        _put(b, "aa/bb/one", b"1")
        import shutil

        shutil.rmtree(webdav_mirror.root / "aa")  # a clean elsewhere pruned it
        _put(b, "aa/bb/two", b"2")  # the cached "aa/bb exists" is stale: 409, MKCOL, retry
        assert b.read("aa/bb/two", 10) == b"2"


def test_sibling_of_a_pruned_parent_is_created(webdav_mirror: DavMirror) -> None:
    """A clean pruned "aa" while this backend still knew it: a new "aa/cc" needs "aa" again.

    Found by the concurrency test (upload next to a clean): MKCOL aa/cc answered 409, the
    stale knowledge of "aa" stopped the walk up, and the upload failed.
    """
    with _backend(webdav_mirror) as b:
        _put(b, "aa/bb/one", b"1")
        import shutil

        shutil.rmtree(webdav_mirror.root / "aa")
        _put(b, "aa/cc/two", b"2")
        assert b.read("aa/cc/two", 10) == b"2"


def test_collection_noted_after_its_subtree_was_forgotten_is_recreated(
        webdav_mirror: DavMirror) -> None:
    """Two upload threads next to a clean, replayed step by step.

    Thread B's MKCOL of debian-12/aa/cc answers; thread A, after a 409 elsewhere below
    debian-12, forgets that subtree; then B notes cc as existing, below parents no longer
    known; the clean prunes cc, still empty. Found by the concurrency test on Apache: the
    note was out of reach of forgetting the subtree, so every PUT into cc answered 409
    without a MKCOL, through every retry ("its collection keeps disappearing").
    """
    import shutil

    with _backend(webdav_mirror) as b:
        _put(b, "debian-12/aa/bb/one", b"1")
        base = tuple(b.paths.base_segments)
        cc = (*base, "debian-12", "aa", "cc")
        assert b._mkcol(cc) == 201  # B
        b._forget_collection((*base, "debian-12"))  # A
        b._remember_collection(cc)  # B
        shutil.rmtree(webdav_mirror.root / "debian-12/aa/cc")  # the clean
        _put(b, "debian-12/aa/cc/two", b"2")
        assert b.read("debian-12/aa/cc/two", 10) == b"2"


def test_stale_parent_out_of_reach_does_not_stop_the_walk_up(
        webdav_mirror: DavMirror) -> None:
    """A MKCOL answered 409 walks up asking the server, past what is remembered."""
    import shutil

    with _backend(webdav_mirror) as b:
        _put(b, "debian-12/aa/bb/one", b"1")
        shutil.rmtree(webdav_mirror.root / "debian-12")
        base = tuple(b.paths.base_segments)
        # debian-12/aa is still "known", out of reach of forgetting debian-12
        b._known_collections = {base, (*base, "debian-12", "aa")}
        b._known_children = {}
        _put(b, "debian-12/aa/cc/two", b"2")
        assert b.read("debian-12/aa/cc/two", 10) == b"2"


def test_no_temporary_files_left(webdav_mirror: DavMirror) -> None:
    with _backend(webdav_mirror) as b:
        for i in range(5):
            _put(b, f"aa/bb/f{i}", b"x" * i)
        assert all(classify(e.path) is not Kind.TEMP for e in b.list())
    assert sorted(os.listdir(webdav_mirror.root / "aa/bb")) == [f"f{i}" for i in range(5)]


def test_move_fallback_without_move(nginx_server: DavServer,
                                    caplog: pytest.LogCaptureFixture) -> None:
    m = nginx_server.mirror("nomove")
    with _backend(m) as b, caplog.at_level(logging.WARNING):
        assert b.properties.atomic_put
        _put(b, "aa/bb/one", b"first")
        _put(b, "aa/bb/two", b"second")
        _put(b, "aa/bb/one", b"replaced")
        assert not b.properties.atomic_put
        assert {e.path: e.size for e in b.list()} == {"aa/bb/one": 8, "aa/bb/two": 6}
        assert b.read("aa/bb/one", 100) == b"replaced"
        # short source: nothing left at the final name
        with pytest.raises(BackendError):
            b.put("aa/bb/three", io.BytesIO(b"abc"), 10)
        assert b.stat("aa/bb/three") is None
    warnings = [r for r in caplog.records if "MOVE" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per file
    assert sorted(os.listdir(m.root / "aa/bb")) == ["one", "two"]
    # pruning cannot rename there: it checks, then deletes in place, both ways
    for pipelining in (True, False):
        with _backend(m, pipelining=pipelining) as b:
            _put(b, "cc/dd/x", b"x")
            assert b.delete(["cc/dd/x"]) == {}
        assert not (m.root / "cc").exists()


@pytest.mark.parametrize(("server", "location", "method"),
                         [("apache", "open", "copy"), ("wsgidav", "open", "mtime"),
                          ("nginx", "open", "none"), ("nginx", "nomove", "none")])
def test_touch_per_server(request: pytest.FixtureRequest, server: str, location: str,
                          method: str) -> None:
    srv: DavServer = request.getfixturevalue(f"{server}_server")
    m = srv.mirror(location)
    with _backend(m) as b:
        _put(b, "aa/bb/f", b"payload")
        _put(b, "aa/bb/g", b"other")
        m.backdate("aa/bb/f", 3 * 86400)
        m.backdate("aa/bb/g", 3 * 86400)
        failures = b.touch(["aa/bb/f", "aa/bb/g"])
        assert b.properties.touch == method
        age_f = time.time() - (m.root / "aa/bb/f").stat().st_mtime
        age_g = time.time() - (m.root / "aa/bb/g").stat().st_mtime
        if method == "none":
            assert set(failures) == {"aa/bb/f", "aa/bb/g"}
            assert all(isinstance(e, PermanentError) for e in failures.values())
            assert age_f > 2 * 86400 and age_g > 2 * 86400
        else:
            assert failures == {}
            assert age_f < 60 and age_g < 60
        assert b.read("aa/bb/f", 100) == b"payload"
        assert sorted(os.listdir(m.root / "aa/bb")) == ["f", "g"]
        failures = b.touch(["aa/bb/missing"])
        assert list(failures) == ["aa/bb/missing"]
        assert not (m.root / "aa/bb/missing").exists()


@pytest.mark.parametrize("server", ["apache", "wsgidav", "nginx"])
def test_touch_by_copy_never_brings_back_a_file_deleted_meanwhile(
        request: pytest.FixtureRequest, server: str) -> None:
    """COPY to a temporary name, then MOVE back: a clean that deletes the file between the
    two must not see it come back. Apache honours the MOVE's ``If`` (412); nginx and
    wsgidav ignore it, so they are never touched by copy."""
    srv: DavServer = request.getfixturevalue(f"{server}_server")
    m = srv.mirror("open")
    with _backend(m) as b:
        _put(b, "aa/bb/f", b"payload")
        _put(b, "aa/bb/g", b"other")
        m.backdate("aa/bb/f", 3 * 86400)
        b._touch_method = "copy"  # what a first touch finds on Apache
        send = b._request

        methods: List[str] = []

        def clean_meanwhile(method: str, target: str, **kwargs: Any) -> Any:
            methods.append(method)
            if method == "MOVE" and (m.root / "aa/bb/f").exists():
                (m.root / "aa/bb/f").unlink()  # a clean's DELETE, between COPY and MOVE
            return send(method, target, **kwargs)

        b._request = clean_meanwhile  # type: ignore[method-assign]
        failures = b.touch(["aa/bb/f"])
        assert list(failures) == ["aa/bb/f"]
        if server == "nginx":  # no entity tags in its listings: no copy is even tried
            assert "COPY" not in methods and "MOVE" not in methods
            (m.root / "aa/bb/f").unlink()
        assert not (m.root / "aa/bb/f").exists()
        assert sorted(os.listdir(m.root / "aa/bb")) == ["g"]  # no copy left behind
        b._request = send  # type: ignore[method-assign]
        if server == "apache":  # the conditional MOVE works when nothing interferes
            m.backdate("aa/bb/g", 3 * 86400)
            assert b.touch(["aa/bb/g"]) == {}
            assert time.time() - (m.root / "aa/bb/g").stat().st_mtime < 60
        elif server == "wsgidav":
            assert b._if_honoured is False


@pytest.mark.parametrize("location", ["open", "infinity"])  # a Depth: 1 walk, or one answer
def test_touch_by_copy_reuses_the_listings_entity_tag_and_stays_safe(
        apache_server: DavServer, location: str) -> None:
    """After a listing, a touch by copy on Apache is two requests (COPY, conditional MOVE;
    the tag is the listing's, not asked again). A file deleted after the listing is not
    brought back and leaves no copy; one rewritten after it is touched with its new tag,
    its new content kept."""
    m = apache_server.mirror(location)
    with _backend(m) as b:
        for name in ("f", "g", "h"):
            _put(b, f"aa/bb/{name}", b"payload " + name.encode())
            m.backdate(f"aa/bb/{name}", 3 * 86400)
        listed = {e.path for e in b.list()}
        assert listed == {"aa/bb/f", "aa/bb/g", "aa/bb/h"}
        b._touch_method, b._if_honoured = "copy", True  # what a first touch finds on Apache
        send = b._request
        methods: List[str] = []

        def recorded(method: str, target: str, **kwargs: Any) -> Any:
            methods.append(method)
            return send(method, target, **kwargs)

        b._request = recorded  # type: ignore[method-assign]
        assert b.touch(["aa/bb/f"]) == {}
        assert methods == ["COPY", "MOVE"]
        assert time.time() - (m.root / "aa/bb/f").stat().st_mtime < 60

        # deleted after the listing, between COPY and MOVE: refused, not brought back
        def clean_meanwhile(method: str, target: str, **kwargs: Any) -> Any:
            if method == "MOVE" and (m.root / "aa/bb/g").exists():
                (m.root / "aa/bb/g").unlink()
            return send(method, target, **kwargs)

        b._request = clean_meanwhile  # type: ignore[method-assign]
        assert list(b.touch(["aa/bb/g"])) == ["aa/bb/g"]
        assert not (m.root / "aa/bb/g").exists()

        # rewritten after the listing (another size, another old time): touched anyway
        (m.root / "aa/bb/h").write_bytes(b"rewritten, longer")
        m.backdate("aa/bb/h", 2 * 86400)
        methods.clear()
        b._request = recorded  # type: ignore[method-assign]
        assert b.touch(["aa/bb/h"]) == {}
        assert methods == ["COPY", "MOVE", "DELETE", "PROPFIND", "COPY", "MOVE"]
        assert time.time() - (m.root / "aa/bb/h").stat().st_mtime < 60
        assert (m.root / "aa/bb/h").read_bytes() == b"rewritten, longer"
        assert sorted(os.listdir(m.root / "aa/bb")) == ["f", "h"]  # no copy left behind
        b._request = send  # type: ignore[method-assign]


def test_delete_prunes_collections_never_the_root(webdav_mirror: DavMirror) -> None:
    with _backend(webdav_mirror) as b:
        _put(b, "aa/bb/one", b"1")
        _put(b, "aa/cc/two", b"2")
        assert b.delete(["aa/bb/one"]) == {}
        assert not (webdav_mirror.root / "aa/bb").exists()
        assert (webdav_mirror.root / "aa/cc/two").exists()
        assert b.delete(["aa/cc/two", "aa/cc/gone-already"]) == {}
        assert os.listdir(webdav_mirror.root) == []
        b.check()  # the root is still there
        _put(b, "aa/bb/again", b"3")  # and collections pruned above are created again
        assert b.read("aa/bb/again", 10) == b"3"


def test_check_create(webdav_mirror: DavMirror) -> None:
    m = webdav_mirror
    deep = DavMirror(m.server, m.url + "new/base/", m.root / "new/base", m.options)
    with _backend(deep) as b:
        with pytest.raises(NotFoundError) as info:
            b.check()
        assert "404" in str(info.value)
        with pytest.raises(NotFoundError):
            list(b.list())
        b.check(create=True)
        assert (m.root / "new/base").is_dir()
        b.check()
        assert list(b.list()) == []


def test_listing_a_vanished_root_fails(webdav_mirror: DavMirror) -> None:
    """Never an empty listing for a mirror that is gone (a clean would then delete nothing,
    an upload would re-upload everything, an info would report an empty mirror)."""
    with _backend(webdav_mirror) as b:
        _put(b, "aa/bb/x", b"x")
        assert len(list(b.list())) == 1
        import shutil

        shutil.rmtree(webdav_mirror.root)
        with pytest.raises(NotFoundError):
            list(b.list())
        assert list(b.list("aa")) == []  # a missing prefix is just empty


def test_mirror_url_without_trailing_slash(webdav_mirror: DavMirror) -> None:
    with open_backend(webdav_mirror.url.rstrip("/"), webdav_mirror.options) as b:
        b.check()
        _put(b, "aa/bb/x", b"x")  # type: ignore[arg-type]
    assert (webdav_mirror.root / "aa/bb/x").exists()


# -- authentication --------------------------------------------------------------------


@pytest.mark.parametrize(("server", "location", "method"),
                         [("apache", "rw", None), ("apache", "rw", "basic"),
                          ("nginx", "rw", None),
                          ("apache", "digest", None), ("apache", "digest", "digest"),
                          ("wsgidav", "auth", None), ("wsgidav", "auth", "basic")])
def test_auth_user_password(request: pytest.FixtureRequest, server: str, location: str,
                            method: Optional[str], caplog: pytest.LogCaptureFixture) -> None:
    srv: DavServer = request.getfixturevalue(f"{server}_server")
    m = srv.mirror(location, auth_method=method)
    with caplog.at_level(logging.DEBUG), _backend(m) as b:
        b.check()
        _put(b, "aa/bb/x", b"secret-free")
        assert [e.path for e in b.list()] == ["aa/bb/x"]
        assert b.delete(["aa/bb/x"]) == {}
    _assert_no_secret(caplog.text)


def _assert_no_secret(text: str) -> None:
    """Neither the password, nor a basic Authorization value, nor the token."""
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, basic, TOKEN):
        assert secret not in text


@pytest.mark.parametrize(("server", "location"),
                         [("apache", "rw"), ("apache", "digest"), ("wsgidav", "auth"),
                          ("nginx", "bearer"), ("nginx", "rw")])
def test_auth_refused_without_or_with_wrong_credentials(
    request: pytest.FixtureRequest, server: str, location: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    srv: DavServer = request.getfixturevalue(f"{server}_server")
    anonymous = srv.mirror(location, credentials=False)
    with _backend(anonymous) as b, pytest.raises(AuthError) as info:
        b.check()
    assert "401" in str(info.value) and info.value.hint
    wrong = {"token": "wrong-token"} if server == "nginx" else {
        "user": USER, "password": "wrong-" + PASSWORD}
    with caplog.at_level(logging.DEBUG), _backend(anonymous, **wrong) as b:
        with pytest.raises(AuthError) as info:
            b.check()
        assert "rejected the credentials" in str(info.value.hint)
        with pytest.raises(AuthError):
            _put(b, "aa/bb/x", b"x")
    for text in (str(info.value), repr(info.value), str(info.value.hint), caplog.text):
        _assert_no_secret(text)
        assert "wrong-token" not in text


@pytest.mark.parametrize(("server", "location"),
                         [("apache", "digest"), ("wsgidav", "auth"), ("nginx", "rw")])
def test_concurrent_authenticated_uploads(request: pytest.FixtureRequest, server: str,
                                          location: str) -> None:
    """Digest nonces and the first challenge are shared by every thread of a run."""
    m = request.getfixturevalue(f"{server}_server").mirror(location)
    errors: List[BaseException] = []
    with _backend(m) as b:

        def worker(i: int) -> None:
            try:
                for j in range(4):
                    _put(b, f"{i % 4:02x}/{i % 3:02x}/f{i}-{j}", bytes([i]) * (50 + j))
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(list(b.list())) == 48


def test_auth_mirror_fixture(webdav_auth_mirror: DavMirror) -> None:
    """What end-to-end tests get: credentials in ``env`` match the options."""
    m = webdav_auth_mirror
    assert m.env == {"SSTATE_MIRROR_USER": USER, "SSTATE_MIRROR_PASSWORD": PASSWORD}
    with _backend(m) as b:
        _put(b, "aa/bb/x", b"x")
    assert (m.root / "aa/bb/x").read_bytes() == b"x"
    with _backend(m, user=None, password=None) as b, pytest.raises(AuthError):
        _put(b, "aa/bb/y", b"y")


def test_pipelined_walk_and_delete_with_credentials(webdav_auth_mirror: DavMirror) -> None:
    """Pipelined requests carry the credentials once the server has asked for basic auth;
    the Depth: 1 walk (with Depth: infinity refused) and deletes go through the pipeline."""
    m = webdav_auth_mirror
    with _backend(m) as b:
        for i in range(30):
            _put(b, f"{i:02x}/{i:02x}/f{i}", b"x" * i)
        b._infinity = False  # walk, whatever the server allows
        assert sorted(e.path for e in b.list()) == sorted(
            f"{i:02x}/{i:02x}/f{i}" for i in range(30))
        if m.server == "wsgidav":  # it asks for digest: one request at a time
            assert b._client.auth.scheme == "digest" and b._pipe_headers() is None
        else:
            assert b._client.auth.scheme == "basic" and b._pipelining_checked
        assert b.delete([f"{i:02x}/{i:02x}/f{i}" for i in range(30)]) == {}
        assert list(b.list()) == []
    assert list(m.root.iterdir()) == []  # the emptied collections are pruned too
    with _backend(m, password="wrong") as b, pytest.raises(AuthError):
        list(b.list())


def test_pipelining_waits_for_a_mirror_to_check_it_on(webdav_mirror: DavMirror) -> None:
    """Before the mirror exists the burst check cannot tell (404s): requests go one by one,
    the check runs again once the mirror is there, and each thread still gets its own
    pipeline (one handed to two threads would mix their answers up)."""
    m = webdav_mirror
    m.root.rmdir()
    with _backend(m) as b:
        b._infinity = False
        with pytest.raises(NotFoundError):
            list(b.list())
        assert not b._pipelining_checked
        threads = [threading.Thread(target=_put, args=(b, f"{i:02x}/aa/f", b"x" * i))
                   for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(b._pipes) == len({id(pipe) for pipe in b._pipes})
        assert len(list(b.list())) == 16
        assert b._pipelining_checked


def test_a_listing_too_big_to_hold_is_fetched_again_streamed(webdav_mirror: DavMirror
                                                              ) -> None:
    """A pipelined answer is held in memory up to a limit; a directory whose listing is
    bigger (a flat legacy mirror) is listed again on its own, streamed."""
    with _backend(webdav_mirror) as b:
        b.max_pipelined_body = 4000  # the flat directory's answer is larger, small/'s not
        for i in range(40):
            _put(b, f"flat/f{i:03d}", b"x")
        _put(b, "small/one", b"1")
        b._infinity = False
        streamed: List[str] = []
        real = b._list_collection

        def counting(rel: str, is_start: bool) -> Any:
            streamed.append(rel)
            return real(rel, is_start)

        b._list_collection = counting  # type: ignore[method-assign]
        paths = sorted(e.path for e in b.list())
        assert paths == sorted([f"flat/f{i:03d}" for i in range(40)] + ["small/one"])
        assert "flat" in streamed and "small" not in streamed


def test_pruning_renames_a_collection_before_checking_and_deleting_it(
        nginx_server: DavServer) -> None:
    """WebDAV has no "delete if empty", and DELETE of a collection is recursive: a file
    moved in between a check and the DELETE would go with it. Pruning renames the
    collection first (nobody writes under the private name), then checks and deletes that."""
    m = nginx_server.mirror("open")
    with FaultProxy(nginx_server.port) as proxy:
        url = proxy.url + m.url.split(str(nginx_server.port), 1)[1]
        b = open_backend(url, m.options)
        assert isinstance(b, WebDAVBackend)
        paths = [f"{i:02x}/{j:02x}/f" for i in range(4) for j in range(6)]
        for path in paths:
            _put(b, path, b"x")
        list(b.list())
        start = len(proxy.requests)
        assert b.delete(paths) == {}
        seen = [(r.method, r.path) for r in proxy.requests[start:]]
        b.close()
    moves = [path for method, path in seen if method == "MOVE"]
    assert len(moves) == 4 * 6 + 4  # every hh/hh/, then every hh/
    collection_deletes = [path for method, path in seen
                          if method == "DELETE" and path.endswith("/")]
    assert len(collection_deletes) == len(moves)
    assert all("/.sstate-mirror-prune-" in path for path in collection_deletes)
    for path in collection_deletes:  # each checked under its private name first
        assert seen.index(("PROPFIND", path)) < seen.index(("DELETE", path))
    assert list(m.root.iterdir()) == []


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_pruning_that_fails_after_the_rename_puts_the_collection_back(
        nginx_server: DavServer, pipelining: bool) -> None:
    """The check of a renamed collection fails (the connection is reset every time): the
    collection goes back to its name, with what it holds."""
    m = nginx_server.mirror("open")
    with FaultProxy(nginx_server.port) as proxy:
        url = proxy.url + m.url.split(str(nginx_server.port), 1)[1]
        b = open_backend(url, replace(m.options, pipelining=pipelining, retries=0))
        assert isinstance(b, WebDAVBackend)
        _put(b, "aa/bb/keep", b"1")
        proxy.add(Fault("reset", match=lambda r: r.method == "PROPFIND"
                        and "sstate-mirror-prune" in r.path))
        with b._pipeline(4) as pipe:
            assert (pipe is not None) == pipelining
            b._prune({"aa/bb"}, pipe if pipe is not None else davtransport.OneByOne())
        assert proxy.count(lambda r: r.fault == "reset") >= 1
        b.close()
    assert (m.root / "aa/bb/keep").read_bytes() == b"1"
    assert sorted(p.name for p in (m.root / "aa").iterdir()) == ["bb"]


def test_pruning_puts_back_what_landed_meanwhile(webdav_mirror: DavMirror) -> None:
    """A collection that held something after all is moved back, whole or (when an upload
    created it again meanwhile) entry by entry; nothing is lost, nothing left hidden."""
    with _backend(webdav_mirror) as b:
        _put(b, "aa/bb/keep", b"1")
        with b._pipeline(4) as pipe:
            assert pipe is not None
            b._prune({"aa/bb"}, pipe)  # believed empty, is not
        assert b.read("aa/bb/keep", 10) == b"1"
        assert sorted(p.name for p in (webdav_mirror.root / "aa").iterdir()) == ["bb"]
        # renamed, then an upload creates the collection again before the check
        hidden = "aa/.sstate-mirror-prune-test"
        moved = b._request("MOVE", b.paths.target("aa/bb", True), what="test",
                           headers={"Destination": b.paths.url_of(hidden, True), "Overwrite": "F"})
        assert moved.status_code in (201, 204)
        b._forget_collection((*b.paths.base_segments, "aa", "bb"))
        _put(b, "aa/bb/new", b"2")
        _put(b, f"{hidden}/sub/deep", b"3")
        _put(b, f"{hidden}/new", b"2")  # the same name on both sides
        b._unhide(hidden, "aa/bb")
        assert b.read("aa/bb/keep", 10) == b"1"
        assert b.read("aa/bb/new", 10) == b"2"
        assert b.read("aa/bb/sub/deep", 10) == b"3"
        assert sorted(p.name for p in (webdav_mirror.root / "aa").iterdir()) == ["bb"]


def test_digest_is_never_pipelined(apache_server: DavServer) -> None:
    m = apache_server.mirror("digest")
    with _backend(m) as b:
        _put(b, "aa/bb/x", b"x")
        b._infinity = False
        assert [e.path for e in b.list()] == ["aa/bb/x"]
        assert b._pipe_headers() is None  # a fresh nonce count per request: one by one
        assert b.delete(["aa/bb/x"]) == {}
        assert list(b.list()) == []


def test_bearer_token(nginx_server: DavServer, caplog: pytest.LogCaptureFixture) -> None:
    m = nginx_server.mirror("bearer")
    assert m.options.token == TOKEN
    with caplog.at_level(logging.DEBUG), _backend(m) as b:
        b.check()
        _put(b, "aa/bb/x", b"tok")
        assert b.read("aa/bb/x", 10) == b"tok"
        assert [e.path for e in b.list()] == ["aa/bb/x"]  # pipelined, with the token
        assert b._pipelining_checked
        assert TOKEN not in repr(b) and TOKEN not in repr(b._client.auth)
    _assert_no_secret(caplog.text)


def test_digest_negotiated_on_an_upload(apache_server: DavServer) -> None:
    """The first request is an upload: the body is sent again after the challenge."""
    m = apache_server.mirror("digest")
    with _backend(m) as b:
        b._known_collections.add(tuple(b.paths.base_segments))  # no MKCOL before the PUT
        src = io.BytesIO(b"0123456789" * 1000)
        b.put("payload", src, 10000)
        assert b.read("payload", 20000) == b"0123456789" * 1000


@pytest.mark.parametrize("server", ["apache", "nginx"])
def test_anonymous_read_authenticated_write(request: pytest.FixtureRequest,
                                            server: str) -> None:
    """The documented set-ups: bitbake reads without credentials, uploads need them."""
    m = request.getfixturevalue(f"{server}_server").mirror("rw")
    with _backend(m) as b:
        _put(b, "aa/bb/sstate:x:y", b"for bitbake")
        assert [e.path for e in b.list()] == ["aa/bb/sstate:x:y"]
        assert b.delete(["aa/bb/sstate:x:y"]) == {}
        _put(b, "aa/bb/sstate:x:y", b"for bitbake")
    assert httpx.get(m.url + "aa/bb/sstate%3Ax%3Ay").content == b"for bitbake"
    assert httpx.head(m.url + "aa/bb/sstate%3Ax%3Ay").status_code == 200
    assert httpx.put(m.url + "aa/bb/evil", content=b"x").status_code == 401


def test_netrc(apache_server: DavServer, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> None:
    m = apache_server.mirror("rw", credentials=False)
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text(f"machine 127.0.0.1\n  login {USER}\n  password {PASSWORD}\n")
    netrc_file.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc_file))
    with _backend(m, use_netrc=True) as b:
        b.check()
        _put(b, "aa/bb/x", b"via netrc")
    with _backend(m, use_netrc=False) as b, pytest.raises(AuthError):
        b.check()


def test_user_without_password_is_a_clear_error(apache_server: DavServer) -> None:
    m = apache_server.mirror("rw", credentials=False)
    with pytest.raises(AuthError) as info:
        _backend(m, user=USER)
    assert "password" in str(info.value) and "SSTATE_MIRROR_PASSWORD" in str(info.value.hint)


def test_credentials_in_url_are_used_and_redacted(apache_server: DavServer) -> None:
    m = apache_server.mirror("rw", credentials=False)
    url = m.url.replace("http://", f"http://{USER}:{PASSWORD}@")
    with open_backend(url, BackendOptions(use_netrc=False, retries=0)) as b:
        assert PASSWORD not in b.url and PASSWORD not in repr(b)
        b.check()
        _put(b, "aa/bb/x", b"x")  # type: ignore[arg-type]


# -- failures a user must understand ---------------------------------------------------


def test_unreachable_server(dead_port: int) -> None:
    port = dead_port
    with open_backend(f"http://127.0.0.1:{port}/sstate/",
                      BackendOptions(retries=1, use_netrc=False)) as b:
        start = time.monotonic()
        with pytest.raises(TransientError) as info:
            b.check()
        assert time.monotonic() - start < 5
    assert "cannot connect" in str(info.value)
    assert info.value.exit_code != 0


def test_server_without_webdav(nginx_server: DavServer) -> None:
    m = nginx_server.mirror("plain")
    with _backend(m) as b:
        with pytest.raises(PermanentError) as info:
            b.check()
        assert "does not speak WebDAV" in str(info.value)
        assert "405" in str(info.value)
        with pytest.raises(PermanentError, match="does not speak WebDAV"):
            list(b.list())


class _Canned:
    """What the tiny test server answers: per method, (status, headers, body)."""

    def __init__(self) -> None:
        self.answers: Dict[str, List[Tuple[int, Dict[str, str], bytes]]] = {}
        self.seen: List[Tuple[str, str, Dict[str, str]]] = []

    def set(self, method: str, status: int, body: bytes = b"",
            headers: Optional[Dict[str, str]] = None, times: int = 1000) -> None:
        self.answers[method] = [(status, headers or {}, body)] * times


@pytest.fixture
def tiny_server() -> Iterator[Tuple[str, _Canned]]:
    """A small hostile or broken HTTP server; unknown methods get 501 like http.server."""
    canned = _Canned()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            canned.seen.append((self.command, self.path, dict(self.headers)))
            queue = canned.answers.get(self.command)
            if not queue:
                self.send_error(501, "Unsupported method")
                return
            status, headers, body = queue.pop(0) if len(queue) > 1 else queue[0]
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if "Content-Length" not in headers:  # one given announces more than is sent
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_PROPFIND = do_GET = do_HEAD = do_PUT = do_MOVE = do_MKCOL = _answer
        do_DELETE = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sstate/", canned
    server.shutdown()
    server.server_close()


def _tiny(url: str, **kw: object) -> WebDAVBackend:
    b = open_backend(url, BackendOptions(use_netrc=False, retries=0, **kw))  # type: ignore
    assert isinstance(b, WebDAVBackend)
    return b


def test_plain_http_server_501(tiny_server: Tuple[str, _Canned]) -> None:
    url, canned = tiny_server
    canned.set("GET", 200, b"hello")
    with _tiny(url) as b, pytest.raises(PermanentError, match=r"does not speak WebDAV.*501"):
        b.check()


def _multistatus(*hrefs: str, extra: str = "") -> bytes:
    parts = []
    for href in hrefs:
        coll = href.endswith("/")
        parts.append(
            f"<D:response><D:href>{href}</D:href><D:propstat><D:prop>"
            + ("<D:resourcetype><D:collection/></D:resourcetype>" if coll else
               "<D:resourcetype/><D:getcontentlength>3</D:getcontentlength>")
            + "<D:getlastmodified>Mon, 02 Jan 2023 03:04:05 GMT</D:getlastmodified>"
            + "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        )
    return (f'<?xml version="1.0"?>{extra}<D:multistatus xmlns:D="DAV:">' + "".join(parts)
            + "</D:multistatus>").encode()


def test_listing_from_a_correct_tiny_server(tiny_server: Tuple[str, _Canned]) -> None:
    url, canned = tiny_server
    body = _multistatus("/sstate/", "/sstate/aa/", f"{url}aa/sstate%3Ax%2By",
                        "/sstate/aa/%C3%BC%20x")
    canned.set("PROPFIND", 207, body)
    with _tiny(url) as b:
        entries = list(b.list())
    assert sorted(e.path for e in entries) == ["aa/sstate:x+y", "aa/ü x"]
    assert all(e.mtime == 1672628645.0 and e.size == 3 for e in entries)
    assert canned.seen[0][2].get("Depth") == "infinity"


@pytest.mark.parametrize("href", [
    "/sstate/../etc/passwd",
    "/sstate/aa/%2e%2e/%2e%2e/etc/passwd",
    "/etc/passwd",
    "/sstate-other/x",
    "http://evil.example/sstate/aa/x",
    "http://127.0.0.1:1/sstate/aa/x",
    "https://127.0.0.1/sstate/aa/x",
    "/sstate/aa%2Fbb",
    "/sstate/aa/%00x",
])
def test_hostile_hrefs_are_rejected(tiny_server: Tuple[str, _Canned], href: str) -> None:
    url, canned = tiny_server
    canned.set("PROPFIND", 207, _multistatus("/sstate/", href))
    with _tiny(url) as b, pytest.raises(PermanentError, match="refusing the listing"):
        list(b.list())


@pytest.mark.parametrize("body", [
    b"<html>not xml",
    b"",
    b'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response>',
    b'<?xml version="1.0"?><other xmlns="urn:x"/>',
    b'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/sstate/x'
    b"</D:href><D:propstat><D:prop><D:getcontentlength>many</D:getcontentlength></D:prop>"
    b"<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>",
    # more than any object can hold (1 PiB): an absurd size fails the listing like S3's
    b'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/sstate/x'
    b"</D:href><D:propstat><D:prop><D:getcontentlength>1125899906842625</D:getcontentlength>"
    b"</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
    b"</D:multistatus>",
])
def test_invalid_xml_is_an_error(tiny_server: Tuple[str, _Canned], body: bytes) -> None:
    url, canned = tiny_server
    canned.set("PROPFIND", 207, body)
    with _tiny(url) as b:
        with pytest.raises(PermanentError) as info:
            b.check()
        with pytest.raises(PermanentError):
            list(b.list())
    assert url in str(info.value)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<D:multistatus xmlns:D="DAV:"><D:response><D:href>/sstate/&lol9;</D:href></D:response>
</D:multistatus>"""


def test_xml_bomb_is_refused(tiny_server: Tuple[str, _Canned]) -> None:
    url, canned = tiny_server
    canned.set("PROPFIND", 207, BILLION_LAUGHS)
    start = time.monotonic()
    with _tiny(url) as b, pytest.raises(PermanentError, match=r"unsafe XML|DTD"):
        list(b.list())
    assert time.monotonic() - start < 5


def test_oversized_answers_are_refused(tiny_server: Tuple[str, _Canned]) -> None:
    url, canned = tiny_server
    canned.set("PROPFIND", 207, _multistatus("/sstate/", *[f"/sstate/f{i}" for i in range(50)]))
    with _tiny(url) as b:
        b.max_stream_bytes = 1000
        with pytest.raises(PermanentError, match="larger than"):
            list(b.list())
    huge_href = "/sstate/" + "a" * 5000
    canned.set("PROPFIND", 207, _multistatus("/sstate/", huge_href))
    with _tiny(url) as b:
        b.max_element_bytes = 2000
        with pytest.raises(PermanentError, match="larger than"):
            list(b.list())


def test_infinity_listing_is_parsed_incrementally(tiny_server: Tuple[str, _Canned]) -> None:
    """A big Depth: infinity answer is never held whole, as bytes or as a tree."""
    import tracemalloc

    url, canned = tiny_server
    n = 12000
    body = _multistatus("/sstate/", *[f"/sstate/{i % 256:02x}/sstate%3Ax%3A{i}" for i in range(n)])
    assert len(body) > 3_000_000
    canned.set("PROPFIND", 207, body)
    with _tiny(url) as b:
        tracemalloc.start()
        try:
            count = sum(1 for _ in b.list())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert count == n
    assert peak < 1_200_000, peak  # about 0.7 MB, whatever the size of the answer


def test_infinity_listing_cut_short_goes_on_with_depth_1(
        tiny_server: Tuple[str, _Canned], caplog: pytest.LogCaptureFixture) -> None:
    """Apache cuts a Depth: infinity answer short when a collection vanishes during its walk
    (a clean running meanwhile): the listing goes on with Depth: 1, each file listed once."""
    url, canned = tiny_server
    files = [f"/sstate/aa/sstate%3Ax%3A{i}" for i in range(3000)]
    full = _multistatus("/sstate/", "/sstate/aa/", *files)
    canned.answers["PROPFIND"] = [
        (207, {"Content-Length": str(len(full))}, full[: len(full) // 2]),
        (207, {}, _multistatus("/sstate/", "/sstate/aa/")),
        (207, {}, _multistatus("/sstate/aa/", "/sstate/aa/new", *reversed(files))),
    ]
    with _tiny(url, pipelining=False) as b, caplog.at_level(logging.INFO):
        paths = [e.path for e in b.list()]
    assert paths[0] == "aa/sstate:x:0"  # from the infinity answer, before it broke off
    assert len(paths) == len(set(paths)) == 3001
    assert [seen[2].get("Depth") for seen in canned.seen] == ["infinity", "1", "1"]
    assert "broke off" in caplog.text


def test_propfind_answered_200_is_not_webdav(tiny_server: Tuple[str, _Canned]) -> None:
    url, canned = tiny_server
    canned.set("PROPFIND", 200, b"<html>index</html>")
    with _tiny(url) as b, pytest.raises(PermanentError, match="does not speak WebDAV"):
        b.check()


def test_transient_statuses_are_retried(tiny_server: Tuple[str, _Canned]) -> None:
    url, canned = tiny_server
    canned.answers["PROPFIND"] = [(503, {"Retry-After": "0"}, b""), (502, {}, b""),
                                  (207, {}, _multistatus("/sstate/", "/sstate/aa/x"))]
    with open_backend(url, BackendOptions(use_netrc=False, retries=2)) as b:
        assert [e.path for e in b.list()] == ["aa/x"]
    canned.set("PROPFIND", 503)
    with open_backend(url, BackendOptions(use_netrc=False, retries=1)) as b, \
            pytest.raises(TransientError):
        b.check()


def test_redirect_is_reported_not_followed(tiny_server: Tuple[str, _Canned]) -> None:
    url, canned = tiny_server
    canned.set("PROPFIND", 301, headers={"Location": "https://u:p@elsewhere.example/x/"})
    with _tiny(url) as b, pytest.raises(PermanentError) as info:
        b.check()
    assert "elsewhere.example" in str(info.value) and ":p@" not in str(info.value)


def test_https_verification(nginx_server: DavServer, caplog: pytest.LogCaptureFixture) -> None:
    if nginx_server.tls_port is None:
        pytest.skip("no openssl tool to make a test certificate (Debian package openssl)")
    m = nginx_server.mirror("open", tls=True)
    assert m.url.startswith("https://")
    with _backend(m) as b:  # --ca-cert
        b.check()
        _put(b, "aa/bb/x", b"over tls")
        assert b.read("aa/bb/x", 100) == b"over tls"
        assert [e.path for e in b.list()] == ["aa/bb/x"]  # the walk, pipelined over TLS
        assert b._pipelining_checked
    # the pipeline verifies certificates too
    pipe = Pipeline(host="127.0.0.1", port=nginx_server.tls_port, host_header="127.0.0.1",
                    ssl_context=ssl.create_default_context(), timeout=5, retries=0)
    pipe.submit(PipeRequest("DELETE", "/open/aa/bb/x"))
    [(_request, failure)] = list(pipe.results())
    pipe.close()
    assert isinstance(failure, Failure) and failure.kind == "tls"
    error = daverrors.pipe_error(failure, "cannot delete x", m.url, "x")
    assert isinstance(error, PermanentError) and "certificate" in str(error)
    assert (m.root / "aa/bb/x").exists()
    with _backend(m, ca_cert=None) as b, pytest.raises(PermanentError) as info:
        b.check()  # verification is on by default, and a self-signed certificate fails it
    assert "certificate" in str(info.value) and "--ca-cert" in str(info.value.hint)
    with caplog.at_level(logging.WARNING), _backend(m, ca_cert=None, verify_tls=False) as b:
        assert [e.path for e in b.list()] == ["aa/bb/x"]
    assert "verification is OFF" in caplog.text


def test_tls_options_are_checked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(UsageError, match=r"missing\.pem"):
        open_backend("https://127.0.0.1:1/x/",
                     BackendOptions(ca_cert=str(tmp_path / "missing.pem")))
    with caplog.at_level(logging.WARNING):
        open_backend("https://127.0.0.1:1/x/", BackendOptions(verify_tls=False)).close()
    assert "verification is OFF" in caplog.text


# -- parsing ---------------------------------------------------------------------------


def test_time_formats_are_utc() -> None:
    assert parse_http_date("Mon, 02 Jan 2023 03:04:05 GMT") == 1672628645.0
    assert parse_http_date("Monday, 02-Jan-23 03:04:05 GMT") == 1672628645.0
    assert parse_http_date("Mon Jan  2 03:04:05 2023") == 1672628645.0
    assert parse_http_date("garbage") is None
    assert parse_iso8601("2023-01-02T03:04:05Z") == 1672628645.0
    assert parse_iso8601("2023-01-02T04:04:05+01:00") == 1672628645.0
    assert parse_iso8601("2023-01-02T03:04:05.5-00:00") == 1672628645.5
    assert parse_iso8601("2023-01-02T03:04:05") == 1672628645.0
    assert parse_iso8601("yesterday") is None


def test_timezone_does_not_change_times(webdav_mirror: DavMirror,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with _backend(webdav_mirror) as b:
        _put(b, "aa/bb/x", b"x")
        monkeypatch.setenv("TZ", "America/New_York")
        time.tzset()
        try:
            (entry,) = list(b.list())
            st = b.stat("aa/bb/x")
        finally:
            monkeypatch.undo()
            time.tzset()
    real = (webdav_mirror.root / "aa/bb/x").stat().st_mtime
    assert abs(entry.mtime - real) < 1.5 and st is not None and abs(st.mtime - real) < 1.5


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_delete_probes_only_collections_that_may_be_empty(
        webdav_mirror: DavMirror, oe_cache_a: Path, monkeypatch: pytest.MonkeyPatch,
        pipelining: bool) -> None:
    """After a full listing, a collection known to still hold files is not tried: a clean of
    a big mirror saves requests per batch and collection, and still prunes what empties."""
    backend = _backend(webdav_mirror, pipelining=pipelining)
    files = [p for p in oe_cache_a.rglob("*") if p.is_file()]
    for p in files:
        data = p.read_bytes()
        backend.put(str(p.relative_to(oe_cache_a)), io.BytesIO(data), len(data))
    assert len(list(backend.list())) == 93
    probes: List[str] = []  # collections a prune was tried on (renamed, checked, deleted)
    real = backend._prune_move

    def counting(rel: str) -> Any:
        probes.append(rel)
        return real(rel)

    monkeypatch.setattr(backend, "_prune_move", counting)
    archives = [str(p.relative_to(oe_cache_a)) for p in files if p.name.endswith(".tar.zst")]
    assert backend.delete(archives) == {}
    assert probes == []  # every archive's .siginfo is still next to it
    rest = [str(p.relative_to(oe_cache_a)) for p in files if not p.name.endswith(".tar.zst")]
    assert backend.delete(rest) == {}
    assert probes  # now the collections may be empty: checked, then removed
    assert list(backend.list()) == []
    assert [p for p in webdav_mirror.root.iterdir()] == []
    backend.close()


@pytest.mark.parametrize("server", ["apache", "nginx"])
def test_a_walk_asks_entity_tags_only_of_a_server_that_gives_them(
        request: pytest.FixtureRequest, server: str) -> None:
    """Apache gives tags in its walk's answers (kept for touch); nginx gives none, and after
    its first answer is not asked again (its answers stay small)."""
    srv: DavServer = request.getfixturevalue(f"{server}_server")
    m = srv.mirror("open")
    with _backend(m) as b:
        _put(b, "aa/bb/f", b"payload")
        _put(b, "cc/dd/g", b"other")
        assert {e.path for e in b.list()} == {"aa/bb/f", "cc/dd/g"}
        assert b._walk_etags is (server == "apache")
        assert sorted(b._listed_etags) == (["aa/bb/f", "cc/dd/g"] if server == "apache" else [])
