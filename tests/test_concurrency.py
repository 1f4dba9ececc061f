"""Two uploads of overlapping caches and a clean, all at once, on every kind of store.

The mirror starts with cache-b's artifacts, backdated by 40 days: old and unused, what
``clean --max-age 30d`` removes. Then, at the same time, as separate processes (as on a CI
farm): cache-a and a copy of cache-a (fully overlapping) are uploaded, while a clean runs.
cache-a and cache-b share directories (the ``hh/hh/`` levels), so the clean's pruning of
emptied directories races with the uploads' writes into them.

Afterwards the project's own ``verify --all`` must find every archive complete with its
companions, and every artifact the uploads sent (new on the mirror) must still be there with
its exact bytes: a clean must never delete what was uploaded during its run. Every process
must succeed, on WebDAV too: an upload creates again what the clean prunes under it.

"At once" is proven, not hoped for: each process's first change to the mirror waits at a
barrier until the other two have reached theirs, so all three are mid-work at one instant.
On a server, each process talks through its own :class:`FaultProxy`, which holds that first
change (a request other than GET/HEAD/PROPFIND/OPTIONS); on a directory, where there is no
wire, ``os.replace``/``os.unlink`` of the child process wait (a ``sitecustomize`` module).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import urllib.parse
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from faultproxy import Fault, FaultProxy, Request
from mirrors import Mirror, make_mirror
from runcli import SRC, child_env, command
from sstate_mirror.cli import main

DAY = 86400
PROCESSES = 3

#: Loaded by the child processes of the directory case: their first os.replace or os.unlink
#: (the upload's rename onto a final name, the clean's deletion) waits for the others'.
_GATE = """
import os, pathlib, threading, time
_dir = os.environ.get("SSTATE_TEST_GATE")
if _dir:
    _lock, _open = threading.Lock(), threading.Event()
    _n = int(os.environ["SSTATE_TEST_GATE_N"])
    def _wait():
        with _lock:
            if not _open.is_set():
                gate = pathlib.Path(_dir)
                (gate / f"{os.getpid()}.at").write_text("")
                deadline = time.monotonic() + 60
                while len(list(gate.glob("*.at"))) < _n and time.monotonic() < deadline:
                    time.sleep(0.01)
                met = "all" if len(list(gate.glob("*.at"))) >= _n else "alone"
                (gate / f"{os.getpid()}.through").write_text(met)
                _open.set()
    def _gated(real):
        def call(*args, **kwargs):
            _wait()
            return real(*args, **kwargs)
        return call
    os.replace, os.unlink = _gated(os.replace), _gated(os.unlink)
"""

Where = List[Tuple[str, List[str], Dict[str, str]]]


def _start(argv: List[str], env: Dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(command(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=child_env(env))


def _is_change(r: Request) -> bool:
    return r.method not in ("GET", "HEAD", "PROPFIND", "OPTIONS")


@contextlib.contextmanager
def _at_once(m: Mirror, tmp_path: Path) -> Iterator[Tuple[Where, List[str]]]:
    """Where each process reaches the mirror (URL, options, environment), and, after the run,
    how each met the barrier: "all" once per process when they were at it together."""
    met: List[str] = []
    if m.kind == "dir":
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(_GATE)
        gate = tmp_path / "gate"
        gate.mkdir()
        env = {"PYTHONPATH": f"{site}{os.pathsep}{SRC}", "SSTATE_TEST_GATE": str(gate),
               "SSTATE_TEST_GATE_N": str(PROCESSES), "PYTHONDONTWRITEBYTECODE": "1"}
        yield [(m.url, m.cli_args, env)] * PROCESSES, met
        met.extend(p.read_text() for p in gate.glob("*.through"))
        return
    barrier = threading.Barrier(PROCESSES, timeout=60)

    def gate() -> None:
        try:
            barrier.wait()
            met.append("all")
        except threading.BrokenBarrierError:
            met.append("alone")

    s3 = m.kind.startswith("s3")
    port = int(urllib.parse.urlsplit(m.cli_args[1] if s3 else m.url).port or 0)
    with contextlib.ExitStack() as stack:
        where: Where = []
        for _ in range(PROCESSES):
            proxy = stack.enter_context(FaultProxy(port))
            proxy.add(Fault("hold", times=1, match=_is_change, gate=gate))
            if s3:
                where.append((m.url, ["--endpoint-url", proxy.url], {}))
            else:
                where.append((m.url.replace(f":{port}/", f":{proxy.port}/"), [], {}))
        yield where, met


@pytest.mark.parametrize("kind", ["dir", "s3-moto", "dav-nginx", "dav-apache"])
def test_two_uploads_and_a_clean_at_once(kind: str, request: pytest.FixtureRequest,
                                         tmp_path: Path, oe_cache_a: Path, oe_cache_b: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    m = make_mirror(request, kind)
    assert main(["-q", "upload", str(oe_cache_b), m.url, *m.cli_args]) == 0
    m.age_all(40 * DAY)
    old = set(m.sizes())
    copy = tmp_path / "copy-of-a"
    shutil.copytree(oe_cache_a, copy)
    new = {str(p.relative_to(oe_cache_a)) for p in oe_cache_a.rglob("*") if p.is_file()} - old
    assert new
    with _at_once(m, tmp_path) as (where, met):
        (url1, args1, env1), (url2, args2, env2), (url3, args3, env3) = where
        procs: List[subprocess.Popen[str]] = [
            _start(["upload", "-j", "4", str(oe_cache_a), url1, *args1], env1),
            _start(["clean", "--max-age", "30d", "-j", "4", url2, *args2], env2),
            _start(["upload", "-j", "4", str(copy), url3, *args3], env3),
        ]
        results = [(p.args, *p.communicate(timeout=180), p.returncode) for p in procs]
    for args, out, err, code in results:
        assert code == 0, (args, out, err)
    # all three were changing the mirror at one instant
    assert met == ["all"] * PROCESSES
    capsys.readouterr()
    code = main(["verify", "--all", "--min-age", "0s", m.url, *m.cli_args])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    sizes = m.sizes()
    missing = sorted(new - set(sizes))
    assert not missing, f"uploaded during the clean, then lost: {missing[:5]}"
    with m.backend() as b:
        for path in sorted(new):
            assert b.read(path, 1 << 24) == (oe_cache_a / path).read_bytes(), path
