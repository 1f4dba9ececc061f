"""What the remote benchmarks (``bench_s3.py``, ``bench_webdav.py``) share.

Servers are started here, on 127.0.0.1 with a free port, as subprocesses that stop with the
benchmark; their configuration follows ``docs/webdav.md`` and ``docs/s3.md`` (and the test
fixtures in ``tests/webdav_servers.py`` / ``tests/s3_servers.py``), reduced to one anonymous
read-write location, because authentication is not what is measured.

Timing: hyperfine with ``--prepare`` where the state can be restored by a shell command
(hard-linked copies of a pristine tree in the server's directory), else :func:`py_timer`,
which restores the state from Python between runs and times each command the same way.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import gencache

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

#: How sstate-mirror is run by every benchmark: from this checkout, no installation needed.
TOOL = f"{shlex.quote(sys.executable)} -m sstate_mirror"

#: (label, mean seconds, standard deviation seconds)
Row = Tuple[str, float, float]


#: The mirror states the incremental upload is measured against. ``fresh``: another build
#: marked (or uploaded) every group minutes ago, after this build ran — the steady state of
#: a mirror that CI uses all day. ``stale``: the mirror was last written three days ago, so
#: every group this build used needs a new mark (the worst case for use marking).
MIRROR_AGES = ("fresh", "stale")

#: Seconds before ``now``: when the build behind the local cache used its files, and when
#: a fresh mirror's files were last marked.
BUILD_AGO = 1200
FRESH_AGO = 300


@dataclass
class Scenarios:
    """The caches of the upload, clean and info jobs, the same for every peer benchmark."""

    first: List[gencache.Entry]
    """The build already on the mirror before the upload (a stale mirror: 3 days old)."""
    second: List[gencache.Entry]
    """The next build (90 % of it in ``first``), written to ``local``: bitbake used (and
    refreshed) every file of it in the last hour, so all of it counts as used."""
    big: List[gencache.Entry]
    """The mirror that clean and info work on, built over 60 days."""
    local: Path
    sizes: str
    """One line saying what the jobs are about, for the log and the results."""

    def mirror(self, age: str, now: int) -> List[gencache.Entry]:
        """The upload's mirror in one of :data:`MIRROR_AGES`."""
        if age == "stale":
            return self.first
        return [e._replace(mtime=now - FRESH_AGO) for e in self.first]


def scenarios(work: Path, files: int, big: int, now: int, *, noun: str, stored: str
              ) -> Scenarios:
    """Plan the caches (same seeds everywhere) and write the upload's local cache once.

    ``noun`` and ``stored`` say how the big mirror is held ("objects", " of zeros").
    """
    first = gencache.plan(files, seed=1, now=now - 3 * 86400)
    derived = gencache.derive(first, 0.1, seed=2, now=now - 600)
    # bitbake refreshes a local sstate file on every hit: the files this build reused
    # from the first look as recently used as the ones it built
    old = {e.path for e in first}
    second = [e._replace(mtime=now - BUILD_AGO) if e.path in old else e for e in derived]
    big_entries = gencache.plan(big, seed=3, now=now, mtime_spread=60)
    expired = sum(1 for e in big_entries if now - e.mtime >= 30 * 86400)
    local = work / f"local-{files}"
    if local.exists():
        _set_times(local, second)
    else:
        gencache.write_cache(local, second)
    present = len({e.path for e in first} & {e.path for e in second})
    sizes = (f"upload: {len(second)} local files ({sum(e.size for e in second) / 2**20:.0f} MiB),"
             f" {present} already on the mirror; clean/info: {len(big_entries)} {noun}"
             f" ({sum(e.size for e in big_entries) / 2**30:.1f} GiB{stored}), {expired} older"
             " than 30 d")
    print(sizes, flush=True)
    return Scenarios(first, second, big_entries, local, sizes)


def _set_times(root: Path, entries: Sequence[gencache.Entry]) -> None:
    """Give a cache written by an earlier run (``--work`` reused) the planned times again."""
    for e in entries:
        os.utime(root / e.path, (e.mtime, e.mtime))


