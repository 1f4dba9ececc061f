"""``sstate-mirror diffsigs``: what changed, as ``bitbake-diffsigs`` says it.

The command lines of ``bitbake-diffsigs``:

* ``diffsigs FILE_A FILE_B`` compares two signature files (paths or URLs on a mirror);
* ``diffsigs FILE`` alone prints the file, as ``dumpsig`` does;
* ``diffsigs -t PN TASK CACHE`` compares the two newest signatures of that task in CACHE (a
  local sstate cache or a mirror URL: its listing is at hand, where bitbake asks its build
  configuration), and ``-s H1 H2`` picks them by hash instead.

When a dependency's hash changed, the explanation is looked up recursively: in CACHE, or in
the sstate caches that hold FILE_A and FILE_B (the directory above the ``hh/hh`` levels and any
``universal/``-style prefix) and in every ``--search-dir``. ``--no-recurse`` compares the two
files alone.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, List, Optional, Tuple

from ..backends import Backend, open_backend, scheme_of
from ..commands.analyze import normalize_task
from ..commands.listing import list_artifacts
from ..errors import EXIT_OK, SstateMirrorError, UsageError
from ..naming import Artifact, Kind
from ..signatures import read_signature
from ..signatures.compare import RecurseCallback, compare_signatures, diff_text
from ..signatures.dump import dump_text
from ..signatures.finder import DirectoryFinder, IndexedFinder, Recursor, cache_root_of
from ..signatures.model import Signature
from ..signatures.reader import DEFAULT_LIMITS
from .common import add_backend_options, add_command, backend_options_from_args
from .sigfiles import load_signature
from .ui import UI


class NoSignature(SstateMirrorError):
    """The task's signature files are not there (bitbake-diffsigs exits 1 too)."""


def register(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    parser = add_command(
        subparsers, parents, "diffsigs", run, target=None,
        help="compare two .siginfo/.sigdata files like bitbake-diffsigs",
        description="Say what changed between two signature files of one task (FILE_A old,"
        " FILE_B new), following changed dependencies into their own signature files. One"
        " file alone is printed. With -t PN TASK, the two newest signatures of that task in"
        " CACHE (an sstate cache or a mirror URL) are compared, or with -s the two with"
        " these hashes.",
    )
    parser.add_argument("file_a", metavar="FILE_A",
                        help="the old signature file (a path or a mirror URL); with -t: CACHE,"
                             " the sstate cache or mirror to search")
    parser.add_argument("file_b", metavar="FILE_B", nargs="?",
                        help="the new signature file (without it FILE_A is printed)")
    parser.add_argument("-t", "--task", nargs=2, metavar=("PN", "TASK"),
                        help="compare the two newest signatures of this task in CACHE")
    parser.add_argument("-s", "--signature", nargs=2, metavar=("H1", "H2"),
                        help="with -t: compare the signatures with these hashes (a unique"
                             " prefix will do)")
    parser.add_argument("--search-dir", action="append", default=[], metavar="DIR",
                        help="another sstate cache to search for dependencies' signature files"
                             " (repeatable)")
    parser.add_argument("--no-recurse", action="store_true",
                        help="compare the two files only; do not look into changed dependencies")
    add_backend_options(parser)


def _recursor(args: argparse.Namespace, ui: UI, color: bool) -> Optional[RecurseCallback]:
    if args.no_recurse:
        return None
    for directory in args.search_dir:
        if not os.path.isdir(directory):
            raise UsageError(f"--search-dir {directory}: not a directory")
    local = [f for f in (args.file_a, args.file_b) if scheme_of(f, "FILE") == "file"]
    roots = [cache_root_of(f) for f in local] + list(args.search_dir)
    ui.detail("searching dependencies' signatures in: " + ", ".join(roots))
    return Recursor(DirectoryFinder(roots, on_error=_warner(ui)), color=color)


def _warner(ui: UI) -> Any:
    def unreadable(path: str, exc: SstateMirrorError) -> None:
        ui.warn(f"skipping unreadable signature file: {exc}")
    return unreadable


def _pick(siginfo: List[Artifact], pn: str, task: str,
          hashes: Optional[List[str]]) -> Tuple[Artifact, Artifact]:
    """The two files to compare, in bitbake-diffsigs' words when they are not there."""
    what = f"{pn} do_{task}"
    if hashes is None:
        newest = sorted(siginfo, key=lambda a: (a.mtime, a.path))[-2:]
        if not newest:
            raise NoSignature(f"No sigdata files found matching {what}")
        if len(newest) < 2:
            raise NoSignature("Only one matching sigdata file found for the specified task"
                              f" ({what})")
        return newest[0], newest[1]
    found = []
    for h in hashes:
        matches = [a for a in siginfo if a.hash.startswith(h)]
        if len({a.hash for a in matches}) > 1:
            raise UsageError(f"-s {h}: more than one signature of {what} has a hash starting"
                             " so; give more of it")
        if not matches:
            raise NoSignature(f"No sigdata files found matching {what} with signature {h}")
        found.append(matches[0])
    return found[0], found[1]


def _by_task(args: argparse.Namespace, ui: UI, color: bool) -> List[str]:
    if args.file_b is not None:
        raise UsageError("with -t, give one CACHE (an sstate cache or a mirror URL), not two"
                         " files")
    pn, task = args.task[0], normalize_task(args.task[1])
    with open_backend(args.file_a, backend_options_from_args(args)) as cache:
        cache.check()
        artifacts = list_artifacts(cache)
        siginfo = [a for a in artifacts
                   if a.kind is Kind.SIGINFO and a.pn == pn and a.task == task]
        old, new = _pick(siginfo, pn, task, args.signature)
        ui.detail(f"comparing {old.path} with {new.path}")
        recurse = None if args.no_recurse else Recursor(IndexedFinder(
            artifacts, lambda path: _read(cache, path), on_error=_warner(ui)), color=color)
        return compare_signatures(_load(cache, old.path), _load(cache, new.path), recurse,
                                  color=color)


def _read(cache: Backend, path: str) -> bytes:
    return cache.read(path, DEFAULT_LIMITS.max_compressed)


def _load(cache: Backend, path: str) -> Signature:
    return read_signature(_read(cache, path), source=f"{cache.url.rstrip('/')}/{path}")


def run(args: argparse.Namespace, ui: UI) -> int:
    color = ui.color and not ui.json_mode
    if args.signature and not args.task:
        raise UsageError("-s/--signature can only be used together with -t/--task")
    if args.task:
        lines = _by_task(args, ui, color)
    elif args.file_b is None:  # one file: bitbake-diffsigs prints it
        sig = load_signature(args.file_a, args)
        if ui.json_mode:
            data = sig.to_json()
            data["file"] = args.file_a
            ui.emit_json(data)
        else:
            ui.result(dump_text(sig))
        return EXIT_OK
    else:
        old = load_signature(args.file_a, args)
        new = load_signature(args.file_b, args)
        lines = compare_signatures(old, new, _recursor(args, ui, color), color=color)
    if ui.json_mode:
        ui.emit_json({"file_a": args.file_a, "file_b": args.file_b,
                      "changed": bool(lines), "lines": lines})
    else:
        ui.result(diff_text(lines))
    return EXIT_OK
