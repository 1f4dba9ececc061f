"""Ctrl-C during upload and clean: a clean stop, a summary, exit 130, nothing half-done.

The command runs as a real process against a real server slowed down by :mod:`faultproxy`
(so that there is something in flight to interrupt) and gets SIGINT once the proxy has seen
a few transfers. Afterwards: exit 130, a summary line saying it was interrupted, no temporary
files and no incomplete multipart uploads on the mirror, and every file on the mirror
complete. Running the command again finishes the job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Callable, List

import pytest

from faultproxy import FaultProxy, Request
from mirrors import Mirror, make_mirror
from runcli import child_env, command, run_process, writable_copy

DAY = 86400
_cli = run_process


def _cache(tmp_path: Path, oe_cache_a: Path) -> Path:
    """cache-a with archives grown by 64 KiB each, so that an upload takes a moment."""
    cache = writable_copy(oe_cache_a, tmp_path / "cache")
    for p in cache.rglob("*.tar.zst"):
        with open(p, "ab") as f:
            f.write(os.urandom(64 * 1024))
    return cache


def _through(m: Mirror, proxy_port: int) -> tuple[str, List[str], int]:
    if m.kind.startswith("s3"):
        port = urllib.parse.urlsplit(m.cli_args[1]).port
        return m.url, ["--endpoint-url", f"http://127.0.0.1:{proxy_port}"], int(port or 0)
    port = urllib.parse.urlsplit(m.url).port
    return m.url.replace(f":{port}/", f":{proxy_port}/"), [], int(port or 0)


def _upstream_port(m: Mirror) -> int:
    url = m.cli_args[1] if m.kind.startswith("s3") else m.url
    return int(urllib.parse.urlsplit(url).port or 0)


def _interrupt(argv: List[str], proxy: FaultProxy, when: Callable[[Request], bool],
               count: int) -> subprocess.CompletedProcess[str]:
    # a shell without job control starts background jobs with SIGINT ignored, and an ignored
    # signal stays ignored across exec (Python then never raises KeyboardInterrupt): give
    # the command the default disposition, as a terminal would
    proc = subprocess.Popen(command(*argv),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while proxy.count(when) < count and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the command ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _assert_complete(m: Mirror, cache: Path) -> dict[str, int]:
    with m.backend() as b:
        sizes = {e.path: e.size for e in b.list()}
        for path in sizes:
            assert ".sstate-mirror-" not in path, f"temporary file left: {path}"
            assert b.read(path, 1 << 25) == (cache / path).read_bytes(), f"{path} is partial"
        if m.kind.startswith("s3"):
            uploads = b.client.list_multipart_uploads(Bucket=b.bucket)  # type: ignore[attr-defined]
            assert not uploads.get("Uploads"), "incomplete multipart uploads left"
    return sizes


@pytest.mark.parametrize("kind", ["s3-moto", "dav-nginx", "dav-wsgidav"])
def test_ctrl_c_during_upload(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                              oe_cache_a: Path) -> None:
    m = make_mirror(request, kind)
    cache = _cache(tmp_path, oe_cache_a)
    with FaultProxy(_upstream_port(m), throttle=0.03) as proxy:
        url, args, _ = _through(m, proxy.port)
        done = _interrupt(["upload", str(cache), url, "-j", "2", *args], proxy,
                          lambda r: r.method == "PUT" and r.path.endswith((".tar.zst",
                                                                           ".tmp")), 6)
    assert done.returncode == 130, done.stdout + done.stderr
    assert "upload interrupted:" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
    sizes = _assert_complete(m, cache)
    assert 0 < len(sizes) < 93
    # once more, uninterrupted: the job completes
    rerun = _cli("upload", str(cache), m.url, *m.cli_args)
    assert rerun.returncode == 0, rerun.stderr
    assert len(_assert_complete(m, cache)) == 93


#: Above the S3 backend's multipart threshold (8 MiB): such a file goes up in parts.
BIG = 9 * 1024 * 1024


@pytest.mark.server
def test_ctrl_c_during_multipart_upload(request: pytest.FixtureRequest, tmp_path: Path,
                                        oe_cache_a: Path) -> None:
    """Ctrl-C while a file goes up in parts: no incomplete multipart upload is left behind."""
    m = make_mirror(request, "s3-moto")
    cache = _cache(tmp_path, oe_cache_a)
    big = sorted(cache.rglob("*.tar.zst"))[:3]
    for p in big:
        with open(p, "ab") as f:
            f.write(os.urandom(BIG - p.stat().st_size))

    def is_part(r: Request) -> bool:
        return r.method == "PUT" and "partNumber=" in r.query

    with FaultProxy(_upstream_port(m), throttle=0.005) as proxy:
        url, args, _ = _through(m, proxy.port)
        done = _interrupt(["upload", str(cache), url, "-j", "1", *args], proxy, is_part, 1)
        started = proxy.count(lambda r: r.method == "POST" and "uploads" in r.query)
    assert started >= 1, "no multipart upload was started: nothing to prove"
    assert done.returncode == 130, done.stdout + done.stderr
    assert "upload interrupted:" in done.stdout, done.stdout
    sizes = _assert_complete(m, cache)  # checks list_multipart_uploads is empty
    assert len(sizes) < 93
    rerun = _cli("upload", str(cache), m.url, *m.cli_args)
    assert rerun.returncode == 0, rerun.stderr
    sizes = _assert_complete(m, cache)
    assert len(sizes) == 93 and all(sizes[str(p.relative_to(cache))] == BIG for p in big)


@pytest.mark.server
def test_ctrl_c_during_clean(request: pytest.FixtureRequest, tmp_path: Path,
                             oe_cache_a: Path) -> None:
    m = make_mirror(request, "dav-nginx")
    assert _cli("-q", "upload", str(oe_cache_a), m.url).returncode == 0
    m.age_all(40 * DAY)
    with FaultProxy(_upstream_port(m), throttle=0.05) as proxy:
        url, args, _ = _through(m, proxy.port)
        done = _interrupt(["clean", "--max-age", "30d", "-j", "1", url, *args], proxy,
                          lambda r: r.method == "DELETE", 5)
    assert done.returncode == 130, done.stdout + done.stderr
    assert "clean interrupted:" in done.stdout, done.stdout
    remaining = _assert_complete(m, oe_cache_a)
    assert 0 < len(remaining) < 93
    # archives go first: every archive still there kept its signature
    for path in remaining:
        if path.endswith(".tar.zst"):
            assert path + ".siginfo" in remaining