def tool_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment every timed command runs in: this checkout's sources first (or
    those ``SSTATE_BENCH_SRC`` names: another version, for a before/after comparison)."""
    env = dict(os.environ, PYTHONPATH=os.environ.get("SSTATE_BENCH_SRC", str(ROOT / "src")))
    env.update(extra or {})
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: Optional[subprocess.Popen] = None,  # type: ignore[type-arg]
                  timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class RequestLog:
    """Counts the requests a server received, from its own access log (one line each,
    the method first), between :meth:`mark` and :meth:`since`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, mark: int) -> Dict[str, int]:
        time.sleep(0.5)  # the server writes a request's line when it has answered it
        with open(self.path, "rb") as f:
            f.seek(mark)
            lines = f.read().decode(errors="replace").splitlines()
        counts: Dict[str, int] = {}
        for line in lines:
            method = line.split(" ", 1)[0]
            counts[method] = counts.get(method, 0) + 1
        return counts


@dataclass
class Server:
    """A server subprocess; ``stop()`` ends it (and only it)."""

    name: str
    url: str
    proc: subprocess.Popen  # type: ignore[type-arg]
    log: Path
    extra: Dict[str, str] = field(default_factory=dict)
    requests: Optional[RequestLog] = None
    """The server's access log, where it keeps one."""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start(name: str, argv: List[str], port: int, log: Path, url: str,
          cwd: Optional[Path] = None) -> Server:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
    server = Server(name, url, proc, log)
    try:
        wait_for_port(port, proc)
    except BaseException:
        server.stop()
        print(log.read_text(errors="replace")[-2000:], file=sys.stderr)
        raise
    return server


def need(*tools: str) -> None:
    missing = [t for t in tools if _which(t) is None]
    if missing:
        raise SystemExit(f"missing tools: {' '.join(missing)} (see benchmarks/README.md)")


def _which(name: str) -> Optional[str]:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def version(argv: Sequence[str]) -> str:
    """First line of a tool's version output, for the results."""
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


# -- servers ------------------------------------------------------------------------------


def rclone_s3(root: Path, work: Path, access: str, secret: str) -> Server:
    """``rclone serve s3`` over ``root`` (one directory per bucket; objects are files).

    ``--dir-cache-time 1ms``: the benchmark replaces the directory tree between runs, and a
    cached listing would hide that (0s deadlocks concurrent uploads in rclone 1.75).
    """
    port = free_port()
    return start("rclone-serve-s3", [
        "rclone", "serve", "s3", "--auth-key", f"{access},{secret}",
        "--addr", f"127.0.0.1:{port}", "--dir-cache-time", "1ms",
        "--config", os.devnull, str(root)],
        port, work / "rclone-serve-s3.log", f"http://127.0.0.1:{port}")


def nginx(docroot: Path, work: Path, access_log: bool = False) -> Server:
    """nginx with dav + dav-ext as in docs/webdav.md, location ``/sstate/`` anonymous
    read-write (``create_full_put_path on``, temporary bodies on the same file system)."""
    module = next((p for p in (Path(d, "ngx_http_dav_ext_module.so") for d in (
        "/usr/lib/nginx/modules", "/usr/lib64/nginx/modules", "/usr/share/nginx/modules"))
        if p.is_file()), None)
    if module is None:
        raise SystemExit("nginx dav-ext module missing (apt-get install libnginx-mod-http-dav-ext)")
    base = work / "nginx"
    base.mkdir(exist_ok=True)
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (base / "tmp" / d).mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = f"""
{user}
worker_processes 2;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
load_module {module};
events {{ worker_connections 1024; }}
http {{
    log_format requests '$request_method $status $request_uri "$request"';
    access_log {base}/access.log requests;
    client_body_temp_path {base}/tmp/body;
    proxy_temp_path {base}/tmp/proxy;
    fastcgi_temp_path {base}/tmp/fastcgi;
    uwsgi_temp_path {base}/tmp/uwsgi;
    scgi_temp_path {base}/tmp/scgi;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        location /sstate/ {{
            client_max_body_size 0;
            dav_methods PUT DELETE MKCOL COPY MOVE;
            dav_ext_methods PROPFIND OPTIONS;
            create_full_put_path on;
            dav_access user:rw group:rw all:r;
        }}
    }}
}}
"""
    (base / "nginx.conf").write_text(conf)
    server = start("nginx", [_which("nginx") or "nginx", "-p", f"{base}/", "-e",
                             str(base / "error.log"), "-c", str(base / "nginx.conf"),
                             "-g", "daemon off;"],
                   port, base / "server.log", f"http://127.0.0.1:{port}/sstate/")
    server.requests = RequestLog(base / "access.log")
    return server


