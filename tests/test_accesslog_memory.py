"""``touch --access-log`` reads a log of millions of lines in bounded memory.

The log comes from ``benchmarks/bench_accesslog.py`` through a pipe (standard input: nothing
on disk), with a unique path in every tenth line and one line of 64 MiB half way. The tool
runs in a child process that reports its own peak RSS; a short log gives the baseline.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench_accesslog.py"
FILES = 2000
LONG_LINE = 64 << 20

_CHILD = """
import resource, sys
from sstate_mirror.cli import main
code = main(sys.argv[1:])
print("maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def peak_rss(mirror: Path, lines: int, long_line: int = 0) -> Tuple[int, dict]:
    """(peak RSS in KiB, JSON report) of one ``touch --access-log -`` over a generated log."""
    gen = subprocess.Popen([sys.executable, str(BENCH), "--write-log", "-", "--lines",
                            str(lines), "--files", str(FILES), "--long-line", str(long_line)],
                           stdout=subprocess.PIPE)
    tool = subprocess.run([sys.executable, "-c", _CHILD, "--json", "touch", str(mirror),
                           "--dry-run", "--access-log", "-"],
                          stdin=gen.stdout, capture_output=True, check=False)
    assert gen.stdout is not None
    gen.stdout.close()
    assert gen.wait() == 0 and tool.returncode == 0, tool.stderr.decode()[-2000:]
    rss = [ln for ln in tool.stderr.decode().splitlines() if ln.startswith("maxrss ")]
    return int(rss[-1].split()[1]), json.loads(tool.stdout)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gencache

    root = tmp_path_factory.mktemp("mirror")
    gencache.write_cache(str(root), gencache.plan(FILES, seed=1, now=1_764_547_200),
                         sparse=True)
    return root


def test_memory_stays_bounded_on_millions_of_lines_and_a_huge_line(mirror: Path) -> None:
    small_rss, small = peak_rss(mirror, 20_000)
    lines = 2_000_000
    big_rss, big = peak_rss(mirror, lines, LONG_LINE)
    assert big["logs"]["lines_read"] == lines + 1
    assert big["logs"]["malformed_lines"] == 1  # the 64 MiB line, skipped in pieces
    assert big["logs"]["unknown_paths"] >= lines // 12  # ~200,000 distinct, none kept
    assert big["logs"]["groups_used"] == small["logs"]["groups_used"] > 0
    # neither the huge line nor 100x the lines (with their distinct paths) shows in memory
    assert big_rss - small_rss < 24 * 1024, (small_rss, big_rss)
