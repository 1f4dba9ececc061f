"""Command line: ``sstate-mirror COMMAND [SOURCE] TARGET [options]``.

The shape and option names follow Isar's ``isar-sstate`` so a CI script switches by changing
the command name. Each command lives in its own module here with two functions:
``register(subparsers, parents)`` adds its parser, ``run(args, ui) -> int`` runs it. Only this
package prints and picks exit codes: the ``EXIT_*`` names of :mod:`sstate_mirror.errors`,
the one place they are defined (docs/troubleshooting.md documents them).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from typing import List, NoReturn, Optional, Sequence

from .. import __version__, events
from ..errors import (
    EXIT_BACKEND,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_MEANINGS,
    EXIT_OK,
    EXIT_USAGE,
    SstateMirrorError,
)
from .common import add_output_options, check_arguments
from .ui import UI

#: Command modules in the order ``--help`` lists them.
COMMANDS: List[str] = ["upload", "clean", "info", "touch", "verify", "analyze", "lint",
                       "dumpsig", "diffsigs", "pin", "unpin", "pins"]
#: Commands registered by another command's module (``pin`` registers its two siblings).
_REGISTERED_BY = {"unpin": "pin", "pins": "pin"}

__all__ = ["EXIT_BACKEND", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE",
           "build_parser", "main"]


class ArgumentError(Exception):
    """argparse's usage error, raised instead of exiting so that ``--json`` can report it."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise ArgumentError(self, message)


def build_parser(*, raise_errors: bool = False) -> argparse.ArgumentParser:
    """The whole command line. argparse's usage errors exit (status 2), or with
    ``raise_errors`` raise :class:`ArgumentError` so that ``main`` can report them."""
    cls = _Parser if raise_errors else argparse.ArgumentParser
    parser = cls(
        prog="sstate-mirror",
        description="Keep bitbake sstate mirrors healthy: upload, clean, inspect and analyze"
        " a shared sstate cache on a directory, an HTTP/WebDAV server or S3.",
        epilog="exit codes: " + ", ".join(f"{code} {meaning}" for code, meaning in EXIT_MEANINGS)
        + ". Run 'sstate-mirror COMMAND --help' for more.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_output_options(parser, suppress=False)
    common = cls(add_help=False)
    add_output_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        if name in _REGISTERED_BY:
            continue
        module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
        module.register(sub, [common])
    return parser


def _usage_error(exc: ArgumentError, argv: Sequence[str]) -> int:
    """argparse's own report on stderr; with ``--json`` also the one document on stdout."""
    exc.parser.print_usage(sys.stderr)
    print(f"{exc.parser.prog}: error: {exc.message}", file=sys.stderr)
    words = list(argv)
    options = words[:words.index("--")] if "--" in words else words
    if "--json" in options:
        command = next((w for w in options if w in COMMANDS), None)
        helping = f"sstate-mirror {command} --help" if command else "sstate-mirror --help"
        UI(json_mode=True).finish_json(command, EXIT_USAGE, message=exc.message,
                                       hint=f"see '{helping}'")
    return EXIT_USAGE


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser(raise_errors=True)
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(words)
    except ArgumentError as exc:
        return _usage_error(exc, words)
    except SystemExit as exc:  # argparse: --help or --version (0)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    ui = UI(verbose=args.verbose, quiet=args.quiet, json_mode=args.json, color=args.color)
    code = _run(args, ui)
    ui.finish_json(args.command, code)
    return code


def _run(args: argparse.Namespace, ui: UI) -> int:
    try:
        with events.listening(ui.event), events.capture_logging():
            check_arguments(args)
            return int(args.run(args, ui))
    except SstateMirrorError as exc:
        ui.report_exception(exc)
        if args.verbose >= 2:
            ui.report_traceback(exc)
        ui.finish_json(args.command, exc.exit_code, message=str(exc), hint=exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        ui.error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (| head): not an error of ours
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return EXIT_OK
    except Exception as exc:  # a bug: one line, and where it happened with -vv
        ui.error(f"unexpected {type(exc).__name__}: {exc}")
        if args.verbose >= 2:
            ui.report_traceback(exc)
        else:
            ui.hint("run with -vv for the traceback, and please report it")
        ui.finish_json(args.command, EXIT_FAILED, message=f"unexpected {type(exc).__name__}:"
                       f" {exc}")
        return EXIT_FAILED