def apache(docroot: Path, work: Path, access_log: bool = False) -> Server:
    """Apache httpd with mod_dav_fs as in docs/webdav.md (``DavDepthInfinity On``),
    location ``/sstate/`` anonymous read-write. As root, the workers run as ``nobody``:
    the benchmark's trees are made world-writable for that."""
    modules = next((Path(d) for d in ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules",
                                      "/usr/lib/httpd/modules")
                    if Path(d, "mod_dav_fs.so").is_file()), None)
    binary = _which("apache2") or _which("httpd")
    if modules is None or binary is None:
        raise SystemExit("Apache httpd with mod_dav_fs missing (apt-get install apache2)")
    base = work / "apache"
    base.mkdir(exist_ok=True)
    os.chmod(base, 0o777)
    port = free_port()
    load = "\n".join(f"LoadModule {m}_module {modules}/mod_{m}.so"
                     for m in ("mpm_event", "authz_core", "dav", "dav_fs"))
    # the access log (mod_log_config is built in) is always kept: requests are counted

    user = "User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""
    conf = f"""
ServerRoot "{base}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{base}/httpd.pid"
ErrorLog "{base}/error.log"
LogLevel warn
LogFormat "%m %>s %U \\"%r\\"" requests
CustomLog "{base}/access.log" requests
{load}
{user}
Timeout 60
KeepAlive On
MaxKeepAliveRequests 0
DavLockDB "{base}/DavLock"
DocumentRoot "{docroot}"
<Directory />
    Options None
    AllowOverride None
    Require all denied
</Directory>
<Directory "{docroot}/sstate">
    Options None
    AllowOverride None
    Dav On
    DavDepthInfinity On
    LimitRequestBody 0
    Require all granted
</Directory>
"""
    (base / "httpd.conf").write_text(conf)
    server = start("apache", [binary, "-f", str(base / "httpd.conf"), "-DFOREGROUND"],
                   port, base / "server.log", f"http://127.0.0.1:{port}/sstate/")
    server.requests = RequestLog(base / "access.log")
    return server


# -- timing ------------------------------------------------------------------------------


def hyperfine(name: str, prepare: str, commands: Dict[str, str], runs: int,
              env: Dict[str, str], warmup: int = 0) -> List[Row]:
    """Time each command after ``prepare`` (a shell command) with hyperfine."""
    RESULTS.mkdir(exist_ok=True)
    json_out = RESULTS / f"{name}.hyperfine.json"
    args = ["hyperfine", "--runs", str(runs), "--warmup", str(warmup), "--prepare", prepare,
            "--export-json", str(json_out), "--style", "basic"]
    for label, cmd in commands.items():
        args += ["--command-name", label, cmd]
    subprocess.run(args, check=True, env=env)
    data = json.loads(json_out.read_text())
    return [(r["command"], r["mean"], r["stddev"] or 0.0) for r in data["results"]]


