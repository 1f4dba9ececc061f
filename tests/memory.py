"""Peak memory of a command, measured in a process of its own.

Memory bounds are correctness properties (docs/reliability.md), so tests check them by the
peak resident size of a fresh process running the command, never by timing: a wrapper
process runs the command and reports ``RUSAGE_CHILDREN``, whose only child it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional

_WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True)\n"
    "print(json.dumps({'rc': p.returncode, 'out': p.stdout.decode(errors='replace'),"
    " 'err': p.stderr.decode(errors='replace'),"
    " 'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_mib: float


def run_measured(argv: List[str], env: Optional[Dict[str, str]] = None,
                 timeout: float = 300) -> Measured:
    """Run ``argv`` and return its exit code, output and peak RSS in MiB (Linux: KiB units)."""
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True,
                          env=env, timeout=timeout, check=True)
    result = json.loads(done.stdout)
    return Measured(result["rc"], result["out"], result["err"], result["peak_kib"] / 1024)


def cli(*args: str) -> List[str]:
    """The command line of ``sstate-mirror args...`` with this test run's interpreter."""
    return [sys.executable, "-m", "sstate_mirror", *args]
