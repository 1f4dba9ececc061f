"""Command line: ``sstate-mirror COMMAND [SOURCE] TARGET [options]``.

The shape and option names follow Isar's ``isar-sstate`` so a CI script switches by changing
the command name. Each command lives in its own module here with two functions:
``register(subparsers, parents)`` adds its parser, ``run(args, ui) -> int`` runs it. Only this
package prints and picks exit codes.

Exit codes (documented in the README):
  0 success · 1 the job ran but something failed (a transfer, a delete; lint findings)
  2 usage error or unreadable input · 3 the mirror or cache could not be used at all
  130 interrupted
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from typing import List, Optional, Sequence

from .. import __version__
from ..errors import SstateMirrorError
from .common import add_output_options
from .ui import UI

#: Command modules in the order ``--help`` lists them.
COMMANDS: List[str] = ["upload", "clean", "info", "touch", "verify", "analyze", "lint",
                       "dumpsig", "diffsigs", "pin", "unpin", "pins"]
#: Commands registered by another command's module (``pin`` registers its two siblings).
_REGISTERED_BY = {"unpin": "pin", "pins": "pin"}

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sstate-mirror",
        description="Keep bitbake sstate mirrors healthy: upload, clean, inspect and analyze"
        " a shared sstate cache on a directory, an HTTP/WebDAV server or S3.",
        epilog="exit codes: 0 success, 1 partial failure or findings, 2 usage error,"
        " 3 mirror unusable, 130 interrupted. Run 'sstate-mirror COMMAND --help' for more.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_output_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    add_output_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        if name in _REGISTERED_BY:
            continue
        module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
        module.register(sub, [common])
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    ui = UI(verbose=args.verbose, quiet=args.quiet, json_mode=args.json, color=args.color)
    try:
        return int(args.run(args, ui))
    except SstateMirrorError as exc:
        ui.report_exception(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        ui.error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (| head): not an error of ours
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return EXIT_OK