def py_timer(name: str, prepare: Callable[[], None], commands: Dict[str, str], runs: int,
             env: Dict[str, str]) -> List[Row]:
    """Like :func:`hyperfine`, for state that only Python can restore (an in-process server).

    Each run: ``prepare()``, then the command through ``sh -c`` timed with a monotonic clock
    (wall time, as hyperfine reports). A command that fails stops the benchmark.
    """
    rows: List[Row] = []
    raw: Dict[str, List[float]] = {}
    for label, cmd in commands.items():
        times = []
        for i in range(runs):
            prepare()
            t0 = time.perf_counter()
            subprocess.run(["sh", "-c", cmd], check=True, env=env, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
            print(f"  {name} / {label}: run {i + 1}: {times[-1]:.2f} s", flush=True)
        raw[label] = times
        sd = statistics.stdev(times) if len(times) > 1 else 0.0
        rows.append((label, statistics.mean(times), sd))
        print(f"{label}: {rows[-1][1]:.3f} s ± {sd:.3f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.times.json").write_text(json.dumps(raw, indent=2) + "\n")
    return rows


class Counter(Protocol):
    """Where a benchmark reads how many requests a server received (see :class:`RequestLog`)."""

    def mark(self) -> int: ...

    def since(self, mark: int) -> Dict[str, int]: ...


#: label -> method -> requests (and "total")
Requests = Dict[str, Dict[str, int]]


def count_requests(prepare: Callable[[], None], commands: Dict[str, str], env: Dict[str, str],
                   counter: Counter, timed: Optional[List[Row]] = None) -> Requests:
    """Run each command once more, after ``prepare()``, and count what the server received.

    Request counts do not depend on the machine or its load: they are what the timed runs
    did too (same state, same commands), counted by the server itself. With ``timed`` (a
    list), this run is also the timed one: its wall time is appended there (single runs of
    long jobs, which need not run twice).
    """
    out: Requests = {}
    for label, cmd in commands.items():
        prepare()
        mark = counter.mark()
        t0 = time.perf_counter()
        subprocess.run(["sh", "-c", cmd], check=True, env=env, stdout=subprocess.DEVNULL)
        if timed is not None:
            timed.append((label, time.perf_counter() - t0, 0.0))
            print(f"{label}: {timed[-1][1]:.2f} s (one run)", flush=True)
        counts = counter.since(mark)
        counts["total"] = sum(counts.values())
        out[label] = dict(sorted(counts.items()))
        print(f"  {label}: {counts['total']} requests ({_methods(counts)})", flush=True)
    return out


def _methods(counts: Dict[str, int]) -> str:
    return ", ".join(f"{m} {n}" for m, n in sorted(counts.items(), key=lambda kv: -kv[1])
                     if m != "total")


def table(rows: Dict[str, List[Row]], ours_prefix: str = "sstate-mirror",
          requests: Optional[Dict[str, Requests]] = None) -> str:
    """Markdown: every command's mean ± stddev, and how long the peer takes relative to us
    (``peer / ours``: above 1 means sstate-mirror is faster); the requests the server
    counted where they were counted."""
    requests = requests or {}
    lines = ["| scenario | command | mean | ± | peer / ours | requests |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for scenario, res in rows.items():
        ours = next((m for c, m, _ in res if c.startswith(ours_prefix)), None)
        for cmd, mean, sd in res:
            ratio = "" if ours is None or cmd.startswith(ours_prefix) else f"{mean / ours:.1f}x"
            counted = requests.get(scenario, {}).get(cmd)
            reqs = f"{counted['total']:,} ({_methods(counted)})" if counted else ""
            lines.append(f"| {scenario} | {cmd} | {mean:.2f} s | {sd:.2f} | {ratio} | {reqs} |")
    return "\n".join(lines)


def save(name: str, rows: Dict[str, List[Row]], meta: Dict[str, object],
         requests: Optional[Dict[str, Requests]] = None) -> None:
    RESULTS.mkdir(exist_ok=True)
    requests = requests or {}
    doc = {"meta": meta, "results": {
        k: [{"command": c, "mean_s": m, "stddev_s": s,
             **({"requests": requests[k][c]} if c in requests.get(k, {}) else {})}
            for c, m, s in v]
        for k, v in rows.items()}}
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {sys.version.split()[0]}"


def sh_run(cmd: str) -> None:
    subprocess.run(cmd, shell=True, check=True)
