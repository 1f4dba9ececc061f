"""``sstate-mirror diffsigs FILE_A FILE_B``: what changed, as ``bitbake-diffsigs A B`` says it.

When a dependency's hash changed, the explanation is looked up recursively: the dependency's
own signature files are searched by name in the sstate caches that hold FILE_A and FILE_B (the
directory above the ``hh/hh`` levels and any ``universal/``-style prefix) and in every
``--search-dir``. ``--no-recurse`` compares the two files alone.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, List, Optional

from ..errors import SstateMirrorError, UsageError
from ..signatures import read_signature_file
from ..signatures.compare import RecurseCallback, compare_signatures, diff_text
from ..signatures.finder import DirectoryFinder, Recursor, cache_root_of
from .common import add_command
from .ui import UI


def register(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    parser = add_command(
        subparsers, parents, "diffsigs", run, target=None,
        help="compare two .siginfo/.sigdata files like bitbake-diffsigs",
        description="Say what changed between two signature files of one task (FILE_A old,"
        " FILE_B new), following changed dependencies into their own signature files.",
    )
    parser.add_argument("file_a", metavar="FILE_A", help="the old signature file")
    parser.add_argument("file_b", metavar="FILE_B", help="the new signature file")
    parser.add_argument("--search-dir", action="append", default=[], metavar="DIR",
                        help="another sstate cache to search for dependencies' signature files"
                             " (repeatable)")
    parser.add_argument("--no-recurse", action="store_true",
                        help="compare the two files only; do not look into changed dependencies")


def _recursor(args: argparse.Namespace, ui: UI, color: bool) -> Optional[RecurseCallback]:
    if args.no_recurse:
        return None
    for directory in args.search_dir:
        if not os.path.isdir(directory):
            raise UsageError(f"--search-dir {directory}: not a directory")
    roots = [cache_root_of(args.file_a), cache_root_of(args.file_b), *args.search_dir]
    ui.detail("searching dependencies' signatures in: " + ", ".join(roots))

    def unreadable(path: str, exc: SstateMirrorError) -> None:
        ui.warn(f"skipping unreadable signature file: {exc}")

    return Recursor(DirectoryFinder(roots, on_error=unreadable), color=color)


def run(args: argparse.Namespace, ui: UI) -> int:
    old = read_signature_file(args.file_a)
    new = read_signature_file(args.file_b)
    color = ui.color and not ui.json_mode
    lines = compare_signatures(old, new, _recursor(args, ui, color), color=color)
    if ui.json_mode:
        ui.emit_json({"file_a": args.file_a, "file_b": args.file_b,
                      "changed": bool(lines), "lines": lines})
    else:
        ui.result(diff_text(lines))
    return 0
