"""The real bitbake hash equivalence server, started for tests, and how builds fill it.

The server is bitbake's own ``bitbake-hashserv`` (``../shared/tools/bitbake-hashserv`` next to
the checkout, or ``$SSTATE_MIRROR_TEST_HASHSERV``), run by this interpreter, which has bitbake's
``bb`` package from the ``bitbake-setup`` test dependency. Tests fill it and read it back with
bitbake's own client (``hashserv.create_client``), never with the code under test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent
METHOD = "oe.sstatesig.OEOuthashBasic"
ADMIN = "admin"
ADMIN_TOKEN = "admin-token-0123456789"


def skip_unless_ci(reason: str) -> None:
    """Skip where a user's plain clone lacks the server; in CI (``$CI`` set) that is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: these tests must run)")
    pytest.skip(reason)


def hashserv_dir() -> Path:
    env = os.environ.get("SSTATE_MIRROR_TEST_HASHSERV")
    where = Path(env) if env else REPO.parent / "shared" / "tools" / "bitbake-hashserv"
    if not (where / "bin" / "bitbake-hashserv").is_file():
        skip_unless_ci(f"bitbake-hashserv not found at {where} (set SSTATE_MIRROR_TEST_HASHSERV)")
    try:
        import bb.asyncrpc  # noqa: F401 - the server and the reference client need it
    except ImportError:
        skip_unless_ci("bitbake's bb package is missing (pip install bitbake-setup==2.19.0)")
    lib = str(where / "lib")
    if lib not in sys.path:
        sys.path.insert(0, lib)
    return where


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HashServer:
    """One running server. ``address`` is what ``--hashserve`` takes."""

    address: str
    process: subprocess.Popen[bytes]
    database: Path
    log: Path

    def client(self, user: Optional[str] = ADMIN, token: Optional[str] = ADMIN_TOKEN) -> Any:
        import hashserv

        return hashserv.create_client(self.address, user, token if user else None)


def start_server(tmp: Path, kind: str, *, database: Optional[Path] = None,
                 read_only: bool = False, anon_perms: str = "@read") -> HashServer:
    """Start ``bitbake-hashserv`` on 127.0.0.1 TCP, a unix socket, or websockets."""
    where = hashserv_dir()
    if kind == "tcp":
        address = f"127.0.0.1:{_free_port()}"
    elif kind == "unix":
        address = f"unix://{tmp / 'hs.sock'}"
    else:
        address = f"ws://127.0.0.1:{_free_port()}"
    database = database or tmp / "hashserv.db"
    log = tmp / f"hashserv-{kind}{'-ro' if read_only else ''}.log"
    argv = [sys.executable, str(where / "bin" / "bitbake-hashserv"), "--bind", address,
            "--database", str(database), "--anon-perms", anon_perms, "--log", "WARNING"]
    if read_only:
        argv.append("-r")
    else:
        argv += ["--admin-user", ADMIN, "--admin-password", ADMIN_TOKEN]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    server = HashServer(address, proc, database, log)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"bitbake-hashserv exited: {log.read_text()}")
        try:
            if kind == "unix":
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(address[len("unix://"):])
            else:
                host, port = address.rsplit("/", 1)[-1].rsplit(":", 1)
                socket.create_connection((host, int(port)), timeout=1).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                stop_server(server)
                raise RuntimeError("bitbake-hashserv did not start") from None
            time.sleep(0.05)


def stop_server(server: HashServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def running(tmp: Path, kind: str, **kwargs: Any) -> Iterator[HashServer]:
    server = start_server(tmp, kind, **kwargs)
    try:
        yield server
    finally:
        stop_server(server)


# --- filling the server the way builds do -----------------------------------------------------

@dataclass(frozen=True)
class Report:
    taskhash: str
    unihash: str
    outhash: str


def build_reports(caches: Sequence[Path]) -> Dict[str, Report]:
    """What builds reported for the archives of ``caches`` (by archive name).

    Each ``.siginfo`` carries the task's taskhash and unihash; bitbake reports both with the
    output hash of the task, which here is made unique per archive (no two archives are
    equivalent unless a test says so).
    """
    import hashlib

    from sstate_mirror.naming import Kind, parse_name
    from sstate_mirror.signatures.reader import read_signature_file

    reports: Dict[str, Report] = {}
    for cache in caches:
        for siginfo in sorted(cache.rglob("*.siginfo")):
            archive = siginfo.with_name(siginfo.name[: -len(".siginfo")])
            name = parse_name(archive.name)
            if not archive.exists() or name is None or name.kind is not Kind.ARCHIVE:
                continue
            sig = read_signature_file(siginfo)
            assert sig.unihash == name.hash, siginfo  # the name carries the unihash
            reports[archive.name] = Report(
                taskhash=str(sig.taskhash), unihash=str(sig.unihash),
                outhash=hashlib.sha256(archive.name.encode()).hexdigest())
    return reports


def extra_reports(n: int, seed: str = "extra") -> List[Report]:
    """Unihashes no archive has (tasks built once, their archives long gone)."""
    import hashlib

    def h(*parts: object) -> str:
        return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()

    return [Report(h(seed, "t", i), h(seed, "u", i), h(seed, "o", i)) for i in range(n)]


def report_all(server: HashServer, reports: Sequence[Report]) -> None:
    with server.client() as c:
        for r in reports:
            answer = c.report_unihash(r.taskhash, METHOD, r.outhash, r.unihash)
            assert answer["unihash"] == r.unihash


def reset(server: HashServer) -> None:
    """Empty the database through the server itself (a sweep under a mark nothing has)."""
    with server.client() as c:
        c.gc_mark("reset", {"unihash": "0" * 64})
        c.gc_sweep("reset")
        c.clean_unused(0)


def known(server: HashServer, unihashes: Sequence[str]) -> Dict[str, bool]:
    with server.client() as c:
        return dict(zip(unihashes, c.unihash_exists_batch(list(unihashes))))


__all__: Tuple[str, ...] = ("HashServer", "Report", "build_reports", "extra_reports", "known",
                            "report_all", "reset", "running", "skip_unless_ci", "start_server",
                            "stop_server")
