"""Everything the tool prints goes through :class:`UI`.

Human text goes to stdout; warnings and errors to stderr. With ``--json`` stdout carries
exactly one JSON document and the human lines move to stderr, so ``sstate-mirror info
--json | jq`` always works. Only the CLI layer prints: commands return values and report
progress through callbacks.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from typing import IO, Any, Optional

from .. import events
from ..backends.base import redact_text
from ..errors import SstateMirrorError


def color_enabled(choice: str, stream: IO[str]) -> bool:
    """``--color auto`` means: a terminal, and neither NO_COLOR nor TERM=dumb set."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class UI:
    """Output policy for one run: verbosity, JSON mode, colour."""

    def __init__(
        self,
        *,
        verbose: int = 0,
        quiet: bool = False,
        json_mode: bool = False,
        color: str = "auto",
        out: Optional[IO[str]] = None,
        err: Optional[IO[str]] = None,
    ) -> None:
        self.verbose = verbose
        self.quiet = quiet
        self.json_mode = json_mode
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.color = color_enabled(color, self.out)
        self.err_color = color_enabled(color, self.err)
        self.err_is_terminal = hasattr(self.err, "isatty") and self.err.isatty()
        self._lock = threading.Lock()
        self.json_emitted = False
        #: Lines printed so far (a live progress display knows whether it is still last).
        self.lines_printed = 0
        self.last_error: Optional[str] = None

    @property
    def _human(self) -> IO[str]:
        return self.err if self.json_mode else self.out

    def info(self, message: str) -> None:
        """A normal progress/summary line (hidden by ``-q``)."""
        if not self.quiet:
            self.lines_printed += 1
            print(redact_text(message), file=self._human, flush=True)

    def shows_detail(self, level: int = 1) -> bool:
        """Whether :meth:`detail` lines of ``level`` are shown: a caller with a line per
        file (hundreds of thousands) makes them only then."""
        return self.verbose >= level and not self.quiet

    def detail(self, message: str, level: int = 1) -> None:
        """A line shown only with ``-v`` (``level`` times)."""
        if self.shows_detail(level):
            self.lines_printed += 1
            print(redact_text(message), file=self._human, flush=True)

    def result(self, text: str) -> None:
        """Primary output of a command (a dump, a diff); printed even with ``-q``."""
        self.lines_printed += 1
        self.out.write(text)
        self.out.flush()

    def warn(self, message: str) -> None:
        self.lines_printed += 1
        print(f"warning: {redact_text(message)}", file=self.err, flush=True)

    def error(self, message: str) -> None:
        self.last_error = message
        self.lines_printed += 1
        print(f"error: {redact_text(message)}", file=self.err, flush=True)

    def hint(self, message: str) -> None:
        print(f"hint: {redact_text(message)}", file=self.err, flush=True)

    def report_exception(self, exc: SstateMirrorError) -> None:
        self.error(str(exc))
        if exc.hint:
            self.hint(exc.hint)

    def event(self, event: events.Event) -> None:
        """Print one event of the backends or the transfer layer (see ``events``): warnings
        always, retries unless ``-q``, notices with ``-v``, debug lines with ``-vv``. One
        line each on stderr, written whole (events come from many threads)."""
        if event.kind == events.WARNING or (event.kind == events.RETRY and not self.quiet):
            line = f"warning: {redact_text(event.text)}"
        elif not self.quiet and self.verbose >= (1 if event.kind == events.NOTICE else 2):
            line = redact_text(event.text)
        else:
            return
        with self._lock:
            self.lines_printed += 1
            self.err.write(line + "\n")
            self.err.flush()

    def report_traceback(self, exc: BaseException) -> None:
        """The traceback of an error (``-vv``), with the causes it was raised from."""
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.err.write(redact_text(text))
        self.err.flush()

    def finish_json(self, command: Optional[str], exit_code: int, *,
                    message: Optional[str] = None, hint: Optional[str] = None) -> None:
        """With ``--json``, make sure stdout holds one document even when the command failed
        before it could print its own: the exit code and the error, for a ``jq`` step."""
        if not self.json_mode or self.json_emitted:
            return
        error = message or self.last_error
        self.emit_json({"command": command, "exit_code": exit_code,
                        "error": None if error is None else {"message": error, "hint": hint}})

    def emit_json(self, data: Any) -> None:
        self.json_emitted = True
        self.out.write(redact_text(json.dumps(data, indent=2, sort_keys=False, default=str)))
        self.out.write("\n")
        self.out.flush()
